"""prefect.yaml deployed to a real Prefect server on loopback, run by a real process worker.

The server, its database (its own PREFECT_HOME) and the worker live only for this module and
are torn down after it. The flow runs on the tiny profile.
"""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.tiny_repo import make_repo, sh

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(cmd, env, log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    with __import__("contextlib").suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(env for Prefect commands, API URL): a server on a free loopback port with its own database."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": url, "PREFECT_LOGGING_LEVEL": "INFO"}
    proc = _start([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                  {k: v for k, v in env.items() if k != "PREFECT_API_URL"}, home / "server.log")
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with __import__("contextlib").suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            assert proc.poll() is None, (home / "server.log").read_text()[-3000:]
            time.sleep(1)
        else:
            pytest.fail("the Prefect server did not answer in 120 s")
        yield env, url
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def deployed(server, tiny_model_dir, tmp_path_factory):
    """The tiny project deployed from its prefect.yaml, with a worker polling the pool."""
    env, url = server
    repo = make_repo(tmp_path_factory.mktemp("deployed"), tiny_model_dir)
    prefect = str(BIN / "prefect")
    sh([prefect, "work-pool", "create", "kpref", "--type", "process"], repo, env=env)
    worker = _start([prefect, "worker", "start", "--pool", "kpref"], env, repo / "worker.log")
    try:
        sh([str(BIN / "kpref"), "deploy"], repo, env=env)  # checks API, pools and schedules, then prefect deploy
        yield repo, env, url
    finally:
        _stop(worker)


def _runs(url: str) -> list[dict]:
    body = {"deployments": {"name": {"any_": ["nightly"]}}}
    return httpx.post(f"{url}/flow_runs/filter", json=body, timeout=10).json()


def test_deployment_runs_on_a_worker_with_its_schedule_limit_and_artifacts(deployed):
    repo, env, url = deployed
    run = sh([str(BIN / "prefect"), "deployment", "run", "kpref-pipeline/nightly", "--watch",
              "--watch-timeout", "300"], repo, env=env, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:] + (repo / "worker.log").read_text()[-3000:]
    assert "Data and pipelines are up to date" in sh(["dvc", "status"], repo).stdout
    keys = {a["key"] for a in httpx.post(f"{url}/artifacts/filter", json={}, timeout=10).json()}
    assert {"kpref-stages", "kpref-headlines", "kpref-adherence", "kpref-report"} <= keys
    d = httpx.get(f"{url}/deployments/name/kpref-pipeline/nightly", timeout=10).json()
    assert d["concurrency_options"]["collision_strategy"] == "ENQUEUE" and d["global_concurrency_limit"]["limit"] == 1
    cron = d["schedules"][0]["schedule"]
    assert cron["cron"] == "0 3 * * *" and cron["timezone"] == "UTC"
    assert yaml.safe_load((repo / "prefect.yaml").read_text())["deployments"][0]["work_pool"]["name"] == "kpref"


def test_a_data_updated_event_starts_a_run(deployed):
    repo, env, url = deployed
    started = lambda: [r for r in _runs(url) if r["state_type"] not in ("SCHEDULED",)]  # noqa: E731
    before = len(started())
    sh([str(BIN / "kpref"), "data-updated", "params.yaml"], repo, env=env)
    deadline = time.monotonic() + 90
    while len(started()) == before and time.monotonic() < deadline:
        time.sleep(2)
    assert len(started()) > before, "the trigger started no run"


def test_kpref_serve_names_a_malformed_schedule_and_a_missing_api(tmp_path, tiny_model_dir):
    repo = make_repo(tmp_path / "r", tiny_model_dir)
    offline = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    good = (repo / "prefect.yaml").read_text()
    spec = yaml.safe_load(good)
    spec["deployments"][0]["schedules"][0]["cron"] = "every night"
    (repo / "prefect.yaml").write_text(yaml.safe_dump(spec))
    proc = sh([str(BIN / "kpref"), "serve", "--root", str(repo)], repo, env=offline, check=False)
    assert proc.returncode == 2 and "is not a valid cron schedule" in proc.stderr.replace("\n", "")
    (repo / "prefect.yaml").write_text(good)
    proc = sh([str(BIN / "kpref"), "serve", "--root", str(repo)], repo, env=offline, check=False)
    assert proc.returncode == 2 and "no Prefect API" in proc.stderr.replace("\n", "")


def test_kpref_deploy_names_an_unknown_work_pool_and_a_missing_api(server, tmp_path, tiny_model_dir):
    env, url = server
    repo = make_repo(tmp_path / "r", tiny_model_dir)
    spec = yaml.safe_load((repo / "prefect.yaml").read_text())
    spec["deployments"][0]["work_pool"]["name"] = "no-such-pool"
    (repo / "prefect.yaml").write_text(yaml.safe_dump(spec))
    proc = sh([str(BIN / "kpref"), "deploy"], repo, env=env, check=False)
    assert proc.returncode == 2
    assert "work pool 'no-such-pool' does not exist" in proc.stderr.replace("\n", "")
    offline = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}
    proc = sh([str(BIN / "kpref"), "deploy"], repo, env=offline, check=False)
    assert proc.returncode == 2 and "no Prefect API" in proc.stderr.replace("\n", "")
