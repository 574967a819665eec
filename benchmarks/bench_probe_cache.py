"""Does a warm probe cache give the bytes a cold probe gives, on the real model?

    python benchmarks/bench_probe_cache.py [--share 0.5]

Probes every fact the probe stage asks (data/facts.jsonl, as `kpref stage probe` chooses them)
three times, each into a fresh cache: cold; then a --share of the relations alone, which fills a
second cache; then all of them again on that warm cache. Prints how many answers the warm run
generated and reused, the seconds of each run, and how many of its answers differ from the cold
run's (0 is the point: batched bf16 answers depend on a prompt's batch-mates, so the probe's
batches must not depend on the cache). Needs a finished `dvc repro` (models/base, data/).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from tasks.core.schema import BASE_DIR, FACTS, RELATIONS, read_facts, read_relations
from tasks.params.full import load_params
from tasks.probe import probed_facts, run_probe

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TQDM_DISABLE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--share", type=float, default=0.5, help="share of the relations probed before the warm run")
    args = ap.parse_args()
    params = load_params(ROOT / "params.yaml")
    split = params.facts.split
    facts = probed_facts(read_facts(ROOT / FACTS), split.ood_relations, split.conflict_sources)
    relations = read_relations(ROOT / RELATIONS)
    names = sorted({f.relation for f in facts})
    first = set(names[: max(1, round(len(names) * args.share))])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)

        def probe(subset, name: str, cache: str) -> tuple[dict, float, list[dict]]:
            t = time.perf_counter()
            stats = run_probe(subset, relations, ROOT / BASE_DIR, params.probe, tmp / f"{name}.jsonl", tmp / cache)
            rows = [json.loads(line) for line in (tmp / f"{name}.jsonl").read_text().splitlines()]
            return stats, time.perf_counter() - t, rows

        cold, t_cold, cold_rows = probe(facts, "cold", "cold_cache")
        part, t_part, _ = probe([f for f in facts if f.relation in first], "part", "warm_cache")
        warm, t_warm, warm_rows = probe(facts, "warm", "warm_cache")
    differ = sum(a["belief"] != b["belief"] for a, b in zip(cold_rows, warm_rows))
    print(f"cold: {cold['probed']} facts probed in {t_cold:.0f} s")
    print(f"{len(first)} of {len(names)} relations first: {part['probed']} probed in {t_part:.0f} s")
    print(f"warm: {warm['probed']} probed, {warm['cached']} from the cache, in {t_warm:.0f} s")
    print(f"answers that differ between the warm and the cold run: {differ} of {len(facts)}")


if __name__ == "__main__":
    main()
