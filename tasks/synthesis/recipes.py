"""One recipe per knowledge-conflict setting: how the synthesize stage turns a fact into an example.

Each setting of `schema.SETTINGS` (whose answer is right, how its DPO pair is wrong) has the
function of the same name here, registered with `@recipe`. A tenth setting is one row there
and one function here. Every recipe draws from `Draw.rng` alone, in a fixed order: same
facts, params and seed, same examples.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

from tasks.core.metrics import matches, overlaps
from tasks.core.schema import CARRIER_ERROR, SETTINGS, Fact, KprefError, Relation
from tasks.params.synthesize import SynthesizeParams
from tasks.synthesis.chains import MADE_UP_HOPS, STARTS, walk


def weighted(rng: random.Random, weights: dict[str, float]) -> str:
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
class Draw:
    """What a recipe draws from: one split's facts and one setting's random stream."""

    rng: random.Random
    relations: dict[str, Relation]
    pools: dict[str, list[Fact]]  # relation -> facts usable as distractors in this split
    objects: dict[str, list[tuple[str, tuple[str, ...]]]]  # relation -> (object, aliases), all facts
    by_subject: dict[tuple[str, str], Fact]  # (relation, subject) -> fact, all facts
    beliefs: dict[str, str]
    p: SynthesizeParams
    phrasing: Phrasing
    test: bool
    subject_split: str

    @property
    def uses_beliefs(self) -> bool:
        return not self.test and self.p.parametric_target == "model"

    def hop_ok(self, relation: str, country: str) -> bool:
        """A second hop the split may state: train only about train subjects, val about train or val
        ones, so no held-out country's fact rides into training inside a multi-hop prompt."""
        g = self.by_subject.get((relation, country))
        allowed = {"train": ("train",), "val": ("train", "val")}.get(self.subject_split)
        return g is not None and (allowed is None or g.split in allowed)

    @cached_property
    def chain_ends(self) -> tuple[dict, dict, dict]:
        """What a long chain may start from, pass through and end in (`chains.walk`'s arguments):
        fixed for the split, so drawn up once rather than for each chain."""
        return ({r: [f.subject for f in self.pools.get(r, [])] for r in STARTS},
                {r: [o for o, _ in self.objects.get(r, [])] for r in MADE_UP_HOPS},
                {r: _stated_countries(self, r) for r, rel in sorted(self.relations.items()) if rel.composed})


@dataclass(frozen=True)
class Ask:
    """How one example is asked: the relation, the question and the drawn style and context format.
    Every answer is the relation's one statement, whichever phrasing asked it."""

    rel: Relation
    template: str
    style: int
    fmt: str

    def question(self, f: Fact) -> str:
        return self.template.format(s=f.subject)

    def answer(self, s: str, o: str) -> str:
        return self.rel.say(s, o)


# -- the pieces recipes are made of -------------------------------------------------------------
def other_object(d: Draw, f: Fact, exclude: set[str], use_source_cf: bool = False) -> tuple[str, tuple[str, ...]]:
    """A counterfactual object of the same relation (hence the same type)."""
    taken = [f.object, *f.aliases, *exclude]  # "Kazakh" is as true of Kazakhstan as "Kazakhstani"
    if use_source_cf and f.counterfactual and not any(overlaps(f.counterfactual, t) for t in taken):
        return f.counterfactual, ()
    choices = [o for o in d.objects[f.relation] if not any(overlaps(o[0], t) for t in taken)]
    if not choices:
        raise KprefError(f"synthesize: relation {f.relation!r} has too few distinct objects for counterfactuals")
    return d.rng.choice(choices)


def other_fact(d: Draw, f: Fact, exclude_subjects: set[str], same_relation: bool = True) -> Fact:
    pool = [g for g in d.pools.get(f.relation, []) if g.subject not in exclude_subjects] if same_relation else []
    if not pool:
        pool = [g for rel in sorted(d.pools) for g in d.pools[rel]
                if g.subject not in exclude_subjects and g.subject != f.subject]
    if not pool:
        raise KprefError("synthesize: too few facts in this split for distractor passages")
    return d.rng.choice(pool)


def distractors(d: Draw, f: Fact, k: int) -> list[tuple[str, Fact]]:
    """k passages about other subjects; the first shares the relation, a tempting wrong answer."""
    used, out = {f.subject}, []
    for i in range(k):
        g = other_fact(d, f, used, same_relation=i == 0)
        used.add(g.subject)
        out.append((d.relations[g.relation].say(g.subject, g.object), g))
    return out


