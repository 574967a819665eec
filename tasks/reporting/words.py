"""The report's figures said for people: labels for settings, splits and metrics, rates as
percentages with their intervals, differences in points, and the few sentences at the top that
say what tuning bought and what it cost."""
from __future__ import annotations

from tasks.core.schema import NOT_MODELS

SPLIT_TITLES = {
    "test": "held-out subjects",
    "test_ood_relation": "held-out relations (never trained)",
    "test_ood_phrasing": "held-out phrasings and assumption styles",
    "test_ood_domain": "held-out knowledge domains (sources, relations and wordings never trained)",
}

SETTING_LABELS = {
    "closed_book": "closed book (memory)",
    "ctx_support": "a passage that agrees",
    "ctx_counterfactual": "a counterfactual passage",
    "ctx_irrelevant": "an irrelevant passage",
    "ctx_mixed": "a counterfactual passage among others",
    "instr_only": "an instruction",
    "instr_vs_ctx": "an instruction against a passage",
    "instr_irrelevant": "an unrelated instruction beside a passage",
    "multi_hop": "multi-hop, through an edit",
}

# metrics.json's figures of one model, as the report's rows name them: (key, label, is a rate)
METRIC_ROWS = (
    ("adherence", "adherence, every setting", True),
    ("closed_book_accuracy", "closed-book accuracy", True),
    ("irrelevant_robustness", "robustness to an irrelevant passage", True),
    ("irrelevant_robustness_base_known", "… on the facts the base knows", True),
    ("irrelevant_robustness_known", "… on the facts this model knows", True),
    ("memorization_ratio", "memorization ratio (lower: the passage wins)", False),
)
# exact match and token F1 mean something only where the gold answer is a short span the model may
# give alone (a benchmark's); the synthesized splits are answered in sentences, where EM reads 0
SPAN_ROWS = (("em", "exact match (whole answer)", True), ("f1", "token F1", True))
LABELS = {key: label for key, label, _ in (*METRIC_ROWS, *SPAN_ROWS)}


def split_title(name: str) -> str:
    """A split's or benchmark's name as the report shows it."""
    return SPLIT_TITLES.get(name, f"benchmark {name}")


def setting_label(setting: str) -> str:
    return SETTING_LABELS.get(setting, setting.replace("_", " "))


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def with_ci(value: float | None, ci) -> str:
    """57% [45%, 68%]."""
    return pct(value) + (f" [{pct(ci[0])}, {pct(ci[1])}]" if value is not None and ci else "")


def paired(m: dict, key: str) -> dict | None:
    """tuned - base of `key` in a split's delta (metrics.json), as points() takes it; None where it has none."""
    d = m.get("delta", {})
    if key not in d:
        return None
    return {"delta": d[key], "ci95": d.get(f"{key}_ci95"), "significant": d.get(f"{key}_significant")}


def points(d: dict | None) -> str:
    """A paired difference in percentage points: "+8 pts [+4, +12]", "significant" where its
    interval excludes 0."""
    if not d or d.get("delta") is None:
        return "–"
    ci = d.get("ci95")
    return (f"{100 * d['delta']:+.0f} pts" + (f" [{100 * ci[0]:+.0f}, {100 * ci[1]:+.0f}]" if ci else "")
            + (", significant" if d.get("significant") else ""))


def metric_rows(m: dict, models: list[str], spans: bool) -> list[dict]:
    """One row per figure the models have: its label and each model's value with its interval."""
    rows = []
    for key, label, is_rate in (*METRIC_ROWS, *(SPAN_ROWS if spans else ())):
        if all(m[name].get(key) is None for name in models):
            continue
        cells = [with_ci(m[name].get(key), m[name].get(f"{key}_ci95")) if is_rate else
                 ("–" if m[name].get(key) is None else f"{m[name][key]:.2f}") for name in models]
        rows.append({"label": label, "cells": cells})
    return rows


def setting_rows(m: dict, models: list[str], key: str = "adherence_by_setting",
                 delta_key: str = "by_setting") -> list[dict]:
    """Per setting: each model's rate with its 95% interval, and tuned - base with its paired one.
    `key`/`delta_key` pick plain adherence or the case-level rate of grouped questions."""
    settings = sorted({s for name in models for s in m[name].get(key, {})})
    return [{"setting": setting_label(s), "name": s,
             "cells": [with_ci(m[name][key].get(s), m[name].get(f"{key}_ci95", {}).get(s)) for name in models],
             "delta": points(m.get("delta", {}).get(delta_key, {}).get(s))} for s in settings]


def _setting(m: dict, model: str, setting: str) -> tuple[float | None, list | None]:
    return (m.get(model, {}).get("adherence_by_setting", {}).get(setting),
            m.get(model, {}).get("adherence_by_setting_ci95", {}).get(setting))


