"""Measure the default pipeline against the targets and print the figures.

    python benchmarks/bench_pipeline.py            # `dvc repro --force` (every stage), then a no-op `dvc repro`
    python benchmarks/bench_pipeline.py --no-full  # only the no-op repro and the current metrics
    python benchmarks/bench_pipeline.py --strict   # exit 1 when a target is missed

Targets (2-core CPU, default params): full repro <= 20 min wall and <= 8 GiB peak RSS; a
no-op repro <= 5 s. Per split (tuned; TARGETS): held-out subjects (`test`) adherence >= 0.95 on
every conflict setting, closed-book at most 2 points below the base; held-out relation and
phrasing >= 0.85 on every conflict setting; irrelevant-context robustness on the facts the base
knows >= 0.95 on those three; the held-out domain >= 0.90 on ctx_counterfactual, instr_only and
instr_vs_ctx, robustness on base-known facts >= 0.90, closed-book within 3 points of the base.
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

from tasks.core.schema import CONFLICT_SETTINGS, METRICS, PROBE_CACHE

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


# issue 12's targets per split: (conflict settings held to the floor, the floor), robustness on the
# facts the base knows, and how far closed-book accuracy may fall below the base's
TARGETS = {
    "test": (CONFLICT_SETTINGS, 0.95, 0.95, 0.02),
    "test_ood_phrasing": (CONFLICT_SETTINGS, 0.85, 0.95, None),
    "test_ood_relation": (CONFLICT_SETTINGS, 0.85, 0.95, None),
    "test_ood_domain": (("ctx_counterfactual", "instr_only", "instr_vs_ctx"), 0.90, 0.90, 0.03),
}


def verdicts(metrics: dict) -> tuple[list[str], bool]:
    """One line per split (the tuned model, with the base's figures beside) against TARGETS; whether every target is met."""
    lines, ok = [], True
    for split, (settings, floor, rob_target, max_drop) in TARGETS.items():
        if "tuned" not in metrics.get(split, {}):
            continue
        t, b, d = metrics[split]["tuned"], metrics[split]["base"], metrics[split]["delta"]
        by = t["adherence_by_setting"]
        low = [f"{s} {by[s]}" for s in settings if s in by and by[s] < floor]
        lowest = min((s for s in CONFLICT_SETTINGS if s in by), key=by.get)
        rob = t.get("irrelevant_robustness_base_known")
        retention = d["closed_book_retention"]
        lines.append(f"- {split}: conflict settings below {floor}: {', '.join(low) or 'none'} "
                     f"(lowest {lowest} {by[lowest]}); robustness on facts the base knows {rob} "
                     f"(95% CI {t.get('irrelevant_robustness_base_known_ci95')}; base "
                     f"{b.get('irrelevant_robustness_base_known')}; target >= {rob_target}); closed-book "
                     f"{b['closed_book_accuracy']} -> {t['closed_book_accuracy']}, retention {retention:+.3f} "
                     f"{d.get('closed_book_retention_ci95')}" + (f" (target >= -{max_drop})" if max_drop is not None else ""))
        ok &= not low and rob is not None and rob >= rob_target
        ok &= max_drop is None or retention >= -max_drop - 1e-9
    lines.append("- tuned, every setting: " + "; ".join(
        f"{s} {json.dumps(metrics[s]['tuned']['adherence_by_setting'])}" for s in TARGETS if s in metrics))
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
