"""The Prefect flow: each dvc.yaml stage becomes a task that asks DVC to reproduce it.

DVC alone decides staleness (so `dvc repro` and `kpref run` leave the same dvc.lock);
Prefect schedules, retries, logs and shows the runs.
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


@task(name="dvc-stage", task_run_name="{stage}", cache_policy=NONE, retries=0)
def repro_stage(root: str, stage: str, force: bool = False) -> dict:
    from dvc.exceptions import ReproductionError
    from dvc.repo import Repo

    logger = get_run_logger()
    quiet_offline_env()
    # DVC resolves stage paths against the working directory, as its CLI always runs inside the repo.
    with contextlib.chdir(root), Repo(root) as repo:
        try:
            ran = repo.reproduce(stage, single_item=True, force=force)
        except ReproductionError as e:
            raise KprefError(f"stage {stage!r} failed: {e.__cause__ or e}") from None
    did = bool(ran)
    logger.info("%s: %s", stage, "ran" if did else "up to date")
    return {"stage": stage, "ran": did}


@flow(name="kpref-pipeline", log_prints=True)
def kpref_pipeline(root: str = ".", force: bool = False) -> dict:
    base = Path(root)
    results = []
    for name in stage_names(base):
        results.append(repro_stage(root, name, force))
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
