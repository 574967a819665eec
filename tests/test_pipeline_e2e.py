"""The whole pipeline through real DVC in a temp git repo, then through the Prefect flow."""
import json
import shutil
import subprocess

import pytest
import yaml

from tasks.schema import SETTINGS
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e


def _sh(cmd, cwd, check=True):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def tiny_params(model_dir) -> dict:
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["model"]["base"] = str(model_dir)
    # the full breadth, small: every source, every setting, every context format
    for name, size in (("countries", 30_000_000), ("cities", 5_000_000), ("countryinfo", 30_000_000),
                       ("pycountry", 30_000_000)):
        p["facts"]["sources"][name].update(enabled=True, min_population=size)
    p["facts"]["split"].update(test_subjects=0.25, ood_relations=["subregion"])
    p["synthesize"]["mix"] = {s: 1.0 for s in SETTINGS}
    p["synthesize"]["context_formats"] = {"sentence": 1.0, "paragraph": 1.0, "passages": 1.0}
    p["synthesize"]["assumption_styles"] = 8
    p["probe"].update(batch_size=16, max_new_tokens=4)
    # a random tiny model commits to no closed-book answer, so memory targets are the world's
    p["synthesize"].update(n_train=38, n_val=19, n_test_per_setting=2, n_ood_per_setting=1, parametric_target="world")
    p["train"].update(max_steps=2, batch_size=4, logging_steps=1)
    p["train"]["lora"].update(r=4, alpha=8, top_layers=1)
    p["evaluate"].update(batch_size=8, max_new_tokens=4)
    return p


@pytest.fixture(scope="module")
def repo(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("kpref-repo")
    shutil.copy(ROOT / "dvc.yaml", root / "dvc.yaml")
    shutil.copytree(ROOT / "tasks", root / "tasks", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(tiny_model_dir), sort_keys=False))
    _sh(["git", "init", "-q"], root)
    _sh(["git", "config", "user.email", "ci@kpref.test"], root)
    _sh(["git", "config", "user.name", "kpref ci"], root)
    _sh(["dvc", "init", "-q"], root)
    _sh(["git", "add", "-A"], root)
    _sh(["git", "commit", "-qm", "init"], root)
    _sh(["dvc", "repro"], root)
    return root


def test_dvc_repro_builds_every_artifact(repo):
    for path in ["models/base/model.safetensors", "data/facts.jsonl", "data/probe.jsonl", "data/train.jsonl",
                 "data/test.jsonl", "reports/validation.json", "reports/data_docs/index.html",
                 "models/adapter/adapter_model.safetensors", "models/tuned/model.safetensors",
                 "reports/train/plots/metrics/loss.tsv", "reports/predictions/tuned_test.jsonl",
                 "reports/report.md", "reports/report.html", "reports/figures/adherence_test.png",
                 "data/test_ood_relation.jsonl", "data/test_ood_phrasing.jsonl", "data/relations.json"]:
        assert (repo / path).exists(), path
    m = json.loads((repo / "reports/metrics.json").read_text())
    assert set(m) == {"test", "test_ood_relation", "test_ood_phrasing"}
    assert {"base", "tuned", "delta"} <= set(m["test"])
    assert set(m["test"]["tuned"]["adherence_by_setting"]) >= {"closed_book", "ctx_counterfactual", "ctx_irrelevant",
                                                               "instr_only", "instr_vs_ctx", "multi_hop"}
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert set(lock["stages"]) == set(yaml.safe_load((repo / "dvc.yaml").read_text())["stages"])
    html = (repo / "reports/report.html").read_text()
    assert "data:image/png;base64," in html and "<img" in html
    assert "Data and pipelines are up to date" in _sh(["dvc", "status"], repo).stdout
    shown = _sh(["dvc", "metrics", "show", "--json"], repo).stdout
    assert "closed_book_accuracy" in shown


@pytest.mark.parametrize("module, stale", [
    ("tasks/metrics.py", {"facts", "probe", "synthesize", "validate", "evaluate"}),
    ("tasks/schema.py", {"base_model", "facts", "probe", "synthesize", "validate", "train", "evaluate", "report"}),
])
def test_editing_a_module_marks_every_stage_that_imports_it_stale(repo, module, stale):
    import json as _json

    path = repo / module
    original = path.read_text()
    try:
        path.write_text(original + "\n# an edit\n")
        changed = _json.loads(_sh(["dvc", "status", "--json"], repo).stdout)
        assert {name.split(":")[-1] for name in changed} == stale
    finally:
        path.write_text(original)
    assert "Data and pipelines are up to date" in _sh(["dvc", "status"], repo).stdout


def test_prefect_flow_defers_to_dvc(repo, prefect_harness):
    from flows.pipeline import kpref_pipeline

    lock_before = (repo / "dvc.lock").read_text()
    summary = kpref_pipeline(root=str(repo))
    assert [s["ran"] for s in summary["stages"]] == [False] * 8
    assert (repo / "dvc.lock").read_text() == lock_before

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["evaluate"]["max_new_tokens"] = 3
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    summary = kpref_pipeline(root=str(repo))
    ran = {s["stage"] for s in summary["stages"] if s["ran"]}
    # evaluate must rerun; report only if evaluate's outputs changed (DVC compares hashes)
    assert "evaluate" in ran and ran <= {"evaluate", "report"}
    assert "Data and pipelines are up to date" in _sh(["dvc", "status"], repo).stdout


def test_kpref_run_cli_reports_up_to_date(repo, prefect_harness):
    from typer.testing import CliRunner

    from flows.cli import app

    r = CliRunner().invoke(app, ["run", "--root", str(repo)])
    assert r.exit_code == 0, r.output
    assert r.output.count("up to date") == 8


def test_bad_params_stop_dvc_before_work(repo):
    params = (repo / "params.yaml").read_text()
    try:
        (repo / "params.yaml").write_text(params.replace("n_train:", "n_trian:"))
        proc = _sh(["dvc", "repro", "synthesize"], repo, check=False)
        assert proc.returncode != 0
        assert "synthesize.n_trian" in proc.stdout + proc.stderr
    finally:
        (repo / "params.yaml").write_text(params)
