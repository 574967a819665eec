"""Where a train step's and a generation batch's time goes (torch.profiler), this checkout's code
against a commit's (1311d7e by default): the table benchmarks/README.md keeps.

    python benchmarks/profile_step.py [--steps 6] [--n 64] [--against 1311d7e]

- train step: the train stage's SFT trainer on --steps + 1 of the stage's own batches drawn at
  random (seed 0), `trainer.train()` profiled from its second step on (the Trainer's own work,
  clipping and AdamW included);
- probe: the base model on the first --n closed-book questions of data/probe.jsonl in the
  probe's fixed batches;
- evaluate: the tuned model's `predict` on --n test items drawn at random (seed 0), the whole call.

Each profile runs in a fresh process. An operator's own time (self CPU time, children apart)
goes to one row by its name and shapes: matrix products by the weights they multiply (the
frozen weights of the base; LoRA's, which have the rank r as a side; the LM head's, the
vocabulary), attention (batched products, softmax, sdpa), casts and copies, the optimizer
(foreach kernels), and every other tensor operator (norms, activations, rotary positions,
residual adds: elementwise). What the operators' own times leave of the wall time is Python
and framework work (module calls, autograd's engine, generate's loop). Generation is also
split by forward call: the prompt's (prefill) and one token at a time (decode). Padding: the
share of the positions computed that are padding. Needs a finished `dvc repro`.
"""
from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections import Counter

from bench_train_step import sample_batches
from side_by_side import HERE, ROOT, answer, api, measure

ROWS = ("matmuls: frozen base weights", "matmuls: LoRA", "matmuls: LM head", "attention", "casts and copies",
        "loss and logits", "optimizer and clipping", "other operators (norms, activations, rotary, adds)",
        "Python and framework")


def category(name: str, shapes: str, rank: int, vocab: int) -> str:
    if name in ("aten::mm", "aten::addmm", "aten::_weight_int8pack_mm"):
        if str(vocab) in shapes:
            return "matmuls: LM head"
        if f", {rank}]" in shapes or f"[{rank}, " in shapes:
            return "matmuls: LoRA"
        return "matmuls: frozen base weights"
    if name == "aten::bmm" or "softmax" in name and "log_softmax" not in name or "scaled_dot_product" in name:
        return "attention"
    if name in ("aten::_to_copy", "aten::copy_", "aten::to", "aten::clone", "aten::contiguous"):
        return "casts and copies"
    if "log_softmax" in name or name in ("aten::nll_loss_forward", "aten::nll_loss_backward", "aten::gather",
                                         "aten::argmax", "aten::max", "aten::topk"):
        return "loss and logits"
    if "_foreach" in name or name.startswith("Optimizer."):
        return "optimizer and clipping"
    if name.startswith("aten::"):
        return "other operators (norms, activations, rotary, adds)"
    return "Python and framework"  # autograd's engine nodes, record_function ranges


def tally(prof, wall: float, rank: int, vocab: int) -> dict[str, float]:
    """Seconds per row; "Python and framework" is what the operators' own times leave of `wall`."""
    seconds: Counter = Counter()
    for e in prof.key_averages(group_by_input_shape=True):
        seconds[category(e.key, str(e.input_shapes), rank, vocab)] += e.self_cpu_time_total / 1e6
    ops = sum(v for k, v in seconds.items() if k != "Python and framework")
    seconds["Python and framework"] = max(wall - ops, 0.0)
    return dict(seconds)


