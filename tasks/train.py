"""Stage train: `train.method` with TRL on the synthesized splits: LoRA SFT, DPO on the typed pairs,
or SFT then DPO; writes the adapters, the merged checkpoint and its model card.

    params: base.seed, train        reads: models/base, data/train.jsonl, data/val.jsonl
                                     writes: models/adapter, models/tuned, reports/train (dvclive)
"""
from __future__ import annotations

import logging
import random
import re
import shutil
import tempfile
from pathlib import Path

from tasks.core.atomic import atomic_dir, write_json
from tasks.core.prompt import conversation, preference
from tasks.core.schema import (
    ADAPTER_DIR,
    BASE_DIR,
    DATA_DIR,
    TRAIN_CHECKPOINTS,
    TRAIN_LIVE,
    TUNED_DIR,
    KprefError,
    read_splits,
)
from tasks.params.base import BaseParams
from tasks.params.model import ModelParams
from tasks.params.section import StageParams
from tasks.params.train import TrainParams
from tasks.runtime.modeling import (
    Device,
    check_checkpoint_dir,
    load_tokenizer,
    model_digest,
    pick_device,
    release_memory,
)
from tasks.training.card import file_md5, model_card
from tasks.training.checkpoints import Checkpoints
from tasks.training.checkpoints import plan as plan_checkpoints
from tasks.training.launch import is_main, launched, relaunch, world_size
from tasks.training.trainer import frozen_weights_in, load_trainable, sft_trainer_class

log = logging.getLogger(__name__)

class Params(StageParams):
    """The sections of params.yaml this stage reads."""
    base: BaseParams
    model: ModelParams
    train: TrainParams


def run(p: Params, root: Path) -> None:
    t = p.train
    if (t.num_processes > 1 or t.accelerate_config) and not launched():
        # the plan checked once, here, before any process starts or any weights load
        check_plan(t, check_checkpoint_dir(root / BASE_DIR), read_splits(root / DATA_DIR, ("train",))["train"],
                   root / DATA_DIR / "train.jsonl")
        relaunch(p, root, pick_device(t.device, t.precision).name)
        return
    out = train(p.train, p.base.seed, root / BASE_DIR, root / DATA_DIR, root / ADAPTER_DIR, root / TUNED_DIR,
                root / TRAIN_LIVE, base_name=p.model.base, checkpoint_dir=root / TRAIN_CHECKPOINTS)
    log.info("trained: %s", out)


def lora_targets(model, target_modules: str | list[str], top_layers: int) -> str | list[str]:
    """Module names to adapt: `target_modules` restricted to the top `top_layers` decoder layers."""
    import torch

    if top_layers == 0:
        return target_modules
    layer_ids = sorted({int(m.group(1)) for n, _ in model.named_modules() if (m := re.search(r"\.layers\.(\d+)\.", n))})
    if not layer_ids:
        raise KprefError("train.lora.top_layers: the model has no '.layers.N.' modules; set it to 0")
    keep = set(layer_ids[-top_layers:])
    names = [n for n, mod in model.named_modules()
             if isinstance(mod, torch.nn.Linear) and (m := re.search(r"\.layers\.(\d+)\.", n))
             and int(m.group(1)) in keep and (target_modules == "all-linear" or n.rsplit(".", 1)[-1] in target_modules)]
    if not names:
        raise KprefError(f"train.lora.target_modules: {target_modules!r} matches no linear layer of the model")
    return names


def _runtime_args(p: TrainParams, device, seed: int, output_dir: str, saving: dict | None = None) -> dict:
    """What SFT and DPO runs share: the device, seeding, and that kpref (not the trainer) saves and
    logs; `saving` (Checkpoints.trainer_args) turns checkpoints on in place of the scratch dir."""
    return {
        "output_dir": output_dir,
        "save_strategy": "no",
        "report_to": "none",  # dvclive is attached as a callback with our own settings
        "bf16": device.bf16,
        "use_cpu": device.name == "cpu",
        "gradient_checkpointing": p.gradient_checkpointing,
        "seed": seed,
        "data_seed": seed,
        **(saving or {}),
    }


def _live(live_dir: str | Path, resume: bool = False):
    """dvclive logger that writes plain files and leaves dvc.yaml and experiments to DVC; `resume`
    keeps what an earlier phase of this run logged there and carries on from its last step."""
    from dvclive import Live
    from scmrepo.exceptions import SCMError

    try:
        return Live(str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None, resume=resume)
    except SCMError as e:
        raise KprefError(
            f"train: dvclive cannot read this git repository ({e}); commit once (`git commit`) before training"
        ) from None


