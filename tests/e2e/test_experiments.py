"""A small grid as queued `dvc exp` runs, worked off by `dvc queue start`, compared by `dvc exp show`."""
import time

import pytest

from tests.tiny_repo import make_repo, sh

pytestmark = pytest.mark.e2e


def test_two_queued_experiments_run_and_show_side_by_side(tiny_model_dir, tmp_path):
    root = make_repo(tmp_path / "r", tiny_model_dir, reproduce=True)
    sh(["git", "add", "dvc.lock"], root)
    sh(["git", "commit", "-qm", "baseline"], root)
    for n in (3, 5):
        sh(["dvc", "exp", "run", "--queue", "-n", f"tokens-{n}", "-S", f"evaluate.max_new_tokens={n}"], root)
    try:
        sh(["dvc", "queue", "start", "--jobs", "1"], root)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            status = sh(["dvc", "queue", "status"], root).stdout
            if "Queued" not in status and "Running" not in status:
                break
            time.sleep(5)
        assert status.count("Success") == 2, status
    finally:
        sh(["dvc", "queue", "stop", "--kill"], root, check=False)
    show = sh(["dvc", "exp", "show", "--md", "--only-changed"], root).stdout
    assert "tokens-3" in show and "tokens-5" in show and "evaluate.max_new_tokens" in show
