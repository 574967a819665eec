"""Robustness, adherence and retention on many more held-out questions than the pipeline's test splits ask.

    python benchmarks/wide_eval.py robustness [--run .] [--n 300] [--show K]
    python benchmarks/wide_eval.py retention [--run .] [--n 300] [--n-conflict 128] [--splits ...] [--show K]
                                             [--against EXP ...]
    python benchmarks/wide_eval.py adherence --split test_ood_phrasing|test_ood_relation|test_ood_domain|test [--n 128]
                                             [--model DIR ...] [--against EXP ...] [--relations REL ...]

The test split asks 60 irrelevant-context questions and each OOD split 32 per setting, so one
run's figure carries a 95% interval of 10-25 points. This draws `--n` more questions per
setting from the same held-out subjects and relations (synthesis with other seeds: other
questions, phrasings and distractor passages; the split's own prompts left out), answers
them with the pipeline's batching, and prints each figure with its 95% interval. A fact is asked
several times (a draw of 600 asks about 230 facts of `test`, 2.6 times each), and its askings are
answered alike, so every interval resamples facts, not questions (the cluster bootstrap; a
question-level one would be up to 2 times too narrow). RUN is a finished pipeline run
(params.yaml, data/, models/).

robustness: base and tuned, on every question, on those answered right closed-book and on the
rest, the misses per relation, and the ceiling if every known answer held beside any passage.
adherence: the tuned model (or `--model` dirs), per conflict setting, and by quintile of the base model's
certainty of each fact (docs/metrics.md, prior_strength).
retention (issue 12's targets), base and tuned on the same questions:
- on `test_ood_domain` (knowledge domains never trained): closed-book accuracy and the
  retention (tuned - base, 95% paired-bootstrap interval; target: within 3 points of the base),
  irrelevant-context robustness on the facts the base model knows (target 0.90), and
  adherence on ctx_counterfactual, instr_only and instr_vs_ctx (target 0.90 each);
- on `test`, `test_ood_phrasing` and `test_ood_relation`: robustness on the facts the base
  model knows (target 0.95), and closed-book retention on the same questions asked bare.
The tuned model's lost closed-book answers are tallied by shape: "I don't know." or other; its
robustness misses on base-known facts by cause: wrong closed-book but right beside the passage,
wrong both ways, the passage's answer taken, another subject answered, or moved otherwise.
With `--against EXP ...` (runs of the same test splits with other train or training-data params, e.g.
`dvc exp` clones), each EXP's tuned model answers the same questions too, and its figures are also
given as EXP − RUN's tuned (in adherence, minus the first model) with a paired interval.
"""
from __future__ import annotations

import argparse
import os
from collections import Counter
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

from tasks.core.metrics import (  # noqa: E402
    bootstrap_interval,
    describe_delta,
    matches,
    normalize,
    paired_bootstrap,
    wilson_interval,
)
from tasks.core.prompt import prompt_key  # noqa: E402
from tasks.core.schema import (  # noqa: E402
    ABSTAIN,
    CONFLICT_SETTINGS,
    FACTS,
    OOD_DOMAIN,
    PROBE,
    RELATIONS,
    EvalItem,
    read_beliefs,
    read_certainty,
    read_facts,
    read_jsonl,
    read_relations,
)
from tasks.evaluate import evaluate_items  # noqa: E402
from tasks.evaluation.predict import same_answer  # noqa: E402
from tasks.evaluation.prior import prior_strength  # noqa: E402
from tasks.evaluation.scoring import base_known_ids  # noqa: E402
from tasks.params.full import Params, load_params  # noqa: E402
from tasks.runtime.modeling import load_model  # noqa: E402
from tasks.synthesize import make_world, split_examples  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def wide_items(run: Path, params: Params, n: int, split: str, settings: tuple[str, ...]) -> list[dict]:
    """n questions per setting of `split`, synthesized with other seeds, none of the split's own prompts."""
    facts, relations, beliefs = read_facts(run / FACTS), read_relations(run / RELATIONS), read_beliefs(run / PROBE)
    key = lambda r: prompt_key(r["question"], r["instruction"], r["contexts"])  # noqa: E731
    seen = {key(r) for r in read_jsonl(run / "data" / f"{split}.jsonl")}
    out: dict[str, list[dict]] = {s: [] for s in settings}
    world = make_world(facts, relations, beliefs, params.synthesize, params.facts, read_certainty(run / PROBE))
    for offset in range(1, 50):  # only `split` is drawn, with another seed each round
        rows = split_examples(split, world, params.synthesize, params.facts.split, params.base.seed + 1000 * offset)
        for r in rows:
            if r["setting"] in out and len(out[r["setting"]]) < n and key(r) not in seen:
                seen.add(key(r))
                out[r["setting"]].append(r)
        if all(len(v) >= n for v in out.values()):
            break
    return [r for s in settings for r in out[s]]