def lora_config(model, p: TrainParams):
    from peft import LoraConfig

    return LoraConfig(r=p.lora.r, lora_alpha=p.lora.alpha, lora_dropout=p.lora.dropout,
                      target_modules=lora_targets(model, p.lora.target_modules, p.lora.top_layers),
                      task_type="CAUSAL_LM")


def sft_config(p: TrainParams, output_dir: str, device, seed: int, evaluate: bool, saving: dict | None = None):
    from trl import SFTConfig

    return SFTConfig(
        num_train_epochs=p.epochs,
        max_steps=p.max_steps,
        per_device_train_batch_size=p.batch_size // world_size(),  # the effective batch whatever the processes
        per_device_eval_batch_size=p.batch_size // world_size(),
        gradient_accumulation_steps=p.grad_accum,
        learning_rate=p.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=p.warmup_ratio,
        weight_decay=p.weight_decay,
        max_length=p.max_length,
        logging_steps=p.logging_steps,
        eval_strategy="epoch" if evaluate else "no",
        train_sampling_strategy="group_by_length" if p.group_by_length else "random",
        disable_tqdm=False,
        **_runtime_args(p, device, seed, output_dir, saving),
    )


def _dataset(records: list[dict], to_row):
    from datasets import Dataset

    return Dataset.from_list([to_row(r) for r in records]) if records else None


def check_plan(p: TrainParams, base_dir: Path, records: list[dict], where: Path) -> None:
    """What cannot work, said before any weights load: no examples, a batch larger than the data,
    DPO without enough typed pairs, LoRA targets that match no module of the architecture."""
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    if not records:
        raise KprefError(f"{where}: no training examples")
    _check_processes(p)
    if p.batch_size > len(records):
        raise KprefError(f"train.batch_size: {p.batch_size} is more than the {len(records)} examples in {where}")
    if "dpo" in p.method:
        pairs = sum(1 for r in records if r.get("rejected"))
        per_step = p.dpo.batch_size * p.dpo.grad_accum
        if pairs < per_step:
            raise KprefError(f"train.method {p.method}: DPO needs at least train.dpo.batch_size x grad_accum "
                             f"({per_step}) preference pairs; {where} has {pairs} (examples with rejected/error_type)")
    with init_empty_weights():  # the architecture without its weights: module names, no memory
        skeleton = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(base_dir))
    targets = lora_targets(skeleton, p.lora.target_modules, p.lora.top_layers)
    if isinstance(targets, list) and p.lora.top_layers == 0:
        linear = {n.rsplit(".", 1)[-1] for n, m in skeleton.named_modules() if isinstance(m, torch.nn.Linear)}
        unknown = sorted(set(targets) - linear)
        if unknown:
            raise KprefError(f"train.lora.target_modules: {unknown} match no linear layer of {base_dir} "
                             f"(it has {sorted(linear)})")


def _check_processes(p: TrainParams) -> None:
    """More processes than devices, or batches that do not split evenly over them."""
    import os

    import torch

    n = p.num_processes
    if n == 1:
        return
    device = pick_device(p.device, p.precision).name
    devices = torch.cuda.device_count() if device == "cuda" else os.cpu_count() or 1
    if n > devices:
        raise KprefError(f"train.num_processes: {n} processes, but this machine has {devices} "
                         f"{'GPUs' if device == 'cuda' else 'CPU cores'}")
    for key, size in (("train.batch_size", p.batch_size), ("train.dpo.batch_size", p.dpo.batch_size)):
        if size % n:
            raise KprefError(f"{key}: {size} does not split over train.num_processes {n}: the effective batch "
                             f"(per process x processes x accumulation) is kept at {key}")


