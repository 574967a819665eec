"""Base and tuned on a public benchmark file, with paired intervals: issue 13's targets.

    python benchmarks/public_benchmarks.py mquake PATH [--run .] [--max-items N] [--json OUT]
    python benchmarks/public_benchmarks.py ifqa|mrqa PATH [...]
    python benchmarks/public_benchmarks.py mquake PATH --run A --against B [--max-items N]
    ... [--predictions DIR]

With `--against B`, an experiment's tuned model (B's) answers the same items too, and the script
prints B - A per setting and per case, paired: does a recipe pay on the benchmark (in `--json`
under "against"). `--predictions DIR` keeps the answers as a run's reports/predictions holds
them (DIR/base_FORMAT.jsonl, DIR/tuned_FORMAT.jsonl; B's tuned in DIR/against/), so later runs
are paired with them without answering again: `kpref compare DIR OTHER
--split mquake`.

PATH is a file in its authors' format (any MQuAKE file: CF-3k, CF-3k-v2, T, hard). RUN is a
finished pipeline run (params.yaml, models/base, models/tuned). Both models answer the same
items with the pipeline's evaluation (`kpref evaluate --benchmark` reads them the same way);
the script prints each setting's rate with its 95% bootstrap interval, tuned - base with its
paired-bootstrap interval, cases solved by the authors' rule where questions are grouped, and
the examples per second of each pass.

MQuAKE targets (issue 13): multi-hop cases solved >= 0.90 with the edits as instruction and as
context; single-hop edit questions >= 0.95 (instr_only, ctx_counterfactual); closed-book accuracy
on the unedited hops within 3 points of the base.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

from tasks.core.atomic import write_jsonl  # noqa: E402
from tasks.core.metrics import describe_delta  # noqa: E402
from tasks.evaluate import Evaluation, evaluate_model  # noqa: E402
from tasks.evaluation.benchmarks import load_benchmark  # noqa: E402
from tasks.evaluation.prior import with_base_certainty  # noqa: E402
from tasks.evaluation.scoring import paired_deltas, summarize  # noqa: E402
from tasks.params.full import load_params  # noqa: E402

TARGETS = {"mquake": [("case", "multi_hop_instr", 0.90), ("case", "multi_hop_ctx", 0.90),
                      ("setting", "instr_only", 0.95), ("setting", "ctx_counterfactual", 0.95)]}


def _fmt(value, ci) -> str:
    return "–" if value is None else f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("format", choices=["mquake", "ifqa", "mrqa"])
    ap.add_argument("path", type=Path)
    ap.add_argument("--run", type=Path, default=Path("."))
    ap.add_argument("--max-items", type=int, default=None, help="first N cases (MQuAKE) or questions")
    ap.add_argument("--json", type=Path, default=None, help="also write every figure here")
    ap.add_argument("--against", type=Path, default=None, help="another run: its tuned model against RUN's, paired")
    ap.add_argument("--predictions", type=Path, default=None,
                    help="write the models' predictions here, to pair later runs with (kpref compare)")
    args = ap.parse_args()

    p = load_params(args.run / "params.yaml").evaluate
    items = load_benchmark(args.format, args.path, args.max_items)
    print(f"{args.format}: {len(items)} questions from {args.path}")
    results, speed = {}, {}
    for name in ("base", "tuned"):
        t0 = time.perf_counter()
        # the base model measures its certainty of each question; the tuned model is binned by it
        results[name] = evaluate_model(args.run / "models" / name, items, p.batch_size, p.max_new_tokens,
                                       desc=name, precision=p.precision, prior=name == "base")
        speed[name] = round(len(items) / (time.perf_counter() - t0), 2)
    results["tuned"] = _binned_by(results["base"], results["tuned"], items)
    base, tuned = results["base"].metrics, results["tuned"].metrics
    delta = paired_deltas(results["base"].predictions, results["tuned"].predictions)

    print(f"\n{'setting':<20} {'n':>5}  {'base [95% CI]':<24} {'tuned [95% CI]':<24} tuned - base [95% paired CI]")
    for s, v in tuned["adherence_by_setting"].items():
        d = delta["by_setting"][s]
        n = sum(1 for it in items if it.setting == s)
        print(f"{s:<20} {n:>5}  {_fmt(base['adherence_by_setting'][s], base['adherence_by_setting_ci95'][s]):<24} "
              f"{_fmt(v, tuned['adherence_by_setting_ci95'][s]):<24} {describe_delta(d)}")
    for s, v in tuned.get("case_adherence_by_setting", {}).items():
        d = delta["case_by_setting"][s]
        print(f"{s + ' (cases)':<20} {'':>5}  "
              f"{_fmt(base['case_adherence_by_setting'][s], base['case_adherence_by_setting_ci95'][s]):<24} "
              f"{_fmt(v, tuned['case_adherence_by_setting_ci95'][s]):<24} {describe_delta(d)}")
    if "closed_book_retention" in delta:
        print("\nclosed-book retention (tuned - base): " + describe_delta({
            "delta": delta["closed_book_retention"], "ci95": delta["closed_book_retention_ci95"],
            "significant": delta["closed_book_retention_significant"]}) + " (target: within 3 points of the base)")
    print(f"EM {base['em']} -> {tuned['em']}, F1 {base['f1']} -> {tuned['f1']}")
    for name, m in (("base", base), ("tuned", tuned)):
        prior = m.get("prior_strength")
        if prior:
            g = prior["gap"]
            print(f"{name} conflict adherence by quintile of the base's certainty (n={prior['n']}): "
                  + " ".join(f"{q['adherence']:.2f}" for q in prior["quintiles"])
                  + f"; top - bottom {describe_delta(g)}")
    print(f"examples/s: base {speed['base']}, tuned {speed['tuned']}")
    for kind, s, target in TARGETS.get(args.format, []):
        value = (tuned["case_adherence_by_setting"] if kind == "case" else tuned["adherence_by_setting"]).get(s)
        print(f"target {s}{' cases' if kind == 'case' else ''} >= {target}: {value} "
              f"{'met' if value is not None and value >= target else 'NOT met'}")
    out = {"file": str(args.path), "n": len(items), "base": base, "tuned": tuned, "delta": delta,
           "examples_per_s": speed}
    if args.against:
        results["against"] = _binned_by(results["base"], evaluate_model(
            args.against / "models" / "tuned", items, p.batch_size, p.max_new_tokens, desc="against",
            precision=p.precision, prior=False), items)
        out["against"] = {"run": str(args.against), "tuned": results["against"].metrics,
                          "delta": _print_against(args.against, results["tuned"], results["against"])}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    if args.predictions:  # laid out as a run's reports/predictions, the benchmark as the split
        for folder, name in ((args.predictions, "tuned"), (args.predictions / "against", "against")):
            if name in results:
                write_jsonl(folder / f"base_{args.format}.jsonl", results["base"].predictions)
                write_jsonl(folder / f"tuned_{args.format}.jsonl", results[name].predictions)


def _binned_by(base: Evaluation, other: Evaluation, items) -> Evaluation:
    """`other`'s answers scored with each conflict question binned by the base model's certainty."""
    rows = with_base_certainty(base.predictions, other.predictions)
    return Evaluation(summarize(items, rows), rows)


def _print_against(name: Path, a, b) -> dict:
    """B's tuned model minus A's on the same questions (cases where grouped), paired 95% intervals."""
    delta = paired_deltas(a.predictions, b.predictions)
    print(f"\n{name} tuned - this run's tuned [95% paired CI]")
    for kind, key in (("by_setting", "adherence_by_setting"), ("case_by_setting", "case_adherence_by_setting")):
        for s, d in delta.get(kind, {}).items():
            label = s + (" (cases)" if kind == "case_by_setting" else "")
            print(f"{label:<24} {a.metrics[key][s]:.3f} -> {b.metrics[key][s]:.3f}  {describe_delta(d)}")
    return delta


if __name__ == "__main__":
    main()