def fact(row: dict) -> tuple[str, str]:
    """What a question asks about: the unit every interval resamples."""
    return row["subject"], row["relation"]


def _flags_rate(flags: list[bool], facts: list) -> str:
    if not flags:
        return "n/a (0 questions)"
    k, n, g = sum(flags), len(flags), len(set(facts))
    # every answer alike: no resample varies, so Wilson's interval with one observation a fact
    lo, hi = bootstrap_interval(flags, groups=facts) if 0 < k < n else wilson_interval(g if k else 0, g)
    return f"{k / n:.3f} ({k} of {n} on {g} facts; 95% CI {lo:.3f}-{hi:.3f})"


def _where(keep: list[bool], flags: list[bool], facts: list) -> tuple[list[bool], list]:
    return [x for x, k in zip(flags, keep) if k], [f for f, k in zip(facts, keep) if k]


def robustness(run: Path, params: Params, n: int, models: list[str], show: int) -> None:
    ev = params.evaluate
    rows = wide_items(run, params, n, "test", ("ctx_irrelevant",))
    items = [EvalItem.from_example(r) for r in rows]
    relation, facts = {r["id"]: r["relation"] for r in rows}, [fact(r) for r in rows]
    print(f"{len(items)} irrelevant-context questions on held-out subjects, {len({r['subject'] for r in rows})} subjects")
    for name in models:
        model, tok = load_model(run / name, precision=ev.precision)
        preds = evaluate_items(model, tok, items, ev.batch_size, ev.max_new_tokens).predictions
        same = [(same_answer(p["prediction"], p["closed_book_prediction"], it),
                 matches(p["closed_book_prediction"], it.answers), relation[it.id]) for it, p in zip(items, preds)]
        k, total = sum(s for s, _, _ in same), len(same)
        kk, nk = sum(s for s, known, _ in same if known), sum(known for _, known, _ in same)
        misses, asked = Counter(rel for s, _, rel in same if not s), Counter(rel for _, _, rel in same)
        robust, known = [s for s, _, _ in same], [k for _, k, _ in same]
        print(f"- {name}: robustness {_flags_rate(robust, facts)}; answered right closed-book "
              f"{_flags_rate(*_where(known, robust, facts))}; answered wrong "
              f"{_flags_rate(*_where([not k for k in known], robust, facts))}; misses per relation "
              + ", ".join(f"{rel} {misses[rel]}/{asked[rel]}" for rel in sorted(asked)), flush=True)
        # the part of the gap only a model that knows more (or keeps its made-up answers) can close
        print(f"  ceiling with every known answer stable: {(nk + k - kk) / total:.3f}", flush=True)
        for (s, _, _), it, p in [x for x in zip(same, items, preds) if not x[0][0]][:show]:
            print(f"    {relation[it.id]}: closed-book {p['closed_book_prediction']!r} / beside passages "
                  f"{p['prediction']!r} (world: {it.answers[0]})")
        del model


def adherence(run: Path, params: Params, n: int, split: str, models: dict[str, Path],
              relations: list[str] | None = None) -> None:
    """Per conflict setting, each model's adherence; every model after the first also paired against it."""
    # multi-hop is asked in the in-distribution test split only
    settings = tuple(s for s in CONFLICT_SETTINGS if split == "test" or s != "multi_hop")
    rows = [r for r in wide_items(run, params, n, split, settings) if not relations or r["relation"] in relations]
    items = [EvalItem.from_example(r) for r in rows]
    print(f"{split}: {len(items)} questions, up to {n} per conflict setting")
    preds = answer_all(models, items, params.evaluate)
    facts = {s: [fact(r) for r in rows if r["setting"] == s] for s in settings}
    flags = {name: {s: [p["correct"] for p in ps if p["setting"] == s] for s in settings} for name, ps in preds.items()}
    for name, by_setting in flags.items():
        print(f"- {name}: " + "; ".join(f"{s} {_flags_rate(f, facts[s])}" for s, f in by_setting.items()), flush=True)
        prior = prior_strength(preds[name])
        if prior:  # by quintile of the base model's certainty (tasks/evaluation/prior.py)
            print(f"  by quintile of the base's certainty (n={prior['n']}): " + "; ".join(
                f"{q['certainty_min']:.3f}+ {q['adherence']:.3f} {q['adherence_ci95']}" for q in prior["quintiles"])
                + f"; top - bottom {describe_delta(prior['gap'])}", flush=True)
    first, *others = flags
    for name in others:
        print(f"  {name} - {first}, paired: " + "; ".join(
            f"{s} {describe_delta(paired_bootstrap(flags[first][s], flags[name][s], groups=facts[s]))}"
            for s in settings))


