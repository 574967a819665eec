"""Stage evaluate: how well a model obeys the hierarchy, on synthesized, benchmark or user conflict sets.

    params: evaluate        reads: models/base, models/tuned, data/test*.jsonl, inputs/benchmarks/
                            writes: reports/metrics.json, reports/predictions/, reports/plots/adherence.csv

`evaluate_items` is the one evaluation: the DVC stage runs it for base and tuned models on
every test split and every benchmark params.yaml lists (tasks/benchmarks.py turns each into
the same items); `kpref evaluate` runs it on a user's JSONL file or one benchmark file.
"""
from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tasks import prompt
from tasks.atomic import write_json, write_jsonl, write_text
from tasks.benchmarks import read_benchmarks
from tasks.metrics import (
    answer_residue,
    bootstrap_interval,
    exact_match,
    followed_source,
    matches,
    memorization_ratio,
    normalize,
    overlaps,
    paired_bootstrap,
    rate,
    token_f1,
)
from tasks.params import EvaluateParams, Params
from tasks.schema import (
    ADHERENCE_CSV,
    BASE_DIR,
    DATA_DIR,
    METRICS,
    NOT_MODELS,
    PREDICTIONS,
    SOURCES,
    TEST_SPLITS,
    TUNED_DIR,
    EvalItem,
    read_splits,
)

log = logging.getLogger(__name__)


def run(p: Params, root: Path) -> None:
    benchmarks, skipped = read_benchmarks(p.evaluate.benchmarks, root)
    metrics = evaluate_stage(root / DATA_DIR, {"base": root / BASE_DIR, "tuned": root / TUNED_DIR}, p.evaluate,
                             root / METRICS, root / PREDICTIONS, root / ADHERENCE_CSV, benchmarks, skipped)
    log.info("tuned adherence: %s", {name: m.get("tuned", {}).get("adherence") for name, m in metrics.items()})


@dataclass
class Evaluation:
    metrics: dict
    predictions: list[dict]


def _closed_book_prompts(tok, items: Sequence[EvalItem]) -> dict[str, str]:
    return {it.id: prompt.render(tok, it.question) for it in items if it.setting == "ctx_irrelevant"}


def evaluate_items(model, tok, items: Sequence[EvalItem], batch_size: int = 16, max_new_tokens: int = 24,
                   desc: str = "evaluating") -> Evaluation:
    from tasks.generate import first_token_entropy, generate_answers

    prompts = [prompt.render(tok, it.question, it.contexts, it.instruction) for it in items]
    # Robustness compares each irrelevant-context answer with the same model's closed-book
    # answer to the same question; generate each distinct prompt once.
    cb = _closed_book_prompts(tok, items)
    unique = list(dict.fromkeys([*prompts, *cb.values()]))
    answers = dict(zip(unique, generate_answers(model, tok, unique, batch_size, max_new_tokens, desc=desc)))
    # CK-PLUG's confidence gain needs each question's first-token entropy with nothing beside it:
    # one forward pass for the bare prompts not generated already
    bare = {it.id: prompt.render(tok, it.question) for it in items if it.contexts or it.instruction}
    unscored = [q for q in dict.fromkeys(bare.values()) if q not in answers]
    bare_entropy = {q: a.entropy for q, a in answers.items()}
    bare_entropy.update(zip(unscored, first_token_entropy(model, tok, unscored, batch_size, desc=f"{desc} (bare)")))

    preds = []
    for it, p in zip(items, prompts):
        pred = answers[p].text
        row = {
            "id": it.id,
            "setting": it.setting,
            "expected_source": it.expected_source,
            "prediction": pred,
            "expected": list(it.answers),
            "correct": matches(pred, it.answers),
            "em": exact_match(pred, it.answers),
            "f1": round(token_f1(pred, it.answers), 4),
        }
        if it.group:
            row["group"] = it.group
        # what was asked, so a failure can be read in full without the data files
        row.update(question=it.question, instruction=it.instruction, contexts=list(it.contexts))
        if it.id in bare:
            row["confidence_gain"] = round(bare_entropy[bare[it.id]] - answers[p].entropy, 4)
        if it.source_answers:
            row["followed_source"] = followed_source(pred, it.source_answers)
        if it.id in cb:
            closed = answers[cb[it.id]].text
            row["closed_book_prediction"] = closed
            row["closed_book_correct"] = matches(closed, it.answers)
            row["robust"] = same_answer(pred, closed, it)
        preds.append(row)
    return Evaluation(summarize(items, preds), preds)


