"""Stage evaluate: how well a model obeys the hierarchy, on synthesized or user conflict sets.

    params: evaluate        reads: models/base, models/tuned, data/test*.jsonl
                            writes: reports/metrics.json, reports/predictions/, reports/plots/adherence.csv

`evaluate_items` is the one evaluation: the DVC stage runs it for base and tuned models
on every test split; `kpref evaluate` runs it on a user's JSONL file.
"""
from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tasks import prompt
from tasks.atomic import write_json, write_jsonl, write_text
from tasks.metrics import (
    answer_residue,
    exact_match,
    followed_source,
    matches,
    memorization_ratio,
    normalize,
    overlaps,
    paired_bootstrap,
    rate,
    token_f1,
    wilson_interval,
)
from tasks.params import EvaluateParams, Params
from tasks.schema import (
    ADHERENCE_CSV,
    BASE_DIR,
    DATA_DIR,
    METRICS,
    PREDICTIONS,
    SOURCES,
    TEST_SPLITS,
    TUNED_DIR,
    EvalItem,
    read_splits,
)

log = logging.getLogger(__name__)


def run(p: Params, root: Path) -> None:
    metrics = evaluate_stage(root / DATA_DIR, {"base": root / BASE_DIR, "tuned": root / TUNED_DIR}, p.evaluate,
                             root / METRICS, root / PREDICTIONS, root / ADHERENCE_CSV)
    log.info("tuned adherence: %s", {split: m.get("tuned", {}).get("adherence") for split, m in metrics.items()})


@dataclass
class Evaluation:
    metrics: dict
    predictions: list[dict]


def _closed_book_prompts(tok, items: Sequence[EvalItem]) -> dict[str, str]:
    return {it.id: prompt.render(tok, it.question) for it in items if it.setting == "ctx_irrelevant"}


def evaluate_items(model, tok, items: Sequence[EvalItem], batch_size: int = 16, max_new_tokens: int = 24,
                   desc: str = "evaluating") -> Evaluation:
    from tasks.generate import generate

    prompts = [prompt.render(tok, it.question, it.contexts, it.instruction) for it in items]
    # Robustness compares each irrelevant-context answer with the same model's closed-book
    # answer to the same question; generate each distinct prompt once.
    cb = _closed_book_prompts(tok, items)
    unique = list(dict.fromkeys([*prompts, *cb.values()]))
    answers = dict(zip(unique, generate(model, tok, unique, batch_size, max_new_tokens, desc=desc)))

    preds = []
    for it, p in zip(items, prompts):
        pred = answers[p]
        row = {
            "id": it.id,
            "setting": it.setting,
            "expected_source": it.expected_source,
            "prediction": pred,
            "correct": matches(pred, it.answers),
            "em": exact_match(pred, it.answers),
            "f1": round(token_f1(pred, it.answers), 4),
        }
        if it.source_answers:
            row["followed_source"] = followed_source(pred, it.source_answers)
        if it.id in cb:
            closed = answers[cb[it.id]]
            row["closed_book_prediction"] = closed
            row["closed_book_correct"] = matches(closed, it.answers)
            row["robust"] = same_answer(pred, closed, it)
        preds.append(row)
    return Evaluation(summarize(items, preds), preds)


def summarize(items: Sequence[EvalItem], preds: Sequence[dict]) -> dict:
    by_setting: dict[str, list[bool]] = defaultdict(list)
    by_source: dict[str, list[bool]] = defaultdict(list)
    for it, p in zip(items, preds):
        by_setting[it.setting].append(p["correct"])
        by_source[it.expected_source].append(p["correct"])
    m: dict = {
        "n": len(preds),
        "adherence": rate([p["correct"] for p in preds]),
        "em": round(sum(p["em"] for p in preds) / len(preds), 4) if preds else None,
        "f1": round(sum(p["f1"] for p in preds) / len(preds), 4) if preds else None,
        "adherence_by_setting": {s: rate(v) for s, v in sorted(by_setting.items())},
        "adherence_by_source": {s: rate(v) for s, v in sorted(by_source.items())},
    }
    if "closed_book" in by_setting:
        m["closed_book_accuracy"] = rate(by_setting["closed_book"])
    irr = [p for p in preds if "robust" in p]
    if irr:
        m["irrelevant_robustness"] = rate([p["robust"] for p in irr])
        # a few dozen questions: the interval says how far the model's own rate may be from this one
        m["irrelevant_robustness_ci95"] = wilson_interval(sum(p["robust"] for p in irr), len(irr))
        # the same on facts the model answers right closed-book: a made-up answer to a fact it never
        # knew moves with any change to the prompt, a known one should not
        m["irrelevant_robustness_known"] = rate([p["robust"] for p in irr if p["closed_book_correct"]])
    cf = [(it, p) for it, p in zip(items, preds) if it.setting == "ctx_counterfactual" and it.source_answers]
    if cf:
        m["memorization_ratio"] = memorization_ratio(
            [p["prediction"] for _, p in cf],
            [it.source_answers["world"] for it, _ in cf],
            [it.source_answers["context"] for it, _ in cf],
        )
    if any("followed_source" in p for p in preds):
        confusion = Counter((p["expected_source"], p["followed_source"]) for p in preds if "followed_source" in p)
        m["source_confusion"] = {
            exp: {fol: confusion.get((exp, fol), 0) for fol in (*SOURCES, "none")} for exp in SOURCES
        }
    return m


