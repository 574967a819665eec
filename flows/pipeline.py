"""The Prefect flow: each dvc.yaml stage becomes a task that asks DVC to reproduce it.

DVC alone decides staleness (so `dvc repro` and `kpref run` leave the same dvc.lock);
Prefect schedules, retries, logs and shows the runs. With `share` (the default) the flow pulls
from the DVC remote before the stages and pushes after them, outputs and run-cache alike, so
a machine that pulls reproduces nothing another one already computed.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from tasks.schema import METRICS, KprefError
from tasks.stages import quiet_offline_env, stage_names


def _default_remote(repo) -> str | None:
    return repo.config.get("core", {}).get("remote")


@task(name="dvc-pull", cache_policy=NONE)
def pull_shared(root: str) -> dict:
    """Outputs and run-cache from the default remote; what it lacks is simply computed."""
    return _sync(root, "pull")


@task(name="dvc-push", cache_policy=NONE)
def push_shared(root: str) -> dict:
    """Outputs and run-cache to the default remote, for the next machine."""
    return _sync(root, "push")


def _sync(root: str, direction: str) -> dict:
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    logger = get_run_logger()
    quiet_offline_env()
    with contextlib.chdir(root), Repo(root) as repo:
        remote = _default_remote(repo)
        if not remote:
            logger.info("no default DVC remote (`dvc remote add -d NAME URL`): nothing to %s", direction)
            return {"remote": None, "files": 0}
        try:
            if direction == "pull":
                files = repo.pull(run_cache=True, allow_missing=True)["stats"]["fetched"]
            else:
                files = repo.push(run_cache=True)
        except (DvcException, ImportError, OSError) as e:  # a missing dvc-s3/dvc-gs is an ImportError
            url = repo.config.get("remote", {}).get(remote, {}).get("url")
            raise KprefError(f"DVC remote {remote!r} ({url}): {direction} failed: {e}; check `dvc remote list` "
                             "or run with --no-share") from None
    logger.info("%s %s: %s", direction, remote, files)
    return {"remote": remote, "files": files}


@task(name="dvc-stage", task_run_name="{stage}", cache_policy=NONE, retries=0)
def repro_stage(root: str, stage: str, force: bool = False, pull: bool = False) -> dict:
    """`dvc repro` of one stage; with `pull`, outputs that the run-cache says were computed elsewhere
    are fetched from the remote instead of recomputed (`dvc repro --pull`)."""
    from dvc.exceptions import ReproductionError
    from dvc.repo import Repo

    logger = get_run_logger()
    quiet_offline_env()
    # DVC resolves stage paths against the working directory, as its CLI always runs inside the repo.
    with contextlib.chdir(root), Repo(root) as repo:
        try:
            ran = repo.reproduce(stage, single_item=True, force=force, pull=pull)
        except ReproductionError as e:
            raise KprefError(f"stage {stage!r} failed: {e.__cause__ or e}") from None
    did = bool(ran)
    logger.info("%s: %s", stage, "ran" if did else "up to date")
    return {"stage": stage, "ran": did}


@flow(name="kpref-pipeline", log_prints=True)
def kpref_pipeline(root: str = ".", force: bool = False, share: bool = True) -> dict:
    base = Path(root)
    shared = share and pull_shared(root)["remote"] is not None
    results = []
    for name in stage_names(base):
        results.append(repro_stage(root, name, force, pull=shared))
    if shared:
        push_shared(root)
    metrics_path = base / METRICS
    if metrics_path.exists():
        metrics = json.loads(metrics_path.read_text())
        rows = [
            {"split": split, "model": m, "setting": s, "adherence": v}
            for split, by_model in metrics.items() for m, mm in by_model.items() if m != "delta"
            for s, v in mm["adherence_by_setting"].items()
        ]
        create_table_artifact(rows, key="kpref-adherence", description="Adherence per setting, base vs tuned")
    create_markdown_artifact(
        "| stage | status |\n|---|---|\n" + "\n".join(f"| {r['stage']} | {'ran' if r['ran'] else 'up to date'} |" for r in results),
        key="kpref-stages", description="Which stages DVC reproduced",
    )
    return {"stages": results}
