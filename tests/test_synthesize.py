import hashlib
import json

import pandas as pd
import pytest

from tasks.atomic import write_jsonl
from tasks.params import SETTINGS, SynthesizeParams
from tasks.synthesize import allocate, synthesize, write_splits
from tasks.validate import _CHECK_COLUMNS, derive_checks

P = SynthesizeParams(n_train=120, n_val=20, n_test_per_setting=6, test_subject_fraction=0.3, val_subject_fraction=0.1)


def _digest(splits):
    return hashlib.sha256(json.dumps(splits, sort_keys=True).encode()).hexdigest()


def test_allocate_is_exact_and_proportional():
    c = allocate(10, {"a": 1, "b": 1, "c": 1})
    assert sum(c.values()) == 10 and max(c.values()) - min(c.values()) <= 1
    assert allocate(7, {"a": 0, "b": 1}) == {"a": 0, "b": 7}


def test_same_params_same_bytes(small_facts, tmp_path):
    beliefs = {f.key: f"I think {f.object}." for f in small_facts}
    a = synthesize(small_facts, beliefs, P, seed=3)
    b = synthesize(small_facts, beliefs, P, seed=3)
    write_splits(a, tmp_path / "a")
    write_splits(b, tmp_path / "b")
    for split in a:
        assert (tmp_path / "a" / f"{split}.jsonl").read_bytes() == (tmp_path / "b" / f"{split}.jsonl").read_bytes()
    assert _digest(a) != _digest(synthesize(small_facts, beliefs, P, seed=4))


def test_splits_shape_and_hierarchy(small_facts):
    beliefs = {f.key: f"I think {f.object}." for f in small_facts}
    s = synthesize(small_facts, beliefs, P, seed=0)
    assert len(s["train"]) == 120 and len(s["val"]) == 20
    assert {r["setting"] for r in s["test"]} == set(SETTINGS)
    train_subjects = {r["subject"] for r in s["train"] + s["val"]}
    assert not train_subjects & {r["subject"] for r in s["test"]}
    df = derive_checks(pd.DataFrame(s["train"] + s["val"] + s["test"]))
    for col in _CHECK_COLUMNS:
        assert df[col].all(), col
    required = {"id", "setting", "subject", "relation", "question", "instruction", "contexts", "target",
                "expected_source", "answers"}
    assert required <= set(s["train"][0])
    # parametric targets: the model's belief in train, the world's answer in test
    cb_train = next(r for r in s["train"] if r["setting"] == "closed_book")
    cb_test = next(r for r in s["test"] if r["setting"] == "closed_book")
    assert cb_train["target"].startswith("I think ")
    assert cb_test["target"] == cb_test["world_answer"]
    # counterfactuals are drawn from the same relation's objects
    objects = {}
    for f in small_facts:
        objects.setdefault(f.relation, set()).add(f.object)
    for r in s["train"]:
        if r["setting"] == "ctx_counterfactual":
            assert r["target"] in objects[r["relation"]] and r["target"] != r["world_answer"]


def test_world_targets(small_facts):
    s = synthesize(small_facts, {}, P.model_copy(update={"parametric_target": "world"}), seed=0)
    cb = [r for r in s["train"] if r["setting"] == "closed_book"]
    assert cb and all(r["target"] == r["world_answer"] for r in cb)


def test_splits_load_as_datasets(small_facts, tmp_path):
    from datasets import load_dataset

    s = synthesize(small_facts, {}, P, seed=0)
    paths = write_splits(s, tmp_path)
    ds = load_dataset("json", data_files={k: str(v) for k, v in paths.items()})
    assert ds["train"].num_rows == 120 and "expected_source" in ds["test"].column_names


def test_write_jsonl_is_atomic(tmp_path):
    target = tmp_path / "x.jsonl"
    write_jsonl(target, [{"a": 1}])

    def rows():
        yield {"a": 2}
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_jsonl(target, rows())
    assert target.read_text() == '{"a": 1}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["x.jsonl"]


def test_malformed_probe_file_names_line_and_writes_nothing(tmp_path, small_facts):
    from dataclasses import asdict

    from tasks.errors import KprefError
    from tasks.params import Params
    from tasks.stages import synthesize as synthesize_stage

    (tmp_path / "data").mkdir()
    write_jsonl(tmp_path / "data/facts.jsonl", (asdict(f) for f in small_facts))
    (tmp_path / "data/probe.jsonl").write_text('{"key": "a", "belief": "b"}\n{"key": \n')
    with pytest.raises(KprefError, match=r"probe.jsonl:2: not valid JSON"):
        synthesize_stage(Params(), tmp_path)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["facts.jsonl", "probe.jsonl"]
