"""Stage synthesize: real facts -> knowledge-conflict examples in train/val/test(+OOD) splits.

Every example names the source the hierarchy picks (instruction > context > parametric),
the answer each source gives, a `completion` to train on, and for DPO a `rejected` answer
of a named error type. Test subjects never occur in train or val; held-out relations and
held-out phrasings form their own test splits. Same facts, probe, params and seed: same bytes.
"""
from __future__ import annotations

import hashlib
import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from tasks.atomic import write_jsonl
from tasks.errors import KprefError
from tasks.facts import Relation
from tasks.metrics import matches, overlaps
from tasks.params import SETTINGS, FactsParams, SynthesizeParams
from tasks.probe import facts_to_probe
from tasks.schema import Example, Fact

SPLITS = ("train", "val", "test", "test_ood_relation", "test_ood_phrasing")
TEST_SPLITS = SPLITS[2:]
ERROR_TYPES = ("contextual_ignorance", "contextual_overinclusion", "instruction_neglect")
SETTING_SOURCE = {
    "closed_book": "parametric",
    "ctx_irrelevant": "parametric",
    "ctx_support": "context",
    "ctx_counterfactual": "context",
    "ctx_mixed": "context",
    "instr_irrelevant": "context",
    "instr_only": "instruction",
    "instr_vs_ctx": "instruction",
    "multi_hop": None,  # the edit's carrier: instruction or context
}
# What the model is taught to say when its memory holds no answer (synthesize.unknown_belief: abstain).
ABSTAIN = "I don't know"
CONFLICT_SETTINGS = ("ctx_counterfactual", "ctx_mixed", "instr_only", "instr_vs_ctx", "instr_irrelevant", "multi_hop")


