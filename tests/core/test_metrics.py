import pytest

from tasks.core.metrics import (
    describe_delta,
    exact_match,
    followed_source,
    matches,
    memorization_ratio,
    normalize,
    paired_bootstrap,
    token_f1,
    wilson_interval,
)


def test_normalize_drops_case_punctuation_articles():
    assert normalize("The  Capital, of Peru is LIMA!") == "capital of peru is lima"


def test_matches_whole_words_only():
    assert matches("The capital of Peru is Lima.", ["lima"])
    assert not matches("Romania", ["Oman"])
    assert matches("It is the Yuan.", ["Yuan Renminbi", "Yuan"])
    assert not matches("", ["Lima"])


def test_em_and_f1():
    assert exact_match("the Lima", ["Lima"]) == 1.0
    assert exact_match("Lima, Peru", ["Lima"]) == 0.0
    assert abs(token_f1("Lima Peru", ["Lima"]) - 2 / 3) < 1e-9
    assert token_f1("Quito", ["Lima"]) == 0.0


def test_memorization_ratio():
    preds = ["Lima", "Quito", "Quito", "nothing"]
    mr = memorization_ratio(preds, ["Lima"] * 4, ["Quito"] * 4)
    assert mr == round(1 / 3, 4)
    assert memorization_ratio(["x"], ["Lima"], ["Quito"]) is None


def test_followed_source_prefers_higher_source():
    src = {"instruction": "Quito", "context": "Cusco", "parametric": "Lima"}
    assert followed_source("It is Quito.", src) == "instruction"
    assert followed_source("Cusco", src) == "context"
    assert followed_source("Lima", src) == "parametric"
    assert followed_source("Paris", src) == "none"
    assert followed_source("Lima", {"instruction": None, "context": None, "parametric": "x", "world": "Lima"}) == "parametric"


def test_wilson_interval():
    lo, hi = wilson_interval(52, 60)  # 0.867 on 60 questions
    assert 0.75 < lo < 0.76 and 0.93 < hi < 0.94
    assert wilson_interval(60, 60)[1] == 1.0 and wilson_interval(0, 60)[0] == 0.0
    assert wilson_interval(0, 0) is None
    narrow = wilson_interval(260, 300)
    assert narrow[1] - narrow[0] < hi - lo  # more questions, a tighter interval


def test_paired_bootstrap():
    before, after = [0, 1] * 30, [1, 1] * 30  # the tuned model gets 30 more of 60 right
    d = paired_bootstrap(before, after)
    assert d["delta"] == 0.5 and d["significant"] and 0.35 < d["ci95"][0] < 0.5 < d["ci95"][1] < 0.65
    assert d == paired_bootstrap(before, after)  # seeded: same data, same interval
    same = paired_bootstrap(before, before)
    assert same["delta"] == 0 and same["ci95"] == [0.0, 0.0] and not same["significant"]
    # one question won, one lost of 60: no evidence of a change
    noisy = paired_bootstrap([1, 0] + [1] * 58, [0, 1] + [1] * 58)
    assert noisy["ci95"][0] < 0 < noisy["ci95"][1] and not noisy["significant"]
    with pytest.raises(ValueError):
        paired_bootstrap([1], [1, 0])
    # one line for reports and benchmark scripts alike
    assert describe_delta({"delta": 0.06, "ci95": [0.0, 0.12], "significant": False}) == "+0.060 [+0.000, +0.120]"
    assert describe_delta(same) == "+0.000 [+0.000, +0.000]"
    assert describe_delta({"delta": -0.105, "ci95": [-0.155, -0.055], "significant": True}) == \
        "-0.105 [-0.155, -0.055] significant"


def test_metric_changes_pairs_the_tuned_models_figures_by_split():
    from tasks.core.metrics import metric_changes

    before = {"test": {"tuned": {"adherence": 0.5}}, "mquake": {"skipped": "file not found"}}
    after = {"test": {"tuned": {"adherence": 0.75, "closed_book_accuracy": 0.6}}, "mquake": {"tuned": {"adherence": 0.9}},
             "ifqa": {"skipped": "file not found"}}
    assert metric_changes(before, after) == [
        {"name": "test", "key": "adherence", "now": 0.75, "before": 0.5, "change": 0.25},
        {"name": "test", "key": "closed_book_accuracy", "now": 0.6, "before": None, "change": None},
        {"name": "mquake", "key": "adherence", "now": 0.9, "before": None, "change": None}]


def test_grouped_bootstrap_resamples_whole_facts():
    from tasks.core.metrics import bootstrap_interval

    flags = [1, 0, 1, 1, 0, 1, 1, 1, 0, 1] * 6
    # one question per fact: the very draws of the ungrouped bootstrap
    assert bootstrap_interval(flags, groups=list(range(60))) == bootstrap_interval(flags)
    # each fact asked three times: three times the questions, no more facts, so no narrower interval
    asked_thrice = [f for f in flags for _ in range(3)]
    facts = [i for i in range(60) for _ in range(3)]
    assert bootstrap_interval(asked_thrice, groups=facts) == bootstrap_interval(flags)
    narrow = bootstrap_interval(asked_thrice)
    assert narrow[1] - narrow[0] < 0.75 * (bootstrap_interval(flags)[1] - bootstrap_interval(flags)[0])
    # facts of different sizes: the rate is per question, the resample per fact
    lo, hi = bootstrap_interval([1, 1, 1, 0], groups=["a", "a", "a", "b"])
    assert (lo, hi) == (0.0, 1.0)
    with pytest.raises(ValueError, match="groups: 2 keys for 3 questions"):
        bootstrap_interval([1, 0, 1], groups=["a", "b"])


def test_grouped_paired_bootstrap():
    before, after = [0, 1] * 30, [1, 1] * 30
    thrice = lambda xs: [x for x in xs for _ in range(3)]  # noqa: E731
    d = paired_bootstrap(thrice(before), thrice(after), groups=thrice(range(60)))
    assert d["ci95"] == paired_bootstrap(before, after)["ci95"] and d["n"] == 180 and d["groups"] == 60
    assert paired_bootstrap(thrice(before), thrice(after))["ci95"] != d["ci95"]
    assert "groups" not in paired_bootstrap(before, after)
