"""Faults in one workspace: a second run while one holds the lock, and a run killed inside a stage."""
import os
import shutil
import signal
import subprocess
import sys

import pytest

from tasks.core.schema import KprefError
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


# Killed at a line the stage itself prints while its process still runs, never after a fixed sleep:
# a stage that ends sooner than the sleep on a fast machine puts the kill inside DVC's own
# (non-atomic) write of dvc.lock instead, which no stage can guard (docs/operations.md).
@pytest.mark.parametrize("stage, mid_stage", [("synthesize", "wrote {'train'"), ("train", "{'loss': ")])
def test_a_run_killed_inside_a_stage_is_finished_by_the_next_repro(clean, tiny_model_dir, tmp_path, stage, mid_stage):
    root = make_repo(tmp_path / "r", tiny_model_dir)
    proc = subprocess.Popen(["dvc", "repro"], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    running = False
    for line in proc.stdout:
        running = running or f"Running stage '{stage}'" in line
        if running and mid_stage in line:
            break
    assert proc.poll() is None, f"the run ended before {stage} could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the stage's own process with it
    proc.wait()
    assert "up to date" not in sh(["dvc", "status"], root).stdout  # the killed stage is stale, not half-done
    sh(["dvc", "repro"], root)
    assert outputs(root) == outputs(clean)
    assert "Data and pipelines are up to date" in sh(["dvc", "status"], root).stdout


def test_a_lock_file_cut_short_is_named_with_its_cure(clean, tmp_path, prefect_harness):
    from flows.pipeline import kpref_pipeline

    root = shutil.copytree(clean, tmp_path / "r", symlinks=True)
    lock = root / "dvc.lock"
    text = lock.read_text()
    lock.write_text(text[:text.index("\n  train:\n") + len("\n  train:\n")])  # what a kill inside DVC's write leaves
    before = outputs(root)
    with pytest.raises(KprefError, match=r"dvc\.lock: DVC cannot read it .*\(`git checkout dvc\.lock`, or delete it\)"):
        kpref_pipeline(root=str(root), retries=0, share=False)
    assert outputs(root) == before
    lock.unlink()  # the cure the message names: the run cache restores every stage, none runs again
    proc = sh(["dvc", "repro"], root)
    assert "Running stage" not in proc.stdout and "is cached - skipping run" in proc.stdout
    assert outputs(root) == outputs(clean)
    assert "Data and pipelines are up to date" in sh(["dvc", "status"], root).stdout
