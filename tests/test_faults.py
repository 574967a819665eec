"""Faults in one workspace: a second run while one holds the lock, and a run killed inside a stage."""
import os
import signal
import subprocess
import sys
import time

import pytest

from tasks.schema import KprefError
from tests.tiny_repo import make_repo, outputs, sh

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def clean(tiny_model_dir, tmp_path_factory):
    """An uninterrupted tiny run: what a killed run must end up with."""
    return make_repo(tmp_path_factory.mktemp("clean"), tiny_model_dir, reproduce=True)


def _hold_lock(root):
    """Another process holding the workspace's DVC lock, as a running `dvc repro` does."""
    code = ("from dvc.lock import make_lock; import time; "
            "l = make_lock('.dvc/tmp/lock', tmp_dir='.dvc/tmp'); l.lock(); print('locked', flush=True); time.sleep(300)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=root, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_run_is_told_of_the_lock_and_touches_nothing(clean, prefect_harness):
    from flows.pipeline import kpref_pipeline

    before = outputs(clean)
    holder = _hold_lock(clean)
    try:
        with pytest.raises(KprefError, match=r"another DVC process holds the lock .*\.dvc/tmp/lock"):
            kpref_pipeline(root=str(clean), retries=0, share=False)
        proc = sh(["dvc", "repro"], clean, check=False)
        assert proc.returncode != 0 and "Unable to acquire lock" in proc.stderr
    finally:
        holder.kill()
        holder.wait()
    assert outputs(clean) == before
    assert "Data and pipelines are up to date" in sh(["dvc", "status"], clean).stdout


@pytest.mark.parametrize("stage, after_s", [("synthesize", 1.0), ("train", 5.0)])
def test_a_run_killed_inside_a_stage_is_finished_by_the_next_repro(clean, tiny_model_dir, tmp_path, stage, after_s):
    root = make_repo(tmp_path / "r", tiny_model_dir)
    proc = subprocess.Popen(["dvc", "repro"], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    for line in proc.stdout:
        if f"Running stage '{stage}'" in line:
            break
    time.sleep(after_s)
    assert proc.poll() is None, f"the run ended before {stage} could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the stage's own process with it
    proc.wait()
    assert "up to date" not in sh(["dvc", "status"], root).stdout  # the killed stage is stale, not half-done
    sh(["dvc", "repro"], root)
    assert outputs(root) == outputs(clean)
    assert "Data and pipelines are up to date" in sh(["dvc", "status"], root).stdout
