"""Seconds per SFT step and tokens/s: TRL's own SFTTrainer, kpref's completion-head trainer (what
the train stage runs on the CPU, the adapted layers' frozen weights held in bf16 under bf16 autocast),
the same with sdpa attention (what train.attention's eager saves on the CPU), the same with the frozen
weights held in fp32 and cast at every forward (what holding them in bf16 saves), and a bare PyTorch
loop over the same batches.

    python benchmarks/bench_train_step.py [--steps 16] [--rounds 2] [--lora-dropout 0.05] [--kinds kpref fp32]

All train the real base model (models/base) on the first examples of data/train.jsonl with
the pipeline's own SFT and LoRA settings (params.yaml `train`, cut to --steps), alternating
(TRL, kpref, sdpa, fp32, bare, TRL, ...) so that drift in the machine's speed falls on each. The bare loop
takes the kpref trainer's own batches and LoRA model and does only forward (the completion
head), backward, gradient clipping, AdamW and the cosine schedule: what the Trainer machinery
costs is the difference (target: kpref at least 0.9x the bare loop's tokens/s). Prints s/step,
tokens/s and the training loss of each (the losses should agree to a few parts in 10^3 under
bf16). Needs a finished `dvc repro` (models/base, data/train.jsonl).

Then the FLOP/s the train stage achieves: the floating-point operations of forward and backward
on the same batches, counted by torch's FlopCounterMode (every matmul and attention kernel as it
really runs: the completion head, the frozen lower layers without backward), divided by kpref's
measured time, as a share of this machine's own matmul rate (a square float32 matmul, and bf16,
which the stage's autocast uses on CPUs with AVX512-BF16).
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("trl", "kpref", "sdpa", "fp32", "bare")
LABELS = {"trl": "TRL", "kpref": "kpref", "sdpa": "kpref with sdpa attention",
          "fp32": "kpref with the frozen weights in fp32", "bare": "bare loop"}
os.environ.setdefault("TQDM_DISABLE", "1")


def bare_loop(trainer, p, device, steps: int) -> tuple[float, float, int]:
    """The same batches and LoRA model as `trainer`, trained by hand: (s/step, mean loss, tokens)."""
    from contextlib import nullcontext

    import torch
    from transformers import get_cosine_schedule_with_warmup

    from tasks.training.trainer import completion_logits

    model = trainer.model
    model.train()
    batches = [b for _, b in zip(range(steps), trainer.get_train_dataloader())]
    params = [w for w in model.parameters() if w.requires_grad]
    opt = torch.optim.AdamW(params, lr=p.learning_rate, weight_decay=p.weight_decay)
    sched = get_cosine_schedule_with_warmup(opt, math.ceil(p.warmup_ratio * steps), steps)  # as the Trainer rounds
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if device.bf16 else nullcontext
    t, losses = time.perf_counter(), []
    for batch in batches:
        logits, target = completion_logits(model, batch, autocast)
        loss = torch.nn.functional.cross_entropy(logits, target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    return (time.perf_counter() - t) / len(batches), sum(losses) / len(losses), tokens


def step_flops(trainer, device, steps: int) -> float:
    """Floating-point operations of forward and backward over the first `steps` batches (not timed)."""
    from contextlib import nullcontext

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from tasks.training.trainer import completion_logits

    model = trainer.model
    model.train()
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if device.bf16 else nullcontext
    counter = FlopCounterMode(display=False)
    with counter:
        for _, batch in zip(range(steps), trainer.get_train_dataloader()):
            logits, target = completion_logits(model, batch, autocast)
            torch.nn.functional.cross_entropy(logits, target).backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def matmul_rate(dtype_name: str, n: int = 2048, seconds: float = 3.0) -> float:
    """This machine's matmul FLOP/s: square n x n products, repeated for about `seconds`."""
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    reps, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        a @ b
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - t)