def render_contexts(d: Draw, relevant: list[str], f: Fact, fmt: str) -> tuple[list[str], Fact | None]:
    """Render the relevant statements (or none) with distractors in the chosen format."""
    n_distract = {"sentence": 0, "paragraph": 2, "passages": 2}[fmt] + (0 if relevant else 1)
    ds = distractors(d, f, n_distract) if n_distract else []
    passages = list(relevant) + [text for text, _ in ds]
    d.rng.shuffle(passages)
    first = ds[0][1] if ds else None
    return ([" ".join(passages)] if fmt != "passages" else passages), first


def parametric(d: Draw, f: Fact) -> tuple[str, tuple[str, ...]]:
    """(target, aliases) when the model's own memory should answer: in training, the base model's
    own closed-book answer (KAFT, `synthesize.parametric_target`); in test, the world's."""
    belief = d.beliefs.get(f.key)
    if d.uses_beliefs and belief and belief != f.object:
        return belief, ()
    return f.object, f.aliases


def example(d: Draw, setting: str, f: Fact, ask: Ask, target: str, aliases, *, instruction: str | None = None,
            contexts: list[str] = (), answers: dict | None = None, rejected: str | None = None) -> dict:
    """The record of a one-hop example; the source and the pair's error type are the setting's."""
    spec = SETTINGS[setting]
    if rejected and matches(rejected, [target]):
        # a belief like "Uzbekistan" is inside "Uzbekistan is in Africa": no clean pair to learn from
        rejected = None
    return record(setting, f, ask, ask.template, instruction, contexts, (target, aliases), spec.source,
                  {"instruction": None, "context": None, **(answers or {}), "parametric": parametric(d, f)[0]},
                  f.object, ask.answer(f.subject, target), rejected, spec.error_type if rejected else None)


def record(setting: str, f: Fact, ask: Ask, template: str, instruction: str | None, contexts,
           answer: tuple[str, tuple[str, ...]], expected_source: str, answers: dict, world_answer: str,
           completion: str, rejected: str | None, error_type: str | None, relation: str | None = None,
           bridge: str | None = None) -> dict:
    """An example's fields (schema.Example less its id and split), of a question about `f`'s
    subject asked with `template`; `relation` names a composed one (multi-hop)."""
    target, aliases = answer
    return {
        "setting": setting, "subject": f.subject, "relation": relation or f.relation,
        "question": template.format(s=f.subject), "instruction": instruction, "contexts": list(contexts),
        "target": target, "aliases": list(aliases), "expected_source": expected_source, "answers": answers,
        "world_answer": world_answer, "completion": completion, "source": f.source, "question_template": template,
        "assumption_style": ask.style if instruction else None, "context_format": ask.fmt if contexts else None,
        "bridge": bridge, "rejected": rejected, "error_type": error_type,
    }


# -- the recipes ----------------------------------------------------------------------------------
Recipe = Callable[[Draw, Fact, Ask], dict]
RECIPES: dict[str, Recipe] = {}


def recipe(fn: Recipe) -> Recipe:
    """Register `fn` as the builder of the setting it is named after."""
    if fn.__name__ not in SETTINGS:
        raise KprefError(f"recipes: {fn.__name__!r} is no setting of schema.SETTINGS")
    RECIPES[fn.__name__] = fn
    return fn


def build(d: Draw, setting: str, f: Fact) -> dict:
    """One example of `setting` about fact `f`: phrasing, assumption style and context format are drawn first."""
    rel = d.relations[f.relation]
    template = rel.questions[d.phrasing.pick(d.rng, len(rel.questions))]
    style = d.phrasing.pick(d.rng, d.p.assumption_styles)
    ask = Ask(rel, template, style, weighted(d.rng, d.p.context_formats))
    return RECIPES[setting](d, f, ask)


@recipe
def closed_book(d: Draw, f: Fact, ask: Ask) -> dict:
    target, aliases = parametric(d, f)
    return example(d, "closed_book", f, ask, target, aliases)


@recipe
def ctx_irrelevant(d: Draw, f: Fact, ask: Ask) -> dict:
    """Passages about other subjects only: memory answers, and copying a passage is the error."""
    target, aliases = parametric(d, f)
    ctx, g = render_contexts(d, [], f, ask.fmt)
    answers, rejected = {}, None
    if g is not None and g.relation == f.relation and not overlaps(g.object, f.object):
        answers["distractor"] = g.object
        rejected = ask.answer(f.subject, g.object)
    return example(d, "ctx_irrelevant", f, ask, target, aliases, contexts=ctx, answers=answers, rejected=rejected)


