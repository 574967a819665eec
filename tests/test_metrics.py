from tasks.metrics import exact_match, followed_source, matches, memorization_ratio, normalize, token_f1


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
