import json

import pytest

from tasks.errors import KprefError
from tasks.params import SynthesizeParams
from tasks.synthesize import synthesize, write_splits
from tasks.validate import run_validation

P = SynthesizeParams(n_train=60, n_val=10, n_test_per_setting=4, test_subject_fraction=0.3, val_subject_fraction=0.1)


@pytest.fixture
def splits(small_facts):
    return synthesize(small_facts, {}, P, seed=0)


def _run(tmp_path, splits):
    write_splits(splits, tmp_path / "data")
    return run_validation(tmp_path / "data", tmp_path / "reports/validation.json", tmp_path / "reports/data_docs")


def test_clean_data_passes_and_writes_docs(tmp_path, splits):
    s = _run(tmp_path, splits)
    assert s["success"] and s["n_failed"] == 0 and s["n_expectations"] > 20
    assert (tmp_path / "reports/data_docs/index.html").exists()
    assert json.loads((tmp_path / "reports/validation.json").read_text())["success"]


def _failed(tmp_path, splits):
    with pytest.raises(KprefError) as e:
        _run(tmp_path, splits)
    summary = json.loads((tmp_path / "reports/validation.json").read_text())
    failed = [(r["expectation"], r["column"]) for v in summary["results"].values() for r in v if not r["success"]]
    return str(e.value), failed


def test_swapped_target_fails_on_hierarchy(tmp_path, splits):
    row = next(r for r in splits["train"] if r["setting"] == "instr_vs_ctx")
    row["target"] = row["answers"]["context"]  # the context answer where the instruction should win
    msg, failed = _failed(tmp_path, splits)
    assert ("expect_column_values_to_be_in_set", "target_is_source_answer") in failed
    assert row["id"] in msg and "target_is_source_answer" in msg


def test_leaked_test_subject_fails(tmp_path, splits):
    leaked = splits["test"][0]["subject"]
    splits["train"][0]["subject"] = leaked
    msg, failed = _failed(tmp_path, splits)
    assert ("expect_column_values_to_not_be_in_set", "subject") in failed
    assert splits["train"][0]["id"] in msg


def test_duplicate_id_and_bad_setting_fail(tmp_path, splits):
    splits["train"][1]["id"] = splits["train"][0]["id"]
    splits["val"][0]["setting"] = "made_up"
    _, failed = _failed(tmp_path, splits)
    assert ("expect_column_values_to_be_unique", "id") in failed
    assert ("expect_column_values_to_be_in_set", "setting") in failed


def test_counterfactual_equal_to_world_fails(tmp_path, splits):
    row = next(r for r in splits["train"] if r["setting"] == "ctx_counterfactual")
    row["target"] = row["answers"]["context"] = row["world_answer"]
    row["contexts"] = [row["completion"].replace(row["completion"], f"It is {row['world_answer']}.")]
    row["completion"] = f"It is {row['world_answer']}."
    _, failed = _failed(tmp_path, splits)
    assert ("expect_column_values_to_be_in_set", "conflict_differs_from_world") in failed


def test_missing_field_is_named(tmp_path, splits):
    for r in splits["train"]:
        del r["completion"]
    write_splits(splits, tmp_path / "data")
    with pytest.raises(KprefError, match=r"train.jsonl: records lack field\(s\) \['completion'\]"):
        run_validation(tmp_path / "data", tmp_path / "v.json", tmp_path / "docs")
