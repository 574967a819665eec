"""The train stage on several processes: relaunched under accelerate's launcher (GPUs, or an
accelerate config file such as DeepSpeed ZeRO-2) or torchrun with accelerate's CPU switch
(`train.num_processes` CPU processes, gloo), each process running `kpref stage train` again.

The transformers Trainer inside sees the distributed environment and does data parallelism;
kpref keeps the effective batch (per-process batch x processes x accumulation) equal to the
single-process one and lets only the main process write logs, checkpoints' bookkeeping and outputs.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import yaml

from tasks.params.section import StageParams


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def launched() -> bool:
    """Whether this process is one of a launched group (torchrun and accelerate set LOCAL_RANK)."""
    return "LOCAL_RANK" in os.environ


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(p: StageParams, root: Path, params_file: Path, device: str) -> tuple[list[str], dict]:
    """The launcher command that runs `kpref stage train` once per process, and its environment."""
    kpref = shutil.which("kpref", path=str(Path(sys.executable).parent)) or shutil.which("kpref")
    stage = [kpref, "stage", "train", "--root", str(root), "--params", str(params_file)]
    port, env = str(_free_port()), dict(os.environ)
    t = p.train
    if t.accelerate_config:
        launcher = ["-m", "accelerate.commands.launch", "--config_file", str(root / t.accelerate_config),
                    "--main_process_port", port]
    elif device == "cuda":
        launcher = ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(t.num_processes),
                    "--num_machines", "1", "--main_process_port", port]
    else:  # `accelerate launch --cpu --num_processes N` starts one process; torchrun starts N (accelerate on CPU)
        launcher = ["-m", "torch.distributed.run", "--nproc_per_node", str(t.num_processes), "--master_port", port]
        env["ACCELERATE_USE_CPU"] = "1"
    return [sys.executable, *launcher, *stage], env


def relaunch(p: StageParams, root: Path, device: str) -> None:
    """Run the train stage as `train.num_processes` processes and wait for them (`p`: the train stage's params)."""
    params_file = root / ".kpref_cache" / "train-launch.yaml"  # what every process reads: these params
    params_file.parent.mkdir(parents=True, exist_ok=True)
    params_file.write_text(yaml.safe_dump(p.model_dump(by_alias=True, mode="json"), sort_keys=False))
    cmd, env = command(p, root, params_file.resolve(), device)
    proc = subprocess.run(cmd, env=env)
    if proc.returncode != 0:  # a crash, not bad input (checked before the launch): the flow may retry it
        raise RuntimeError(f"train: the {p.train.num_processes}-process run failed (exit {proc.returncode}): "
                           f"{' '.join(cmd)}")
