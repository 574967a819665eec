"""Answer matching and the knowledge-preference metrics (docs/metrics.md)."""
from __future__ import annotations

import math
import re
import string
from collections import Counter
from typing import Iterable, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans({c: " " for c in string.punctuation})


def normalize(text: str) -> str:
    """Lower-case, drop punctuation and articles, squeeze spaces (SQuAD style)."""
    text = text.lower().translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def matches(prediction: str, golds: Iterable[str]) -> bool:
    """A prediction matches when a normalised gold answer occurs in it as whole words."""
    pred = f" {normalize(prediction)} "
    return any(g and f" {g} " in pred for g in (normalize(x) for x in golds))


def overlaps(a: str, b: str) -> bool:
    """Either answer contains the other as whole words ("Eastern Asia" / "South-eastern Asia"):
    such a pair cannot be told apart by answer matching, so never pit one against the other."""
    na, nb = f" {normalize(a)} ", f" {normalize(b)} "
    return na in nb or nb in na


# Words that carry no answer in "X is in Y" / "X's capital is Y" / "the capital of X is known as Y".
_LINK_WORDS = frozenset("is are was in on of its it s located called known as".split())


def first_sentence(text: str) -> str:
    """Up to the first sentence end or line break: where a generated answer commits itself."""
    return re.split(r"(?<=[.!?])\s|\n", text.strip(), maxsplit=1)[0]


def answer_residue(prediction: str, question: str) -> str:
    """The words a prediction's first sentence adds to its question: its answer, as free text."""
    asked = set(normalize(question).split()) | _LINK_WORDS
    return " ".join(w for w in normalize(first_sentence(prediction)).split() if w not in asked)


def exact_match(prediction: str, golds: Iterable[str]) -> float:
    p = normalize(prediction)
    return float(any(p == normalize(g) for g in golds))


def token_f1(prediction: str, golds: Iterable[str]) -> float:
    best = 0.0
    p_tokens = normalize(prediction).split()
    for g in golds:
        g_tokens = normalize(g).split()
        common = Counter(p_tokens) & Counter(g_tokens)
        same = sum(common.values())
        if same == 0:
            continue
        prec, rec = same / len(p_tokens), same / len(g_tokens)
        best = max(best, 2 * prec * rec / (prec + rec))
    return best