DOMAIN_CONFLICTS = ("ctx_counterfactual", "instr_only", "instr_vs_ctx")
IN_DOMAIN = ("test", "test_ood_phrasing", "test_ood_relation")


def answer_all(models: dict[str, Path], items: list[EvalItem], ev) -> dict[str, list[dict]]:
    """Every model's predictions on the same items, one model in memory at a time."""
    out = {}
    for name, path in models.items():
        model, tok = load_model(path, precision=ev.precision)
        out[name] = evaluate_items(model, tok, items, ev.batch_size, ev.max_new_tokens).predictions
        del model
    return out


def miss_shape(prediction: str) -> str:
    if prediction.strip().rstrip(".").lower() == ABSTAIN.lower():
        return "abstained"
    return "wrong or no object"


def robustness_misses(rows: list[dict], known: list[int], tuned: list[dict]) -> Counter:
    """Why the tuned model's answer moved beside an irrelevant passage, on the facts the base knows
    (`known`: known_irrelevant's indices)."""
    out: Counter = Counter()
    for row, t in ((rows[i], tuned[i]) for i in known):
        if t["robust"]:
            continue
        if not t["closed_book_correct"]:
            out["wrong closed-book, right beside the passage" if t["correct"] else "wrong both ways"] += 1
        elif row["answers"].get("distractor") and matches(t["prediction"], [row["answers"]["distractor"]]):
            out["the passage's answer taken"] += 1
        elif normalize(row["subject"]) not in normalize(t["prediction"]):
            out["another subject answered"] += 1
        else:
            out["moved otherwise"] += 1
    return out


def report_split(split: str, rows: list[dict], preds: dict[str, list[dict]], show: int) -> None:
    kind = "closed_book" if any(r["setting"] == "closed_book" for r in rows) else "ctx_irrelevant"
    cb = [i for i, r in enumerate(rows) if r["setting"] == kind]
    right = {name: [p.get("closed_book_correct", p["correct"]) for p in preds[name]] for name in preds}
    said = {name: [p.get("closed_book_prediction", p["prediction"]) for p in preds[name]] for name in preds}
    base, tuned = right["models/base"], [name for name in preds if name != "models/base"]
    facts = [fact(r) for r in rows]
    on = lambda idx: [facts[i] for i in idx]  # noqa: E731
    known = known_irrelevant(rows, preds["models/base"])
    if cb:
        print(f"  closed-book: base {_flags_rate([base[i] for i in cb], on(cb))}")
    for name in tuned:
        print(f"  {name}:")
        if cb:
            d = paired_bootstrap([base[i] for i in cb], [right[name][i] for i in cb], groups=on(cb))
            print(f"    closed-book {_flags_rate([right[name][i] for i in cb], on(cb))}; retention (tuned - base): "
                  f"{describe_delta(d)}")
            lost = [i for i in cb if base[i] and not right[name][i]]
            shapes = Counter(miss_shape(said[name][i]) for i in lost)
            by_rel = Counter(rows[i]["relation"] for i in lost)
            print(f"    known to the base, lost by tuning: {len(lost)} ({dict(shapes)}; per relation {dict(by_rel)})")
            for i in lost[:show]:
                print(f"      {rows[i]['question']!r}: base {said['models/base'][i]!r} / tuned {said[name][i]!r}")
        if known:
            robust = [preds[name][i]["robust"] for i in known]
            print(f"    robustness on the facts the base knows {_flags_rate(robust, on(known))}; "
                  f"its misses: {dict(robustness_misses(rows, known, preds[name]))}")
        for s in DOMAIN_CONFLICTS if split == OOD_DOMAIN else ():
            idx = [i for i, r in enumerate(rows) if r["setting"] == s]
            print(f"    {s}: {_flags_rate([preds[name][i]['correct'] for i in idx], on(idx))}")
    for name in tuned[1:]:
        _report_against(rows, preds, right, name, cb, known, facts)


def known_irrelevant(rows: list[dict], base: list[dict]) -> list[int]:
    """The irrelevant-context questions whose fact the base model answers right closed-book."""
    known = base_known_ids(base)
    return [i for i, r in enumerate(rows) if r["setting"] == "ctx_irrelevant" and r["id"] in known]


