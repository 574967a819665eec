"""Two runs side by side on the same questions (`kpref compare`): B minus A, each difference with
its paired-bootstrap 95% interval, questions of one case resampled together.

Each run is a project folder after `dvc repro` (or a copy of its `reports/predictions`). The two
must have answered the same questions: a split whose questions differ (another seed, or params
that change the data) is left out and named, never paired by position. Per split: the
tuned models' conflict adherence (the answer the hierarchy says, where it contradicts memory),
irrelevant-context robustness (on all, and on the facts the *base* answers right closed-book),
closed-book accuracy, and every setting.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tasks.core.metrics import paired_bootstrap
from tasks.core.schema import PREDICTIONS, SETTINGS, KprefError, read_jsonl
from tasks.evaluation.answers import answers_file
from tasks.evaluation.scoring import (
    base_known_ids,
    case_flags,
    case_of,
    paired_deltas,
    same_questions,
)

SPLITS = ("test", "test_ood_phrasing", "test_ood_relation", "test_ood_domain")


@dataclass(frozen=True)
class Row:
    """One measure of a split: A's rate, B's rate and B - A, paired (delta, ci95, significant)."""

    measure: str
    a: str
    b: str
    delta: dict


def predictions_dir(run: Path) -> Path:
    """A run's predictions: the folder itself, or its reports/predictions."""
    inner = Path(run) / PREDICTIONS
    return inner if inner.is_dir() else Path(run)


def compare_split(a_dir: Path, b_dir: Path, split: str) -> list[Row] | None:
    """The measures of one split, or None when a run lacks it."""
    paths = [answers_file(d, "tuned", split) for d in (a_dir, b_dir)]
    if not all(p.exists() for p in paths):
        return None
    a, b = (read_jsonl(p) for p in paths)
    if (first := same_questions(a, b)) is not None:
        raise Unpaired(f"{split}: the two runs answered different questions (from {first}): another seed, "
                       "or params that change the data")
    rows = []
    conflict = [(ra, rb) for ra, rb in zip(a, b) if is_conflict(ra)]
    if conflict:
        rows.append(_flagged("conflict adherence", conflict, "correct"))
    base_file = answers_file(a_dir, "base", split)
    known = base_known_ids(read_jsonl(base_file)) if base_file.exists() else set()
    for label, keep in (("robustness", lambda r: True), ("robustness, base-known", lambda r: r["id"] in known)):
        robust = [(ra, rb) for ra, rb in zip(a, b) if "robust" in ra and keep(ra)]
        if robust:
            rows.append(_flagged(f"{label} ({len(robust)})", robust, "robust"))
    deltas = paired_deltas(a, b)
    if "closed_book_retention" in deltas:
        cb = [(ra, rb) for ra, rb in zip(a, b) if ra["setting"] == "closed_book"]
        rows.append(Row("closed-book accuracy", *_rates(cb, "correct"), {
            "delta": deltas["closed_book_retention"], "ci95": deltas["closed_book_retention_ci95"],
            "significant": deltas["closed_book_retention_significant"]}))
    for s, d in deltas["by_setting"].items():
        pairs = [(ra, rb) for ra, rb in zip(a, b) if ra["setting"] == s]
        rows.append(Row(f"  {s} ({len(pairs)})", *_rates(pairs, "correct"), d))
    cases_a, cases_b = case_flags(a), case_flags(b)
    for s, d in deltas.get("case_by_setting", {}).items():
        rates = (f"{sum(c[s].values()) / len(c[s]):.3f}" for c in (cases_a, cases_b))
        rows.append(Row(f"  {s}, cases ({len(cases_a[s])})", *rates, d))
    return rows


def is_conflict(row: dict) -> bool:
    """A setting whose right answer contradicts the world's; a benchmark's own settings (MQuAKE's
    multi-hop edits) are when an instruction or a passage is the source to follow."""
    spec = SETTINGS.get(row["setting"])
    return spec.conflict if spec else row["expected_source"] in ("instruction", "context")


def _rates(pairs: list[tuple[dict, dict]], key: str) -> tuple[str, str]:
    return tuple(f"{sum(p[i][key] for p in pairs) / len(pairs):.3f}" for i in (0, 1))


def _flagged(measure: str, pairs: list[tuple[dict, dict]], key: str) -> Row:
    d = paired_bootstrap([ra[key] for ra, _ in pairs], [rb[key] for _, rb in pairs],
                         groups=[case_of(ra) for ra, _ in pairs])
    return Row(measure, *_rates(pairs, key), {k: d[k] for k in ("delta", "ci95", "significant")})


class Unpaired(KprefError):
    """A split both runs answered, on different questions."""


@dataclass(frozen=True)
class Comparison:
    figures: dict[str, list[Row]]  # {split: its rows}, for every split both runs answered alike
    unpaired: dict[str, str]  # {split: why it is left out}, for those answered on different questions


def compare_runs(a: Path, b: Path, splits: tuple[str, ...] = SPLITS) -> Comparison:
    """Every split both runs answered; those on different questions named apart, never paired."""
    a_dir, b_dir = predictions_dir(a), predictions_dir(b)
    figures, unpaired = {}, {}
    for split in splits:
        try:
            rows = compare_split(a_dir, b_dir, split)
        except Unpaired as e:
            unpaired[split] = str(e)
            continue
        if rows is not None:
            figures[split] = rows
    if not figures:
        why = "; ".join(unpaired.values()) or "each needs tuned_<split>.jsonl"
        raise KprefError(f"{a_dir} and {b_dir} share no split of {list(splits)} answered on the same questions ({why})")
    return Comparison(figures, unpaired)