def same_answer(pred: str, closed_book: str, it: EvalItem) -> bool:
    """Does the irrelevant-context answer say what the closed-book answer says?

    Answers are compared by the candidate entities they name (the world's answer, under any of
    its names: "Kazakhs" and "Kazakh" are one answer, and the distractor's). When neither names
    one, by what each adds to the question: its first sentence less the question's own words
    ("The capital of Nepal is Kathi." -> "kathi"), one containing the other as whole words, as
    answer matching does.
    """
    cands = [[a] for a in (it.source_answers or {}).values() if a] + [list(it.answers)]
    named = lambda text: {normalize(names[0]) for names in cands if names and matches(text, names)}  # noqa: E731
    a, b = named(pred), named(closed_book)
    if a or b:
        return a == b
    ra, rb = answer_residue(pred, it.question), answer_residue(closed_book, it.question)
    if ra and rb:
        return overlaps(ra, rb)
    return normalize(pred) == normalize(closed_book)


def evaluate_model(model_dir: str | Path, items: Sequence[EvalItem], batch_size: int, max_new_tokens: int,
                   desc: str, precision: str = "auto") -> Evaluation:
    from tasks.modeling import load_model

    model, tok = load_model(model_dir, precision=precision)
    return evaluate_items(model, tok, items, batch_size, max_new_tokens, desc=desc)


def evaluate_stage(data_dir: str | Path, models: dict[str, str | Path], p: EvaluateParams, metrics_path: str | Path,
                   predictions_dir: str | Path, adherence_csv: str | Path) -> dict:
    """Every model on every test split: metrics[split][model], plus tuned - base deltas."""
    from tasks.modeling import load_model

    splits = {split: [EvalItem.from_example(r) for r in rows] for split, rows in read_splits(data_dir, TEST_SPLITS).items()}
    metrics: dict = {split: {} for split in splits}
    preds: dict[tuple[str, str], list[dict]] = {}
    for name, path in models.items():
        model, tok = load_model(path, precision=p.precision)  # once per model, for every split
        for split, items in splits.items():
            if not items:
                continue
            ev = evaluate_items(model, tok, items, p.batch_size, p.max_new_tokens, desc=f"{name} on {split}")
            metrics[split][name] = ev.metrics
            preds[split, name] = ev.predictions
            write_jsonl(Path(predictions_dir) / f"{name}_{split}.jsonl", ev.predictions)
        del model
    for split, m in metrics.items():
        if "base" in m and "tuned" in m:
            base, tuned = preds[split, "base"], preds[split, "tuned"]
            m["delta"] = paired_deltas(base, tuned)
            for name, rows in (("base", base), ("tuned", tuned)):
                m[name].update(robustness_on_base_known(base, rows))
    write_text(adherence_csv, adherence_table(metrics))
    write_json(metrics_path, metrics)
    return metrics


def paired_deltas(base: list[dict], tuned: list[dict]) -> dict:
    """Tuned minus base on the same questions, each with a paired-bootstrap 95% interval:
    adherence over all of them, and closed-book retention (accuracy asked with nothing beside
    the question: how much of what the base knew the tuned model kept)."""
    if [r["id"] for r in base] != [r["id"] for r in tuned]:
        raise ValueError("paired_deltas: base and tuned answered different questions")
    out: dict = {}
    pairs = {"adherence": list(zip(base, tuned)),
             "closed_book_retention": [(b, t) for b, t in zip(base, tuned) if b["setting"] == "closed_book"]}
    for key, rows in pairs.items():
        if rows:
            d = paired_bootstrap([b["correct"] for b, _ in rows], [t["correct"] for _, t in rows])
            out[key], out[f"{key}_ci95"], out[f"{key}_significant"] = d["delta"], d["ci95"], d["significant"]
    return out


def robustness_on_base_known(base: list[dict], rows: list[dict]) -> dict:
    """Irrelevant-context robustness on the facts the base model answers right closed-book: the
    same questions for base and tuned, so a tuned model that forgot a fact cannot drop it from
    its own denominator."""
    known = {b["id"] for b in base if b.get("closed_book_correct")}
    flags = [r["robust"] for r in rows if "robust" in r and r["id"] in known]
    return {"irrelevant_robustness_base_known": rate(flags),
            "irrelevant_robustness_base_known_ci95": wilson_interval(sum(flags), len(flags)),
            "n_base_known": len(flags)} if flags else {}


def adherence_table(metrics: dict) -> str:
    """split,setting,model,adherence as CSV: the plot dvc.yaml declares."""
    rows = ["split,setting,model,adherence"] + [
        f"{split},{s},{name},{v}"
        for split, m in metrics.items() for name, mm in m.items() if name != "delta"
        for s, v in mm["adherence_by_setting"].items()
    ]
    return "\n".join(rows) + "\n"
