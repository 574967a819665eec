"""The evaluation spread over an engine: shards of the items as Prefect tasks, on this machine or
on a Dask cluster (`prefect-dask`), whichever `evaluate.runner` names.

Each shard task loads the model itself, so a worker on another machine needs only the model
directory's path (a shared filesystem) and kpref installed. A shard holds a contiguous slice of
every set (a test split, a benchmark), and the rows are put back in order: the same shards give
the same predictions on any runner. Each set is batched on its own, because a bf16 answer
depends on its batch-mates' shapes: a test split's answers stay the same bytes whether a
benchmark file is present or not. One shard on the local runner is the whole evaluation in this
process, with no Prefect server to start.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from tasks.core.schema import EvalItem
from tasks.params.evaluate import RunnerParams


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


def predict_shard(model_dir: str, sets: dict[str, list[EvalItem]], precision: str, batch_size: int,
                  max_new_tokens: int, desc: str, prior: bool = False) -> dict[str, list[dict]]:
    """Each set's prediction rows, the model loaded once, the sets never sharing a batch
    (`prior`: as predict's)."""
    from tasks.evaluation.predict import predict
    from tasks.runtime.modeling import load_model

    model, tok = load_model(model_dir, precision=precision)
    return {name: predict(model, tok, items, batch_size, max_new_tokens, f"{desc} {name}", prior) if items else []
            for name, items in sets.items()}


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


def predict_sharded(model_dir: str | Path, sets: dict[str, Sequence[EvalItem]], precision: str, batch_size: int,
                    max_new_tokens: int, runner: RunnerParams, desc: str = "evaluating",
                    prior: bool = False) -> dict[str, list[dict]]:
    """Every set's prediction rows, in order, from `runner.shards` shards on `runner`'s engine."""
    n = max(1, min(runner.shards, max((len(items) for items in sets.values()), default=1)))
    slices = {name: shard(items, n) for name, items in sets.items()}
    parts = [{name: s[k] if k < len(s) else [] for name, s in slices.items()} for k in range(n)]
    if n == 1 and runner.task_runner == "local":
        return predict_shard(str(model_dir), parts[0], precision, batch_size, max_new_tokens, desc, prior)
    from prefect import flow, task
    from prefect.cache_policies import NONE

    shard_task = task(predict_shard, name="evaluate-shard", retries=1, cache_policy=NONE)

    @flow(name="kpref-evaluate-shards", task_runner=task_runner(runner), log_prints=True)
    def evaluate_shards() -> list[dict[str, list[dict]]]:
        futures = [shard_task.submit(str(model_dir), part, precision, batch_size, max_new_tokens,
                                     f"{desc} [{k + 1}/{len(parts)}]", prior) for k, part in enumerate(parts)]
        return [f.result() for f in futures]

    done = evaluate_shards()
    return {name: [row for rows in done for row in rows[name]] for name in sets}