def train(p: TrainParams, seed: int, base_dir: str | Path, data_dir: str | Path, adapter_dir: str | Path,
          tuned_dir: str | Path, live_dir: str | Path, base_name: str | None = None,
          checkpoint_dir: str | Path | None = None) -> dict:
    """`p.method`'s phases (SFT, DPO, or SFT then DPO on the SFT-merged model); the adapters and the
    merged model, with its model card naming `base_name` (the base as params.yaml gives it), are
    written only once all training has succeeded. With `checkpoint_dir` and `p.checkpoint_steps`, each phase saves a checkpoint every
    that many steps and resumes from the newest one a killed run of the same inputs left."""
    import torch
    from transformers import set_seed

    base_dir = check_checkpoint_dir(base_dir)
    data = read_splits(data_dir, ("train", "val"))
    check_plan(p, base_dir, data["train"], Path(data_dir) / "train.jsonl")
    device = pick_device(p.device, p.precision)
    set_seed(seed)
    tok = load_tokenizer(base_dir)
    model = load_trainable(base_dir, p.attention, device)
    lora = lora_config(model, p)
    hashes = {s: file_md5(Path(data_dir) / f"{s}.jsonl") for s in data}
    ckpt = _checkpoints(p, seed, hashes, base_dir, checkpoint_dir)
    adapters, summary, merged = {}, {"method": p.method, "processes": world_size()}, model
    with tempfile.TemporaryDirectory(prefix="kpref-train-") as scratch:
        if "sft" in p.method:
            sft_model, sft_summary = train_sft(model, tok, p, seed, device, data, lora, scratch, live_dir, ckpt)
            adapters["sft"] = _keep_adapter(sft_model, Path(scratch) / "adapter-sft")
            merged = sft_model.merge_and_unload().to(torch.float32)
            summary.update(sft_summary)
            release_memory()
        if "dpo" in p.method:
            dpo_model, dpo_summary = train_dpo(merged, tok, p, seed, device, data["train"], lora,
                                               Path(scratch) / "dpo", Path(live_dir), ckpt, after_sft="sft" in p.method)
            adapters["dpo"] = _keep_adapter(dpo_model, Path(scratch) / "adapter-dpo")
            merged = dpo_model.merge_and_unload().to(torch.float32)
            summary.update(dpo_summary)
        card = model_card(base_name or str(base_dir), p.method, seed,
                          {s: {"n": len(data[s]), "md5": hashes[s]} for s in data}, p.model_dump(mode="json"), summary)
        if is_main():  # the other processes hold the same weights
            _save(adapters, merged, tok, adapter_dir, tuned_dir, {"base": str(base_dir), **summary}, card)
    if ckpt and is_main():
        ckpt.finish()
    return summary


def _checkpoints(p: TrainParams, seed: int, data_md5: dict, base_dir: Path,
                 checkpoint_dir: str | Path | None) -> Checkpoints | None:
    """Where this run's checkpoints go, keyed by what decides the weights (the interval does not)."""
    if not (checkpoint_dir and p.checkpoint_steps):
        return None
    inputs = {"train": {k: v for k, v in p.model_dump(mode="json").items() if k != "checkpoint_steps"},
              "seed": seed, "data": data_md5, "base": model_digest(base_dir)}
    return plan_checkpoints(Path(checkpoint_dir), p.checkpoint_steps, inputs, main=is_main())


def _mean_loss(trainer, result) -> float:
    """The run's mean training loss. The Trainer's own figure covers only the steps since a
    resume; the logged losses (restored with a checkpoint) cover every step."""
    logged = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return sum(logged) / len(logged) if logged else result.training_loss


def _fit(trainer, ckpt: Checkpoints | None, phase: str) -> tuple:
    """trainer.train(), from the newest checkpoint of `phase` a killed run left: (result, its step or None)."""
    resume = ckpt.latest(phase) if ckpt else None
    if resume:
        log.info("train: resuming %s from %s", phase, resume)
    return trainer.train(resume_from_checkpoint=resume), int(resume.rsplit("-", 1)[1]) if resume else None


def train_sft(model, tok, p: TrainParams, seed: int, device: Device, data: dict[str, list[dict]], lora,
              scratch: str, live_dir: str | Path, ckpt: Checkpoints | None = None):
    """LoRA SFT on train (evaluated on val each epoch): (the PEFT model, its summary)."""
    train_ds, eval_ds = _dataset(data["train"], conversation), _dataset(data["val"], conversation)
    config = sft_config(p, scratch, device, seed, evaluate=eval_ds is not None,
                        saving=ckpt.trainer_args("sft") if ckpt else None)
    trainer, result, resumed = _run_phase(lambda callbacks: sft_trainer_class(device, model.config)(
        model=model, args=config, train_dataset=train_ds, eval_dataset=eval_ds, processing_class=tok,
        peft_config=lora, callbacks=callbacks), live_dir, device, ckpt, "sft")
    evals = [h["eval_loss"] for h in trainer.state.log_history if "eval_loss" in h]
    return trainer.model, {"train_loss": _mean_loss(trainer, result), "steps": result.global_step,
                           "device": device.name,
                           **({"eval_loss": evals[-1]} if evals else {}),
                           **({"resumed_sft_at_step": resumed} if resumed else {})}


