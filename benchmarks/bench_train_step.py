"""An SFT step of the real model, this checkout's against a commit's (1311d7e by default), on the
same batches in one run: seconds a step, tokens/s and the share of this machine's matmul rate.

    python benchmarks/bench_train_step.py [--steps 16] [--rounds 2] [--against 1311d7e]
                                          [--kinds kpref against trl sdpa fp32 bare] [--lora-dropout 0.05]

Each run trains the real base model (models/base) in a fresh process, with the pipeline's own
SFT and LoRA settings (each commit's params.yaml `train`, cut to --steps), on the same --steps of
the stage's own batches (length-grouped over all of data/train.jsonl), drawn at random (seed 0):
the stage's mix of closed-book sentences and passages and its padding, not only its first rows. The runs alternate
(against, kpref, ..., against, kpref, ...) so that drift in the machine's speed falls on each.
Kinds: `kpref` (this checkout's train stage on the CPU), `against` (the commit's), and this
checkout's variants: `trl` (TRL's own SFTTrainer), `sdpa` (sdpa attention in place of eager),
`fp32` (the adapted layers' frozen weights held in fp32 and cast at every forward), `bare`
(a hand loop over kpref's own batches and LoRA model: forward, backward, clipping, AdamW and the
schedule; what the Trainer machinery costs is the difference, target kpref >= 0.9x its tokens/s).
Prints s/step, tokens/s (tokens the model is trained on, padding not counted) and the training
loss of each (the losses should agree to a few parts in 10^3 under bf16), then kpref's ratios.

Then the FLOP/s: the floating-point operations of forward and backward on the same batches as
1311d7e runs them (every row whole), counted by torch's FlopCounterMode (every matmul and
attention kernel as it runs), over each kind's measured time, as a share of this machine's own
matmul rate (square float32 and bf16 products; the stage autocasts to bf16 on CPUs with
AVX512-BF16 or AMX). Needs a finished `dvc repro` (models/base, data/train.jsonl).
"""
from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext

from side_by_side import HERE, ROOT, answer, api, measure

KINDS = ("against", "kpref", "trl", "sdpa", "fp32", "bare")


def label(kind: str, against: str) -> str:
    return {"against": f"{against}'s kpref", "kpref": "kpref (this checkout)", "trl": "TRL's SFTTrainer",
            "sdpa": "kpref with sdpa attention", "fp32": "kpref with the frozen weights in fp32",
            "bare": "bare loop"}[kind]


def bare_loop(trainer, p, device, batches, completion_logits) -> tuple[float, float]:
    """The same batches and LoRA model as `trainer`, trained by hand: (s/step, mean loss)."""
    import torch
    from transformers import get_cosine_schedule_with_warmup

    model = trainer.model
    model.train()
    params = [w for w in model.parameters() if w.requires_grad]
    opt = torch.optim.AdamW(params, lr=p.learning_rate, weight_decay=p.weight_decay)
    sched = get_cosine_schedule_with_warmup(opt, math.ceil(p.warmup_ratio * len(batches)), len(batches))
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
    return (time.perf_counter() - t) / len(batches), sum(losses) / len(losses)


def step_flops(trainer, device, batches, A) -> float:
    """Floating-point operations of forward and backward over `batches`, every row whole (not timed)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    if hasattr(A.trainer, "_MIN_SHARED"):
        A.trainer._MIN_SHARED = 10**9  # the work as 1311d7e does it, whatever this checkout saves
    model = trainer.model
    model.train()
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if device.bf16 else nullcontext
    counter = FlopCounterMode(display=False)
    with counter:
        for batch in batches:
            logits, target = A.trainer.completion_logits(model, batch, autocast)
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


def built_trainer(A, task: dict, scratch: str):
    """The train stage's SFT trainer (or TRL's, for kind trl) on all of data/train.jsonl, cut to the
    stage's own batches at the positions `task["batches"]`, in that order: (trainer, p, device)."""
    from datasets import Dataset
    from transformers import set_seed
    from trl import SFTTrainer

    kind = task["kind"]
    params = A.load_params(task["params"])
    p = params.train.model_copy(update={"max_steps": len(task["batches"]), "logging_steps": len(task["batches"])})
    if task.get("lora_dropout") is not None:
        p = p.model_copy(update={"lora": p.lora.model_copy(update={"dropout": task["lora_dropout"]})})
    device = A.modeling.pick_device("cpu", p.precision)
    rows = [A.prompt.conversation(r) for r in A.schema.read_jsonl(ROOT / "data" / "train.jsonl")]
    base = ROOT / "models" / "base"
    tok = A.modeling.load_tokenizer(base)
    set_seed(params.base.seed)
    # the kernel train.attention picks (eager on the CPU), except the run that measures what it saves
    model = A.trainer.load_trainable(base, "sdpa" if kind == "sdpa" else p.attention, device)
    cls = SFTTrainer if kind == "trl" else A.trainer.completion_head_trainer()
    trainer = cls(model=model, args=A.train.sft_config(p, scratch, device, params.base.seed, evaluate=False),
                  train_dataset=Dataset.from_list(rows), processing_class=tok,
                  peft_config=A.train.lora_config(model, p))
    # the stage's batches (its length-grouped order over the whole split), the chosen ones in turn
    order, size = list(trainer._get_train_sampler(trainer.train_dataset)), trainer.args.train_batch_size
    trainer.train_dataset = trainer.train_dataset.select([i for k in task["batches"]
                                                          for i in order[k * size : (k + 1) * size]])
    trainer.args.train_sampling_strategy = "sequential"
    return trainer, p, device