def rate(flags: Sequence[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def wilson_interval(k: int, n: int, z: float = 1.96) -> list[float] | None:
    """95% Wilson score interval of k successes in n: how far a rate measured on a few dozen
    test questions can be from the model's rate on the whole population of such questions."""
    if n == 0:
        return None
    p = k / n
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return [round((centre - half) / (1 + z * z / n), 4), round((centre + half) / (1 + z * z / n), 4)]


def _percentiles(x, n_boot: int, seed: int, groups: Sequence | None = None) -> tuple[float, float]:
    """The 2.5th and 97.5th percentiles of x's mean over `n_boot` seeded resamples of its entries,
    or with `groups` of its groups (the cluster bootstrap): questions that ask one fact are
    answered alike, so resampling them one by one would treat k askings as k facts and draw the
    interval too narrow. With one question per group the two draw the same resamples."""
    import numpy as np

    if groups is not None and len(groups) != len(x):
        raise ValueError(f"groups: {len(groups)} keys for {len(x)} questions")
    number = {k: i for i, k in enumerate(dict.fromkeys(groups))} if groups is not None else {}
    rng = np.random.default_rng(seed)
    if len(number) in (0, len(x)):  # no groups, or one question each: the plain draws, bit for bit
        idx = rng.integers(0, len(x), size=(n_boot, len(x)))
        lo, hi = np.percentile(x[idx].mean(axis=1), [2.5, 97.5])
        return float(lo), float(hi)
    which = np.asarray([number[g] for g in groups])  # numbered in first-seen order, so seeded draws repeat
    sums, sizes = np.bincount(which, weights=x), np.bincount(which)
    idx = rng.integers(0, len(number), size=(n_boot, len(number)))
    lo, hi = np.percentile(sums[idx].sum(axis=1) / sizes[idx].sum(axis=1), [2.5, 97.5])
    return float(lo), float(hi)


def bootstrap_interval(flags: Sequence[float], n_boot: int = 2000, seed: int = 0,
                       groups: Sequence | None = None) -> list[float] | None:
    """95% percentile interval of a mean from resampling its questions (seeded: same answers,
    same interval): how far a rate on a few hundred questions may be from the model's own. With
    `groups` (one key per question, e.g. its fact), whole groups are resampled (_percentiles)."""
    import numpy as np

    if not len(flags):
        return None
    lo, hi = _percentiles(np.asarray(flags, dtype=float), n_boot, seed, groups)
    return [round(lo, 4), round(hi, 4)]


def paired_bootstrap(before: Sequence[float], after: Sequence[float], n_boot: int = 2000, seed: int = 0,
                     groups: Sequence | None = None) -> dict:
    """after - before on the same questions, with a 95% percentile interval from resampling the
    questions (Efron's paired bootstrap): the two models' answers to one question move together,
    so the interval is narrower than two independent ones would suggest. With `groups`, whole
    groups of questions are resampled, as bootstrap_interval does."""
    import numpy as np

    if len(before) != len(after) or not before:
        raise ValueError("paired_bootstrap needs two equally long, non-empty samples")
    diff = np.asarray(after, dtype=float) - np.asarray(before, dtype=float)
    lo, hi = _percentiles(diff, n_boot, seed, groups)
    out = {"delta": round(float(diff.mean()), 4), "ci95": [round(lo, 4), round(hi, 4)],
           "significant": bool(lo > 0 or hi < 0), "n": len(diff)}
    if groups is not None:
        out["groups"] = len(set(groups))
    return out


def difference_interval(low: Sequence[float], high: Sequence[float], n_boot: int = 2000, seed: int = 0,
                        groups_low: Sequence | None = None, groups_high: Sequence | None = None) -> dict:
    """mean(high) - mean(low) of two samples of different questions, with a 95% percentile
    interval from resampling each on its own (with groups, whole groups): the unpaired bootstrap."""
    import numpy as np

    if not len(low) or not len(high):
        raise ValueError("difference_interval needs two non-empty samples")
    rng = np.random.default_rng(seed)

    def means(x: Sequence[float], groups: Sequence | None):
        x = np.asarray(x, dtype=float)
        number = {k: i for i, k in enumerate(dict.fromkeys(groups))} if groups is not None else {}
        which = np.asarray([number[g] for g in groups]) if groups is not None else np.arange(len(x))
        sums, sizes = np.bincount(which, weights=x), np.bincount(which)
        idx = rng.integers(0, len(sums), size=(n_boot, len(sums)))
        return sums[idx].sum(axis=1) / sizes[idx].sum(axis=1)

    draws = means(high, groups_high) - means(low, groups_low)
    lo, hi = np.percentile(draws, [2.5, 97.5])
    delta = float(np.mean(np.asarray(high, dtype=float))) - float(np.mean(np.asarray(low, dtype=float)))
    return {"delta": round(delta, 4), "ci95": [round(float(lo), 4), round(float(hi), 4)],
            "significant": bool(lo > 0 or hi < 0)}


def describe_delta(d: dict) -> str:
    """A paired_bootstrap result as one line: "+0.060 [+0.000, +0.120] significant"."""
    lo, hi = d["ci95"]
    return f"{d['delta']:+.3f} [{lo:+.3f}, {hi:+.3f}]" + (" significant" if d["significant"] else "")


def memorization_ratio(predictions: Sequence[str], memory: Sequence[str], substituted: Sequence[str]) -> float | None:
    """MR = p_o / (p_o + p_s) on counterfactual-context examples (Longpre et al., 2021)."""
    p_o = sum(matches(p, [m]) for p, m in zip(predictions, memory))
    p_s = sum(matches(p, [s]) for p, s in zip(predictions, substituted))
    return round(p_o / (p_o + p_s), 4) if (p_o + p_s) else None


def followed_source(prediction: str, source_answers: dict[str, str | None]) -> str:
    """Which source the prediction took its answer from: instruction, context, parametric or none.

    Checked from the top of the hierarchy down, so an answer two sources share is credited
    to the higher one (the lower one could not have made it win).
    """
    for source in ("instruction", "context"):
        ans = source_answers.get(source)
        if ans and matches(prediction, [ans]):
            return source
    # copying an irrelevant passage is still following the context (over-inclusion)
    if source_answers.get("distractor") and matches(prediction, [source_answers["distractor"]]):
        return "context"
    for key in ("parametric", "world"):
        ans = source_answers.get(key)
        if ans and matches(prediction, [ans]):
            return "parametric"
    return "none"


HEADLINES = ("adherence", "closed_book_accuracy", "irrelevant_robustness")


def metric_changes(before: dict, after: dict, keys: Sequence[str] = HEADLINES) -> list[dict]:
    """The tuned model's headline figures in two metrics.json files, split by split (and
    benchmark by benchmark): {name, key, now, before, change}; before and change are None for a
    figure the earlier file lacks (new)."""
    rows = []
    for name, models in after.items():
        for key in keys:
            new = models.get("tuned", {}).get(key)
            if new is None:
                continue
            old = before.get(name, {}).get("tuned", {}).get(key)
            rows.append({"name": name, "key": key, "now": new, "before": old,
                         "change": None if old is None else round(new - old, 4)})
    return rows
