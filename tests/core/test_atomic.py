import pytest

from tasks.core.atomic import atomic_dir, write_jsonl


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


def test_atomic_dir_swaps_in_only_a_finished_directory(tmp_path):
    out = tmp_path / "model"
    with atomic_dir(out) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "a").write_text("2")
            raise RuntimeError("boom")
    assert (out / "a").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_a_write_killed_mid_way_leaves_nothing_the_next_write_keeps(tmp_path):
    (tmp_path / ".model.abc123").mkdir()  # what a SIGKILLed atomic_dir leaves
    (tmp_path / ".model.abc123" / "weights").write_text("half")
    (tmp_path / ".x.jsonl.k2j.tmp").write_text("half")  # ... and a killed atomic_path
    (tmp_path / ".other.keep").write_text("not ours")
    with atomic_dir(tmp_path / "model") as tmp:
        (tmp / "weights").write_text("whole")
    write_jsonl(tmp_path / "x.jsonl", [{"a": 1}])
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.keep", "model", "x.jsonl"]
