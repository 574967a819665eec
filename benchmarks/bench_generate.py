"""Generation throughput by batch size: what `probe.batch_size` and `evaluate.batch_size` buy.

    python benchmarks/bench_generate.py [--sizes 16 32 64] [--n 192]

Greedy generation as the probe runs it (the base model, closed-book questions from
data/probe.jsonl, probe.max_new_tokens) and as evaluation runs it (the tuned model, test prompts
with their contexts and instructions, evaluate.max_new_tokens), in examples per second, each
as a ratio to the first size. Needs a finished `dvc repro` (models/ and data/).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TQDM_DISABLE", "1")


def throughput(model, tok, prompts: list[str], sizes: list[int], max_new_tokens: int) -> list[float]:
    from tasks.runtime.generate import generate

    generate(model, tok, prompts[: sizes[0]], sizes[0], max_new_tokens)  # warm-up
    rates = []
    for bs in sizes:
        t = time.perf_counter()
        generate(model, tok, prompts, bs, max_new_tokens)
        rates.append(len(prompts) / (time.perf_counter() - t))
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--n", type=int, default=192, help="prompts per measurement")
    args = ap.parse_args()

    import torch

    from tasks.core import prompt
    from tasks.core.schema import EvalItem
    from tasks.params.full import load_params
    from tasks.runtime.modeling import load_model

    params = load_params(ROOT / "params.yaml")
    cases = []
    questions = [json.loads(x)["question"] for x in (ROOT / "data" / "probe.jsonl").read_text().splitlines()]
    cases.append(("probe (base model, closed-book)", ROOT / "models" / "base", params.probe.precision,
                  params.probe.max_new_tokens, lambda tok: [prompt.render(tok, q) for q in questions[: args.n]]))
    items = [EvalItem.from_example(json.loads(x)) for x in (ROOT / "data" / "test.jsonl").read_text().splitlines()]
    random.Random(0).shuffle(items)
    cases.append(("evaluate (tuned model, test prompts)", ROOT / "models" / "tuned", params.evaluate.precision,
                  params.evaluate.max_new_tokens,
                  lambda tok: [prompt.render(tok, it.question, it.contexts, it.instruction) for it in items[: args.n]]))
    print(f"{torch.get_num_threads()} threads, {args.n} prompts per measurement")
    for name, model_dir, precision, new_tokens, render in cases:
        model, tok = load_model(model_dir, precision=precision)
        rates = throughput(model, tok, render(tok), args.sizes, new_tokens)
        cells = ", ".join(f"batch {bs}: {r:.2f} ex/s ({r / rates[0]:.2f}x)" for bs, r in zip(args.sizes, rates))
        print(f"- {name}, {new_tokens} new tokens, {precision}: {cells}", flush=True)


if __name__ == "__main__":
    main()
