"""Scoring a model's answers: every figure with its 95% bootstrap interval (`summarize`), tuned
minus base on the same questions (`paired_deltas`), and the units a bootstrap resamples. Pure
functions of the prediction rows `tasks/evaluation/predict.py` writes."""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Iterable, Sequence

from tasks.core.metrics import (
    bootstrap_interval,
    memorization_ratio,
    paired_bootstrap,
    rate,
)
from tasks.core.schema import SOURCES, EvalItem
from tasks.evaluation.prior import prior_strength


def summarize(items: Sequence[EvalItem], preds: Sequence[dict]) -> dict:
    """Every figure with its 95% bootstrap interval (`<key>_ci95`): the share of questions a
    setting holds is often a few dozen, and a rate without its interval invites over-reading.
    Questions of one case (`group`) are resampled together (case_of)."""
    by_setting: dict[str, list[bool]] = defaultdict(list)
    cases_of: dict[str, list[str]] = defaultdict(list)
    by_source: dict[str, list[bool]] = defaultdict(list)
    for it, p in zip(items, preds):
        by_setting[it.setting].append(p["correct"])
        cases_of[it.setting].append(case_of(p))
        by_source[it.expected_source].append(p["correct"])
    correct, cases_all = [p["correct"] for p in preds], [case_of(p) for p in preds]
    m: dict = {"n": len(preds)}
    for key, flags in (("adherence", correct), ("em", [p["em"] for p in preds]), ("f1", [p["f1"] for p in preds])):
        m[key], m[f"{key}_ci95"] = rate(flags), bootstrap_interval(flags, groups=cases_all)
    m["adherence_by_setting"] = {s: rate(v) for s, v in sorted(by_setting.items())}
    m["adherence_by_setting_ci95"] = {s: bootstrap_interval(v, groups=cases_of[s]) for s, v in sorted(by_setting.items())}
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
    prior = prior_strength(preds)
    if prior:  # ClashEval's figure: does adherence fall where the base model's memory is strongest?
        m["prior_strength"] = prior
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


def asked(row: dict) -> tuple:
    """What a prediction row was asked: its id alone does not say, since ids count examples and
    another fact set or mix puts other questions under the same ids."""
    return row["id"], row.get("question"), tuple(row.get("contexts") or ()), row.get("instruction")


def same_questions(a: list[dict], b: list[dict]) -> str | None:
    """None when both answered the same questions in the same order, else the first id that differs."""
    for ra, rb in zip(a, b):
        if asked(ra) != asked(rb):
            return ra["id"]
    return None if len(a) == len(b) else f"{min(len(a), len(b))} of {max(len(a), len(b))} rows"


def paired_deltas(base: list[dict], tuned: list[dict]) -> dict:
    """Tuned minus base on the same questions, each with a paired-bootstrap 95% interval and
    whether it excludes 0: adherence over all of them, closed-book retention (accuracy asked with
    nothing beside the question: how much of what the base knew the tuned model kept), each
    setting (`by_setting`) and, for grouped questions, each setting's cases (`case_by_setting`)."""
    if (first := same_questions(base, tuned)) is not None:
        raise ValueError(f"paired_deltas: base and tuned answered different questions (from {first})")
    out: dict = {}
    pairs = {"adherence": list(zip(base, tuned)),
             "closed_book_retention": [(b, t) for b, t in zip(base, tuned) if b["setting"] == "closed_book"]}
    for key, rows in pairs.items():
        if rows:
            d = _paired(rows)
            out[key], out[f"{key}_ci95"], out[f"{key}_significant"] = d["delta"], d["ci95"], d["significant"]
    by_setting: dict[str, list[tuple[dict, dict]]] = defaultdict(list)
    for b, t in zip(base, tuned):
        by_setting[b["setting"]].append((b, t))
    out["by_setting"] = {s: _paired(rows) for s, rows in sorted(by_setting.items())}
    cb, ct = case_flags(base), case_flags(tuned)
    if cb:
        out["case_by_setting"] = {s: _delta(paired_bootstrap(list(g.values()), [ct[s][k] for k in g]))
                                  for s, g in cb.items()}
    return out


def case_of(pred: dict) -> str:
    """The unit a bootstrap resamples: a question's case (MQuAKE's three paraphrases of one multi-hop
    question are answered alike, so drawn one by one they would read as three cases), else itself."""
    return pred.get("group") or pred["id"]


def _paired(rows: list[tuple[dict, dict]]) -> dict:
    return _delta(paired_bootstrap([b["correct"] for b, _ in rows], [t["correct"] for _, t in rows],
                                   groups=[case_of(b) for b, _ in rows]))


def _delta(d: dict) -> dict:
    return {"delta": d["delta"], "ci95": d["ci95"], "significant": d["significant"]}


def base_known_ids(base: Iterable[dict]) -> set[str]:
    """The questions whose fact the base model answers right closed-book: robustness on them is
    judged on the same questions for every tuned model, so one that forgot a fact cannot drop it
    from its own denominator."""
    return {b["id"] for b in base if b.get("closed_book_correct")}


def robustness_on_base_known(base: list[dict], rows: list[dict]) -> dict:
    """Irrelevant-context robustness on the facts the base model knows (`base_known_ids`)."""
    known = base_known_ids(base)
    flags = [r["robust"] for r in rows if "robust" in r and r["id"] in known]
    return {"irrelevant_robustness_base_known": rate(flags),
            "irrelevant_robustness_base_known_ci95": bootstrap_interval(flags),
            "n_base_known": len(flags)} if flags else {}


# the figures a person compares between experiments, per split and benchmark (reports/summary.json)
SUMMARY_KEYS = {"adherence": "adherence", "closed_book_accuracy": "closed_book",
                "irrelevant_robustness_base_known": "robustness_base_known"}


def headline_summary(metrics: dict) -> dict:
    """The tuned model's headline figures from metrics.json, and closed-book retention (tuned - base
    on the same questions): a few columns a split for `dvc metrics show` and `dvc metrics diff`,
    where metrics.json's every interval bound and confusion cell would be hundreds."""
    out = {}
    for name, m in metrics.items():
        tuned = m.get("tuned")
        if not tuned:
            continue
        row = {short: tuned[key] for key, short in SUMMARY_KEYS.items() if tuned.get(key) is not None}
        if "closed_book_retention" in m.get("delta", {}):
            row["retention"] = m["delta"]["closed_book_retention"]
        prior = tuned.get("prior_strength")
        if prior:  # conflict adherence where the base model is surest, and how far it falls from the least sure
            row["top_quintile"] = prior["quintiles"][-1]["adherence"]
            row["prior_gap"] = prior["gap"]["delta"]
        out[name] = row
    return out
