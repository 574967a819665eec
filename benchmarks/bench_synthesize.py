"""Synthesis speed and determinism: 10,000 examples from the default facts (the probe aside).

    python benchmarks/bench_synthesize.py

Target: at most 30 s on the 2-core machine; two runs with the same seed give the same bytes.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

from tasks.facts import collect_facts
from tasks.params.full import load_params
from tasks.synthesize import synthesize

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    p = load_params(ROOT / "params.yaml")
    facts, relations = collect_facts(p.facts, p.base.seed)
    beliefs = {f.key: f"The model thinks {f.object}." for f in facts}
    sp = p.synthesize.model_copy(update={"n_train": 9000, "n_val": 1000})
    digests, times = [], []
    for _ in range(2):
        t = time.perf_counter()
        splits = synthesize(facts, relations, beliefs, sp, p.facts, p.base.seed)
        times.append(time.perf_counter() - t)
        blob = "".join(json.dumps(r, sort_keys=True) for k in sorted(splits) for r in splits[k])
        digests.append(hashlib.sha256(blob.encode()).hexdigest()[:16])
    n = len(splits["train"]) + len(splits["val"])
    text = (f"- {n} train+val examples (+{sum(len(v) for k, v in splits.items() if k.startswith('test'))} test) "
            f"from {len(facts)} facts: {min(times):.1f} s best of 2 (target <= 30 s)\n"
            f"- same seed, same bytes: {digests[0] == digests[1]} ({digests[0]})")
    print(text)
    return 0 if digests[0] == digests[1] and min(times) <= 30 else 1


if __name__ == "__main__":
    sys.exit(main())
