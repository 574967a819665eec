import csv
import hashlib
import json

import pytest
import yaml

from tasks.runtime.modeling import load_model
from tasks.train import train
from tests.conftest import ROOT, TINY_TRAIN, TINY_TRAIN_RAW, shipped, shipped_raw


def test_sft_writes_adapter_merged_model_and_curves(trained):
    root, out = trained
    assert out["steps"] == 3 and out["device"] == "cpu"
    assert (root / "adapter" / "adapter_model.safetensors").exists()
    cfg = json.loads((root / "adapter" / "adapter_config.json").read_text())
    assert all(".layers.1." in m for m in cfg["target_modules"]), "top_layers=1 adapts only the last layer"
    model, _ = load_model(root / "tuned")
    assert not hasattr(model, "peft_config")
    loss = (root / "live" / "plots" / "metrics" / "loss.tsv").read_text().splitlines()
    assert loss[0].split("\t")[:2] == ["step", "loss"] and len(loss) == 1 + 3  # one row per logged step
    assert (root / "live" / "plots" / "metrics" / "eval" / "loss.tsv").exists()
    # the model card: Hugging Face's metadata header, the base, the method and the data by hash
    card = (root / "tuned" / "README.md").read_text()
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["library_name"] == "transformers" and "sft" in meta["tags"] and "dpo" not in meta["tags"]
    assert "base_model" not in meta  # a local directory names no hub checkpoint
    assert f"md5 `{hashlib.md5((root / 'data' / 'train.jsonl').read_bytes()).hexdigest()}`" in card
    assert "| train_loss |" in card and "| eval_loss |" in card and "learning_rate:" in card


def _first_step(trainer_cls, load_model, trained, tiny_model_dir, tmp_path):
    """One fp32 forward and backward of `trainer_cls` on the first batch of six training examples,
    a fresh LoRA seeded alike: (trainer, batch, loss, the LoRA gradient flattened)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer
    from trl import SFTConfig

    from tasks.core.prompt import conversation
    from tasks.core.schema import read_jsonl

    root, _ = trained
    ds = Dataset.from_list([conversation(r) for r in read_jsonl(root / "data" / "train.jsonl")[:6]])
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    # fp32: outside train() TRL's forward is not yet under the trainer's autocast, ours always is
    args = SFTConfig(output_dir=str(tmp_path), per_device_train_batch_size=6, report_to="none", use_cpu=True, bf16=False)
    torch.manual_seed(0)
    model = load_model()
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = trainer_cls(model=model, args=args, train_dataset=ds, processing_class=tok, peft_config=lora)
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    grad = torch.cat([p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None])
    return trainer, batch, loss.item(), grad


def test_completion_head_loss_equals_trl_loss(trained, tiny_model_dir, tmp_path):
    """The CPU trainer projects only completion positions; its loss, gradient and curves must be TRL's."""
    import torch
    from transformers import AutoModelForCausalLM
    from trl import SFTTrainer

    from tasks.training.trainer import completion_head_trainer

    losses, grads = [], []
    for cls in (SFTTrainer, completion_head_trainer()):
        trainer, batch, loss, grad = _first_step(
            cls, lambda: AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32),
            trained, tiny_model_dir, tmp_path)
        assert (batch["labels"] == -100).any() and (batch["labels"] != -100).any()  # prompt masked, completion not
        assert trainer._metrics["train"]["mean_token_accuracy"]
        losses.append(loss)
        grads.append(grad)
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-7)


