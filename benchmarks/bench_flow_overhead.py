"""The Prefect flow's cost on top of `dvc repro`, side by side in one run.

    python benchmarks/bench_flow_overhead.py [--rounds 3]

On the project as it stands (run it after `dvc repro`), each measured `--rounds` times, medians:
- `dvc repro`, the baseline;
- `kpref run --no-share` against a Prefect server that is already running (started here on
  loopback, with its own PREFECT_HOME);
- `kpref run --no-share` with no PREFECT_API_URL, where Prefect starts a temporary server each time.
First with every stage up to date, then with one stage to run: a Jinja comment appended to the
report template makes `report` stale and renders the same report. Target: under 5 s on top of
DVC against a running server.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TEMPLATE = ROOT / "tasks" / "templates" / "report.md.j2"


def timed(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t


def start_server(home: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home)}
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(120):
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(1)
    proc.kill()
    raise SystemExit("the Prefect server did not answer in 120 s")


def measure(commands: dict[str, tuple[list[str], dict]], rounds: int, one_stage: bool) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in commands}
    original = TEMPLATE.read_text()
    try:
        for r in range(rounds):
            for name, (cmd, env) in commands.items():
                if one_stage:  # renders the same report, but DVC sees a changed dependency of `report`
                    TEMPLATE.write_text(original + f"{{# bench {name} {r} #}}\n")
                times[name].append(timed(cmd, env))
    finally:
        TEMPLATE.write_text(original)
        if one_stage:
            timed([str(BIN / "dvc"), "repro"], {**os.environ})
    return {name: statistics.median(v) for name, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    base_env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    with tempfile.TemporaryDirectory(prefix="kpref-bench-prefect-") as home:
        server, url = start_server(Path(home) / "server")
        try:
            commands = {
                "dvc repro": ([str(BIN / "dvc"), "repro"], base_env),
                "kpref run, running server": ([str(BIN / "kpref"), "run", "--no-share"],
                                              {**base_env, "PREFECT_HOME": str(Path(home) / "server"),
                                               "PREFECT_API_URL": url}),
                "kpref run, temporary server": ([str(BIN / "kpref"), "run", "--no-share"],
                                                {**base_env, "PREFECT_HOME": str(Path(home) / "ephemeral")}),
            }
            for label, one_stage in (("every stage up to date", False), ("one stage (report) to run", True)):
                m = measure(commands, args.rounds, one_stage)
                base = m["dvc repro"]
                print(f"- {label}: dvc repro {base:.1f} s; "
                      + "; ".join(f"{k} {v:.1f} s (+{v - base:.1f} s)" for k, v in m.items() if k != "dvc repro"),
                      flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
