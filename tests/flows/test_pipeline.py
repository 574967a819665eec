"""The flow's own rules, without running it: which failures are retried, and the headline summary."""
from flows.pipeline import StageFailed, headline_summary


def test_bad_input_is_not_retried_a_crash_is():
    assert not StageFailed("facts", RuntimeError("failed to run: kpref stage facts, exited with 2")).transient
    assert StageFailed("train", RuntimeError("failed to run: kpref stage train, exited with 1")).transient
    assert StageFailed("train", RuntimeError("failed to run: kpref stage train, exited with -9")).transient  # killed
    assert "stage 'facts' failed: " in str(StageFailed("facts", RuntimeError("exited with 2")))


def test_headline_summary_shows_the_change_since_the_previous_run():
    before = {"test": {"tuned": {"adherence": 0.5, "closed_book_accuracy": 0.6}}}
    after = {"test": {"tuned": {"adherence": 0.75, "closed_book_accuracy": 0.6, "irrelevant_robustness": 0.8}},
             "test_ood_relation": {}}
    rows = headline_summary(before, after).splitlines()
    assert "| test | adherence | 0.7500 | +0.2500 |" in rows
    assert "| test | closed_book_accuracy | 0.6000 | +0.0000 |" in rows
    assert "| test | irrelevant_robustness | 0.8000 | new |" in rows
    assert len(rows) == 5  # header, rule, three figures; the empty split adds none


def test_the_flow_checks_the_whole_params_file_before_any_stage(tmp_path):
    import pytest

    from flows.pipeline import kpref_pipeline
    from tasks.core.schema import KprefError
    from tests.conftest import ROOT

    # a typo in the train section, which no stage before train reads: the flow names it at once
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text().replace("learning_rate: 0.0008",
                                                                                      "learning_rat: 0.0008"))
    (tmp_path / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    with pytest.raises(KprefError, match=r"params.yaml:\d+: unknown key 'train.learning_rat'"):
        kpref_pipeline.fn(root=str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dvc.yaml", "params.yaml"]