def test_the_shared_opening_runs_once_with_the_loss_and_gradient_of_whole_rows(trained, tiny_model_dir, tmp_path,
                                                                             monkeypatch):
    """The opening every row of a batch shares (the chat template's) runs through the model once;
    the loss and the LoRA gradient must be those of running every row whole."""
    import torch

    import tasks.training.trainer as trainer_module
    from tasks.runtime.modeling import Device
    from tasks.training.trainer import (
        completion_head_trainer,
        load_trainable,
        shared_opening,
    )

    cpu = Device("cpu", torch.float32)
    losses, grads = [], []
    for least in (trainer_module._MIN_SHARED, 10**9):  # shared, then never
        monkeypatch.setattr(trainer_module, "_MIN_SHARED", least)
        _, batch, loss, grad = _first_step(completion_head_trainer(), lambda: load_trainable(tiny_model_dir, "eager", cpu),
                                           trained, tiny_model_dir, tmp_path)
        losses.append(loss)
        grads.append(grad)
    monkeypatch.undo()
    shared = shared_opening(batch["input_ids"], batch["attention_mask"], batch["labels"])
    first_scored = int((batch["labels"] != -100).int().argmax(1).min())
    assert 0 < shared < first_scored and (batch["input_ids"][:, :shared] == batch["input_ids"][0, :shared]).all()
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-7)
    # with gradient checkpointing (no key/value cache) every row runs whole, the same loss
    trainer, batch, _, _ = _first_step(completion_head_trainer(), lambda: load_trainable(tiny_model_dir, "eager", cpu),
                                       trained, tiny_model_dir, tmp_path)
    trainer.model.gradient_checkpointing_enable()
    trainer.model.train()
    assert trainer.compute_loss(trainer.model, batch).item() == pytest.approx(losses[1], rel=1e-5)
    # one row, or rows that part at once: nothing to share
    assert shared_opening(batch["input_ids"][:1], batch["attention_mask"][:1], batch["labels"][:1]) == 0
    parted = batch["input_ids"].clone()
    parted[1, 0] += 1
    assert shared_opening(parted, batch["attention_mask"], batch["labels"]) == 0


def test_cpu_training_runs_eager_attention_the_same_loss_and_gradient_as_sdpa(trained, tiny_model_dir, tmp_path):
    """train.attention auto picks eager on the CPU for speed; on padded batches it must train the
    same function as sdpa, to rounding."""
    import torch

    from tasks.runtime.modeling import Device
    from tasks.training.trainer import (
        attention_kernel,
        completion_head_trainer,
        load_trainable,
    )

    cpu, cuda = Device("cpu", torch.float32), Device("cuda", torch.bfloat16)
    assert load_trainable(tiny_model_dir, "auto", cpu).config._attn_implementation == "eager"
    assert load_trainable(tiny_model_dir, "sdpa", cpu).config._attn_implementation == "sdpa"
    assert attention_kernel("auto", cuda) is None and attention_kernel("eager", cuda) == "eager"

    losses, grads = [], []
    for kernel in ("eager", "sdpa"):
        _, batch, loss, grad = _first_step(completion_head_trainer(),
                                           lambda k=kernel: load_trainable(tiny_model_dir, k, cpu),
                                           trained, tiny_model_dir, tmp_path)
        assert (batch["attention_mask"] == 0).any()  # padded rows: the mask is part of what must agree
        losses.append(loss)
        grads.append(grad)
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["sft", "dpo"])
def test_bf16_training_holds_the_frozen_weights_in_bf16_and_trains_the_same_bits(trained, tiny_model_dir, tmp_path,
                                                                                  monkeypatch, method):
    """On a bf16 CPU the adapted layers' frozen weights are held in bf16 while training (autocast
    would cast them at every forward): the adapter and the merged model, which takes the fp32
    weights back, are bit for bit those of fp32-held weights."""
    from contextlib import contextmanager

    import torch
    from safetensors.torch import load_file

    import tasks.train
    from tasks.training.trainer import frozen_weights_in

    p = TINY_TRAIN.train.model_copy(update={"precision": "bf16", "method": method})
    root, _ = trained
    held = []

    @contextmanager
    def counted(model, device):
        with frozen_weights_in(model, device) as n:
            held.append(n)
            yield n

    @contextmanager
    def as_loaded(model, device):
        yield 0

    runs = {}
    for name, hold in (("bf16", counted), ("fp32", as_loaded)):
        monkeypatch.setattr(tasks.train, "frozen_weights_in", hold)
        train(p, 0, tiny_model_dir, root / "data", tmp_path / name / "adapter", tmp_path / name / "tuned",
              tmp_path / name / "live")
        runs[name] = [load_file(tmp_path / name / f) for f in ("adapter/adapter_model.safetensors",
                                                               "tuned/model.safetensors")]
    assert held == [7], "top_layers=1: the last layer's seven linear layers, held in bf16"
    for ours, theirs in zip(runs["bf16"], runs["fp32"]):
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert all(w.dtype == torch.float32 for w in runs["bf16"][1].values()), "the merge takes the fp32 weights back"