def _report_against(rows: list[dict], preds: dict[str, list[dict]], right: dict[str, list[bool]], name: str,
                    cb: list[int], known: list[int], facts: list) -> None:
    """EXP's tuned model minus RUN's on the same questions: closed-book, robustness on base-known, conflicts."""
    a, b = preds["models/tuned"], preds[name]

    def paired(idx: list[int], key: str) -> str:
        return describe_delta(paired_bootstrap([a[i][key] for i in idx], [b[i][key] for i in idx],
                                               groups=[facts[i] for i in idx]))

    print(f"  {name} - models/tuned, paired:")
    if cb:
        print("    closed-book: " + describe_delta(paired_bootstrap(
            [right["models/tuned"][i] for i in cb], [right[name][i] for i in cb], groups=[facts[i] for i in cb])))
    if known:
        print(f"    robustness on the {len(known)} questions of facts the base knows: {paired(known, 'robust')}")
    conflict = [i for i, r in enumerate(rows) if r["setting"] in CONFLICT_SETTINGS]
    if conflict:
        print(f"    conflict adherence ({len(conflict)}): {paired(conflict, 'correct')}")


def retention(run: Path, params: Params, n: int, n_conflict: int, splits: list[str], show: int,
              against: list[Path]) -> None:
    models = {name: run / name for name in ("models/base", "models/tuned")}
    models |= _against_models(against)
    for split in splits:
        # in the trained domains the irrelevant-context questions' closed-book answers are the retention
        rows = wide_items(run, params, n, split,
                          ("closed_book", "ctx_irrelevant") if split == OOD_DOMAIN else ("ctx_irrelevant",))
        if split == OOD_DOMAIN:
            rows += wide_items(run, params, n_conflict, split, DOMAIN_CONFLICTS)
        items = [EvalItem.from_example(r) for r in rows]
        print(f"{split}: {len(items)} questions on {len({r['subject'] for r in rows})} subjects", flush=True)
        report_split(split, rows, answer_all(models, items, params.evaluate), show)


def _against_models(against: list[Path]) -> dict[str, Path]:
    return {f"{exp.resolve().name} (--against)": exp / "models" / "tuned" for exp in against}


def _same_test_splits(run: Path, exp: Path) -> None:
    """Paired figures need EXP to hold out what RUN holds out: its test splits, byte for byte."""
    for f in sorted((run / "data").glob("test*.jsonl")):
        if not (exp / "data" / f.name).is_file() or (exp / "data" / f.name).read_bytes() != f.read_bytes():
            raise SystemExit(f"--against {exp}: its data/{f.name} differs from --run's, so its tuned model may have "
                             "trained on --run's held-out questions")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("measure", choices=["robustness", "adherence", "retention"])
    ap.add_argument("--run", type=Path, default=ROOT)
    ap.add_argument("--split", default="test_ood_phrasing", help="adherence: the split to draw from")
    ap.add_argument("--n", type=int, default=None, help="questions per setting (robustness and retention 300, "
                                                        "adherence 128)")
    ap.add_argument("--n-conflict", type=int, default=128, help="retention: held-out-domain questions per conflict "
                                                                "setting")
    ap.add_argument("--splits", nargs="+", default=[OOD_DOMAIN, *IN_DOMAIN], help="retention: the splits")
    ap.add_argument("--model", nargs="+", default=None, help="model dirs under RUN")
    ap.add_argument("--relations", nargs="+", default=None, help="adherence: only the questions of these relations "
                                                                 "(of the --n drawn per setting)")
    ap.add_argument("--show", type=int, default=0, help="robustness: print this many misses per model")
    ap.add_argument("--against", type=Path, nargs="+", default=[], help="retention and adherence: other runs with "
                                                                        "RUN's test splits (dvc exp clones): their "
                                                                        "tuned models")
    args = ap.parse_args()
    if args.against and args.measure == "robustness":
        ap.error("--against: robustness answers with --run's models only (retention and adherence take it)")
    params = load_params(args.run / "params.yaml")
    for exp in args.against:
        _same_test_splits(args.run, exp)
    if args.measure == "robustness":
        robustness(args.run, params, args.n or 300, args.model or ["models/base", "models/tuned"], args.show)
    elif args.measure == "retention":
        retention(args.run, params, args.n or 300, args.n_conflict, args.splits, args.show, args.against)
    else:
        models = {name: args.run / name for name in args.model or ["models/tuned"]}
        adherence(args.run, params, args.n or 128, args.split, models | _against_models(args.against), args.relations)


if __name__ == "__main__":
    main()
