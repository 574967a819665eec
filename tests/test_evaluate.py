import pytest

from tasks.core.schema import SETTINGS, TEST_SPLITS
from tasks.evaluate import evaluate_stage
from tasks.evaluation.scoring import paired_deltas, robustness_on_base_known
from tests.conftest import shipped


@pytest.mark.slow
def test_evaluate_stage_metrics(trained, tiny_model_dir):
    root, _ = trained
    p = shipped({"evaluate": {"batch_size": 8, "max_new_tokens": 4}}).evaluate
    m = evaluate_stage(root / "data", {"base": tiny_model_dir, "tuned": root / "tuned"}, p,
                       root / "reports/metrics.json", root / "reports/predictions", root / "reports/adherence.csv")
    assert set(m) == set(TEST_SPLITS)
    for name in ("base", "tuned"):
        t = m["test"][name]
        assert 0 <= t["adherence"] <= 1
        assert set(t["adherence_by_setting"]) == set(SETTINGS)
        assert {"closed_book_accuracy", "irrelevant_robustness", "source_confusion", "memorization_ratio"} <= set(t)
        preds = (root / "reports/predictions" / f"{name}_test.jsonl").read_text().splitlines()
        assert len(preds) == 2 * len(SETTINGS)
        assert m["test_ood_relation"][name]["n"] > 0
    d = m["test"]["delta"]
    assert d["closed_book_retention_ci95"][0] <= d["closed_book_retention"] <= d["closed_book_retention_ci95"][1]
    assert m["test_ood_domain"]["tuned"]["n"] > 0 and "closed_book_retention" in m["test_ood_domain"]["delta"]
    assert (root / "reports/adherence.csv").read_text().startswith("split,setting,model,adherence\n")


@pytest.mark.slow
def test_the_base_answers_evaluate_base_kept_score_as_if_answered_in_the_evaluate_stage(trained, tiny_model_dir,
                                                                                         tmp_path):
    from tasks.core.schema import KprefError
    from tasks.evaluation.answers import (
        evaluation_sets,
        predict_sets,
        read_answers,
        write_answers,
    )

    root, _ = trained
    p = shipped({"evaluate": {"batch_size": 8, "max_new_tokens": 4}}).evaluate
    sets = evaluation_sets(root / "data")
    write_answers(tmp_path / "base_predictions", "base", predict_sets(tiny_model_dir, sets, p, "base"))
    kept = read_answers(tmp_path / "base_predictions", "base", sets)

    def evaluate(out, models, answered=None):
        return evaluate_stage(root / "data", models, p, out / "metrics.json", out / "predictions", out / "adherence.csv",
                              answered=answered)

    at_once = evaluate(tmp_path / "a", {"base": tiny_model_dir, "tuned": root / "tuned"})
    split = evaluate(tmp_path / "b", {"tuned": root / "tuned"}, answered={"base": kept})
    assert split == at_once and list(split["test"]) == ["base", "tuned", "delta"]
    for name in ("base_test.jsonl", "tuned_test_ood_domain.jsonl"):
        assert (tmp_path / "b/predictions" / name).read_bytes() == (tmp_path / "a/predictions" / name).read_bytes()
    # answers to other questions than the data asks now (it changed since), or none: stop, naming the file
    with pytest.raises(KprefError, match="base_test.jsonl: answers other questions"):
        read_answers(tmp_path / "base_predictions", "base", {**sets, "test": sets["test"][1:]})
    with pytest.raises(KprefError, match="base_test.jsonl: not found"):
        read_answers(tmp_path / "elsewhere", "base", sets)


def _row(i, setting, correct, **extra):
    return {"id": f"q{i}", "setting": setting, "correct": correct, **extra}


def test_paired_deltas_pair_questions_by_id():
    base = [_row(i, "closed_book", i % 2 == 0) for i in range(40)] + [_row(40, "ctx_counterfactual", False)]
    tuned = [_row(i, "closed_book", True) for i in range(40)] + [_row(40, "ctx_counterfactual", True)]
    d = paired_deltas(base, tuned)
    assert d["closed_book_retention"] == 0.5 and d["closed_book_retention_significant"]
    assert d["adherence"] == round(21 / 41, 4)
    lo, hi = d["closed_book_retention_ci95"]
    assert 0.3 < lo < 0.5 < hi <= 0.7
    with pytest.raises(ValueError, match="different questions"):
        paired_deltas(base, tuned[::-1])