def profile_train(A, task: dict) -> dict:
    from contextlib import nullcontext

    import torch
    from bench_train_step import built_trainer
    from transformers import TrainerCallback

    with tempfile.TemporaryDirectory() as scratch:
        trainer, p, device = built_trainer(A, {**task, "kind": "kpref"}, scratch)
        batches = list(trainer.get_train_dataloader())
        padded = sum(b["attention_mask"].numel() for b in batches[1:])
        pad = 1 - sum(int(b["attention_mask"].sum()) for b in batches[1:]) / padded
        prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True,
                                      schedule=torch.profiler.schedule(wait=0, warmup=1, active=len(batches) - 1, repeat=1))
        ends: list[float] = []

        class Step(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                ends.append(time.perf_counter())
                prof.step()

        trainer.add_callback(Step())
        hold = A.trainer.frozen_weights_in(trainer.model, device) if device.bf16 else nullcontext()
        with hold, prof:
            trainer.train()
    wall = ends[-1] - ends[0]
    steps = len(ends) - 1
    rows = tally(prof, wall, p.lora.r, trainer.model.config.vocab_size)
    return {"per": "step", "seconds": {k: v / steps for k, v in rows.items()}, "wall": wall / steps, "padding": pad}


def profile_generation(A, task: dict) -> dict:
    import torch
    from bench_generate import workload

    phases: Counter = Counter()
    model, bs, call = workload(A, task)
    # per fixed batch of the probe; the evaluation's whole call (answers, closed-book answers, bare entropies)
    batches = -(-task["n"] // bs) if task["what"] == "probe" else 1
    counted = {"positions": 0, "padding": 0}
    start: list[float] = []

    def before(module, args, kwargs):
        start.append(time.perf_counter())

    def after(module, args, kwargs, output):
        ids = kwargs.get("input_ids", args[0] if args else None)
        mask = kwargs.get("attention_mask")
        phases["prefill" if ids is not None and ids.shape[1] > 1 else "decode"] += time.perf_counter() - start.pop()
        if ids is not None and ids.shape[1] > 1:
            counted["positions"] += ids.numel()
            if mask is not None:
                counted["padding"] += int((mask[:, -ids.shape[1]:] == 0).sum())

    call()  # warm-up, not profiled
    model.register_forward_pre_hook(before, with_kwargs=True)
    model.register_forward_hook(after, with_kwargs=True)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
        t = time.perf_counter()
        call()
        wall = time.perf_counter() - t
    rows = tally(prof, wall, 0, model.config.vocab_size)
    return {"per": f"batch of {min(bs, task['n'])}" if task["what"] == "probe" else f"{len(task['items'])} items",
            "seconds": {k: v / batches for k, v in rows.items()}, "wall": wall / batches,
            "padding": counted["padding"] / max(counted["positions"], 1),
            "phases": {k: v / batches for k, v in phases.items()}}


def worker(task: dict) -> None:
    A = api()
    answer(task, profile_train(A, task) if task["what"] == "train" else profile_generation(A, task))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=6, help="train steps profiled (after one not profiled)")
    ap.add_argument("--n", type=int, default=64, help="prompts (probe) and test items (evaluate)")
    ap.add_argument("--against", default="1311d7e")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))

    batches = sample_batches(args.steps + 1)
    tests = len((ROOT / "data" / "test.jsonl").read_text().splitlines())
    items = random.Random(0).sample(range(tests), min(args.n, tests))
    results = {}
    for what in ("train", "probe", "evaluate"):
        for ref in (args.against, HERE):
            results[what, ref] = measure(__file__, ref, {"what": what, "batches": batches, "items": items,
                                                         "n": args.n})
    cols = [(what, ref) for what in ("train", "probe", "evaluate") for ref in (args.against, HERE)]
    name = {"train": "train", "probe": "probe", "evaluate": "evaluate"}
    print("| where the time goes | " + " | ".join(f"{name[w]} {results[w, r]['per']}, "
                                               f"{'this checkout' if r == HERE else r}" for w, r in cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for row in ROWS:
        cells = []
        for c in cols:
            s, wall = results[c]["seconds"].get(row, 0.0), results[c]["wall"]
            cells.append(f"{s * 1000:.0f} ms ({s / wall:.0%})")
        print(f"| {row} | " + " | ".join(cells) + " |")
    print("| **wall time** | " + " | ".join(f"**{results[c]['wall'] * 1000:.0f} ms**" for c in cols) + " |")
    print("| of which prefill / decode (forward calls) | " + " | ".join(
        " / ".join(f"{results[c]['phases'].get(k, 0) * 1000:.0f} ms" for k in ("prefill", "decode"))
        if "phases" in results[c] else "–" for c in cols) + " |")
    print("| padding, share of positions computed | " + " | ".join(f"{results[c]['padding']:.1%}" for c in cols) + " |")


if __name__ == "__main__":
    main()
