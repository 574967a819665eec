"""params.yaml's `evaluate` section: generation, the runner and the public benchmark files."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from tasks.core.schema import NOT_MODELS, SPLITS
from tasks.params.section import PRECISION, Precision, Section


class BenchmarkFile(Section):
    format: Literal["mquake", "ifqa", "mrqa"] = Field(description="The authors' file format (docs/benchmarks.md).")
    path: str = Field(min_length=1, description="The file, relative to the project root; absent: skipped, said so.")
    max_items: int = Field(ge=1, description="Evaluate the first N cases (MQuAKE) or questions (IfQA, MRQA).")


class RunnerParams(Section):
    shards: int = Field(ge=1, description="Prefect tasks each model's evaluation is split into (contiguous slices).")
    task_runner: Literal["local", "dask"] = Field(
        description="local: the shards one after another on this machine; dask: on a Dask cluster (prefect-dask).")
    dask_address: str | None = Field(description="A running Dask scheduler (tcp://host:8786); null: a LocalCluster.")
    dask_workers: int = Field(ge=1, description="Worker processes of the LocalCluster (no dask_address).")


class EvaluateParams(Section):
    batch_size: int = Field(ge=1, description="Prompts generated together.")
    max_new_tokens: int = Field(ge=1, le=256, description="Longest answer generated.")
    precision: Precision = Field(description=PRECISION)
    runner: RunnerParams
    benchmarks: dict[str, BenchmarkFile] = Field(
        description="Public benchmark files, by the name metrics.json and the report give them: each a format, "
                    "path and size cap.")

    @field_validator("benchmarks")
    @classmethod
    def _names_are_not_splits(cls, v: dict[str, BenchmarkFile]) -> dict[str, BenchmarkFile]:
        clash = sorted(set(v) & {*SPLITS, *NOT_MODELS})
        if clash:
            raise ValueError(f"benchmark names {clash} are taken by the synthesized splits or metrics.json")
        return v
