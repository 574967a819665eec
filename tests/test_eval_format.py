import json

import pytest

from tasks.errors import KprefError
from tasks.schema import read_eval_items

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