@dataclass
class Explanation:
    answer: str
    followed: str  # instruction | context | parametric | none, by the metrics' rule (followed_source)
    by_source: dict[str, str]  # what the model answers given only that source (parametric: nothing)
    confidence_gain: float | None  # first-token entropy bare minus with everything given (nats)


def explain_answer(model, tok, question: str, contexts: Sequence[str] = (), instruction: str | None = None,
                   max_new_tokens: int = 24) -> Explanation:
    """The answer, and which source it followed: the model is asked again with only the
    instruction, only the contexts and nothing, and each of those answers (the words it adds to
    the question) stands for what that source says; the metrics' rule then credits the highest
    source the answer agrees with."""
    from tasks.generate import generate_answers

    variants = {"full": prompt.render(tok, question, contexts, instruction),
                "parametric": prompt.render(tok, question)}
    if instruction:
        variants["instruction"] = prompt.render(tok, question, (), instruction)
    if contexts:
        variants["context"] = prompt.render(tok, question, contexts)
    unique = list(dict.fromkeys(variants.values()))
    answers = dict(zip(unique, generate_answers(model, tok, unique, len(unique), max_new_tokens, desc="explaining")))
    full = answers[variants["full"]]
    by_source = {k: answers[v].text for k, v in variants.items() if k != "full"}
    said = {k: answer_residue(v, question) or v for k, v in by_source.items()}
    gain = round(answers[variants["parametric"]].entropy - full.entropy, 4) if contexts or instruction else None
    return Explanation(full.text, followed_source(full.text, said), by_source, gain)


def summarize(items: Sequence[EvalItem], preds: Sequence[dict]) -> dict:
    """Every figure with its 95% bootstrap interval (`<key>_ci95`): the share of questions a
    setting holds is often a few dozen, and a rate without its interval invites over-reading."""
    by_setting: dict[str, list[bool]] = defaultdict(list)
    by_source: dict[str, list[bool]] = defaultdict(list)
    for it, p in zip(items, preds):
        by_setting[it.setting].append(p["correct"])
        by_source[it.expected_source].append(p["correct"])
    correct = [p["correct"] for p in preds]
    m: dict = {"n": len(preds)}
    for key, flags in (("adherence", correct), ("em", [p["em"] for p in preds]), ("f1", [p["f1"] for p in preds])):
        m[key], m[f"{key}_ci95"] = rate(flags), bootstrap_interval(flags)
    m["adherence_by_setting"] = {s: rate(v) for s, v in sorted(by_setting.items())}
    m["adherence_by_setting_ci95"] = {s: bootstrap_interval(v) for s, v in sorted(by_setting.items())}
    m["adherence_by_source"] = {s: rate(v) for s, v in sorted(by_source.items())}
    cases = case_flags(preds)
    if cases:  # MQuAKE's rule: a case counts when any of its questions is answered
        m["case_adherence_by_setting"] = {s: rate(list(g.values())) for s, g in cases.items()}
        m["case_adherence_by_setting_ci95"] = {s: bootstrap_interval(list(g.values())) for s, g in cases.items()}
    gains: dict[str, list[float]] = defaultdict(list)
    for p in preds:
        if "confidence_gain" in p:
            gains[p["setting"]].append(p["confidence_gain"])
    if gains:  # CK-PLUG: > 0 the passage or instruction made the model surer, < 0 less sure (a conflict)
        m["confidence_gain_by_setting"] = {s: round(sum(v) / len(v), 4) for s, v in sorted(gains.items())}
    if "closed_book" in by_setting:
        m["closed_book_accuracy"] = rate(by_setting["closed_book"])
        m["closed_book_accuracy_ci95"] = bootstrap_interval(by_setting["closed_book"])
    irr = [p for p in preds if "robust" in p]
    if irr:
        m["irrelevant_robustness"] = rate([p["robust"] for p in irr])
        m["irrelevant_robustness_ci95"] = bootstrap_interval([p["robust"] for p in irr])
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


