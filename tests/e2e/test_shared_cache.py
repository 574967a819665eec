"""A shared DVC remote: what one machine computed, another pulls instead of recomputing."""
import os

import pytest

from tasks.core.schema import KprefError
from tests.tiny_repo import make_repo, outputs, sh

pytestmark = pytest.mark.e2e


def test_a_fresh_clone_pulls_what_another_computed_and_runs_no_stage(tiny_model_dir, tmp_path, prefect_harness,
                                                                        monkeypatch):
    from flows.pipeline import kpref_pipeline

    remote = tmp_path / "remote"
    a = make_repo(tmp_path / "a", tiny_model_dir, remote)
    kpref_pipeline(root=str(a))  # pulls nothing, runs every stage, pushes outputs and run-cache
    assert any((remote / "files").rglob("*")) and any((remote / "runs").rglob("*"))

    # A's dvc.lock is not committed: only the pushed run-cache can tell B that its stages already ran
    b = tmp_path / "b"
    sh(["git", "clone", "-q", str(a), str(b)], tmp_path)
    assert not (b / "dvc.lock").exists()
    # any stage command B ran would fail: a `kpref` that exits 1 comes first on PATH
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "kpref").write_text("#!/bin/sh\necho 'a stage ran' >&2\nexit 1\n")
    (fake / "kpref").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    kpref_pipeline(root=str(b))
    assert outputs(b) == outputs(a)
    assert "Data and pipelines are up to date" in sh(["dvc", "status"], b).stdout


def test_a_remote_that_cannot_be_reached_is_named(tmp_path, tiny_model_dir, prefect_harness):
    from flows.pipeline import kpref_pipeline

    root = make_repo(tmp_path / "r", tiny_model_dir)
    sh(["dvc", "remote", "add", "-d", "team", "s3://kpref-no-such-bucket/cache"], root)  # dvc-s3 is not installed
    with pytest.raises(KprefError, match=r"DVC remote 'team' \(s3://kpref-no-such-bucket/cache\): pull failed"):
        kpref_pipeline(root=str(root))
    assert not (root / "data").exists()  # nothing ran
