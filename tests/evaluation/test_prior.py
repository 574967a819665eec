"""Adherence by quintile of the base model's certainty (ClashEval's figure)."""
import pytest

from tasks.core.metrics import difference_interval
from tasks.evaluation.prior import is_conflict, prior_strength, with_base_certainty
from tasks.evaluation.scoring import headline_summary


def _rows(n=50, fail_above=0.8):
    """Conflict rows of rising certainty; the model fails the surest, and a non-conflict row and
    a multi-hop one that must not be binned."""
    rows = [{"id": f"q{i:02d}", "setting": ("ctx_counterfactual", "instr_only")[i % 2],
             "expected_source": ("context", "instruction")[i % 2], "base_certainty": i / n,
             "correct": i / n < fail_above} for i in range(n)]
    rows += [{"id": "s", "setting": "ctx_support", "expected_source": "context", "base_certainty": 1.0,
              "correct": False},
             {"id": "m", "setting": "multi_hop", "expected_source": "instruction", "base_certainty": 1.0,
              "correct": False}]
    return rows


def test_quintiles_rank_the_conflict_questions_by_the_base_models_certainty():
    m = prior_strength(_rows())
    assert m["n"] == 50 and [q["n"] for q in m["quintiles"]] == [10] * 5
    assert [q["adherence"] for q in m["quintiles"]] == [1.0, 1.0, 1.0, 1.0, 0.0]
    top = m["quintiles"][-1]
    assert top["certainty_min"] == 0.8 and top["certainty_max"] == 0.98
    assert top["adherence_by_setting"] == {"ctx_counterfactual": 0.0, "instr_only": 0.0}
    assert m["gap"]["delta"] == -1.0 and m["gap"]["significant"]
    # a hierarchy that holds everywhere: no gap, an interval around 0
    flat = prior_strength(_rows(fail_above=2))
    assert flat["gap"] == {"delta": 0.0, "ci95": [0.0, 0.0], "significant": False}
    # too few to cut in five with two a quintile
    assert prior_strength(_rows(n=9)) is None
    # a certainty never measured is an error, not a row sorted anywhere
    with pytest.raises(ValueError, match="NaN certainty"):
        prior_strength([*_rows(), {**_rows()[0], "id": "nan", "base_certainty": float("nan")}])


def test_a_benchmarks_items_count_as_conflicts_by_their_expected_source():
    assert is_conflict("ctx_counterfactual", "context") and not is_conflict("ctx_support", "context")
    assert not is_conflict("multi_hop", "instruction") and not is_conflict("closed_book", "parametric")
    assert is_conflict("unspecified", "context") and not is_conflict("unspecified", "parametric")


def test_the_tuned_model_is_binned_by_the_base_models_certainty():
    base = _rows()
    tuned = [{k: v for k, v in r.items() if k != "base_certainty"} for r in base]
    assert with_base_certainty(base, tuned) == [{**t, "base_certainty": b["base_certainty"]}
                                                for t, b in zip(tuned, base)]


def test_the_unpaired_gap_interval_covers_its_difference_and_resamples_whole_cases():
    d = difference_interval([1, 1, 0, 1] * 10, [1, 0, 0, 0] * 10)
    assert d["delta"] == -0.5 and d["ci95"][0] < -0.5 < d["ci95"][1] and d["significant"]
    # one case of many questions is one draw: a far wider interval than as many cases
    wide = difference_interval([1, 0] * 20, [1] * 20 + [0] * 20, groups_high=["a"] * 20 + ["b"] * 20)
    narrow = difference_interval([1, 0] * 20, [1] * 20 + [0] * 20)
    assert wide["ci95"][1] - wide["ci95"][0] > narrow["ci95"][1] - narrow["ci95"][0]
    with pytest.raises(ValueError):
        difference_interval([], [1])


def test_the_summary_shows_the_top_quintile_and_the_gap():
    m = {"test": {"tuned": {"adherence": 0.8, "prior_strength": prior_strength(_rows())}}}
    assert headline_summary(m)["test"] == {"adherence": 0.8, "top_quintile": 0.0, "prior_gap": -1.0}
