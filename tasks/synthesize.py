"""Stage synthesize: real facts -> knowledge-conflict examples in train/val/test(+OOD) splits.

    params: base.seed, facts, synthesize    reads: data/facts.jsonl, data/relations.json, data/probe.jsonl
                                             writes: data/{train,val,test,test_ood_*}.jsonl

Every example names the source the hierarchy picks (instruction > context > parametric),
the answer each source gives, a `completion` to train on, for DPO a `rejected` answer
of a named error type, and the base model's certainty of the fact it asks (the probe's);
`tasks/synthesis/recipes.py` builds one per setting. Test subjects never occur
in train or val; held-out relations, phrasings and knowledge domains form their own test splits.
The conflict settings draw a share of their facts (`synthesize.strong_prior`) from the facts the
base model is surest of, each relation's most certain fifth: a memory a model holds firmly is
the one a conflict finds hardest to override, and a uniform draw asks few of them.
Same facts, probe, params and seed: same bytes.
"""
from __future__ import annotations

import hashlib
import logging
import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from tasks.core.atomic import write_jsonl
from tasks.core.metrics import overlaps
from tasks.core.prompt import prompt_key
from tasks.core.schema import (
    DATA_DIR,
    FACT_CONFLICTS,
    FACTS,
    OOD_DOMAIN,
    PROBE,
    RELATIONS,
    SETTINGS,
    SPLITS,
    Example,
    Fact,
    KprefError,
    Relation,
    read_beliefs,
    read_certainty,
    read_facts,
    read_relations,
)
from tasks.params.base import BaseParams
from tasks.params.facts import FactsParams, SplitParams
from tasks.params.section import StageParams
from tasks.params.synthesize import SynthesizeParams
from tasks.synthesis.chains import check_chain_relations
from tasks.synthesis.recipes import Draw, Phrasing, build

log = logging.getLogger(__name__)


class Params(StageParams):
    """The sections of params.yaml this stage reads."""
    base: BaseParams
    facts: FactsParams
    synthesize: SynthesizeParams


def run(p: Params, root: Path) -> None:
    splits = synthesize(read_facts(root / FACTS), read_relations(root / RELATIONS), read_beliefs(root / PROBE),
                        p.synthesize, p.facts, p.base.seed, read_certainty(root / PROBE))
    write_splits(splits, root / DATA_DIR)
    log.info("wrote %s", {k: len(v) for k, v in splits.items()})
    log.info("train mix: %s", split_stats(splits["train"]))