@recipe
def ctx_support(d: Draw, f: Fact, ask: Ask) -> dict:
    ctx, _ = render_contexts(d, [ask.rel.say(f.subject, f.object)], f, ask.fmt)
    return example(d, "ctx_support", f, ask, f.object, f.aliases, contexts=ctx, answers={"context": f.object})


def _context_wins(d: Draw, setting: str, f: Fact, ask: Ask, fmt: str, instruction: str | None = None) -> dict:
    target, aliases = other_object(d, f, set(), use_source_cf=True)
    ctx, _ = render_contexts(d, [ask.rel.say(f.subject, target)], f, fmt)
    if setting == "instr_irrelevant":  # drawn after the passages, as the instruction is about another fact
        g = other_fact(d, f, {f.subject})
        g_obj, _ = other_object(d, g, set())
        instruction = d.relations[g.relation].assume(g.subject, g_obj, ask.style)
    return example(d, setting, f, ask, target, aliases, instruction=instruction, contexts=ctx,
                   answers={"context": target}, rejected=ask.answer(f.subject, f.object))


@recipe
def ctx_counterfactual(d: Draw, f: Fact, ask: Ask) -> dict:
    """A relevant passage contradicts the world: the passage wins."""
    return _context_wins(d, "ctx_counterfactual", f, ask, ask.fmt)


@recipe
def ctx_mixed(d: Draw, f: Fact, ask: Ask) -> dict:
    """Several numbered passages, one relevant and counterfactual: it wins."""
    return _context_wins(d, "ctx_mixed", f, ask, "passages")


@recipe
def instr_irrelevant(d: Draw, f: Fact, ask: Ask) -> dict:
    """An assumption about another fact beside a relevant passage: the passage wins."""
    return _context_wins(d, "instr_irrelevant", f, ask, ask.fmt)


@recipe
def instr_only(d: Draw, f: Fact, ask: Ask) -> dict:
    target, aliases = other_object(d, f, set(), use_source_cf=True)
    return example(d, "instr_only", f, ask, target, aliases, instruction=ask.rel.assume(f.subject, target, ask.style),
                   answers={"instruction": target}, rejected=ask.answer(f.subject, f.object))


@recipe
def instr_vs_ctx(d: Draw, f: Fact, ask: Ask) -> dict:
    """An assumption and a relevant passage disagree: the assumption wins."""
    target, aliases = other_object(d, f, set(), use_source_cf=True)
    ctx_obj, _ = other_object(d, f, {target})
    instruction = ask.rel.assume(f.subject, target, ask.style)
    ctx, _ = render_contexts(d, [ask.rel.say(f.subject, ctx_obj)], f, ask.fmt)
    return example(d, "instr_vs_ctx", f, ask, target, aliases, instruction=instruction, contexts=ctx,
                   answers={"instruction": target, "context": ctx_obj}, rejected=ask.answer(f.subject, ctx_obj))


def _stated_countries(d: Draw, r2: str) -> list[str]:
    """The countries whose `r2` fact this split may state in a multi-hop prompt (`Draw.hop_ok`), sorted."""
    return sorted({c for (r, c) in d.by_subject if r == r2 and d.hop_ok(r, c)})


def _new_country(d: Draw, f: Fact, r2: str, world: str) -> str:
    others = [c for c in _stated_countries(d, r2)
              if c != f.object and not overlaps(d.by_subject[(r2, c)].object, world)]
    return d.rng.choice(others)


def _edit_first_hop(d: Draw, f: Fact, r2: str, hop2: Fact):
    """The city moves to another country: the answer is that country's."""
    new_country = _new_country(d, f, r2, hop2.object)
    target_fact = d.by_subject[(r2, new_country)]
    edit = (d.relations["city_country"], f.subject, new_country)
    support = d.relations[r2].say(new_country, target_fact.object)
    return [edit], target_fact.object, target_fact.aliases, new_country, [support]


def _edit_second_hop(d: Draw, f: Fact, r2: str, hop2: Fact):
    """The country's capital/currency/... changes: the city stays where it is."""
    target, aliases = other_object(d, hop2, set())
    support = d.relations["city_country"].say(f.subject, f.object)
    return [(d.relations[r2], f.object, target)], target, aliases, f.object, [support]