def allocate(n: int, weights: dict[str, float]) -> dict[str, int]:
    """Split n into integer counts proportional to weights (largest remainder, stable order)."""
    total = sum(weights.values())
    raw = {k: n * w / total for k, w in weights.items()}
    counts = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: (counts[k] - raw[k], k))[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


def _weighted(rng: random.Random, weights: dict[str, float]) -> str:
    keys = sorted(k for k, w in weights.items() if w > 0)
    return rng.choices(keys, [weights[k] for k in keys])[0]


@dataclass
class Phrasing:
    """Which question phrasings and assumption styles a split may use."""

    held_out: int  # how many of the last phrasings/styles are reserved for the OOD-phrasing split
    ood: bool

    def pick(self, rng: random.Random, n: int) -> int:
        if n <= self.held_out:  # too few phrasings to hold any out (e.g. MQuAKE's one question)
            return rng.randrange(n)
        lo, hi = (n - self.held_out, n) if self.ood else (0, n - self.held_out)
        return rng.randrange(lo, hi)


@dataclass
class _Builder:
    rng: random.Random
    relations: dict[str, Relation]
    pools: dict[str, list[Fact]]  # relation -> facts usable as distractors in this split
    objects: dict[str, list[tuple[str, tuple[str, ...]]]]  # relation -> (object, aliases), all facts
    by_subject: dict[tuple[str, str], Fact]  # (relation, subject) -> fact, all facts
    beliefs: dict[str, str]
    unknown_relations: frozenset[str]  # relations the model does not know: no answer means "I don't know"
    p: SynthesizeParams
    phrasing: Phrasing
    test: bool
    subject_split: str

    # -- pieces -------------------------------------------------------------------------------
    def other_object(self, f: Fact, exclude: set[str], use_source_cf: bool = False) -> tuple[str, tuple[str, ...]]:
        """A counterfactual object of the same relation (hence the same type)."""
        taken = [f.object, *f.aliases, *exclude]  # "Kazakh" is as true of Kazakhstan as "Kazakhstani"
        if use_source_cf and f.counterfactual and not any(overlaps(f.counterfactual, t) for t in taken):
            return f.counterfactual, ()
        choices = [o for o in self.objects[f.relation] if not any(overlaps(o[0], t) for t in taken)]
        if not choices:
            raise KprefError(f"synthesize: relation {f.relation!r} has too few distinct objects for counterfactuals")
        return self.rng.choice(choices)

    def other_fact(self, f: Fact, exclude_subjects: set[str], same_relation: bool = True) -> Fact:
        pool = [g for g in self.pools.get(f.relation, []) if g.subject not in exclude_subjects] if same_relation else []
        if not pool:
            pool = [g for rel in sorted(self.pools) for g in self.pools[rel]
                    if g.subject not in exclude_subjects and g.subject != f.subject]
        if not pool:
            raise KprefError("synthesize: too few facts in this split for distractor passages")
        return self.rng.choice(pool)

    def distractors(self, f: Fact, k: int) -> list[tuple[str, Fact]]:
        """k passages about other subjects; the first shares the relation, a tempting wrong answer."""
        used, out = {f.subject}, []
        for i in range(k):
            g = self.other_fact(f, used, same_relation=i == 0)
            used.add(g.subject)
            out.append((self.relations[g.relation].say(g.subject, g.object), g))
        return out

    def contexts(self, relevant: list[str], f: Fact, fmt: str) -> tuple[list[str], Fact | None]:
        """Render the relevant statements (or none) with distractors in the chosen format."""
        n_distract = {"sentence": 0, "paragraph": 2, "passages": 2}[fmt] + (0 if relevant else 1)
        ds = self.distractors(f, n_distract) if n_distract else []
        passages = list(relevant) + [d for d, _ in ds]
        self.rng.shuffle(passages)
        first = ds[0][1] if ds else None
        return ([" ".join(passages)] if fmt != "passages" else passages), first

    def parametric(self, f: Fact) -> tuple[str, tuple[str, ...], str]:
        """(target, aliases, completion) when the model's own memory should answer.

        The completion states the belief in the relation's own words, so the tuned model
        answers every setting in one shape and its closed-book and irrelevant-context
        answers can be compared.
        """
        rel = self.relations[f.relation]
        belief = self.beliefs.get(f.key)
        if self.uses_beliefs and belief and belief != f.object:
            return belief, (), rel.say(f.subject, belief)
        if self.uses_beliefs and not belief and (self.p.unknown_belief == "abstain"
                                                 or f.relation in self.unknown_relations):
            return ABSTAIN, (), ABSTAIN + "."
        return f.object, f.aliases, rel.say(f.subject, f.object)

    @property
    def uses_beliefs(self) -> bool:
        return not self.test and self.p.parametric_target == "model"

    # -- one example ------------------------------------------------------------------------
    def build(self, setting: str, f: Fact) -> dict:
        rel = self.relations[f.relation]
        qi = self.phrasing.pick(self.rng, len(rel.questions))
        style = self.phrasing.pick(self.rng, self.p.assumption_styles)
        fmt = _weighted(self.rng, self.p.context_formats)
        question_template = rel.questions[qi]
        question = question_template.format(s=f.subject)
        instruction, contexts, bridge, uses_style, uses_ctx = None, [], None, False, False
        answers: dict[str, str | None] = {"instruction": None, "context": None}
        rejected = error = None
        world = f.object
        if setting in ("closed_book", "ctx_irrelevant"):
            target, aliases, completion = self.parametric(f)
            source = "parametric"
            if setting == "ctx_irrelevant":
                contexts, g = self.contexts([], f, fmt)
                uses_ctx = True
                if g is not None and g.relation == f.relation and not overlaps(g.object, f.object):
                    answers["distractor"] = g.object
                    rejected, error = rel.say(f.subject, g.object), "contextual_overinclusion"
        elif setting == "ctx_support":
            target, aliases = f.object, f.aliases
            contexts, _ = self.contexts([rel.say(f.subject, f.object)], f, fmt)
            answers["context"], source, uses_ctx = f.object, "context", True
        elif setting in ("ctx_counterfactual", "ctx_mixed", "instr_irrelevant"):
            target, aliases = self.other_object(f, set(), use_source_cf=True)
            contexts, _ = self.contexts([rel.say(f.subject, target)], f, "passages" if setting == "ctx_mixed" else fmt)
            answers["context"], source, uses_ctx = target, "context", True
            if setting == "instr_irrelevant":
                g = self.other_fact(f, {f.subject})
                g_obj, _ = self.other_object(g, set())
                instruction, uses_style = self.relations[g.relation].assume(g.subject, g_obj, style), True
            rejected, error = rel.say(f.subject, world), "contextual_ignorance"
        elif setting == "instr_only":
            target, aliases = self.other_object(f, set(), use_source_cf=True)
            instruction, uses_style = rel.assume(f.subject, target, style), True
            answers["instruction"], source = target, "instruction"
            rejected, error = rel.say(f.subject, world), "instruction_neglect"
        elif setting == "instr_vs_ctx":
            target, aliases = self.other_object(f, set(), use_source_cf=True)
            ctx_obj, _ = self.other_object(f, {target})
            instruction, uses_style = rel.assume(f.subject, target, style), True
            contexts, _ = self.contexts([rel.say(f.subject, ctx_obj)], f, fmt)
            uses_ctx = True
            answers["instruction"], answers["context"], source = target, ctx_obj, "instruction"
            rejected, error = rel.say(f.subject, ctx_obj), "instruction_neglect"
        elif setting == "multi_hop":
            return self.multi_hop(f, style, fmt)
        else:
            raise KprefError(f"synthesize: setting {setting!r} is not implemented")
        if source != "parametric":
            completion = rel.say(f.subject, target)
        if rejected and matches(rejected, [target]):
            # a belief like "Uzbekistan" is inside "Uzbekistan is in Africa": no clean pair to learn from
            rejected = error = None
        answers["parametric"] = self.parametric(f)[0]
        return {
            "setting": setting, "subject": f.subject, "relation": f.relation, "question": question,
            "instruction": instruction, "contexts": contexts, "target": target, "aliases": list(aliases),
            "expected_source": source, "answers": answers, "world_answer": world, "completion": completion,
            "source": f.source, "question_template": question_template,
            "assumption_style": style if uses_style else None, "context_format": fmt if uses_ctx else None,
            "bridge": bridge, "rejected": rejected, "error_type": error,
        }

    def hop_ok(self, relation: str, country: str) -> bool:
        """A second hop the split may state: train only about train subjects, val about train or val
        ones, so no held-out country's fact rides into training inside a multi-hop prompt."""
        g = self.by_subject.get((relation, country))
        allowed = {"train": ("train",), "val": ("train", "val")}.get(self.subject_split)
        return g is not None and (allowed is None or g.split in allowed)

    def multi_hop(self, f: Fact, style: int, fmt: str) -> dict:
        """city -> country -> X: the edit changes the answer only through composition."""
        country = self.by_subject.get(("city_country", f.subject))
        seconds = sorted(r for r, rel in self.relations.items() if rel.composed and self.hop_ok(r, f.object))
        if country is None or not seconds:
            raise KprefError(f"synthesize: no second hop for {f.subject!r}")
        r2 = self.rng.choice(seconds)
        rel1, rel2 = self.relations["city_country"], self.relations[r2]
        hop2 = self.by_subject[(r2, f.object)]
        world = hop2.object
        carrier = self.rng.choice(("instruction", "context"))
        if self.rng.random() < 0.5:  # edit the first hop: the city moves to another country
            others = sorted({c for (r, c) in self.by_subject if r == r2 and c != f.object and self.hop_ok(r, c)
                             and not overlaps(self.by_subject[(r, c)].object, world)})
            new_country = self.rng.choice(others)
            edit = (rel1, f.subject, new_country)
            target_fact = self.by_subject[(r2, new_country)]
            target, aliases, bridge = target_fact.object, target_fact.aliases, new_country
            support = rel2.say(new_country, target)
        else:  # edit the second hop: the country's capital/currency/... changes
            target, aliases = self.other_object(hop2, set())
            edit = (rel2, f.object, target)
            bridge = f.object
            support = rel1.say(f.subject, f.object)
        erel, es, eo = edit
        answers: dict[str, str | None] = {"instruction": None, "context": None, "parametric": world}
        # The unedited hop comes as a retrieved passage, so the answer is a composition of what
        # the prompt says rather than a test of the small model's memory of the other hop.
        if carrier == "instruction":
            instruction = erel.assume(es, eo, style)
            contexts, _ = self.contexts([support], f, fmt)
            error = "instruction_neglect"
        else:
            instruction = None
            contexts, _ = self.contexts([erel.say(es, eo), support], f, fmt)
            error = "contextual_ignorance"
        answers[carrier] = target
        return {
            "setting": "multi_hop", "subject": f.subject, "relation": f"city_country+{r2}",
            "question": rel2.composed.format(s=f.subject), "instruction": instruction, "contexts": contexts,
            "target": target, "aliases": list(aliases), "expected_source": carrier, "answers": answers,
            # the completion names the bridge first ("The capital of Spain is Madrid."): the composition
            # is spelled out in the relation's own words, the shape of every other answer
            "world_answer": world, "completion": rel2.say(bridge, target), "source": f.source,
            "question_template": rel2.composed, "assumption_style": style if carrier == "instruction" else None,
            "context_format": fmt, "bridge": bridge,
            "rejected": rel2.say(f.object, world), "error_type": error,
        }


def _prompt_key(row: dict) -> str:
    return hashlib.sha1(repr((row["question"], row["instruction"], row["contexts"])).encode()).hexdigest()


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


def synthesize(facts: list[Fact], relations: dict[str, Relation], beliefs: dict[str, str], p: SynthesizeParams,
               facts_params: FactsParams, seed: int) -> dict[str, list[dict]]:
    ood_rel = set(facts_params.split.ood_relations)
    held_out = facts_params.split.ood_phrasings
    if "multi_hop" in {s for s, w in p.mix.items() if w > 0} and not any(f.relation == "city_country" for f in facts):
        raise KprefError("synthesize.mix.multi_hop needs city facts: enable facts.sources.cities")
    objects: dict[str, dict[str, tuple[str, ...]]] = defaultdict(dict)
    for f in facts:
        objects[f.relation].setdefault(f.object, f.aliases)
    object_pools = {rel: sorted(objs.items()) for rel, objs in objects.items()}
    if p.typed_beliefs:
        beliefs = typed(beliefs, facts, object_pools)
    dont_know = unknown_relations(facts, beliefs, ood_rel, p.unknown_relation_share)
    by_subject = {(f.relation, f.subject): f for f in facts}
    weights = {src: w for src, w in _source_weights(facts_params).items()}

    out: dict[str, list[dict]] = {}
    for split in SPLITS:
        subject_split = "test" if split.startswith("test") else split
        in_split = [f for f in facts if f.split == subject_split]
        if split == "test_ood_relation":
            usable = [f for f in in_split if f.relation in ood_rel]
        else:
            usable = [f for f in in_split if f.relation not in ood_rel]
        pools: dict[str, list[Fact]] = defaultdict(list)
        # distractor passages too: a held-out relation's statements never reach the other splits
        for f in (in_split if split == "test_ood_relation" else usable):
            pools[f.relation].append(f)
        if split in ("train", "val"):
            counts = allocate({"train": p.n_train, "val": p.n_val}[split], p.mix)
        else:
            n = p.n_test_per_setting if split == "test" else p.n_ood_per_setting
            # multi-hop has one composed phrasing and needs trained relations: in-distribution test only
            counts = {s: n for s in SETTINGS if split == "test" or s != "multi_hop"}
        phrasing = Phrasing(held_out, ood=split == "test_ood_phrasing")
        rows, seen = [], set()
        for setting in SETTINGS:
            n = counts.get(setting, 0)
            if n == 0 or not usable:
                continue
            cands = usable
            rng = random.Random(f"{seed}:{split}:{setting}")
            builder = _Builder(rng, relations, pools, object_pools, by_subject, beliefs, dont_know, p, phrasing,
                               test=split.startswith("test"), subject_split=subject_split)
            if setting == "multi_hop":
                cands = [f for f in usable if f.relation == "city_country" and any(
                    rel.composed and builder.hop_ok(r, f.object) for r, rel in relations.items())]
            if split == "test_ood_phrasing":
                cands = [f for f in cands if len(relations[f.relation].questions) > held_out]
            if (SETTING_SOURCE[setting] == "parametric" and split in ("train", "val") and p.parametric_target == "model"
                    and p.unknown_belief == "skip"):
                # train memory only on what the model committed to closed-book (see probe.belief_answer)
                cands = [f for f in cands if f.key in beliefs or f.relation in dont_know]
                if not cands:
                    raise KprefError(f"synthesize: no {split} fact has a closed-book answer from the probe for "
                                     "synthesize.parametric_target 'model'; check data/probe.jsonl or use 'world'")
            if not cands:
                continue
            # irrelevant-context examples reuse the closed-book facts first: the same memory, asked with
            # and without a distractor, is what teaches the answer not to move
            order_rng = random.Random(f"{seed}:{split}:closed_book") if setting == "ctx_irrelevant" else rng
            order = _weighted_order(cands, weights, n, order_rng)
            made = tries = 0
            while made < n:
                f = order[tries % len(order)]
                tries += 1
                row = builder.build(setting, f)
                key = _prompt_key(row)
                if key in seen:
                    if tries > 20 * n + 100:
                        raise KprefError(f"synthesize: cannot make {n} distinct {setting} prompts for split "
                                         f"{split!r} from {len(cands)} facts; lower the count or add facts")
                    continue
                seen.add(key)
                digest = hashlib.sha1(f"{seed}:{split}:{setting}:{made}".encode()).hexdigest()[:8]
                rows.append(Example(id=f"{split}-{setting}-{made:05d}-{digest}", split=split, **row).to_dict())
                made += 1
        if split in ("train", "val"):
            cap_pairs(rows, p.pairs.max_type_ratio, seed)
        out[split] = rows
    return out


def typed(beliefs: dict[str, str], facts: list[Fact], objects: dict[str, list[tuple[str, tuple[str, ...]]]]
          ) -> dict[str, str]:
    """The beliefs that name an object of their relation's type (any fact's object or alias):
    "Port-au-Prince" for Guinea's capital stays, a made-up "Musandam" or "AZA-3" goes."""
    relation = {f.key: f.relation for f in facts}
    names = {rel: [n for o, aliases in objs for n in (o, *aliases)] for rel, objs in objects.items()}
    return {k: b for k, b in beliefs.items()
            if k in relation and any(overlaps(b, n) for n in names.get(relation[k], ()))}


def unknown_relations(facts: list[Fact], beliefs: dict[str, str], ood_relations: set[str], share: float
                      ) -> frozenset[str]:
    """Relations the base model answers for fewer than `share` of the facts it was probed on.

    A 135M model gives a real ISO code for 5 of 147 countries: such a relation is one it does
    not know, and "I don't know." is a target it can learn for the whole relation, where telling
    an unknown capital from a known one fact by fact is beyond it (benchmarks/results.md, expG).
    """
    if share <= 0:
        return frozenset()
    probed: dict[str, list[bool]] = defaultdict(list)
    for f in facts_to_probe(facts, tuple(ood_relations)):
        probed[f.relation].append(f.key in beliefs)
    return frozenset(rel for rel, known in probed.items() if sum(known) < share * len(known))


def _source_weights(facts_params: FactsParams) -> dict[str, float]:
    from tasks.facts import sources_from_params

    return {src.name: w for src, w in sources_from_params(facts_params)}


def _weighted_order(cands: list[Fact], weights: dict[str, float], n: int, rng: random.Random) -> list[Fact]:
    """n facts drawn so each source gets its weight's share, cycling through each source's facts."""
    by_src: dict[str, list[Fact]] = defaultdict(list)
    for f in cands:
        by_src[f.source].append(f)
    counts = allocate(n, {s: weights.get(s, 1.0) for s in sorted(by_src)})
    order: list[Fact] = []
    for src in sorted(by_src):
        facts = list(by_src[src])
        rng.shuffle(facts)
        order += [facts[i % len(facts)] for i in range(counts[src])]
    # a spare lap of every candidate, for when a drawn prompt repeats and is skipped
    spare = list(cands)
    rng.shuffle(spare)
    rng.shuffle(order)
    return order + spare


def split_stats(rows: list[dict]) -> dict:
    return {"settings": dict(Counter(r["setting"] for r in rows)),
            "error_types": dict(Counter(r["error_type"] for r in rows if r["error_type"]))}


def write_splits(splits: dict[str, list[dict]], out_dir: str | Path = "data") -> dict[str, Path]:
    return {split: write_jsonl(Path(out_dir) / f"{split}.jsonl", rows) for split, rows in splits.items()}