def test_a_cases_questions_are_resampled_together():
    from tasks.core.metrics import bootstrap_interval, paired_bootstrap
    from tasks.core.schema import EvalItem
    from tasks.evaluation.scoring import summarize

    # 30 cases, three paraphrases each answered alike: 30 observations, not 90
    solved = [c % 3 != 0 for c in range(30)]
    rows = [_row(f"{c}/{k}", "multi_hop", solved[c], group=f"case{c}", em=0.0, f1=0.0, expected_source="context")
            for c in range(30) for k in range(3)]
    items = [EvalItem(r["id"], "q", None, ["x"], ["a"], "context", "multi_hop", group=r["group"]) for r in rows]
    m = summarize(items, rows)
    assert m["adherence_by_setting_ci95"]["multi_hop"] == bootstrap_interval(solved) == m["adherence_ci95"]
    assert bootstrap_interval([r["correct"] for r in rows]) != bootstrap_interval(solved)  # what it would read
    before = [dict(r, correct=False) for r in rows]
    d = paired_deltas(before, rows)
    assert d["by_setting"]["multi_hop"]["ci95"] == paired_bootstrap([False] * 30, solved)["ci95"]
    assert d["adherence_ci95"] == d["by_setting"]["multi_hop"]["ci95"]


def test_robustness_on_base_known_uses_the_base_models_facts():
    base = [_row(i, "ctx_irrelevant", True, robust=True, closed_book_correct=i < 3) for i in range(5)]
    # the tuned model forgot q0 (wrong closed-book, and it moved): it still counts against it
    tuned = [_row(i, "ctx_irrelevant", True, robust=i != 0, closed_book_correct=i != 0) for i in range(5)]
    assert robustness_on_base_known(base, tuned)["irrelevant_robustness_base_known"] == round(2 / 3, 4)
    assert robustness_on_base_known(base, base)["n_base_known"] == 3
    assert robustness_on_base_known([], tuned) == {}


@pytest.mark.slow
def test_evaluate_stage_runs_benchmarks_beside_the_splits_and_reports_skipped_ones(trained, tiny_model_dir, tmp_path):
    import json

    from tasks.evaluation.benchmarks import load_benchmark
    from tasks.report import build_report
    from tests.benchmark_files import write_mquake

    root, _ = trained
    p = shipped({"evaluate": {"batch_size": 8, "max_new_tokens": 3}}).evaluate
    mquake = load_benchmark("mquake", write_mquake(tmp_path / "cf.json"))
    out = tmp_path / "reports"
    m = evaluate_stage(root / "data", {"base": tiny_model_dir, "tuned": root / "tuned"}, p, out / "metrics.json",
                       out / "predictions", out / "plots/adherence.csv", {"mquake": mquake},
                       {"ifqa": "file not found: inputs/benchmarks/ifqa.json"})
    assert list(m) == [*TEST_SPLITS, "mquake", "ifqa"]
    assert m["ifqa"] == {"skipped": "file not found: inputs/benchmarks/ifqa.json"}
    bench = m["mquake"]
    assert bench["tuned"]["n"] == len(mquake) and set(bench["tuned"]["case_adherence_by_setting"]) == {
        "multi_hop_instr", "multi_hop_ctx"}
    assert set(bench["delta"]["case_by_setting"]) == {"multi_hop_instr", "multi_hop_ctx"}
    assert "closed_book_retention_ci95" in bench["delta"] and set(bench["delta"]["by_setting"]) == {
        "multi_hop_instr", "multi_hop_ctx", "instr_only", "ctx_counterfactual", "closed_book"}
    rows = [json.loads(x) for x in (out / "predictions" / "tuned_mquake.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [it.id for it in mquake]
    assert ",multi_hop_instr,tuned," in (out / "plots/adherence.csv").read_text()
    report = build_report(out / "metrics.json", tmp_path / "none.json", tmp_path / "live", out / "predictions",
                          out, out / "figures")
    md = report["md"].read_text()
    assert "Benchmark mquake (`mquake`)" in md and "Cases solved" in md and "## Benchmarks skipped" in md
    assert md.index("(`test_ood_domain`)") < md.index("(`mquake`)")  # the splits first, then the benchmarks
    assert "`ifqa`: file not found: inputs/benchmarks/ifqa.json" in md
    assert (out / "figures" / "adherence_mquake.png").exists()
    # the held-out subjects' confidence gains, drawn per setting
    assert (out / "figures" / "confidence_gain.png").exists() and "Conflict detection" in md


def test_the_summary_dvc_shows_holds_the_tuned_headlines_and_retention_per_split():
    from tasks.evaluation.scoring import headline_summary

    metrics = {
        "test": {"base": {"adherence": 0.5}, "tuned": {"adherence": 0.9, "adherence_ci95": [0.8, 1.0],
                                                       "closed_book_accuracy": 0.6,
                                                       "irrelevant_robustness_base_known": 0.95,
                                                       "adherence_by_setting": {"closed_book": 0.6}},
                 "delta": {"adherence": 0.4, "closed_book_retention": 0.05}},
        "mquake": {"skipped": "no file"},
        "ifqa": {"tuned": {"adherence": 0.1}},
    }
    assert headline_summary(metrics) == {
        "test": {"adherence": 0.9, "closed_book": 0.6, "robustness_base_known": 0.95, "retention": 0.05},
        "ifqa": {"adherence": 0.1},
    }