def _follows(m: dict, setting: str, what: str) -> str | None:
    tuned, ci = _setting(m, "tuned", setting)
    base, _ = _setting(m, "base", setting)
    if tuned is None:
        return None
    interval = f" [95% CI {pct(ci[0])}–{pct(ci[1])}]" if ci else ""
    return f"{what} {pct(tuned)} of the time{interval}" + (f", the base model {pct(base)}" if base is not None else "")


def summary(metrics: dict) -> list[str]:
    """What tuning bought and what it cost, in a few sentences with their intervals: on held-out
    subjects (`test`) the hierarchy's settings, closed-book retention where the model never
    trained, and every figure that fell significantly below the base."""
    out = []
    m = metrics.get("test", {})
    if "tuned" in m:
        parts = [p for p in (_follows(m, "ctx_counterfactual", "follows a counterfactual passage"),
                             _follows(m, "instr_only", "follows an instruction"),
                             _follows(m, "instr_vs_ctx", "takes the instruction's side against a passage"))
                 if p]
        if parts:
            out.append("On held-out subjects the tuned model " + "; ".join(parts) + ".")
        known = m["tuned"].get("irrelevant_robustness_base_known")
        if known is not None:
            base = m.get("base", {}).get("irrelevant_robustness_base_known")
            ci = m["tuned"].get("irrelevant_robustness_base_known_ci95")
            interval = f" [95% CI {pct(ci[0])}–{pct(ci[1])}]" if ci else ""
            out.append("Beside an irrelevant passage it keeps its closed-book answer on the facts the base knows "
                       f"{pct(known)} of the time{interval}" + (f", the base model {pct(base)}." if base is not None
                                                                else "."))
    for split in ("test_ood_domain", "test"):
        d = metrics.get(split, {}).get("delta", {})
        if "closed_book_retention" in d:
            cb = {name: metrics[split][name].get("closed_book_accuracy") for name in ("base", "tuned")}
            out.append(f"Closed-book on {split_title(split).split(' (')[0]}, it answers {pct(cb['tuned'])} right "
                       f"against the base model's {pct(cb['base'])}: {points(paired(metrics[split], 'closed_book_retention'))}.")
            break
    out.append(_costs(metrics))
    return out


def _costs(metrics: dict) -> str:
    lost = [f"{setting_label(s)} on {split_title(split).split(' (')[0]} ({points(d)})"
            for split, m in metrics.items() for s, d in m.get("delta", {}).get("by_setting", {}).items()
            if d.get("significant") and d["delta"] < 0]
    if not lost:
        return "No setting of any split or benchmark fell significantly below the base model."
    return "What it cost: " + "; ".join(lost) + "."


def headlines(metrics: dict, order) -> list[dict]:
    """One row per split with both models: adherence beside closed-book retention (tuned - base,
    paired interval) and robustness on the facts the base knows."""
    rows = []
    for split, m in sorted(metrics.items(), key=lambda kv: order(kv[0])):
        if "delta" not in m:
            continue
        tuned, base = m["tuned"], m["base"]
        rows.append({"split": split, "title": split_title(split),
                     "adherence": f"{with_ci(tuned['adherence'], tuned.get('adherence_ci95'))} "
                                  f"({pct(base['adherence'])})",
                     "retention": points(paired(m, "closed_book_retention")),
                     "robust_known": f"{pct(tuned.get('irrelevant_robustness_base_known'))} "
                                     f"({pct(base.get('irrelevant_robustness_base_known'))})"})
    return rows


def change_rows(changes: list[dict]) -> list[dict]:
    """metric_changes' rows with labels, percentages and the change in points."""
    return [{"name": split_title(c["name"]), "key": LABELS.get(c["key"], c["key"]), "before": pct(c["before"]),
             "now": pct(c["now"]), "change": "new" if c["change"] is None else f"{100 * c['change']:+.1f} pts"}
            for c in changes]


def prior_rows(metrics: dict, names: list[str]) -> list[dict]:
    """Per split or benchmark and model: conflict adherence in the bottom and top quintile of the
    base model's certainty [95% intervals], and top minus bottom [95% interval]."""
    rows = []
    for name in names:
        for model in (m for m in metrics[name] if m not in NOT_MODELS):
            prior = metrics[name][model].get("prior_strength")
            if not prior:
                continue
            low, top = prior["quintiles"][0], prior["quintiles"][-1]
            rows.append({"split": name, "model": model, "n": prior["n"],
                         "bottom": with_ci(low["adherence"], low["adherence_ci95"]),
                         "top": with_ci(top["adherence"], top["adherence_ci95"]),
                         "certainty": f"{top['certainty_min']:.2f}-{top['certainty_max']:.2f}",
                         "gap": points(prior["gap"])})
    return rows
