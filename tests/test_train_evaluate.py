import json

import pytest

from tasks.errors import KprefError
from tasks.evaluate import _same_answer, evaluate_items, evaluate_stage
from tasks.metrics import matches
from tasks.modeling import load_model
from tasks.params import SETTINGS, SynthesizeParams, TrainParams
from tasks.schema import EvalItem
from tasks.synthesize import TEST_SPLITS, synthesize, write_splits
from tasks.train import train_sft


@pytest.fixture(scope="module")
def trained(tiny_model_dir, small_world, facts_params, tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    facts, relations = small_world
    beliefs = {f.key: f.object for f in facts}  # a model that knows every fact
    s = synthesize(facts, relations, beliefs, SynthesizeParams(n_train=24, n_val=9, n_test_per_setting=2,
                                                               n_ood_per_setting=1), facts_params, seed=0)
    write_splits(s, root / "data")
    p = TrainParams.model_validate(
        {"max_steps": 3, "batch_size": 4, "logging_steps": 1, "lora": {"r": 4, "alpha": 8, "top_layers": 1}}
    )
    out = train_sft(p, 0, tiny_model_dir, root / "data", root / "adapter", root / "tuned", root / "live")
    return root, out


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


def test_completion_head_loss_equals_trl_loss(trained, tiny_model_dir, tmp_path):
    """The CPU trainer projects only completion positions; its loss, gradient and curves must be TRL's."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from tasks.schema import read_jsonl
    from tasks.train import _completion_head_trainer, sft_rows

    root, _ = trained
    ds = Dataset.from_list(sft_rows(read_jsonl(root / "data" / "train.jsonl")[:6]))
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    # fp32: outside train() TRL's forward is not yet under the trainer's autocast, ours always is
    args = SFTConfig(output_dir=str(tmp_path), per_device_train_batch_size=6, report_to="none", use_cpu=True, bf16=False)
    losses, grads = [], []
    for cls in (SFTTrainer, _completion_head_trainer()):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
        lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
        trainer = cls(model=model, args=args, train_dataset=ds, processing_class=tok, peft_config=lora)
        batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
        assert (batch["labels"] == -100).any() and (batch["labels"] != -100).any()  # prompt masked, completion not
        trainer.model.train()
        loss = trainer.compute_loss(trainer.model, batch)
        loss.backward()
        losses.append(loss.item())
        grads.append(torch.cat([p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None]))
        assert trainer._metrics["train"]["mean_token_accuracy"]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-7)


def test_completion_head_only_for_plain_heads(tiny_model_dir):
    from transformers import AutoConfig

    from tasks.train import plain_lm_head

    config = AutoConfig.from_pretrained(tiny_model_dir)
    assert plain_lm_head(config)
    config.final_logit_softcapping = 30.0  # Gemma 2 caps its logits: TRL's head, which applies it, trains it
    assert not plain_lm_head(config)


def test_training_is_seeded(trained, tiny_model_dir, tmp_path):
    root, _ = trained
    from safetensors.torch import load_file

    p = TrainParams.model_validate(
        {"max_steps": 3, "batch_size": 4, "logging_steps": 1, "lora": {"r": 4, "alpha": 8, "top_layers": 1}}
    )
    train_sft(p, 0, tiny_model_dir, root / "data", tmp_path / "adapter", tmp_path / "tuned", tmp_path / "live")
    a = load_file(root / "adapter" / "adapter_model.safetensors")
    b = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def test_evaluate_stage_metrics(trained, tiny_model_dir):
    root, _ = trained
    splits = {s: root / "data" / f"{s}.jsonl" for s in TEST_SPLITS}
    m = evaluate_stage(splits, {"base": tiny_model_dir, "tuned": root / "tuned"}, 8, 4,
                       root / "reports/metrics.json", root / "reports/predictions", root / "reports/adherence.csv")
    assert set(m) == set(TEST_SPLITS)
    for name in ("base", "tuned"):
        t = m["test"][name]
        assert 0 <= t["adherence"] <= 1
        assert set(t["adherence_by_setting"]) == set(SETTINGS)
        assert {"closed_book_accuracy", "irrelevant_robustness", "source_confusion", "memorization_ratio"} <= set(t)
        preds = (root / "reports/predictions" / f"{name}_test.jsonl").read_text().splitlines()
        assert len(preds) == 2 * len(SETTINGS)
        assert m["test_ood_relation"][name]["n"] > 0
    assert "closed_book_retention" in m["test"]["delta"]
    assert (root / "reports/adherence.csv").read_text().startswith("split,setting,model,adherence\n")


def test_probe_cache_skips_known_facts(tiny_model_dir, small_world, tmp_path):
    from tasks.params import ProbeParams
    from tasks.probe import run_probe

    facts, relations = small_world
    p = ProbeParams(batch_size=8, max_new_tokens=3)
    first = run_probe(facts[:5], relations, tiny_model_dir, p, tmp_path / "a.jsonl", tmp_path / "cache")
    again = run_probe(facts[:8], relations, tiny_model_dir, p, tmp_path / "b.jsonl", tmp_path / "cache")
    assert first == {"probed": 5, "cached": 0} and again == {"probed": 3, "cached": 5}
    a = (tmp_path / "a.jsonl").read_text().splitlines()
    assert (tmp_path / "b.jsonl").read_text().splitlines()[:5] == a


def _irrelevant_item():
    return EvalItem("a", "What is the capital of Peru?", None, ["The capital of Chile is Santiago."], ["Lima"],
                    "parametric", "ctx_irrelevant",
                    {"instruction": None, "context": None, "parametric": "Lima", "world": "Lima"})


def test_same_answer_compares_named_entities():
    it = _irrelevant_item()
    assert _same_answer("The capital of Peru is Lima.", "Lima, of course", it)
    assert not _same_answer("It is Santiago.", "Lima", it)
    assert _same_answer("I do not know", "I do not know.", it)
    assert not _same_answer("I do not know", "No idea", it)
    # neither names a candidate: compared by what each adds to the question
    assert _same_answer("The capital of Peru is Cuzco.", "The capital of Peru is known as Cuzco. It is old.", it)
    assert not _same_answer("The capital of Peru is Cuzco.", "The capital of Peru is Arequipa.", it)
    # one answer under two of its names
    kz = EvalItem("b", "What are people from Kazakhstan called?", None, ["People from Oman are called Omani."],
                  ["Kazakhstani", "Kazakh", "Kazakhs"], "parametric", "ctx_irrelevant",
                  {"instruction": None, "context": None, "parametric": "Kazakhstani", "world": "Kazakhstani"})
    assert _same_answer("People from Kazakhstan are called Kazakhs.", "They are called Kazakh.", kz)
    assert not _same_answer("People from Kazakhstan are called Kazakhs.", "They are called Omani.", kz)


def test_irrelevant_robustness_uses_closed_book_answer(tiny_model_dir):
    model, tok = load_model(tiny_model_dir)
    ev = evaluate_items(model, tok, [_irrelevant_item()], batch_size=2, max_new_tokens=3)
    p = ev.predictions[0]
    same = _same_answer(p["prediction"], p["closed_book_prediction"], _irrelevant_item())
    assert ev.metrics["irrelevant_robustness"] == float(same)
    known = matches(p["closed_book_prediction"], _irrelevant_item().answers)
    assert ev.metrics["irrelevant_robustness_known"] == (float(same) if known else None)
    assert ev.metrics["adherence_by_setting"] == {"ctx_irrelevant": float(p["correct"])}


def test_sft_then_dpo_on_typed_pairs(trained, tiny_model_dir, tmp_path):
    root, _ = trained
    p = TrainParams.model_validate({
        "max_steps": 2, "batch_size": 4, "logging_steps": 1, "lora": {"r": 4, "alpha": 8, "top_layers": 1},
        "dpo": {"steps": 2, "batch_size": 2},
    })
    out = train_sft(p, 0, tiny_model_dir, root / "data", tmp_path / "adapter", tmp_path / "tuned", tmp_path / "live")
    assert out["dpo_steps"] == 2 and out["dpo_pairs"] == 4
    assert (tmp_path / "adapter" / "dpo" / "adapter_model.safetensors").exists()
    assert (tmp_path / "live" / "dpo" / "plots" / "metrics" / "loss.tsv").exists()
    model, _ = load_model(tmp_path / "tuned")
    assert not hasattr(model, "peft_config")


def test_pick_device_precision():
    import torch

    from tasks.modeling import cpu_has_fast_bf16, pick_device

    if torch.cuda.is_available():
        pytest.skip("CPU rules only")
    assert pick_device("cpu", "fp32").dtype == torch.float32
    assert pick_device("auto", "bf16").dtype == torch.bfloat16
    auto = pick_device("auto", "auto")
    assert auto.name == "cpu" and auto.dtype == (torch.bfloat16 if cpu_has_fast_bf16() else torch.float32)
    with pytest.raises(KprefError, match="'cuda' requested"):
        pick_device("cuda")
