import json

import pytest
from typer.testing import CliRunner

from flows.cli import app
from tasks.core.atomic import write_jsonl
from tasks.core.schema import KprefError
from tasks.evaluation.compare import compare_runs


def _row(i: int, setting: str, correct: bool, **extra) -> dict:
    source = {"closed_book": "parametric", "ctx_irrelevant": "parametric"}.get(setting, "context")
    return {"id": f"q{i}", "setting": setting, "expected_source": source, "correct": correct, **extra}


def _run(root, tuned: list[dict], base: list[dict]):
    """A project folder after `dvc repro`: its reports/predictions."""
    preds = root / "reports" / "predictions"
    write_jsonl(preds / "tuned_test.jsonl", tuned)
    write_jsonl(preds / "base_test.jsonl", base)
    return root


@pytest.fixture
def runs(tmp_path):
    n = 40
    base = [_row(i, "closed_book", i % 2 == 0, closed_book_correct=i % 2 == 0) for i in range(n)] + \
        [_row(n + i, "ctx_counterfactual", False) for i in range(n)] + \
        [_row(2 * n + i, "ctx_irrelevant", True, robust=True, closed_book_correct=i < 10) for i in range(n)]
    a = [dict(r) for r in base]
    b = [{**r, "correct": True} if r["setting"] == "ctx_counterfactual" else dict(r) for r in base]
    for r in b[2 * n:2 * n + 5]:  # five irrelevant-context answers moved, all on facts the base knew
        r["robust"] = False
    return _run(tmp_path / "a", a, base), _run(tmp_path / "b", b, base)


def test_b_minus_a_per_measure_with_paired_intervals(runs):
    rows = {r.measure: r for r in compare_runs(*runs).figures["test"]}
    conflict = rows["conflict adherence"]
    assert (conflict.a, conflict.b) == ("0.000", "1.000")
    assert conflict.delta["delta"] == pytest.approx(1.0) and conflict.delta["significant"]
    robust = rows["robustness, base-known (10)"]
    assert (robust.a, robust.b) == ("1.000", "0.500") and robust.delta["delta"] == pytest.approx(-0.5)
    assert rows["robustness (40)"].delta["delta"] == pytest.approx(-5 / 40)
    closed = rows["closed-book accuracy"]
    assert closed.delta["delta"] == 0 and not closed.delta["significant"]
    assert {"  closed_book (40)", "  ctx_counterfactual (40)", "  ctx_irrelevant (40)"} <= set(rows)


def test_different_questions_or_no_shared_split_are_named(runs, tmp_path):
    a, b = runs
    rows = [json.loads(x) for x in (b / "reports/predictions/tuned_test.jsonl").read_text().splitlines()]
    write_jsonl(b / "reports/predictions/tuned_test.jsonl", rows[::-1])
    with pytest.raises(KprefError, match="test: the two runs answered different questions"):
        compare_runs(a, b)
    with pytest.raises(KprefError, match="share no split"):
        compare_runs(a, tmp_path / "empty")


def test_the_same_ids_asking_other_questions_are_not_paired(runs):
    """Ids count examples: params that change the data put other questions under the same ids."""
    a, b = runs
    for run, question in ((a, "Which country is Lima in?"), (b, "What is the capital of Peru?")):
        preds = run / "reports/predictions"
        for split in ("test", "test_ood_domain"):
            rows = [json.loads(x) for x in (preds / "tuned_test.jsonl").read_text().splitlines()]
            q = question if split == "test" else "What is the symbol of iron?"
            write_jsonl(preds / f"tuned_{split}.jsonl", [{**r, "question": q} for r in rows])
    comparison = compare_runs(a, b, ("test", "test_ood_domain"))
    assert list(comparison.figures) == ["test_ood_domain"]
    assert "answered different questions (from q0)" in comparison.unpaired["test"]
    r = CliRunner().invoke(app, ["compare", str(a), str(b), "--split", "test", "--split", "test_ood_domain"],
                           terminal_width=200)
    assert r.exit_code == 0 and "not paired test: the two runs answered different questions" in r.output


def test_kpref_compare_prints_the_table_and_writes_the_figures(runs, tmp_path):
    a, b = runs
    out = tmp_path / "figures.json"
    r = CliRunner().invoke(app, ["compare", str(a), str(b / "reports/predictions"), "--names", "sft,dpo",
                                 "--json", str(out)], terminal_width=200)
    assert r.exit_code == 0, r.output
    assert "dpo minus sft" in r.output and "conflict adherence" in r.output and "+1.000" in r.output
    figures = json.loads(out.read_text())
    assert figures["test"][0]["measure"] == "conflict adherence" and figures["test"][0]["b"] == "1.000"
    bad = CliRunner().invoke(app, ["compare", str(a), str(tmp_path / "nowhere")])
    assert bad.exit_code != 0 and "share no split" in bad.output