def train_dpo(model, tok, p: TrainParams, seed: int, device: Device, records: list[dict], lora, scratch: Path,
              live_dir: Path, ckpt: Checkpoints | None = None, after_sft: bool = False):
    """DPO on the typed pairs, a fresh LoRA on the SFT-merged model; the reference is that model
    with the adapter switched off, so no second copy is held. (the PEFT model, its summary)."""
    from trl import DPOConfig, DPOTrainer

    rows = [preference(r) for r in records if r.get("rejected")]
    if not rows:
        raise KprefError(f"train.method {p.method}: train.jsonl has no preference pairs (rejected/error_type)")
    random.Random(f"{seed}:dpo").shuffle(rows)
    rows = rows[: p.dpo.steps * p.dpo.batch_size * p.dpo.grad_accum]
    config = DPOConfig(
        max_steps=p.dpo.steps, per_device_train_batch_size=p.dpo.batch_size // world_size(),
        gradient_accumulation_steps=p.dpo.grad_accum,
        learning_rate=p.dpo.learning_rate, beta=p.dpo.beta, lr_scheduler_type="cosine", max_length=p.max_length,
        logging_steps=max(1, min(p.logging_steps, p.dpo.steps)),
        **_runtime_args(p, device, seed, str(scratch), ckpt.trainer_args("dpo") if ckpt else None),
    )
    trainer, result, resumed = _run_phase(lambda callbacks: DPOTrainer(
        model=model, ref_model=None, args=config, train_dataset=_dataset(rows, dict), processing_class=tok,
        peft_config=lora, callbacks=callbacks), live_dir, device, ckpt, "dpo", after_sft)
    return trainer.model, {"dpo_loss": _mean_loss(trainer, result), "dpo_steps": result.global_step,
                           "dpo_pairs": len(rows),
                           **({"resumed_dpo_at_step": resumed} if resumed else {})}


def _run_phase(make_trainer, live_dir: str | Path, device: Device, ckpt: Checkpoints | None, phase: str,
               after_sft: bool = False):
    """One phase's training: its trainer (made with the dvclive callback, one process logging), run
    with the frozen weights held as autocast uses them, from the newest checkpoint a killed run of
    the phase left: (trainer, result, the step it resumed at or None). Both phases log to the one
    dvclive folder, DPO's curves under dpo/ (after SFT's, on from its last step), so dvc.yaml
    declares one plots folder that every method fills."""
    live = _live(live_dir, resume=after_sft) if is_main() else None  # one process logs
    trainer = make_trainer([_live_callback(live, "" if phase == "sft" else f"{phase}/")] if live else [])
    with frozen_weights_in(trainer.model, device):
        result, resumed = _fit(trainer, ckpt, phase)
    if live:
        live.end()
    return trainer, result, resumed


def _live_callback(live, prefix: str):
    """transformers' dvclive callback, each logged name under `prefix`."""
    from transformers.integrations import DVCLiveCallback

    class PrefixedDVCLiveCallback(DVCLiveCallback):
        def on_log(self, args, state, control, model=None, logs=None, **kwargs):
            logs = {prefix + k: v for k, v in (logs or {}).items()}
            super().on_log(args, state, control, model=model, logs=logs, **kwargs)

    return PrefixedDVCLiveCallback(live=live)


def _keep_adapter(model, where: Path) -> Path:
    """The adapter's files, written before the merge: `merge_and_unload` folds the LoRA weights into
    the base and takes them out of `model`, so saving it afterwards writes an empty adapter."""
    for cfg in model.peft_config.values():
        # PEFT holds the module names as a set and writes them in the process's hash order:
        # same params, another adapter_config.json (and another DVC hash) on every run
        if isinstance(cfg.target_modules, set):
            cfg.target_modules = sorted(cfg.target_modules)
    if is_main():
        model.save_pretrained(where, safe_serialization=True)
    return where


def _save(adapters: dict[str, Path], merged, tok, adapter_dir: str | Path, tuned_dir: str | Path, meta: dict,
          card: str) -> None:
    with atomic_dir(adapter_dir) as tmp:
        # the first phase's adapter at the top (on the base); DPO's after SFT in dpo/ (on the SFT-merged model)
        first, *rest = adapters.values()
        shutil.copytree(first, tmp, dirs_exist_ok=True)
        tok.save_pretrained(tmp)
        if rest:
            shutil.copytree(rest[0], Path(tmp) / "dpo")
    with atomic_dir(tuned_dir) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        write_json(Path(tmp) / "kpref_train.json", meta)
        (Path(tmp) / "README.md").write_text(card, encoding="utf-8")
