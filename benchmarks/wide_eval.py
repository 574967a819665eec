"""Robustness and adherence on many more held-out questions than the pipeline's test splits ask.

    python benchmarks/wide_eval.py robustness [--run .] [--n 300] [--show K]
    python benchmarks/wide_eval.py adherence --split test_ood_phrasing|test_ood_relation|test [--n 128]

The test split asks 60 irrelevant-context questions and each OOD split 32 per setting, so one
run's figure carries a 95% interval of 10-25 points. This draws `--n` more questions per
setting from the same held-out subjects and relations (synthesis with other seeds: other
questions, phrasings and distractor passages; the split's own prompts left out), answers
them with the pipeline's batching, and prints each figure with its 95% Wilson interval.
RUN is a finished pipeline run (params.yaml, data/, models/).

robustness: base and tuned, on every question, on those answered right closed-book and on the
rest, the misses per relation, and the ceiling if every known answer held beside any passage.
adherence: the tuned model, per conflict setting.
"""
from __future__ import annotations

import argparse
import os
from collections import Counter
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

from tasks.evaluate import evaluate_items, same_answer  # noqa: E402
from tasks.metrics import matches, wilson_interval  # noqa: E402
from tasks.modeling import load_model  # noqa: E402
from tasks.params import Params, load_params  # noqa: E402
from tasks.prompt import prompt_key  # noqa: E402
from tasks.schema import (  # noqa: E402
    CONFLICT_SETTINGS,
    FACTS,
    PROBE,
    RELATIONS,
    EvalItem,
    read_beliefs,
    read_facts,
    read_jsonl,
    read_relations,
)
from tasks.synthesize import synthesize  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def wide_items(run: Path, params: Params, n: int, split: str, settings: tuple[str, ...]) -> list[dict]:
    """n questions per setting of `split`, synthesized with other seeds, none of the split's own prompts."""
    facts, relations, beliefs = read_facts(run / FACTS), read_relations(run / RELATIONS), read_beliefs(run / PROBE)
    key = lambda r: prompt_key(r["question"], r["instruction"], r["contexts"])  # noqa: E731
    seen = {key(r) for r in read_jsonl(run / "data" / f"{split}.jsonl")}
    out: dict[str, list[dict]] = {s: [] for s in settings}
    # only `split` is kept: the train and val splits are drawn as small as allowed
    batch = params.synthesize.model_copy(update={"n_train": 1, "n_val": 0, "n_test_per_setting": 60,
                                                 "n_ood_per_setting": 32})
    for offset in range(1, 50):
        rows = synthesize(facts, relations, beliefs, batch, params.facts, seed=params.base.seed + 1000 * offset)[split]
        for r in rows:
            if r["setting"] in out and len(out[r["setting"]]) < n and key(r) not in seen:
                seen.add(key(r))
                out[r["setting"]].append(r)
        if all(len(v) >= n for v in out.values()):
            break
    return [r for s in settings for r in out[s]]


def _rate(k: int, n: int) -> str:
    if n == 0:
        return "n/a (0 questions)"
    lo, hi = wilson_interval(k, n)
    return f"{k / n:.3f} ({k} of {n}; 95% CI {lo:.3f}-{hi:.3f})"


def robustness(run: Path, params: Params, n: int, models: list[str], show: int) -> None:
    ev = params.evaluate
    rows = wide_items(run, params, n, "test", ("ctx_irrelevant",))
    items = [EvalItem.from_example(r) for r in rows]
    relation = {r["id"]: r["relation"] for r in rows}
    print(f"{len(items)} irrelevant-context questions on held-out subjects, {len({r['subject'] for r in rows})} subjects")
    for name in models:
        model, tok = load_model(run / name, precision=ev.precision)
        preds = evaluate_items(model, tok, items, ev.batch_size, ev.max_new_tokens).predictions
        same = [(same_answer(p["prediction"], p["closed_book_prediction"], it),
                 matches(p["closed_book_prediction"], it.answers), relation[it.id]) for it, p in zip(items, preds)]
        k, total = sum(s for s, _, _ in same), len(same)
        kk, nk = sum(s for s, known, _ in same if known), sum(known for _, known, _ in same)
        misses, asked = Counter(rel for s, _, rel in same if not s), Counter(rel for _, _, rel in same)
        print(f"- {name}: robustness {_rate(k, total)}; answered right closed-book {_rate(kk, nk)}; answered wrong "
              f"{_rate(k - kk, total - nk)}; misses per relation "
              + ", ".join(f"{rel} {misses[rel]}/{asked[rel]}" for rel in sorted(asked)), flush=True)
        # the part of the gap only a model that knows more (or keeps its made-up answers) can close
        print(f"  ceiling with every known answer stable: {(nk + k - kk) / total:.3f}", flush=True)
        for (s, _, _), it, p in [x for x in zip(same, items, preds) if not x[0][0]][:show]:
            print(f"    {relation[it.id]}: closed-book {p['closed_book_prediction']!r} / beside passages "
                  f"{p['prediction']!r} (world: {it.answers[0]})")
        del model


def adherence(run: Path, params: Params, n: int, split: str, models: list[str]) -> None:
    ev = params.evaluate
    # multi-hop is asked in the in-distribution test split only
    settings = tuple(s for s in CONFLICT_SETTINGS if split == "test" or s != "multi_hop")
    items = [EvalItem.from_example(r) for r in wide_items(run, params, n, split, settings)]
    print(f"{split}: {len(items)} questions, up to {n} per conflict setting")
    for name in models:
        model, tok = load_model(run / name, precision=ev.precision)
        preds = evaluate_items(model, tok, items, ev.batch_size, ev.max_new_tokens).predictions
        parts = []
        for s in settings:
            flags = [p["correct"] for p in preds if p["setting"] == s]
            parts.append(f"{s} {_rate(sum(flags), len(flags))}")
        print(f"- {name}: " + "; ".join(parts), flush=True)
        del model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("measure", choices=["robustness", "adherence"])
    ap.add_argument("--run", type=Path, default=ROOT)
    ap.add_argument("--split", default="test_ood_phrasing", help="adherence: the split to draw from")
    ap.add_argument("--n", type=int, default=None, help="questions per setting (robustness 300, adherence 128)")
    ap.add_argument("--model", nargs="+", default=None, help="model dirs under RUN")
    ap.add_argument("--show", type=int, default=0, help="robustness: print this many misses per model")
    args = ap.parse_args()
    params = load_params(args.run / "params.yaml")
    if args.measure == "robustness":
        robustness(args.run, params, args.n or 300, args.model or ["models/base", "models/tuned"], args.show)
    else:
        adherence(args.run, params, args.n or 128, args.split, args.model or ["models/tuned"])


if __name__ == "__main__":
    main()