def sample_batches(count: int) -> list[int]:
    """Positions of `count` of the train stage's batches, drawn at random (seed 0)."""
    batch = api().load_params(ROOT / "params.yaml").train.batch_size
    n = len((ROOT / "data" / "train.jsonl").read_text().splitlines()) // batch
    return random.Random(0).sample(range(n), min(n, count))


def worker(task: dict) -> None:
    A = api()
    kind = task["kind"]
    with tempfile.TemporaryDirectory() as scratch:
        trainer, p, device = built_trainer(A, task, scratch)
        batches = list(trainer.get_train_dataloader())
        tokens = sum(int(b["attention_mask"].sum()) for b in batches)
        # as the train stage holds them, but for TRL's own trainer and the run that measures what it saves
        hold = nullcontext() if kind in ("trl", "fp32") else A.trainer.frozen_weights_in(trainer.model, device)
        with hold:
            if kind == "bare":
                s, loss = bare_loop(trainer, p, device, batches, A.trainer.completion_logits)
            elif kind == "flops":
                s, loss = 0.0, step_flops(trainer, device, batches, A)
            else:
                t = time.perf_counter()
                result = trainer.train()
                s, loss = (time.perf_counter() - t) / result.global_step, result.training_loss
    answer(task, {"s": s, "loss": loss, "tokens": tokens, "steps": len(batches)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--against", default="1311d7e", help="the commit whose train step is the baseline")
    ap.add_argument("--lora-dropout", type=float, default=None,
                    help="train.lora.dropout for every run in place of params.yaml's (what a dropout mask costs)")
    ap.add_argument("--kinds", nargs="+", choices=KINDS, default=["against", "kpref", "trl", "bare"],
                    help="the runs to time; the ratios and the FLOP/s line need kpref")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))

    task = {"batches": sample_batches(args.steps), "lora_dropout": args.lora_dropout}
    ref = {k: args.against if k == "against" else HERE for k in args.kinds}
    times: dict[str, list[float]] = {kind: [] for kind in args.kinds}
    tokens: dict[str, int] = {}
    for r in range(args.rounds):
        for kind in times:
            out = measure(__file__, ref[kind], {**task, "kind": "kpref" if kind == "against" else kind})
            times[kind].append(out["s"])
            tokens[kind] = out["tokens"]
            print(f"round {r + 1} {label(kind, args.against)}: {out['s']:.3f} s/step, "
                  f"{out['tokens'] / (out['s'] * out['steps']):.0f} tokens/s over {out['steps']} steps "
                  f"({out['tokens']} tokens), loss {out['loss']:.4f}", flush=True)
    if len(set(tokens.values())) > 1:
        sys.exit(f"the kinds trained on different batches: tokens {tokens}")
    med = {kind: statistics.median(t) for kind, t in times.items()}
    print("median s/step: " + ", ".join(f"{label(k, args.against)} {s:.3f}" for k, s in med.items()), flush=True)
    if "kpref" not in med:
        return
    ours = med["kpref"]
    print("kpref's tokens/s is " + ", ".join(f"{med[k] / ours:.2f}x {label(k, args.against)}'s" for k in med
                                              if k != "kpref"))
    flops = measure(__file__, args.against if "against" in med else HERE, {**task, "kind": "flops"})["loss"]
    rates = {name: matmul_rate(name) for name in ("float32", "bfloat16")}
    print(f"the step's work: {flops / args.steps / 1e12:.3f} TFLOP (counted, every row whole); this machine's "
          + ", ".join(f"{name} matmul rate {r / 1e9:.1f} GFLOP/s" for name, r in rates.items()))
    for kind, s in med.items():
        achieved = flops / (s * args.steps)
        print(f"- {label(kind, args.against)}: {achieved / 1e9:.1f} GFLOP/s, "
              f"{achieved / rates['bfloat16']:.1%} of the bf16 rate", flush=True)


if __name__ == "__main__":
    main()
