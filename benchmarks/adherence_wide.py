"""Adherence per conflict setting on many more questions than a test split holds.

    python benchmarks/adherence_wide.py [--run .] [--split test_ood_phrasing] [--n 128] [--model models/tuned]

The OOD splits ask 32 questions per setting, so a setting's adherence carries a 95% interval
about 25 points wide and one question moves it by 3. This draws `--n` more per conflict
setting of the split (synthesis with other seeds, none of the split's own prompts; see
robustness_wide.py) and prints each setting's adherence with its Wilson interval.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from robustness_wide import ROOT, wide_items  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=ROOT)
    ap.add_argument("--split", default="test_ood_phrasing")
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--model", nargs="+", default=["models/tuned"])
    args = ap.parse_args()

    from tasks.evaluate import evaluate_items
    from tasks.metrics import wilson_interval
    from tasks.modeling import load_model
    from tasks.params import load_params
    from tasks.schema import EvalItem
    from tasks.synthesize import CONFLICT_SETTINGS

    ev = load_params(args.run / "params.yaml").evaluate
    settings = tuple(s for s in CONFLICT_SETTINGS if not (args.split != "test" and s == "multi_hop"))
    items = [EvalItem.from_example(r) for r in wide_items(args.run, args.n, args.split, settings)]
    print(f"{args.split}: {len(items)} questions, up to {args.n} per conflict setting")
    for name in args.model:
        model, tok = load_model(args.run / name, precision=ev.precision)
        preds = evaluate_items(model, tok, items, ev.batch_size, ev.max_new_tokens).predictions
        parts = []
        for s in settings:
            flags = [p["correct"] for p in preds if p["setting"] == s]
            lo, hi = wilson_interval(sum(flags), len(flags))
            parts.append(f"{s} {sum(flags) / len(flags):.3f} ({sum(flags)}/{len(flags)}, {lo:.3f}-{hi:.3f})")
        print(f"- {name}: " + "; ".join(parts), flush=True)
        del model


if __name__ == "__main__":
    main()