def allocate(n: int, weights: dict[str, float]) -> dict[str, int]:
    """Split n into integer counts proportional to weights (largest remainder, stable order)."""
    total = sum(weights.values())
    raw = {k: n * w / total for k, w in weights.items()}
    counts = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: (counts[k] - raw[k], k))[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


@dataclass
class World:
    """What every split draws from: all facts, the relations, and the base model's beliefs."""

    facts: list[Fact]
    relations: dict[str, Relation]
    objects: dict[str, list[tuple[str, tuple[str, ...]]]]  # relation -> (object, aliases), sorted
    by_subject: dict[tuple[str, str], Fact]
    beliefs: dict[str, str]  # fact key -> the base model's closed-book answer, where it names an object of the type
    source_weights: dict[str, float]
    certainty: dict[str, float]  # fact key -> the base model's probability of the fact's object (probe)


def make_world(facts: list[Fact], relations: dict[str, Relation], beliefs: dict[str, str], p: SynthesizeParams,
               facts_params: FactsParams, certainty: dict[str, float] | None = None) -> World:
    if p.mix.get("multi_hop", 0) > 0 and not any(f.relation == "city_country" for f in facts):
        raise KprefError("synthesize.mix.multi_hop needs city facts: enable facts.sources.cities")
    if p.long_chains > 0:
        check_chain_relations({f.relation for f in facts})
    objects: dict[str, dict[str, tuple[str, ...]]] = defaultdict(dict)
    for f in facts:
        objects[f.relation].setdefault(f.object, f.aliases)
    pools = {rel: sorted(objs.items()) for rel, objs in objects.items()}
    return World(facts, relations, pools, {(f.relation, f.subject): f for f in facts}, typed(beliefs, facts, pools),
                 facts_params.sources.weights(), dict(certainty or {}))


def synthesize(facts: list[Fact], relations: dict[str, Relation], beliefs: dict[str, str], p: SynthesizeParams,
               facts_params: FactsParams, seed: int, certainty: dict[str, float] | None = None
               ) -> dict[str, list[dict]]:
    """Every split's examples; `certainty` (fact key -> the base model's probability of its object)
    is carried by each example and draws the conflict settings' strong-prior stratum."""
    world = make_world(facts, relations, beliefs, p, facts_params, certainty)
    return {split: split_examples(split, world, p, facts_params.split, seed) for split in SPLITS}


def _split_facts(split: str, facts: list[Fact], ood: tuple[str, ...]) -> tuple[list[Fact], dict[str, list[Fact]]]:
    """The facts a split asks about, and those its distractor passages may state."""
    in_split = [f for f in facts if f.split == _subject_split(split)]
    if split == "test_ood_relation":
        usable = [f for f in in_split if f.relation in ood]
    else:
        usable = [f for f in in_split if f.relation not in ood]
    pools: dict[str, list[Fact]] = defaultdict(list)
    # distractor passages too: a held-out relation's statements never reach the other splits
    for f in (in_split if split == "test_ood_relation" else usable):
        pools[f.relation].append(f)
    return usable, pools


def _subject_split(split: str) -> str:
    """The facts' split a synthesized split asks about: its own, test for the held-out relations and phrasings."""
    return split if split in ("train", "val", OOD_DOMAIN) else "test"


def _counts(split: str, p: SynthesizeParams) -> dict[str, int]:
    if split in ("train", "val"):
        return allocate({"train": p.n_train, "val": p.n_val}[split], p.mix)
    n = {"test": p.n_test_per_setting, OOD_DOMAIN: p.n_ood_domain_per_setting}.get(split, p.n_ood_per_setting)
    # multi-hop has one composed phrasing and needs trained relations: in-distribution test only
    return {s: n for s in SETTINGS if split == "test" or s != "multi_hop"}


def split_examples(split: str, world: World, p: SynthesizeParams, sp: SplitParams, seed: int) -> list[dict]:
    usable, pools = _split_facts(split, world.facts, sp.ood_relations)
    counts = _counts(split, p)
    phrasing = Phrasing(sp.ood_phrasings, ood=split == "test_ood_phrasing")
    subject_split = _subject_split(split)
    rows: list[dict] = []
    seen: set[str] = set()
    for setting in SETTINGS:
        n = counts.get(setting, 0)
        if n == 0 or not usable:
            continue
        draw = Draw(random.Random(f"{seed}:{split}:{setting}"), world.relations, pools, world.objects,
                    world.by_subject, world.beliefs, p, phrasing, test=split.startswith("test"),
                    subject_split=subject_split)
        cands = _candidates(setting, split, usable, draw, world, p, sp)
        if cands:
            # irrelevant-context examples reuse the closed-book facts first: the same memory, asked with
            # and without a distractor, is what teaches the answer not to move
            order_rng = random.Random(f"{seed}:{split}:closed_book") if setting == "ctx_irrelevant" else draw.rng
            strong = _strong_share(setting, split, p)
            order = _weighted_order(cands, world.source_weights, n, order_rng,
                                    strongest(cands, world.certainty) if strong else {}, strong)
            rows += _draw_examples(setting, split, n, order, draw, seen, seed, world.certainty)
    if split in ("train", "val"):
        cap_pairs(rows, p.pairs.max_type_ratio, seed)
    return rows


def _candidates(setting: str, split: str, usable: list[Fact], draw: Draw, world: World, p: SynthesizeParams,
                sp: SplitParams) -> list[Fact]:
    """The facts a setting can be asked about in a split."""
    # replay: training's memory settings only; made-up facts: only where the prompt gives the answer
    memory = SETTINGS[setting].source == "parametric"
    apart = sp.conflict_sources if memory else sp.replay_sources
    cands = [f for f in usable if f.source not in apart]
    if setting == "multi_hop":
        cands = [f for f in usable if f.relation == "city_country" and any(
            rel.composed and draw.hop_ok(r, f.object) for r, rel in world.relations.items())]
    if split == "test_ood_phrasing":
        cands = [f for f in cands if len(world.relations[f.relation].questions) > sp.ood_phrasings]
    if memory and split in ("train", "val") and p.parametric_target == "model":
        # training's memory is the base model's own answer (KAFT), so only what it committed to
        # closed-book is trained (see probe.belief_answer)
        cands = [f for f in cands if f.key in world.beliefs]
        if not cands:
            raise KprefError(f"synthesize: no {split} fact has a closed-book answer from the probe for "
                             "synthesize.parametric_target 'model'; check data/probe.jsonl or use 'world'")
    return cands


def _draw_examples(setting: str, split: str, n: int, order: list[Fact], draw: Draw, seen: set[str],
                   seed: int, certainty: dict[str, float]) -> list[dict]:
    """n examples of a setting with prompts new to the split, walking `order` (and round again)."""
    rows: list[dict] = []
    tries = 0
    while len(rows) < n:
        fact = order[tries % len(order)]
        row = build(draw, setting, fact)
        tries += 1
        key = prompt_key(row["question"], row["instruction"], row["contexts"])
        if key in seen:
            if tries > 20 * n + 100:
                raise KprefError(f"synthesize: cannot make {n} distinct {setting} prompts for split {split!r} "
                                 f"from {len(set(order))} facts; lower the count or add facts")
            continue
        seen.add(key)
        made = len(rows)
        digest = hashlib.sha1(f"{seed}:{split}:{setting}:{made}".encode()).hexdigest()[:8]
        # a multi-hop question asks a composition of facts, whose certainty no single probe measures
        sure = certainty.get(fact.key) if setting != "multi_hop" else None
        rows.append(Example(id=f"{split}-{setting}-{made:05d}-{digest}", split=split, base_certainty=sure,
                            **row).to_dict())
    return rows


def cap_pairs(rows: list[dict], max_ratio: float, seed: int) -> None:
    """Keep the DPO error types balanced: drop surplus pairs (the example stays for SFT)."""
    by_type: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if r["error_type"]:
            by_type[r["error_type"]].append(r)
    if len(by_type) < 2:
        return
    cap = math.floor(max_ratio * min(len(v) for v in by_type.values()))
    for etype in sorted(by_type):
        group = sorted(by_type[etype], key=lambda r: r["id"])
        random.Random(f"{seed}:pairs:{etype}").shuffle(group)
        for r in group[cap:]:
            r["rejected"] = r["error_type"] = None


def typed(beliefs: dict[str, str], facts: list[Fact], objects: dict[str, list[tuple[str, tuple[str, ...]]]]
          ) -> dict[str, str]:
    """The beliefs that name an object of their relation's type (any fact's object or alias):
    "Port-au-Prince" for Guinea's capital stays, a made-up "Musandam" or "AZA-3" goes."""
    relation = {f.key: f.relation for f in facts}
    names = {rel: [n for o, aliases in objs for n in (o, *aliases)] for rel, objs in objects.items()}
    return {k: b for k, b in beliefs.items()
            if k in relation and any(overlaps(b, n) for n in names.get(relation[k], ()))}


def _strong_share(setting: str, split: str, p: SynthesizeParams) -> float:
    """The share of a setting's examples drawn from the strong-prior stratum in a split."""
    if setting not in FACT_CONFLICTS:
        return 0.0
    return p.strong_prior.test if split.startswith("test") else p.strong_prior.train


# the stratum: each relation's most certain fifth, the figures' top quintile
STRONG_FRACTION = 0.2


def strongest(cands: list[Fact], certainty: dict[str, float]) -> dict[str, list[Fact]]:
    """source -> its candidates of the strong-prior stratum: each relation's most certain fifth
    (at least one fact) of its measured candidates, so every form of answer (names, codes,
    numbers) has its share, not only the relations the model is surest of overall."""
    by_rel: dict[str, list[Fact]] = defaultdict(list)
    for f in cands:
        if f.key in certainty:
            by_rel[f.relation].append(f)
    out: dict[str, list[Fact]] = defaultdict(list)
    for rel in sorted(by_rel):
        ranked = sorted(set(by_rel[rel]), key=lambda f: (-certainty[f.key], f.subject))
        for f in ranked[: max(1, math.ceil(STRONG_FRACTION * len(ranked)))]:
            out[f.source].append(f)
    return dict(out)


def _weighted_order(cands: list[Fact], weights: dict[str, float], n: int, rng: random.Random,
                    strong: dict[str, list[Fact]] | None = None, share: float = 0.0) -> list[Fact]:
    """n facts drawn so each source gets its weight's share, cycling through each source's facts;
    `share` of a source's draws from its `strong` stratum, where it has one."""
    by_src: dict[str, list[Fact]] = defaultdict(list)
    for f in cands:
        by_src[f.source].append(f)
    counts = allocate(n, {s: weights.get(s, 1.0) for s in sorted(by_src)})
    order: list[Fact] = []
    for src in sorted(by_src):
        facts = list(by_src[src])
        rng.shuffle(facts)
        top = list((strong or {}).get(src, ()))
        k = round(share * counts[src]) if top else 0
        if k:
            rng.shuffle(top)
            order += [top[i % len(top)] for i in range(k)]
        order += [facts[i % len(facts)] for i in range(counts[src] - k)]
    # a spare lap of every candidate, for when a drawn prompt repeats and is skipped
    spare = list(cands)
    rng.shuffle(spare)
    rng.shuffle(order)
    return order + spare


def split_stats(rows: list[dict]) -> dict:
    return {"settings": dict(Counter(r["setting"] for r in rows)),
            "error_types": dict(Counter(r["error_type"] for r in rows if r["error_type"]))}


def write_splits(splits: dict[str, list[dict]], out_dir: str | Path) -> dict[str, Path]:
    return {split: write_jsonl(Path(out_dir) / f"{split}.jsonl", rows) for split, rows in splits.items()}
