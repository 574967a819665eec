"""Generation as the probe and the evaluation run it, this checkout's against a commit's (1311d7e
by default), on the same prompts in one run: examples/s and every answer that differs.

    python benchmarks/bench_generate.py [--n 256] [--rounds 2] [--against 1311d7e] [--batch-size 32]

- probe: the base model (models/base), the closed-book questions of data/probe.jsonl in fixed
  batches of probe.batch_size, probe.max_new_tokens, as the probe stage calls it;
- evaluate: the tuned model (models/tuned), --n test items drawn at random (seed 0) from
  data/test.jsonl, through the evaluation's own `predict` (the answers, the closed-book answers
  beside irrelevant passages and the bare prompts' entropies), evaluate.max_new_tokens.

Each measurement runs in a fresh process, alternating the commits; the examples/s are medians
over --rounds. Answers are compared prompt by prompt: greedy decoding in bf16 may flip where
two tokens are nearly tied once the arithmetic changes, so every differing answer is counted
(and whether it is still right, where the answer is known). Needs a finished `dvc repro`.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from side_by_side import HERE, ROOT, answer, api, measure


def worker(task: dict) -> None:
    A = api()
    params = A.load_params(task["params"])
    if task["what"] == "probe":
        model, tok = A.modeling.load_model(ROOT / "models" / "base", precision=params.probe.precision)
        rows = [json.loads(x) for x in (ROOT / "data" / "probe.jsonl").read_text().splitlines()][: task["n"]]
        prompts = [A.prompt.render(tok, r["question"]) for r in rows]
        bs = task["batch_size"] or params.probe.batch_size
        groups = [list(range(s, min(s + bs, len(prompts)))) for s in range(0, len(prompts), bs)]
        t = time.perf_counter()
        answers = A.generate.generate(model, tok, prompts, bs, params.probe.max_new_tokens, groups=groups)
        seconds = time.perf_counter() - t
        ids = [r["key"] for r in rows]
    else:
        model, tok = A.modeling.load_model(ROOT / "models" / "tuned", precision=params.evaluate.precision)
        items = [A.schema.EvalItem.from_example(json.loads(x))
                 for x in (ROOT / "data" / "test.jsonl").read_text().splitlines()]
        items = [items[i] for i in task["items"]]
        bs = task["batch_size"] or params.evaluate.batch_size
        t = time.perf_counter()
        preds = A.predict.predict(model, tok, items, bs, params.evaluate.max_new_tokens)
        seconds = time.perf_counter() - t
        answers, ids = [p["prediction"] for p in preds], [p["id"] for p in preds]
        right = {p["id"]: p["correct"] for p in preds}
    answer(task, {"seconds": seconds, "answers": dict(zip(ids, answers)), "n": len(ids),
                  "right": right if task["what"] == "evaluate" else {}})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=256, help="prompts (probe) and test items (evaluate) per measurement")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--against", default="1311d7e")
    ap.add_argument("--batch-size", type=int, default=None, help="in place of probe.batch_size and evaluate.batch_size")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))

    tests = (ROOT / "data" / "test.jsonl").read_text().splitlines()
    items = random.Random(0).sample(range(len(tests)), min(args.n, len(tests)))
    for what, label in (("probe", "probe (base model, closed-book)"),
                        ("evaluate", "evaluate (tuned model, test items)")):
        task = {"what": what, "n": args.n, "items": items, "batch_size": args.batch_size}
        rates: dict[str, list[float]] = {args.against: [], HERE: []}
        answers, right = {}, {}
        for _ in range(args.rounds):
            for ref in rates:
                out = measure(__file__, ref, task)
                rates[ref].append(out["n"] / out["seconds"])
                answers[ref], right[ref] = out["answers"], out["right"]
        med = {ref: statistics.median(r) for ref, r in rates.items()}
        differ = [k for k in answers[HERE] if answers[HERE][k] != answers[args.against][k]]
        line = (f"- {label}: {args.against} {med[args.against]:.2f} ex/s, this checkout {med[HERE]:.2f} ex/s "
                f"({med[HERE] / med[args.against]:.2f}x); {len(differ)} of {len(answers[HERE])} answers differ")
        if what == "evaluate" and differ:
            line += (f" (of those right: {args.against} {sum(right[args.against][k] for k in differ)}, "
                     f"this checkout {sum(right[HERE][k] for k in differ)})")
        print(line, flush=True)


if __name__ == "__main__":
    main()
