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


def workload(A, task: dict):
    """What the probe (task["what"] == "probe") or the evaluation runs: (model, batch size, call),
    call() giving {prompt's id: (answer, right, or None where no answer is known)}."""
    params = A.load_params(task["params"])
    if task["what"] == "probe":
        model, tok = A.modeling.load_model(ROOT / "models" / "base", precision=params.probe.precision)
        rows = [json.loads(x) for x in (ROOT / "data" / "probe.jsonl").read_text().splitlines()][: task["n"]]
        prompts = [A.prompt.render(tok, r["question"]) for r in rows]
        bs = task.get("batch_size") or params.probe.batch_size
        groups = [list(range(s, min(s + bs, len(prompts)))) for s in range(0, len(prompts), bs)]

        def call():
            answers = A.generate.generate(model, tok, prompts, bs, params.probe.max_new_tokens, groups=groups)
            return {r["key"]: (a, None) for r, a in zip(rows, answers)}
    else:
        model, tok = A.modeling.load_model(ROOT / "models" / "tuned", precision=params.evaluate.precision)
        tests = (ROOT / "data" / "test.jsonl").read_text().splitlines()
        items = [A.schema.EvalItem.from_example(json.loads(tests[i])) for i in task["items"]]
        bs = task.get("batch_size") or params.evaluate.batch_size

        def call():
            preds = A.predict.predict(model, tok, items, bs, params.evaluate.max_new_tokens)
            return {p["id"]: (p["prediction"], p["correct"]) for p in preds}
    return model, bs, call


def worker(task: dict) -> None:
    _, _, call = workload(api(), task)
    t = time.perf_counter()
    out = call()
    seconds = time.perf_counter() - t
    answer(task, {"seconds": seconds, "answers": {k: a for k, (a, _) in out.items()}, "n": len(out),
                  "right": {k: r for k, (_, r) in out.items() if r is not None}})


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
