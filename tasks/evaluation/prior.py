"""Adherence against the strength of the memory a conflict contradicts (ClashEval's figure).

A conflict item's `base_certainty` is how sure the base model is, closed-book, of what its memory
says: for a synthesized example, the probe's probability of the world's object after the
relation's statement head (tasks/probe.py); for an item that does not say (a user's file, a
benchmark), the mean probability of the tokens of the model's own closed-book answer, measured
when it is answered (tasks/evaluation/predict.py). The items are ranked by it and cut into
quintiles; a hierarchy that holds has the same adherence in the top quintile as in the bottom.
"""
from __future__ import annotations

import math
from typing import Sequence

from tasks.core.metrics import bootstrap_interval, difference_interval, rate
from tasks.core.schema import FACT_CONFLICTS, SETTINGS

QUANTILES = 5


def is_conflict(setting: str, expected_source: str) -> bool:
    """An item where something given should beat memory about one fact: the synthesized conflict
    settings but multi-hop (a composition no single probe measures), or any item of a user's file
    or benchmark whose answer comes from the instruction or the context."""
    if setting in SETTINGS:
        return setting in FACT_CONFLICTS
    return expected_source in ("instruction", "context")


def _case(pred: dict) -> str:
    return pred.get("group") or pred["id"]


def prior_strength(preds: Sequence[dict]) -> dict | None:
    """Conflict adherence by quintile of the base model's certainty: each quintile's size, the
    range and mean of its certainty, its adherence with a 95% interval and per setting, and the
    top minus bottom quintile's adherence with its 95% interval (`gap`). None when fewer than
    two conflict items a quintile carry a certainty."""
    rows = sorted((p for p in preds if p.get("base_certainty") is not None
                   and is_conflict(p["setting"], p["expected_source"])),
                  key=lambda p: (p["base_certainty"], str(p["id"])))
    if unmeasured := [p["id"] for p in rows if math.isnan(p["base_certainty"])]:
        # a NaN sorts anywhere: the quintiles would be silently wrong
        raise ValueError(f"prior_strength: {len(unmeasured)} conflict rows have a NaN certainty, from {unmeasured[0]}")
    if len(rows) < 2 * QUANTILES:
        return None
    cuts = [round(k * len(rows) / QUANTILES) for k in range(QUANTILES + 1)]
    bins = [rows[a:b] for a, b in zip(cuts, cuts[1:])]
    out: dict = {"n": len(rows), "quintiles": []}
    for b in bins:
        flags = [p["correct"] for p in b]
        sure = [p["base_certainty"] for p in b]
        by_setting: dict[str, list[bool]] = {}
        for p in b:
            by_setting.setdefault(p["setting"], []).append(p["correct"])
        out["quintiles"].append({
            "n": len(b), "certainty_min": min(sure), "certainty_max": max(sure),
            "certainty_mean": round(sum(sure) / len(sure), 4),
            "adherence": rate(flags), "adherence_ci95": bootstrap_interval(flags, groups=[_case(p) for p in b]),
            "adherence_by_setting": {s: rate(v) for s, v in sorted(by_setting.items())},
        })
    low, high = bins[0], bins[-1]
    out["gap"] = difference_interval([p["correct"] for p in low], [p["correct"] for p in high],
                                     groups_low=[_case(p) for p in low], groups_high=[_case(p) for p in high])
    return out


def with_base_certainty(base: Sequence[dict], rows: Sequence[dict]) -> list[dict]:
    """Another model's rows binned as the base model's: each takes the certainty of the base row
    of the same question (the bins are the base model's memory, whoever answers)."""
    sure = {b["id"]: b.get("base_certainty") for b in base}
    return [{**r, "base_certainty": sure.get(r["id"])} for r in rows]