def test_completion_head_only_for_plain_heads(tiny_model_dir):
    from transformers import AutoConfig

    from tasks.training.trainer import plain_lm_head

    config = AutoConfig.from_pretrained(tiny_model_dir)
    assert plain_lm_head(config)
    config.final_logit_softcapping = 30.0  # Gemma 2 caps its logits: TRL's head, which applies it, trains it
    assert not plain_lm_head(config)


def test_the_adapter_on_the_base_is_the_merged_model(trained, tiny_model_dir):
    """models/adapter is for users who load base + adapter with PEFT: it must hold the trained LoRA
    weights (it held none when saved after the merge) and give models/tuned's weights."""
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    root, _ = trained
    saved = load_file(root / "adapter" / "adapter_model.safetensors")
    assert saved and all("lora_" in k for k in saved) and any(v.abs().sum() > 0 for k, v in saved.items()
                                                                   if "lora_B" in k)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, use_safetensors=True)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    merged = PeftModel.from_pretrained(base, root / "adapter").merge_and_unload().state_dict()
    tuned = load_file(root / "tuned" / "model.safetensors")
    assert tuned.keys() <= merged.keys()
    assert any(not torch.equal(tuned[k], before[k]) for k in tuned), "training changed no weight"
    assert all(torch.allclose(merged[k], tuned[k], atol=1e-6) for k in tuned)


def test_training_is_seeded(trained, tiny_model_dir, tmp_path):
    root, _ = trained
    from safetensors.torch import load_file

    train(TINY_TRAIN.train, 0, tiny_model_dir, root / "data", tmp_path / "adapter", tmp_path / "tuned", tmp_path / "live")
    a = load_file(root / "adapter" / "adapter_model.safetensors")
    b = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    # PEFT holds the module names as a set, whose order changes with the process's hash seed: the
    # saved config lists them sorted, so another run writes the same bytes
    modules = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["target_modules"]
    assert len(modules) == 7 and modules == sorted(modules)


