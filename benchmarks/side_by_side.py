"""Measuring this checkout's code and another commit's on the same inputs, in turn, on one machine.

A benchmark that compares against a commit (`--against 1311d7e`) runs each measurement in a
fresh process whose `tasks` package is that commit's (a `git archive` of it, kept under
.kpref_cache/bench/) or this checkout's; both read this workspace's data/ and models/. `api()`
finds the functions a measurement needs in either layout: the packages of today, or the flat
tasks/ of 1311d7e and before.
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
HERE = "HEAD"  # the label of this checkout's code


def tree(ref: str) -> Path:
    """This checkout (ref HEAD) or a commit's files, unpacked once."""
    if ref == HERE:
        return ROOT
    sha = subprocess.run(["git", "rev-parse", "--verify", f"{ref}^{{commit}}"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    where = ROOT / ".kpref_cache" / "bench" / sha[:12]
    if not (where / "tasks").is_dir():
        where.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=where.parent) as tmp:
            archive = Path(tmp) / "src.tar"
            subprocess.run(["git", "archive", "--format=tar", "-o", str(archive), sha, "tasks", "params.yaml"],
                           cwd=ROOT, check=True)
            with tarfile.open(archive) as tar:
                tar.extractall(Path(tmp) / "src", filter="data")
            os.replace(Path(tmp) / "src", where)
    return where


# where each module the benchmarks call lives: today's packages, then 1311d7e's flat tasks/
LAYOUTS = (
    {"prompt": "tasks.core.prompt", "schema": "tasks.core.schema", "predict": "tasks.evaluation.predict",
     "params": "tasks.params.full", "generate": "tasks.runtime.generate", "modeling": "tasks.runtime.modeling",
     "trainer": "tasks.training.trainer", "train": "tasks.train"},
    {"prompt": "tasks.prompt", "schema": "tasks.schema", "predict": "tasks.predict", "params": "tasks.params",
     "generate": "tasks.generate", "modeling": "tasks.modeling", "trainer": "tasks.trainer",
     "train": "tasks.train"},
)


def api() -> SimpleNamespace:
    """The modules the benchmarks call, from whichever layout of `tasks` is on the path."""
    for layout in LAYOUTS:
        try:
            mods = {name: importlib.import_module(module) for name, module in layout.items()}
        except ModuleNotFoundError:
            continue
        return SimpleNamespace(load_params=mods.pop("params").load_params, **mods)
    raise ImportError("no known layout of the tasks package on the path")


def measure(script: str, ref: str, task: dict) -> dict:
    """Run `script --worker TASK` in a fresh process on `ref`'s code: its JSON result."""
    src = tree(ref)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(ROOT / "benchmarks")]),
               "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"}
        task = {**task, "params": str(src / "params.yaml"), "out": str(out)}
        subprocess.run([sys.executable, script, "--worker", json.dumps(task)], cwd=ROOT, env=env, check=True)
        return json.loads(out.read_text())


def answer(task: dict, result: dict) -> None:
    """A worker's last step: its result where `measure` reads it."""
    Path(task["out"]).write_text(json.dumps(result))
