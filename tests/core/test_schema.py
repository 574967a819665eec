import json

import pytest

from tasks.core.schema import (
    CONFLICT_SETTINGS,
    ERROR_TYPES,
    SETTINGS,
    SOURCES,
    Fact,
    KprefError,
    read_eval_items,
    read_splits,
    trained_facts,
)

GOOD = {
    "id": "q1",
    "question": "What is the capital of Peru?",
    "instruction": None,
    "contexts": ["The capital of Peru is Quito."],
    "answers": ["Quito"],
    "expected_source": "context",
    "setting": "ctx_counterfactual",
}


def _write(tmp_path, lines):
    p = tmp_path / "set.jsonl"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_reads_valid_file(tmp_path):
    other = {**GOOD, "id": 2, "instruction": "Assume the capital of Peru is Cusco.", "answers": ["Cusco"],
             "expected_source": "instruction"}
    del other["setting"]
    items = read_eval_items(_write(tmp_path, [json.dumps(GOOD), "", json.dumps(other)]))
    assert [i.id for i in items] == ["q1", "2"]
    assert items[1].setting == "unspecified"
    assert items[0].base_certainty is None  # measured when answered (predict's prior)
    sure = read_eval_items(_write(tmp_path, [json.dumps({**GOOD, "base_certainty": 0.9})]))
    assert sure[0].base_certainty == 0.9


def test_not_json_names_file_and_line(tmp_path):
    p = _write(tmp_path, [json.dumps(GOOD), "{not json"])
    with pytest.raises(KprefError, match=rf"{p}:2: not valid JSON"):
        read_eval_items(p)


@pytest.mark.parametrize(
    "change, pattern",
    [
        ({"answers": None}, r":1: field 'answers' must be list"),
        ({"answers": []}, r":1: field 'answers' must be a non-empty list"),
        ({"expected_source": "memory"}, r":1: field 'expected_source' must be one of"),
        ({"contexts": "text"}, r":1: field 'contexts' must be list"),
        ({"instruction": 3}, r":1: field 'instruction' must be str or null"),
        ({"base_certainty": 1.5}, r":1: field 'base_certainty' must be a probability between 0 and 1"),
        ({"base_certainty": "high"}, r":1: field 'base_certainty' must be a probability"),
    ],
)
def test_bad_field_names_line_and_field(tmp_path, change, pattern):
    with pytest.raises(KprefError, match=pattern):
        read_eval_items(_write(tmp_path, [json.dumps({**GOOD, **change})]))


def test_missing_field(tmp_path):
    bad = dict(GOOD)
    del bad["question"]
    p = _write(tmp_path, [json.dumps(GOOD), json.dumps({**bad, "id": "q2"})])
    with pytest.raises(KprefError, match=r":2: missing field 'question'"):
        read_eval_items(p)


def test_duplicate_id(tmp_path):
    with pytest.raises(KprefError, match=r":2: field 'id': duplicate"):
        read_eval_items(_write(tmp_path, [json.dumps(GOOD), json.dumps(GOOD)]))


def test_the_settings_table_names_sources_and_error_types_it_knows():
    assert len(SETTINGS) == 9 and set(CONFLICT_SETTINGS) < set(SETTINGS)
    for name, spec in SETTINGS.items():
        assert spec.source in (*SOURCES, None), name
        assert spec.error_type in (*ERROR_TYPES, None), name
    assert SETTINGS["multi_hop"].source is None  # the edit's carrier decides


def test_trained_facts_leave_out_test_subjects_and_held_out_relations():
    facts = [Fact("A", "capital", "x", "city", "s", split="train"),
             Fact("B", "capital", "y", "city", "s", split="test"),
             Fact("C", "subregion", "z", "region", "s", split="val"),
             Fact("D", "capital", "w", "city", "s", split="val")]
    assert [f.subject for f in trained_facts(facts, ("subregion",))] == ["A", "D"]


def test_read_splits_names_a_missing_file(tmp_path):
    (tmp_path / "train.jsonl").write_text(json.dumps({"id": "x"}) + "\n")
    assert read_splits(tmp_path, ("train",)) == {"train": [{"id": "x"}]}
    with pytest.raises(KprefError, match=r"val.jsonl: file not found"):
        read_splits(tmp_path, ("train", "val"))
