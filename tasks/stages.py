"""The one door from DVC and Prefect into the stages.

dvc.yaml runs `kpref stage <name>` for each stage, and the Prefect flow asks DVC to; both land
in `run_stage`, which reads the stage's own sections of params.yaml (its module's `Params`) and
calls `tasks.<name>.run(params, root)`. Each stage module starts with those two: which params it
reads, and what it reads and writes. A stage never imports another section's params model, so a
knob added to the train section leaves the facts stage's DVC deps as they were; `kpref check` and
the Prefect flow read the whole file first.

The stage is found by its name, not through a table here, so adding a stage never touches
this module, which every stage's command runs and so every stage lists in its DVC deps.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path

import yaml

from tasks.core.schema import KprefError
from tasks.params.section import load_params

# No network: no library may phone home, whichever door the run came in through.
OFFLINE_ENV = {
    "DVC_NO_ANALYTICS": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def quiet_offline_env() -> None:
    """Turn off every library's telemetry (a variable the user set wins)."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


def stage_names(root: str | Path = ".") -> list[str]:
    """dvc.yaml's stages in the order declared (the pipeline's order)."""
    path = Path(root) / "dvc.yaml"
    if not path.exists():
        raise KprefError(f"{path}: not found (run from the project root or pass --root)")
    return list(yaml.safe_load(path.read_text(encoding="utf-8"))["stages"])


def run_stage(name: str, params_path: str | Path = "params.yaml", root: str | Path = ".") -> None:
    """Run one stage of dvc.yaml with the params in `params_path` (relative to `root`)."""
    quiet_offline_env()
    root = Path(root)
    names = stage_names(root)
    if name not in names:
        raise KprefError(f"unknown stage {name!r}; dvc.yaml has {names}")
    module = importlib.import_module(f"tasks.{name}")  # its Params name the sections to check
    params = load_params(root / params_path, module.Params)  # every key it reads checked before any work
    module.run(params, root)