@recipe
def multi_hop(d: Draw, f: Fact, ask: Ask) -> dict:
    """city -> country -> X: the edit changes the answer only through composition. The unedited
    hop comes as a retrieved passage, so the answer is composed from what the prompt says rather
    than from the small model's memory of the other hop; with `long_chains`, some training examples
    are a longer chain instead (tasks/synthesis/chains.py)."""
    seconds = sorted(r for r, rel in d.relations.items() if rel.composed and d.hop_ok(r, f.object))
    if ("city_country", f.subject) not in d.by_subject or not seconds:
        raise KprefError(f"synthesize: no second hop for {f.subject!r}")
    r2 = d.rng.choice(seconds)
    rel2, hop2 = d.relations[r2], d.by_subject[(r2, f.object)]
    carrier = d.rng.choice(("instruction", "context"))
    first = d.rng.random() < 0.5
    # the draw is made only when long chains are on, so with none the examples stay as they were
    if d.subject_split == "train" and d.p.long_chains > 0 and d.rng.random() < d.p.long_chains:
        return _long_chain(d, ask, carrier)
    edit = _edit_first_hop if first else _edit_second_hop
    edits, target, aliases, bridge, supports = edit(d, f, r2, hop2)
    return _multi_hop_row(d, ask, carrier, edits, supports, f, f"city_country+{r2}", rel2.composed,
                          (target, aliases), bridge, hop2)


def _long_chain(d: Draw, ask: Ask, carrier: str) -> dict:
    """A made-up chain to a real country whose X the last edit changes: MQuAKE-hard's shape."""
    c = walk(d.rng, *d.chain_ends)
    last = d.by_subject[(c.last, c.country)]
    target, aliases = other_object(d, last, set())
    edits = [(d.relations[r], s, o) for r, s, o in c.hops] + [(d.relations[c.last], c.country, target)]
    d.rng.shuffle(edits)  # users list their edits in any order
    if d.p.chain_hop_questions > 0 and d.rng.random() < d.p.chain_hop_questions:
        return _chain_hop(d, ask, carrier, edits, (target, aliases))
    start = d.by_subject[(c.hops[0][0], c.subject)]
    return _multi_hop_row(d, ask, carrier, edits, [], start, "+".join([r for r, _, _ in c.hops] + [c.last]),
                          c.template, (target, aliases), c.country, last)


def _chain_hop(d: Draw, ask: Ask, carrier: str, edits: list, last: tuple[str, tuple[str, ...]]) -> dict:
    """One edit of a chain asked alone, the whole chain stated, as MQuAKE asks its single hops:
    trained on whole chains only, the model answered those with a later hop ("Who developed X?"
    -> the CEO's citizenship). Only an edit that changes a fact is asked (its DPO pair rejects the
    fact); `last`: the last edit's object and its aliases."""
    asked = [(rel, f, o) for rel, s, o in edits
             if (f := d.by_subject.get((rel.name, s))) is not None and not overlaps(f.object, o)]
    rel, f, o = d.rng.choice(asked)
    template = rel.questions[d.phrasing.pick(d.rng, len(rel.questions))]
    return _multi_hop_row(d, ask, carrier, edits, [], f, rel.name, template, (o, last[1] if o == last[0] else ()),
                          f.subject, f)


def _multi_hop_row(d: Draw, ask: Ask, carrier: str, edits: list, supports: list[str], f: Fact, relation: str,
                   template: str, answer: tuple[str, tuple[str, ...]], bridge: str, hop: Fact) -> dict:
    """The record of a composed question about `f`'s subject whose last hop is `hop` (or, from
    `_chain_hop`, one edit asked alone: `hop` is `f`): the edits by `carrier`, the rest of the chain
    as passages."""
    target, rel = answer[0], d.relations[hop.relation]
    instruction = " ".join(erel.assume(es, eo, ask.style) for erel, es, eo in edits) \
        if carrier == "instruction" else None
    stated = supports if instruction else [erel.say(es, eo) for erel, es, eo in edits] + supports
    ctx, _ = render_contexts(d, stated, f, ask.fmt)
    # the completion names the bridge first ("The capital of Spain is Madrid."): the composition
    # is spelled out in the relation's own words, the shape of every other answer
    return record("multi_hop", f, ask, template, instruction, ctx, answer, carrier,
                  {"instruction": None, "context": None, "parametric": hop.object, carrier: target}, hop.object,
                  rel.say(bridge, target), rel.say(hop.subject, hop.object), CARRIER_ERROR[carrier],
                  relation=relation, bridge=bridge)
