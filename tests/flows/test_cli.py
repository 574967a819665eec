import json
import subprocess

from typer.testing import CliRunner

from flows.cli import app
from tests.conftest import shipped_raw

runner = CliRunner()

ITEMS = [
    {"id": "1", "question": "What is the capital of Peru?", "instruction": None,
     "contexts": ["The capital of Peru is Quito."], "answers": ["Quito"], "expected_source": "context",
     "setting": "ctx_counterfactual"},
    {"id": "2", "question": "What is the capital of Peru?", "instruction": "Assume that the capital of Peru is Cusco.",
     "contexts": ["The capital of Peru is Quito."], "answers": ["Cusco"], "expected_source": "instruction"},
]


def test_answer_prints_model_answer(tiny_model_dir):
    r = runner.invoke(app, ["answer", "--model", str(tiny_model_dir), "--question", "What is the capital of Peru?",
                            "--context", "The capital of Peru is Quito.", "--instruction", "Assume x.",
                            "--max-new-tokens", "3"])
    assert r.exit_code == 0, r.output


def test_evaluate_user_file(tiny_model_dir, tmp_path):
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps(i) + "\n" for i in ITEMS))
    r = runner.invoke(app, ["evaluate", "--model", str(tiny_model_dir), "--data", str(data), "--out",
                            str(tmp_path / "out"), "--max-new-tokens", "3"])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["n"] == 2 and set(m["adherence_by_source"]) == {"context", "instruction"}
    assert set(m["adherence_by_setting"]) == {"ctx_counterfactual", "unspecified"}
    preds = [json.loads(x) for x in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert [p["id"] for p in preds] == ["1", "2"]
    assert all({"id", "prediction", "correct"} <= set(p) for p in preds)


def test_evaluate_bins_conflicts_by_certainty_measuring_it_where_a_file_does_not_say(tiny_model_dir, tmp_path):
    countries = ["Peru", "Chile", "Spain", "Kenya", "Japan", "Chad", "Laos", "Oman", "Cuba", "Fiji"]
    items = [{"id": c, "question": f"What is the capital of {c}?", "instruction": None,
              "contexts": [f"The capital of {c} is Quito."], "answers": ["Quito"], "expected_source": "context",
              **({"base_certainty": 0.5} if k % 2 else {})} for k, c in enumerate(countries)]
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps(i) + "\n" for i in items))
    r = runner.invoke(app, ["evaluate", "--model", str(tiny_model_dir), "--data", str(data), "--out",
                            str(tmp_path / "out"), "--max-new-tokens", "3"])
    assert r.exit_code == 0, r.output
    assert '"top_quintile"' in r.output and '"prior_gap"' in r.output
    preds = [json.loads(x) for x in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert [p["base_certainty"] == 0.5 for p in preds] == [bool(k % 2) for k in range(10)]
    assert all(0 < p["base_certainty"] <= 1 for p in preds)
    prior = json.loads((tmp_path / "out" / "metrics.json").read_text())["prior_strength"]
    assert prior["n"] == 10 and [q["n"] for q in prior["quintiles"]] == [2] * 5


def test_evaluate_bad_line_exits_nonzero_and_writes_nothing(tiny_model_dir, tmp_path):
    data = tmp_path / "bad.jsonl"
    bad = dict(ITEMS[0])
    del bad["answers"]
    data.write_text(json.dumps(ITEMS[1]) + "\n" + json.dumps(bad) + "\n")
    proc = subprocess.run(["kpref", "evaluate", "--model", str(tiny_model_dir), "--data", str(data), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert f"{data}:2: missing field 'answers'" in proc.stderr.replace("\n", "")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def _params_file(tmp_path, overrides):
    import yaml

    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(shipped_raw(overrides), sort_keys=False))
    return p


def test_check_rejects_bad_params(tmp_path):
    r = runner.invoke(app, ["check", "--params", str(_params_file(tmp_path, {"model": {"bogus": 1}}))])
    assert r.exit_code == 2
    assert "model.bogus" in r.output.replace("\n", "")


def test_check_rejects_unknown_model(tmp_path):
    r = runner.invoke(app, ["check", "--params", str(_params_file(tmp_path, {"model": {"base": "no such model"}}))])
    assert r.exit_code == 2 and "unknown base model" in r.output.replace("\n", "")


def test_check_explain_lists_every_knob_with_its_value_and_meaning():
    from tasks.params.full import knobs

    r = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["check", "--explain"])
    assert r.exit_code == 0, r.output
    for key, _, _ in knobs():
        assert key in r.output, key
    assert "LoRA rank." in r.output and "0.0008" in r.output


def test_answer_explain_names_the_followed_source_and_confidence_gain(tiny_model_dir):
    r = runner.invoke(app, ["answer", "--model", str(tiny_model_dir), "--question", "What is the capital of Peru?",
                            "--context", "The capital of Peru is Quito.", "--instruction", "Assume x.",
                            "--max-new-tokens", "3", "--explain"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    followed = next(line for line in lines if line.startswith("followed:"))
    assert followed.split(": ")[1] in {"instruction", "context", "memory", "none"}
    assert {"with nothing", "with the instruction only", "with the context only"} <= {
        line.strip().split(":")[0] for line in lines}
    assert any(line.startswith("confidence gain: ") and "nats" in line for line in lines)


def test_evaluate_and_answer_run_from_any_folder_on_the_packaged_defaults(tiny_model_dir, tmp_path, monkeypatch):
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps(i) + "\n" for i in ITEMS))
    monkeypatch.chdir(tmp_path)  # no params.yaml here
    r = runner.invoke(app, ["evaluate", "--model", str(tiny_model_dir), "--data", str(data), "--out", "out",
                            "--max-new-tokens", "2"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["n"] == 2
    r = runner.invoke(app, ["answer", "--model", str(tiny_model_dir), "--question", "Capital of Peru?",
                            "--max-new-tokens", "2"])
    assert r.exit_code == 0, r.output
    # a params file given by name that is not there is an error, not a silent fallback
    r = runner.invoke(app, ["answer", "--model", str(tiny_model_dir), "--question", "Q?", "--params", "nope.yaml"])
    assert r.exit_code != 0 and "nope.yaml: params file not found" in r.output
