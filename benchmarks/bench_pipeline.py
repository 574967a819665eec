"""Measure the default pipeline against the targets and print the figures.

    python benchmarks/bench_pipeline.py            # `dvc repro --force` (every stage), then a no-op `dvc repro`
    python benchmarks/bench_pipeline.py --no-full  # only the no-op repro and the current metrics
    python benchmarks/bench_pipeline.py --strict   # exit 1 when a target is missed

Targets (2-core CPU, default params): full repro <= 20 min wall and <= 8 GiB peak RSS; a
no-op repro <= 5 s. Held-out subjects (tuned): adherence >= 0.95 on every conflict setting,
irrelevant-context robustness >= 0.90, closed-book accuracy at most 2 points below the base
model. Held-out relations and phrasings (tuned): adherence >= 0.85 on every conflict setting.
For a cold probe cache, empty `.kpref_cache/probe` first.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

from tasks.schema import CONFLICT_SETTINGS, METRICS, PROBE_CACHE

ROOT = Path(__file__).resolve().parent.parent


def timed(cmd: list[str]) -> tuple[float, float, dict[str, float]]:
    """Wall seconds, the peak RSS (GiB) of the largest process the command spawned, and seconds per stage."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    stages: dict[str, float] = {}
    current, since = None, t
    with subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            sys.stdout.write(line)
            m = re.match(r"Running stage '(\w+)'", line)
            if m:
                now = time.perf_counter()
                if current:
                    stages[current] = now - since
                current, since = m.group(1), now
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode})")
    wall = time.perf_counter() - t
    if current:
        stages[current] = time.perf_counter() - since
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 2**20, stages


def verdicts(metrics: dict) -> tuple[list[str], bool]:
    lines, ok = [], True
    m = metrics["test"]
    t, b = m["tuned"], m["base"]
    ts, bs = t["adherence_by_setting"], b["adherence_by_setting"]
    for s in CONFLICT_SETTINGS:
        if s in ts:
            lines.append(f"- held-out subjects, {s}: tuned {ts[s]} (base {bs.get(s)}, target >= 0.95)")
            ok &= ts[s] >= 0.95
    rob = t.get("irrelevant_robustness")
    lines.append(f"- irrelevant-context robustness: tuned {rob} (95% CI {t.get('irrelevant_robustness_ci95')}; "
                 f"base {b.get('irrelevant_robustness')}, target >= 0.90); on facts it answers right closed-book: "
                 f"{t.get('irrelevant_robustness_known')} (base {b.get('irrelevant_robustness_known')})")
    ok &= (rob or 0) >= 0.90
    drop = b["closed_book_accuracy"] - t["closed_book_accuracy"]
    lines.append(f"- closed-book accuracy: base {b['closed_book_accuracy']}, tuned {t['closed_book_accuracy']} "
                 f"(drop {drop:+.3f}, target <= 0.02)")
    ok &= drop <= 0.02 + 1e-9
    lines.append(f"- held-out subjects, every setting (tuned): {json.dumps(ts)}")
    lines.append(f"- held-out subjects, every setting (base): {json.dumps(bs)}")
    for split in ("test_ood_relation", "test_ood_phrasing"):
        if split in metrics and "tuned" in metrics[split]:
            os_ = metrics[split]["tuned"]["adherence_by_setting"]
            low = [f"{s} {os_[s]}" for s in CONFLICT_SETTINGS if s in os_ and os_[s] < 0.85]
            lines.append(f"- {split} (tuned): {json.dumps(os_)}; conflict settings below 0.85: {low or 'none'}")
            ok &= not low
    return lines, ok


def main() -> int:
    full = "--no-full" not in sys.argv
    lines = [f"## {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
             f"{os.cpu_count()} CPUs",
             f"command: `python benchmarks/bench_pipeline.py{'' if full else ' --no-full'}`", ""]
    ok = True
    if full:
        cold = not any((ROOT / PROBE_CACHE).glob("*.jsonl"))
        wall, peak, stages = timed(["dvc", "repro", "--force"])
        lines += [f"- full `dvc repro --force` ({'cold' if cold else 'warm'} probe cache): {wall / 60:.1f} min wall "
                  f"(target <= 20), peak RSS {peak:.2f} GiB (target <= 8)",
                  "- per stage (s): " + ", ".join(f"{k} {v:.0f}" for k, v in stages.items())]
        ok &= wall <= 1200 and peak <= 8
    wall, _, _ = timed(["dvc", "repro"])
    lines += [f"- no-op `dvc repro`: {wall:.1f} s (target <= 5)"]
    ok &= wall <= 5
    more, good = verdicts(json.loads((ROOT / METRICS).read_text()))
    lines += more
    ok &= good
    lines.append(f"- verdict: {'all targets met' if ok else 'targets missed'}")
    print("\n".join(lines))
    return 1 if "--strict" in sys.argv and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