def case_flags(preds: Sequence[dict]) -> dict[str, dict[str, bool]]:
    """{setting: {group: solved}} over the grouped predictions: a group is solved when any of its
    questions is answered right (MQuAKE's three paraphrases of one multi-hop question)."""
    out: dict[str, dict[str, bool]] = defaultdict(dict)
    for p in preds:
        if p.get("group"):
            out[p["setting"]][p["group"]] = out[p["setting"]].get(p["group"], False) or p["correct"]
    return {s: dict(sorted(g.items())) for s, g in sorted(out.items())}


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
                   predictions_dir: str | Path, adherence_csv: str | Path,
                   benchmarks: dict[str, list[EvalItem]] | None = None, skipped: dict[str, str] | None = None) -> dict:
    """Every model on every test split and benchmark: metrics[name][model], plus tuned - base
    deltas; a skipped benchmark is metrics[name]["skipped"], its reason."""
    from tasks.modeling import load_model

    splits = {split: [EvalItem.from_example(r) for r in rows] for split, rows in read_splits(data_dir, TEST_SPLITS).items()}
    splits.update(benchmarks or {})
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
    metrics.update({name: {"skipped": why} for name, why in (skipped or {}).items()})
    write_text(adherence_csv, adherence_table(metrics))
    write_json(metrics_path, metrics)
    return metrics


def paired_deltas(base: list[dict], tuned: list[dict]) -> dict:
    """Tuned minus base on the same questions, each with a paired-bootstrap 95% interval and
    whether it excludes 0: adherence over all of them, closed-book retention (accuracy asked with
    nothing beside the question: how much of what the base knew the tuned model kept), each
    setting (`by_setting`) and, for grouped questions, each setting's cases (`case_by_setting`)."""
    if [r["id"] for r in base] != [r["id"] for r in tuned]:
        raise ValueError("paired_deltas: base and tuned answered different questions")
    out: dict = {}
    pairs = {"adherence": list(zip(base, tuned)),
             "closed_book_retention": [(b, t) for b, t in zip(base, tuned) if b["setting"] == "closed_book"]}
    for key, rows in pairs.items():
        if rows:
            d = paired_bootstrap([b["correct"] for b, _ in rows], [t["correct"] for _, t in rows])
            out[key], out[f"{key}_ci95"], out[f"{key}_significant"] = d["delta"], d["ci95"], d["significant"]
    by_setting: dict[str, list[tuple[dict, dict]]] = defaultdict(list)
    for b, t in zip(base, tuned):
        by_setting[b["setting"]].append((b, t))
    out["by_setting"] = {s: _paired([b["correct"] for b, _ in rows], [t["correct"] for _, t in rows])
                         for s, rows in sorted(by_setting.items())}
    cb, ct = case_flags(base), case_flags(tuned)
    if cb:
        out["case_by_setting"] = {s: _paired(list(g.values()), [ct[s][k] for k in g]) for s, g in cb.items()}
    return out


def _paired(before: list[bool], after: list[bool]) -> dict:
    d = paired_bootstrap(before, after)
    return {"delta": d["delta"], "ci95": d["ci95"], "significant": d["significant"]}


def robustness_on_base_known(base: list[dict], rows: list[dict]) -> dict:
    """Irrelevant-context robustness on the facts the base model answers right closed-book: the
    same questions for base and tuned, so a tuned model that forgot a fact cannot drop it from
    its own denominator."""
    known = {b["id"] for b in base if b.get("closed_book_correct")}
    flags = [r["robust"] for r in rows if "robust" in r and r["id"] in known]
    return {"irrelevant_robustness_base_known": rate(flags),
            "irrelevant_robustness_base_known_ci95": bootstrap_interval(flags),
            "n_base_known": len(flags)} if flags else {}


def adherence_table(metrics: dict) -> str:
    """split,setting,model,adherence as CSV: the plot dvc.yaml declares."""
    rows = ["split,setting,model,adherence"] + [
        f"{split},{s},{name},{v}"
        for split, m in metrics.items() for name, mm in m.items() if name not in NOT_MODELS
        for s, v in mm["adherence_by_setting"].items()
    ]
    return "\n".join(rows) + "\n"
