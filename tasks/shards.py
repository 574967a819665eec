"""The evaluation spread over an engine: shards of the items as Prefect tasks, on this machine or
on a Dask cluster (`prefect-dask`), whichever `evaluate.runner` names.

Each shard task loads the model itself, so a worker on another machine needs only the model
directory's path (a shared filesystem) and kpref installed. Shards are contiguous slices of the
items in order, and their rows are put back in that order: the same shards give the same
predictions on any runner. One shard on the local runner is the whole evaluation in this
process, with no Prefect server to start.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from tasks.params import RunnerParams
from tasks.schema import EvalItem


def shard(items: Sequence[EvalItem], n: int) -> list[list[EvalItem]]:
    """`n` contiguous slices, as equal as can be (no empty one)."""
    n = max(1, min(n, len(items)))
    size, extra = divmod(len(items), n)
    out, start = [], 0
    for k in range(n):
        end = start + size + (k < extra)
        out.append(list(items[start:end]))
        start = end
    return out


def predict_shard(model_dir: str, items: list[EvalItem], precision: str, batch_size: int, max_new_tokens: int,
                  desc: str) -> list[dict]:
    from tasks.modeling import load_model
    from tasks.predict import predict

    model, tok = load_model(model_dir, precision=precision)
    return predict(model, tok, items, batch_size, max_new_tokens, desc)


def task_runner(r: RunnerParams):
    """The Prefect task runner `evaluate.runner` names: local runs shards one after another here
    (two at once would share the same cores and hold two models); dask runs them on the cluster at
    `dask_address`, or on a LocalCluster of `dask_workers` one-thread worker processes."""
    if r.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if r.dask_address:
            return DaskTaskRunner(address=r.dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": r.dask_workers, "threads_per_worker": 1,
                                              "processes": True, "dashboard_address": None})
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=1)


def predict_sharded(model_dir: str | Path, items: Sequence[EvalItem], precision: str, batch_size: int,
                    max_new_tokens: int, runner: RunnerParams, desc: str = "evaluating") -> list[dict]:
    """Every item's prediction row, in order, from `runner.shards` shards on `runner`'s engine."""
    parts = shard(items, runner.shards)
    if len(parts) == 1 and runner.task_runner == "local":
        return predict_shard(str(model_dir), parts[0], precision, batch_size, max_new_tokens, desc)
    from prefect import flow, task
    from prefect.cache_policies import NONE

    shard_task = task(predict_shard, name="evaluate-shard", retries=1, cache_policy=NONE)

    @flow(name="kpref-evaluate-shards", task_runner=task_runner(runner), log_prints=True)
    def evaluate_shards() -> list[list[dict]]:
        futures = [shard_task.submit(str(model_dir), part, precision, batch_size, max_new_tokens,
                                     f"{desc} [{k + 1}/{len(parts)}]") for k, part in enumerate(parts)]
        return [f.result() for f in futures]

    return [row for rows in evaluate_shards() for row in rows]
