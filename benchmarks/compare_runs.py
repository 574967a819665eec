"""Two tuned models side by side on the same questions: B minus A, each difference with its
paired-bootstrap 95% interval.

    python benchmarks/compare_runs.py A_PREDICTIONS B_PREDICTIONS [--names sft,sft+dpo] [--splits mquake]

Each argument is a `reports/predictions` folder of a finished run (or a copy of one). The two runs
must have answered the same questions: the same data, as runs of one seed are. Per split, it
prints the tuned models' adherence on the conflict settings (the answer the hierarchy says,
where it contradicts the model's memory), closed-book accuracy, irrelevant-context robustness
(on all, and on the facts the *base* answers right closed-book), and every setting. This is
how `train.method` choices are compared (docs/decisions.md): run each choice with `dvc exp run`,
keep each run's predictions, compare in pairs per seed. `--splits`: other prediction files of
the same layout, such as a benchmark's from `public_benchmarks.py --predictions`.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from tasks.core.metrics import describe_delta, paired_bootstrap
from tasks.core.schema import SETTINGS, read_jsonl
from tasks.evaluate import base_known_ids, case_flags, case_of, paired_deltas

SPLITS = ("test", "test_ood_phrasing", "test_ood_relation", "test_ood_domain")


def _rate(rows: list[dict], key: str) -> str:
    return f"{sum(r[key] for r in rows) / len(rows):.3f}" if rows else "-"


def compare_split(a_dir: Path, b_dir: Path, split: str) -> dict[str, tuple[str, str, dict]] | None:
    """{measure: (A's rate, B's rate, B - A paired)} on one split, or None when a run lacks it."""
    paths = [d / f"tuned_{split}.jsonl" for d in (a_dir, b_dir)]
    if not all(p.exists() for p in paths):
        return None
    a, b = (read_jsonl(p) for p in paths)
    base = read_jsonl(a_dir / f"base_{split}.jsonl")
    if [r["id"] for r in a] != [r["id"] for r in b]:
        raise SystemExit(f"{split}: the two runs answered different questions (another seed's data?)")
    out = {}
    conflict = [i for i, r in enumerate(a) if _conflict(r)]
    if conflict:
        ca, cb = [a[i] for i in conflict], [b[i] for i in conflict]
        out["conflict adherence"] = (_rate(ca, "correct"), _rate(cb, "correct"),
                                     paired_bootstrap([r["correct"] for r in ca], [r["correct"] for r in cb],
                                                      groups=[case_of(r) for r in ca]))
    known = base_known_ids(base)
    for label, keep in (("robustness", lambda r: True), ("robustness, base-known", lambda r: r["id"] in known)):
        robust = [i for i, r in enumerate(a) if "robust" in r and keep(r)]
        if robust:
            ra, rb = [a[i] for i in robust], [b[i] for i in robust]
            out[f"{label} ({len(robust)})"] = (_rate(ra, "robust"), _rate(rb, "robust"), paired_bootstrap(
                [r["robust"] for r in ra], [r["robust"] for r in rb], groups=[case_of(r) for r in ra]))
    deltas = paired_deltas(a, b)
    cb_a = [r for r in a if r["setting"] == "closed_book"]
    cb_b = [r for r in b if r["setting"] == "closed_book"]
    if cb_a:
        out["closed-book accuracy"] = (_rate(cb_a, "correct"), _rate(cb_b, "correct"), {
            "delta": deltas["closed_book_retention"], "ci95": deltas["closed_book_retention_ci95"],
            "significant": deltas["closed_book_retention_significant"]})
    for s, d in deltas["by_setting"].items():
        rows_a, rows_b = [r for r in a if r["setting"] == s], [r for r in b if r["setting"] == s]
        out[f"  {s} ({len(rows_a)})"] = (_rate(rows_a, "correct"), _rate(rows_b, "correct"), d)
    cases_a, cases_b = case_flags(a), case_flags(b)
    for s, d in deltas.get("case_by_setting", {}).items():
        out[f"  {s}, cases ({len(cases_a[s])})"] = (*(f"{sum(c[s].values()) / len(c[s]):.3f}"
                                                      for c in (cases_a, cases_b)), d)
    return out


def _conflict(row: dict) -> bool:
    """A setting whose right answer contradicts the world's; a benchmark's own settings (MQuAKE's
    multi-hop edits) are when an instruction or a passage is the source to follow."""
    spec = SETTINGS.get(row["setting"])
    return spec.conflict if spec else row["expected_source"] in ("instruction", "context")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--names", default="A,B", help="what to call the two runs, comma-separated")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--splits", nargs="+", default=SPLITS, help="prediction files to compare (default: the test splits)")
    args = ap.parse_args()
    name_a, name_b = args.names.split(",")
    print(f"{name_b} minus {name_a}, paired 95% intervals ('significant': the interval excludes 0)")
    figures = {}
    for split in args.splits:
        cmp = compare_split(args.a, args.b, split)
        if cmp is None:
            continue
        figures[split] = cmp
        print(f"\n{split}\n  {'measure':36s} {name_a:>8s} {name_b:>8s}  {name_b} - {name_a}")
        for k, (ra, rb, d) in cmp.items():
            print(f"  {k:36s} {ra:>8s} {rb:>8s}  {describe_delta(d)}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