def test_sft_then_dpo_on_typed_pairs(trained, tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    root, _ = trained
    p = shipped({"train": {**TINY_TRAIN_RAW, "max_steps": 2, "method": "sft+dpo", "checkpoint_steps": 1,
                           "dpo": {"steps": 2, "batch_size": 1, "grad_accum": 2}}}).train
    # with checkpoints, as the stage runs it: both phases save them, and they go once the model is saved
    out = train(p, 0, tiny_model_dir, root / "data", tmp_path / "adapter", tmp_path / "tuned", tmp_path / "live",
                checkpoint_dir=tmp_path / "ck")
    assert not any((tmp_path / "ck").iterdir())
    assert out["dpo_steps"] == 2 and out["dpo_pairs"] == 4  # two steps of two pairs, one at a time
    assert load_file(tmp_path / "adapter" / "dpo" / "adapter_model.safetensors")  # the DPO LoRA's weights, not none
    # one dvclive folder, DPO's curves under dpo/ after SFT's (dvc.yaml declares the one plots folder)
    curves = tmp_path / "live" / "plots" / "metrics"
    assert (curves / "loss.tsv").exists()
    for curve in ("loss.tsv", "rewards/margins.tsv", "rewards/accuracies.tsv", "learning_rate.tsv"):
        assert (curves / "dpo" / curve).exists(), curve
    def steps(path):
        with open(path) as fh:
            return [int(r["step"]) for r in csv.DictReader(fh, delimiter="\t")]

    assert steps(curves / "dpo" / "loss.tsv") and min(steps(curves / "dpo" / "loss.tsv")) > max(steps(curves / "loss.tsv"))
    model, _ = load_model(tmp_path / "tuned")
    assert not hasattr(model, "peft_config")
    assert "- dpo" in (tmp_path / "tuned" / "README.md").read_text()  # the card's tags name both phases


def test_dpo_alone_starts_from_the_base(trained, tiny_model_dir, tmp_path):
    root, _ = trained
    dpo = {"steps": 2, "batch_size": 2, "grad_accum": 1}
    p = shipped({"train": {**TINY_TRAIN_RAW, "method": "dpo", "dpo": dpo}}).train
    out = train(p, 0, tiny_model_dir, root / "data", tmp_path / "adapter", tmp_path / "tuned", tmp_path / "live")
    assert out["method"] == "dpo" and out["dpo_steps"] == 2 and "train_loss" not in out  # no SFT phase
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists() and not (tmp_path / "adapter" / "dpo").exists()
    assert (tmp_path / "live" / "plots" / "metrics" / "dpo" / "loss.tsv").exists()
    assert not (tmp_path / "live" / "plots" / "metrics" / "loss.tsv").exists()  # no SFT curve


@pytest.mark.parametrize("change, message", [
    ({"batch_size": 1000}, r"train.batch_size: 1000 is more than the \d+ examples"),
    ({"method": "sft+dpo", "dpo": {"steps": 2, "batch_size": 1000}},
     r"train.method sft\+dpo: DPO needs at least train.dpo.batch_size x grad_accum \(2000\)"),
    ({"lora": {**TINY_TRAIN_RAW["lora"], "top_layers": 0, "target_modules": ["q_proj", "qkv"]}},
     r"train.lora.target_modules: \['qkv'\] match no linear layer"),
    ({"num_processes": 4096}, r"train.num_processes: 4096 processes, but this machine has \d+ CPU cores"),
    ({"num_processes": 2, "batch_size": 3}, r"train.batch_size: 3 does not split over train.num_processes 2"),
])
def test_a_plan_that_cannot_work_is_named_before_any_weights_load(trained, tiny_model_dir, tmp_path, change, message):
    import shutil

    from tasks.core.schema import KprefError

    root, _ = trained
    broken = tmp_path / "base"  # its weights cannot load: the message must come before they are needed
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not weights")
    p = shipped({"train": {**TINY_TRAIN_RAW, **change}}).train
    with pytest.raises(KprefError, match=message):
        train(p, 0, broken, root / "data", tmp_path / "adapter", tmp_path / "tuned", tmp_path / "live")
    assert not (tmp_path / "adapter").exists() and not (tmp_path / "tuned").exists()


_KILLED_AFTER_CHECKPOINT = """
import os, signal, sys
from pathlib import Path
import transformers
from tests.conftest import shipped
from tasks.train import train

save = transformers.Trainer._save_checkpoint
def save_then_die(self, *args, **kwargs):  # SIGKILL right after the checkpoint of step {kill_at} is on disk
    save(self, *args, **kwargs)
    if self.state.global_step >= {kill_at}:
        os.kill(os.getpid(), signal.SIGKILL)
transformers.Trainer._save_checkpoint = save_then_die
p = shipped({{"train": {train}}}).train
out = Path(sys.argv[1])
train(p, 0, sys.argv[2], sys.argv[3], out / "adapter", out / "tuned", out / "live", checkpoint_dir=out / "ck")
"""


def _killed_run(train_raw: dict, kill_at: int, out, tiny_model_dir, data_dir):
    import subprocess
    import sys

    code = _KILLED_AFTER_CHECKPOINT.format(kill_at=kill_at, train=repr(train_raw))
    proc = subprocess.run([sys.executable, "-c", code, str(out), str(tiny_model_dir), str(data_dir)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == -9, proc.stderr[-3000:]  # killed, not finished
    assert not (out / "tuned").exists() and not (out / "adapter").exists()  # nothing half-written
    return proc


RESUMABLE = {**TINY_TRAIN_RAW, "max_steps": 8, "logging_steps": 2, "checkpoint_steps": 2}


@pytest.mark.slow
def test_a_killed_training_resumes_from_its_last_checkpoint_and_ends_as_an_uninterrupted_one(trained, tiny_model_dir,
                                                                                           tmp_path):
    from safetensors.torch import load_file

    root, _ = trained
    p = shipped({"train": RESUMABLE}).train
    clean = train(p, 0, tiny_model_dir, root / "data", tmp_path / "a" / "adapter", tmp_path / "a" / "tuned",
                  tmp_path / "a" / "live", checkpoint_dir=tmp_path / "a" / "ck")
    assert "resumed_sft_at_step" not in clean and not any((tmp_path / "a" / "ck").iterdir())  # done: nothing kept
    b = tmp_path / "b"
    _killed_run(RESUMABLE, 4, b, tiny_model_dir, root / "data")
    resumed = train(p, 0, tiny_model_dir, root / "data", b / "adapter", b / "tuned", b / "live",
                    checkpoint_dir=b / "ck")
    assert resumed["resumed_sft_at_step"] == 4 and resumed["steps"] == 8
    assert abs(resumed["train_loss"] - clean["train_loss"]) < 1e-5
    want, got = load_file(tmp_path / "a" / "tuned" / "model.safetensors"), load_file(b / "tuned" / "model.safetensors")
    assert want.keys() == got.keys()
    assert max((want[k] - got[k]).abs().max().item() for k in want) < 1e-5  # model, optimizer, data order resumed


@pytest.mark.slow
def test_resuming_with_other_params_starts_over_and_says_why(trained, tiny_model_dir, tmp_path, caplog):
    root, _ = trained
    _killed_run(RESUMABLE, 4, tmp_path, tiny_model_dir, root / "data")
    other = shipped({"train": {**RESUMABLE, "learning_rate": 0.0001}}).train
    with caplog.at_level("WARNING"):
        out = train(other, 0, tiny_model_dir, root / "data", tmp_path / "adapter", tmp_path / "tuned",
                    tmp_path / "live", checkpoint_dir=tmp_path / "ck")
    assert "resumed_sft_at_step" not in out and out["steps"] == 8
    assert "checkpoints of an earlier run with other train.learning_rate are not resumed: starting over" in caplog.text


def _project(root, tiny_model_dir, data_dir, train_raw: dict):
    """A project root the train stage runs in: dvc.yaml, params.yaml, models/base, data/."""
    import shutil

    root.mkdir(parents=True)
    shutil.copy(ROOT / "dvc.yaml", root / "dvc.yaml")
    shutil.copytree(tiny_model_dir, root / "models" / "base")
    (root / "data").mkdir()
    for split in ("train", "val"):
        shutil.copy(data_dir / f"{split}.jsonl", root / "data" / f"{split}.jsonl")
    raw = shipped_raw({"model": {"base": str(root / "models" / "base")}, "train": train_raw})
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    from tasks.params.full import load_params

    return load_params(root / "params.yaml")


@pytest.mark.e2e
def test_two_gloo_processes_train_what_one_process_trains(trained, tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    from tasks.train import run

    root, _ = trained
    raw = {**TINY_TRAIN_RAW, "max_steps": 4, "batch_size": 4, "group_by_length": False}
    run(_project(tmp_path / "one", tiny_model_dir, root / "data", raw), tmp_path / "one")
    run(_project(tmp_path / "two", tiny_model_dir, root / "data", {**raw, "num_processes": 2}), tmp_path / "two")
    one, two = (json.loads((tmp_path / n / "models/tuned/kpref_train.json").read_text()) for n in ("one", "two"))
    assert one["processes"] == 1 and two["processes"] == 2  # two processes really trained (world size 2)
    assert one["steps"] == two["steps"] == 4
    # the same batches (two halves of each batch of 4): the first step's loss, before any update, the
    # same to float noise; after it Adam's steps on near-zero gradients (below) let the curves part a
    # little (2.2e-4 at step 3 of one draw of the tiny model; other batches differ by about 1e-2)
    curves = [[float(line.split("\t")[1]) for line in (tmp_path / n / "reports/train/plots/metrics/loss.tsv")
               .read_text().splitlines()[1:]] for n in ("one", "two")]
    assert len(curves[0]) == len(curves[1]) == 4 and abs(curves[0][0] - curves[1][0]) < 1e-5
    assert max(abs(a - b) for a, b in zip(*curves)) < 2e-3
    assert abs(one["eval_loss"] - two["eval_loss"]) < 5e-3
    # the weights moved the same way; Adam turns float noise in near-zero gradients into whole steps,
    # so the difference is measured against the update, not entry by entry
    import torch

    base = load_file(tmp_path / "one" / "models/base/model.safetensors")
    want, got = (load_file(tmp_path / n / "models/tuned/model.safetensors") for n in ("one", "two"))
    moved = [torch.cat([(w[k] - base[k]).flatten() for k in base]) for w in (want, got)]
    assert torch.nn.functional.cosine_similarity(*moved, dim=0).item() > 0.95
