"""The Prefect flow: each dvc.yaml stage becomes a task that asks DVC to reproduce it.

DVC alone decides staleness (so `dvc repro` and `kpref run` leave the same dvc.lock);
Prefect schedules, retries, logs and shows the runs. With `share` (the default) the flow pulls
from the DVC remote before the stages and pushes after them, outputs and run-cache alike, so
a machine that pulls reproduces nothing another one already computed. Deployed through
prefect.yaml (a work pool, a schedule, one run at a time, an event trigger) or `kpref serve`.
"""
from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.cache_policies import NONE

from tasks.core.metrics import metric_changes
from tasks.core.schema import DVC_LOCK, METRICS, NOT_MODELS, KprefError
from tasks.params.full import load_params
from tasks.stages import quiet_offline_env, stage_names


class StageFailed(KprefError):
    """A stage's command failed. Exit status 2 is kpref's bad input (params, data), which no retry
    mends; anything else (a crash, a lock, a full disk) may pass on a second try."""

    def __init__(self, stage: str, cause: Exception):
        super().__init__(f"stage {stage!r} failed: {cause}")
        m = re.search(r"exited with (-?\d+)", str(cause))
        self.transient = not (m and int(m.group(1)) == 2)


def _retry_if_transient(task, task_run, state) -> bool:
    try:
        state.result()
    except StageFailed as e:
        return e.transient
    except Exception:  # noqa: BLE001  (a DVC lock or I/O error outside the command)
        return True
    return False


def _default_remote(repo) -> str | None:
    return repo.config.get("core", {}).get("remote")


def check_lockfile(root: Path) -> None:
    """Stops a run whose dvc.lock DVC cannot read, before any stage. DVC rewrites that file in
    place after each stage, so a run killed during the write (SIGKILL, out of memory, a lost
    machine) leaves it cut short; DVC's own message names neither cause nor cure."""
    from dvc.dvcfile import Lockfile
    from dvc.repo import Repo
    from dvc.utils.strictyaml import YAMLSyntaxError, YAMLValidationError

    with contextlib.chdir(root), Repo(root) as repo:
        try:
            Lockfile(repo, DVC_LOCK).load()
        except (YAMLSyntaxError, YAMLValidationError) as e:
            raise KprefError(
                f"{root / DVC_LOCK}: DVC cannot read it ({e}); a run killed while DVC wrote it leaves it cut "
                f"short. Restore it (`git checkout {DVC_LOCK}`, or delete it) and run again: DVC's run cache "
                "restores the stages that finished instead of running them again") from None


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


@task(name="dvc-stage", task_run_name="{stage}", cache_policy=NONE)
def repro_stage(root: str, stage: str, force: bool = False, pull: bool = False) -> dict:
    """`dvc repro` of one stage; with `pull`, outputs that the run-cache says were computed elsewhere
    are fetched from the remote instead of recomputed (`dvc repro --pull`)."""
    from dvc.exceptions import ReproductionError
    from dvc.lock import LockError
    from dvc.repo import Repo

    logger = get_run_logger()
    quiet_offline_env()
    # DVC resolves stage paths against the working directory, as its CLI always runs inside the repo.
    with contextlib.chdir(root), Repo(root) as repo:
        try:
            ran = repo.reproduce(stage, single_item=True, force=force, pull=pull)
        except ReproductionError as e:
            raise StageFailed(stage, e.__cause__ or e) from None
        except LockError:
            # another `dvc repro` or `kpref run` in this workspace: it holds the lock for its whole run
            raise StageFailed(stage, f"another DVC process holds the lock {Path(root) / '.dvc/tmp/lock'} "
                                     "(a `dvc repro` or `kpref run` in this workspace); this run touched "
                                     "nothing and retries, or run it again when that one ends") from None
    did = bool(ran)
    logger.info("%s: %s", stage, "ran" if did else "up to date")
    return {"stage": stage, "ran": did}


def _read_metrics(root: Path) -> dict:
    path = root / METRICS
    return json.loads(path.read_text()) if path.exists() else {}


def headline_summary(before: dict, after: dict) -> str:
    """The tuned model's headline figures per split, with the change since the previous run."""
    lines = ["| split | figure | tuned | change |", "|---|---|---|---|"]
    for r in metric_changes(before, after):
        change = "new" if r["change"] is None else f"{r['change']:+.4f}"
        lines.append(f"| {r['name']} | {r['key']} | {r['now']:.4f} | {change} |")
    return "\n".join(lines)


def publish(root: Path, before: dict, results: list[dict]) -> None:
    """What a person looks at in the UI: which stages ran, the headline figures, the adherence
    table and a link to the report."""
    create_markdown_artifact(
        "| stage | status |\n|---|---|\n"
        + "\n".join(f"| {r['stage']} | {'ran' if r['ran'] else 'up to date'} |" for r in results),
        key="kpref-stages", description="Which stages DVC reproduced")
    after = _read_metrics(root)
    if not after:
        return
    create_markdown_artifact(headline_summary(before, after), key="kpref-headlines",
                             description="Headline metrics of the tuned model, and their change since the last run")
    rows = [{"split": split, "model": m, "setting": s, "adherence": v}
            for split, by_model in after.items() for m, mm in by_model.items() if m not in NOT_MODELS
            for s, v in mm["adherence_by_setting"].items()]
    create_table_artifact(rows, key="kpref-adherence", description="Adherence per setting, base vs tuned")
    report = root / "reports" / "report.html"
    if report.exists():
        create_link_artifact(report.resolve().as_uri(), link_text="kpref report", key="kpref-report",
                             description="The self-contained HTML report of this run")


@flow(name="kpref-pipeline", log_prints=True)
def kpref_pipeline(root: str = ".", force: bool = False, share: bool = True, retries: int = 1,
                   retry_delay_s: float = 30.0) -> dict:
    """Every dvc.yaml stage through DVC. A stage that fails for a reason other than bad input is
    retried `retries` times, `retry_delay_s` apart; bad input fails the run with the stage's message."""
    base = Path(root).resolve()
    load_params(base / "params.yaml")  # the whole file, before any stage: each stage reads only its own sections
    check_lockfile(base)
    before = _read_metrics(base)
    shared = share and pull_shared(str(base))["remote"] is not None
    stage = repro_stage.with_options(retries=retries, retry_delay_seconds=retry_delay_s,
                                     retry_condition_fn=_retry_if_transient)
    results = [stage(str(base), name, force, pull=shared) for name in stage_names(base)]
    if shared:
        push_shared(str(base))
    publish(base, before, results)
    return {"stages": results}
