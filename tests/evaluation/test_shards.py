"""The evaluation spread over Prefect tasks: the same shards give the same predictions on this
machine and on a Dask cluster, and each set (a test split, a benchmark) is batched on its own."""
import pytest

from tasks.core.schema import EvalItem
from tasks.evaluation.shards import predict_sharded, shard
from tasks.params.evaluate import RunnerParams

QUESTIONS = [("What is the capital of Peru?", "Lima"), ("What is the capital of Chile?", "Santiago"),
             ("Which continent is Kenya in?", "Africa"), ("What is the currency of Japan?", "Yen")]


def _items() -> list[EvalItem]:
    items = []
    for k, (q, a) in enumerate(QUESTIONS):
        items += [EvalItem(f"{k}cb", q, None, [], [a], "parametric", "closed_book"),
                  EvalItem(f"{k}cf", q, None, [f"The answer is Oslo, not {a}."], ["Oslo"], "context",
                           "ctx_counterfactual", {"context": "Oslo", "world": a}),
                  EvalItem(f"{k}irr", q, None, ["Mount Orr is 3,000 m high."], [a], "parametric", "ctx_irrelevant",
                           {"parametric": a, "world": a}),
                  EvalItem(f"{k}io", q, "Assume the answer is Bergen.", [], ["Bergen"], "instruction", "instr_only")]
    return items


def test_shards_are_contiguous_balanced_slices():
    items = _items()
    parts = shard(items, 3)
    assert [len(p) for p in parts] == [6, 5, 5] and [it for p in parts for it in p] == items
    assert len(shard(items[:2], 5)) == 2  # never an empty shard


def _runner(kind: str, shards: int, address: str | None = None) -> RunnerParams:
    return RunnerParams(shards=shards, task_runner=kind, dask_address=address, dask_workers=2)


def test_each_set_is_answered_in_batches_of_its_own(tiny_model_dir, monkeypatch):
    # a bf16 answer depends on its batch-mates: a test split's answers must not change with the
    # benchmark files beside it
    import tasks.evaluation.predict

    real, calls = tasks.evaluation.predict.predict, []

    def spy(model, tok, items, *args):
        calls.append([it.id for it in items])
        return real(model, tok, items, *args)

    monkeypatch.setattr(tasks.evaluation.predict, "predict", spy)
    items = _items()
    both = predict_sharded(tiny_model_dir, {"split": items[:8], "bench": items[8:]}, "fp32", 4, 3, _runner("local", 1))
    assert calls == [[it.id for it in items[:8]], [it.id for it in items[8:]]]
    assert [r["id"] for r in both["split"]] == [it.id for it in items[:8]]
    alone = predict_sharded(tiny_model_dir, {"split": items[:8]}, "fp32", 4, 3, _runner("local", 1))
    assert alone == {"split": both["split"]}


@pytest.mark.e2e
def test_a_two_worker_dask_cluster_gives_the_default_runners_predictions(tiny_model_dir, prefect_harness):
    items = _items()
    sets = {"split": items[:10], "bench": items[10:]}
    local = predict_sharded(tiny_model_dir, sets, "fp32", 4, 3, _runner("local", 2))
    dask = predict_sharded(tiny_model_dir, sets, "fp32", 4, 3, _runner("dask", 2))
    assert {name: [r["id"] for r in rows] for name, rows in local.items()} == \
        {name: [it.id for it in its] for name, its in sets.items()}
    assert dask == local
    # one local shard is the same evaluation, in this process
    one = predict_sharded(tiny_model_dir, {"split": items[:8]}, "fp32", 4, 3, _runner("local", 1))
    assert [r["id"] for r in one["split"]] == [it.id for it in items[:8]]


@pytest.mark.e2e
def test_shards_run_on_the_workers_of_a_cluster_named_by_its_address(tiny_model_dir, prefect_harness):
    from distributed import Client, LocalCluster, get_task_stream

    sets = {"split": _items()[:8]}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        with get_task_stream(client) as stream:
            rows = predict_sharded(tiny_model_dir, sets, "fp32", 4, 3, _runner("dask", 2, cluster.scheduler_address))
        assert len({t["worker"] for t in stream.data}) == 2  # one shard on each worker process
    assert rows == predict_sharded(tiny_model_dir, sets, "fp32", 4, 3, _runner("local", 2))
