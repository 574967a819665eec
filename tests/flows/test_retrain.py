"""CI-triggered retraining: the GitHub workflow (validated offline) and the script it runs."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.tiny_repo import make_repo, sh

WORKFLOW = ROOT / ".github" / "workflows" / "retrain.yml"
SCRIPT = ROOT / "scripts" / "retrain"


def test_workflow_is_a_valid_github_workflow():
    check = Path(sys.executable).parent / "check-jsonschema"
    proc = subprocess.run([str(check), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_workflow_retrains_on_what_shapes_the_model_one_run_at_a_time():
    wf = yaml.safe_load(WORKFLOW.read_text())
    on = wf[True]  # YAML 1.1 reads the key `on` as a boolean
    for event in ("push", "pull_request"):
        assert {"params.yaml", "dvc.yaml", "tasks/**", "flows/**"} <= set(on[event]["paths"])
    assert "set" in on["workflow_dispatch"]["inputs"]
    assert wf["concurrency"] == {"group": "kpref-retrain", "cancel-in-progress": False}
    steps = wf["jobs"]["retrain"]["steps"]
    assert steps[0]["with"]["fetch-depth"] == 0
    assert any("make setup" in s.get("run", "") for s in steps)
    assert steps[-1]["run"] == "scripts/retrain" and steps[-1]["env"]["KPREF_SET"] == "${{ inputs.set }}"


def _retrain(repo: Path, tmp_path: Path, overrides: str = "") -> tuple[subprocess.CompletedProcess, str]:
    summary = tmp_path / f"summary{len(list(tmp_path.glob('summary*')))}.md"
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(summary), "KPREF_SET": overrides}
    proc = subprocess.run(["bash", str(SCRIPT)], cwd=repo, capture_output=True, text=True, env=env)
    return proc, summary.read_text() if summary.exists() else ""


@pytest.mark.e2e
def test_script_reproduces_pushes_and_summarises_then_runs_an_experiment(tiny_model_dir, tmp_path):
    remote = tmp_path / "remote"
    repo = make_repo(tmp_path / "repo", tiny_model_dir, remote)
    proc, summary = _retrain(repo, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "### Metrics against the last commit" in summary and "reports/summary.json" in summary
    assert any((remote / "files").rglob("*")) and any((remote / "runs").rglob("*"))  # outputs and run-cache
    sh(["git", "add", "dvc.lock"], repo)
    sh(["git", "commit", "-qm", "the tiny model, trained"], repo)

    proc, summary = _retrain(repo, tmp_path, "evaluate.max_new_tokens=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    params = summary.split("### Metrics")[0]
    assert "evaluate.max_new_tokens" in params and "| 4 " in params and "| 3 " in params
    assert "Running stage 'train'" not in proc.stdout  # only evaluate (and report) depend on that knob
    assert sh(["dvc", "exp", "show", "--md"], repo).stdout.count("max_new_tokens") >= 1


def test_script_rejects_a_malformed_override_before_any_work(tmp_path, tiny_model_dir):
    repo = make_repo(tmp_path / "repo", tiny_model_dir)
    proc, summary = _retrain(repo, tmp_path, "evaluate.max_new_tokens")
    assert proc.returncode == 2 and "KEY=VALUE" in proc.stderr and "got 'evaluate.max_new_tokens'" in proc.stderr
    assert not (repo / "data").exists() and summary == ""
