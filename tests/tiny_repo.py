"""A kpref project in a temp git + DVC repo, on the tiny model and a small slice of every source."""
import shutil
import subprocess
from pathlib import Path

import yaml

from tasks.core.schema import SETTINGS
from tests.benchmark_files import write_mquake
from tests.conftest import ROOT


def sh(cmd, cwd, check=True, env=None):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def tiny_params(model_dir) -> dict:
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["model"]["base"] = str(model_dir)
    # the full breadth, small: every source, every setting, every context format
    for name, size in (("countries", 30_000_000), ("cities", 5_000_000), ("countryinfo", 30_000_000),
                       ("pycountry", 30_000_000)):
        p["facts"]["sources"][name].update(enabled=True, min_population=size)
    p["facts"]["split"].update(test_subjects=0.25, ood_relations=["subregion"])
    p["synthesize"]["mix"] = {s: 1.0 for s in SETTINGS}
    p["synthesize"]["context_formats"] = {"sentence": 1.0, "paragraph": 1.0, "passages": 1.0}
    p["synthesize"]["assumption_styles"] = 8
    p["probe"].update(batch_size=16, max_new_tokens=4)
    # a random tiny model commits to no closed-book answer, so memory targets are the world's
    p["synthesize"].update(n_train=38, n_val=19, n_test_per_setting=2, n_ood_per_setting=1,
                          n_ood_domain_per_setting=1, parametric_target="world")
    # no checkpoints: a killed run then retrains whole, so tests/e2e/test_faults.py can ask for the same bytes
    # the tiny BPE splits words finer than SmolLM2's: a long chain of edits (about 210 SmolLM2 tokens
    # at most in the default's data, against its 384) runs past 384 of its tokens
    p["train"].update(max_steps=2, batch_size=4, logging_steps=1, checkpoint_steps=0, max_length=1024)
    p["train"]["lora"].update(r=4, alpha=8, top_layers=1)
    p["evaluate"].update(batch_size=8, max_new_tokens=4)
    p["evaluate"]["benchmarks"]["mquake"]["max_items"] = 1  # make_repo(benchmark=True)'s small MQuAKE file
    return p


def make_repo(root: Path, model_dir, remote: Path | None = None, reproduce: bool = False,
              benchmark: bool = False) -> Path:
    """The project's pipeline with tiny params, committed; `remote` becomes its default DVC remote;
    with `reproduce`, `dvc repro` has run (dvc.lock left uncommitted); with `benchmark`, a small
    MQuAKE file sits in inputs/benchmarks/ (a user's file: git-ignored, so a clone lacks it)."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dvc.yaml", root / "dvc.yaml")
    for package in ("tasks", "flows"):
        shutil.copytree(ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "prefect.yaml", root / "prefect.yaml")
    shutil.copytree(ROOT / "inputs", root / "inputs")
    if benchmark:  # the other benchmarks are absent: skipped
        write_mquake(root / "inputs" / "benchmarks" / "mquake.json")
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(model_dir), sort_keys=False))
    (root / ".gitignore").write_text("/data/\n/models/\n/reports/\n/.kpref_cache/\n__pycache__/\n")
    sh(["git", "init", "-q"], root)
    sh(["git", "config", "user.email", "ci@kpref.test"], root)
    sh(["git", "config", "user.name", "kpref ci"], root)
    sh(["dvc", "init", "-q"], root)
    if remote is not None:
        sh(["dvc", "remote", "add", "-d", "shared", str(remote)], root)
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-qm", "init"], root)
    if reproduce:
        sh(["dvc", "repro"], root)
    return root


def outputs(root: Path) -> dict[str, str]:
    """relative path -> md5 of every file the pipeline wrote (the report and logs aside: they carry times)."""
    import hashlib

    out = {}
    for top in ("data", "models"):
        for f in sorted((root / top).rglob("*")):
            if f.is_file():
                out[f.relative_to(root).as_posix()] = hashlib.md5(f.read_bytes()).hexdigest()
    out["reports/metrics.json"] = hashlib.md5((root / "reports/metrics.json").read_bytes()).hexdigest()
    return out