def run(kind: str, steps: int, lora_dropout: float | None = None) -> tuple[float, float, int]:
    from contextlib import nullcontext

    from datasets import Dataset
    from transformers import set_seed
    from trl import SFTTrainer

    from tasks.core.prompt import conversation
    from tasks.core.schema import BASE_DIR, read_jsonl
    from tasks.params.full import load_params
    from tasks.runtime.modeling import load_tokenizer, pick_device
    from tasks.train import lora_config, sft_config
    from tasks.training.trainer import (
        completion_head_trainer,
        frozen_weights_in,
        load_trainable,
    )

    params = load_params(ROOT / "params.yaml")
    p = params.train.model_copy(update={"max_steps": steps, "logging_steps": steps})
    if lora_dropout is not None:
        p = p.model_copy(update={"lora": p.lora.model_copy(update={"dropout": lora_dropout})})
    device = pick_device("cpu", p.precision)
    rows = [conversation(r) for r in read_jsonl(ROOT / "data" / "train.jsonl")[: steps * p.batch_size]]
    base = ROOT / BASE_DIR
    tok = load_tokenizer(base)
    set_seed(params.base.seed)
    # the kernel train.attention picks (eager on the CPU), except the run that measures what it saves
    model = load_trainable(base, "sdpa" if kind == "sdpa" else p.attention, device)
    cls = SFTTrainer if kind == "trl" else completion_head_trainer()
    with tempfile.TemporaryDirectory() as scratch:
        # the pipeline's own SFT and LoRA settings (train.*), cut to `steps`
        trainer = cls(model=model, args=sft_config(p, scratch, device, params.base.seed, evaluate=False),
                      train_dataset=Dataset.from_list(rows), processing_class=tok, peft_config=lora_config(model, p))
        tokens = sum(int(b["attention_mask"].sum()) for _, b in zip(range(steps), trainer.get_train_dataloader()))
        # as the train stage holds them, but for TRL's own trainer and the run that measures what it saves
        hold = nullcontext() if kind in ("trl", "fp32") else frozen_weights_in(trainer.model, device)
        with hold:
            if kind == "bare":
                return bare_loop(trainer, p, device, steps)
            if kind == "flops":
                return 0.0, step_flops(trainer, device, steps), tokens
            t = time.perf_counter()
            result = trainer.train()
        return (time.perf_counter() - t) / result.global_step, result.training_loss, tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--lora-dropout", type=float, default=None,
                    help="train.lora.dropout for every run in place of params.yaml's (what a dropout mask costs)")
    ap.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS),
                    help="the runs to time (all by default); the FLOP/s line needs kpref")
    args = ap.parse_args()
    times: dict[str, list[float]] = {kind: [] for kind in args.kinds}
    for r in range(args.rounds):
        for kind in times:
            s, loss, tokens = run(kind, args.steps, args.lora_dropout)
            times[kind].append(s)
            print(f"round {r + 1} {kind:5s}: {s:.3f} s/step, {tokens / (s * args.steps):.0f} tokens/s over "
                  f"{args.steps} steps, loss {loss:.4f}", flush=True)
    med = {kind: statistics.median(t) for kind, t in times.items()}
    print("median s/step: " + ", ".join(f"{LABELS[k]} {s:.3f}" for k, s in med.items()), flush=True)
    if "kpref" not in med:
        return
    ours = med["kpref"]
    ratios = {"trl": "TRL's speed", "sdpa": "its own with sdpa", "fp32": "its own with the frozen weights in fp32",
              "bare": "the bare loop's tokens/s (same batches; target >= 0.9x)"}
    print("kpref is " + ", ".join(f"{med[k] / ours:.2f}x {what}" for k, what in ratios.items() if k in med))
    _, flops, _ = run("flops", args.steps, args.lora_dropout)
    achieved = flops / (ours * args.steps)
    rates = {name: matmul_rate(name) for name in ("float32", "bfloat16")}
    print(f"kpref achieves {achieved / 1e9:.1f} GFLOP/s ({flops / args.steps / 1e12:.3f} TFLOP a step, counted): "
          + ", ".join(f"{achieved / r:.1%} of this machine's {name} matmul rate ({r / 1e9:.1f} GFLOP/s)"
                      for name, r in rates.items()), flush=True)


if __name__ == "__main__":
    main()
