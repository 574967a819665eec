"""Stage synthesize: real facts -> knowledge-conflict examples in train/val/test splits.

Every example names the source the hierarchy picks (instruction > context > parametric),
the answer each source gives, and a `completion` to train on. Test subjects never occur
in train or val. Same facts, probe, params and seed: same bytes.
"""
from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from tasks.atomic import write_jsonl
from tasks.errors import KprefError
from tasks.facts import RELATIONS
from tasks.params import SETTINGS, SynthesizeParams
from tasks.schema import Example, Fact

SPLITS = ("train", "val", "test")


def allocate(n: int, weights: dict[str, float]) -> dict[str, int]:
    """Split n into integer counts proportional to weights (largest remainder, stable order)."""
    total = sum(weights.values())
    raw = {k: n * w / total for k, w in weights.items()}
    counts = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: (counts[k] - raw[k], k))[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


def split_subjects(subjects: list[str], p: SynthesizeParams, seed: int) -> dict[str, set[str]]:
    subjects = sorted(subjects)
    random.Random(f"{seed}:subjects").shuffle(subjects)
    n_test = max(1, round(len(subjects) * p.test_subject_fraction))
    n_val = round(len(subjects) * p.val_subject_fraction)
    if len(subjects) - n_test - n_val < 1:
        raise KprefError(f"synthesize: only {len(subjects)} subjects; too few for train/val/test splits")
    return {
        "test": set(subjects[:n_test]),
        "val": set(subjects[n_test : n_test + n_val]),
        "train": set(subjects[n_test + n_val :]),
    }


@dataclass
class _Builder:
    """Builds one example of a setting for a fact; `rng` is per split and setting."""

    rng: random.Random
    pools: dict[str, list[Fact]]  # relation -> facts of this split (for distractors)
    objects: dict[str, list[tuple[str, tuple[str, ...]]]]  # relation -> (object, aliases), all splits
    beliefs: dict[str, str]
    parametric_target: str  # "model" or "world"

    def other_object(self, f: Fact, exclude: set[str]) -> tuple[str, tuple[str, ...]]:
        # Counterfactuals come from the same relation, hence the same object type.
        choices = [o for o in self.objects[f.relation] if o[0] not in exclude and o[0] != f.object]
        if not choices:
            raise KprefError(f"synthesize: relation {f.relation!r} has too few distinct objects for counterfactuals")
        return self.rng.choice(choices)

    def other_fact(self, f: Fact, exclude_subjects: set[str] = frozenset()) -> Fact:
        pool = [g for g in self.pools[f.relation] if g.subject != f.subject and g.subject not in exclude_subjects]
        if not pool:
            pool = [g for rel in sorted(self.pools) for g in self.pools[rel] if g.subject != f.subject]
        return self.rng.choice(pool)

    def distractor(self, f: Fact, exclude_subjects: set[str] = frozenset()) -> str:
        """A passage about another subject whose object is a tempting wrong answer."""
        g = self.other_fact(f, exclude_subjects)
        return RELATIONS[g.relation].statement.format(s=g.subject, o=g.object)

    def parametric(self, f: Fact, split: str) -> tuple[str, tuple[str, ...], str]:
        """(target, aliases, completion) when the model's own memory should answer."""
        rel = RELATIONS[f.relation]
        world = rel.statement.format(s=f.subject, o=f.object)
        belief = self.beliefs.get(f.key, "").strip()
        if split != "test" and self.parametric_target == "model" and belief:
            return belief, (), belief
        return f.object, f.aliases, world

    def build(self, setting: str, f: Fact, split: str) -> dict:
        rel = RELATIONS[f.relation]
        say = lambda o: rel.statement.format(s=f.subject, o=o)  # noqa: E731
        assume = lambda o: rel.assumption.format(s=f.subject, o=o)  # noqa: E731
        question = self.rng.choice(rel.questions).format(s=f.subject)
        instruction, contexts = None, []
        answers: dict[str, str | None] = {"instruction": None, "context": None}
        if setting in ("closed_book", "ctx_irrelevant"):
            target, aliases, completion = self.parametric(f, split)
            if setting == "ctx_irrelevant":
                contexts = [self.distractor(f)]
            source = "parametric"
        elif setting == "ctx_support":
            target, aliases = f.object, f.aliases
            contexts = [say(f.object)]
            answers["context"] = f.object
            source = "context"
        elif setting in ("ctx_counterfactual", "ctx_mixed", "instr_irrelevant"):
            target, aliases = self.other_object(f, set())
            contexts = [say(target)]
            answers["context"] = target
            if setting == "ctx_mixed":
                used = {f.subject}
                for _ in range(2):
                    g = self.other_fact(f, used)
                    used.add(g.subject)
                    contexts.append(RELATIONS[g.relation].statement.format(s=g.subject, o=g.object))
                self.rng.shuffle(contexts)
            if setting == "instr_irrelevant":
                g = self.other_fact(f)
                g_obj, _ = self.other_object(g, set())
                instruction = RELATIONS[g.relation].assumption.format(s=g.subject, o=g_obj)
            source = "context"
        elif setting == "instr_only":
            target, aliases = self.other_object(f, set())
            instruction = assume(target)
            answers["instruction"] = target
            source = "instruction"
        elif setting == "instr_vs_ctx":
            target, aliases = self.other_object(f, set())
            ctx_obj, _ = self.other_object(f, {target})
            instruction, contexts = assume(target), [say(ctx_obj)]
            answers["instruction"], answers["context"] = target, ctx_obj
            source = "instruction"
        else:
            raise KprefError(f"synthesize: setting {setting!r} is not implemented")
        if source != "parametric":
            completion = say(target)
        p_target, _, _ = self.parametric(f, split)
        answers["parametric"] = p_target
        return {
            "split": split,
            "setting": setting,
            "subject": f.subject,
            "relation": f.relation,
            "question": question,
            "instruction": instruction,
            "contexts": contexts,
            "target": target,
            "aliases": list(aliases),
            "expected_source": source,
            "answers": answers,
            "world_answer": f.object,
            "completion": completion,
        }


def synthesize(facts: list[Fact], beliefs: dict[str, str], p: SynthesizeParams, seed: int) -> dict[str, list[dict]]:
    subjects = split_subjects(sorted({f.subject for f in facts}), p, seed)
    objects: dict[str, dict[str, tuple[str, ...]]] = defaultdict(dict)
    for f in facts:
        objects[f.relation].setdefault(f.object, f.aliases)
    object_pools = {rel: sorted(objs.items()) for rel, objs in objects.items()}

    counts = {
        "train": allocate(p.n_train, p.mix),
        "val": allocate(p.n_val, p.mix),
        "test": {s: p.n_test_per_setting for s in SETTINGS},
    }
    out: dict[str, list[dict]] = {}
    for split in SPLITS:
        split_facts = [f for f in facts if f.subject in subjects[split]]
        if not split_facts:
            out[split] = []
            continue
        pools: dict[str, list[Fact]] = defaultdict(list)
        for f in split_facts:
            pools[f.relation].append(f)
        rows = []
        for setting in SETTINGS:
            n = counts[split].get(setting, 0)
            rng = random.Random(f"{seed}:{split}:{setting}")
            builder = _Builder(rng, pools, object_pools, beliefs, p.parametric_target)
            order = list(split_facts)
            for i in range(n):
                if i % len(order) == 0:
                    rng.shuffle(order)
                row = builder.build(setting, order[i % len(order)], split)
                digest = hashlib.sha1(f"{seed}:{split}:{setting}:{i}".encode()).hexdigest()[:8]
                rows.append(Example(id=f"{split}-{setting}-{i:05d}-{digest}", **row).to_dict())
        out[split] = rows
    return out


def write_splits(splits: dict[str, list[dict]], out_dir: str | Path = "data") -> dict[str, Path]:
    paths = {}
    for split, rows in splits.items():
        paths[split] = write_jsonl(Path(out_dir) / f"{split}.jsonl", rows)
    return paths
