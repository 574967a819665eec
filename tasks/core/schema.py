"""What the stages share: the names of settings, sources, splits and error types, every record
type, the files one stage writes and another reads, and the user-facing error.

Nothing here imports another kpref module: every stage may depend on this one, and it on none.
"""
from __future__ import annotations

import gzip
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator


class KprefError(Exception):
    """A user-facing error: bad params, a malformed data file, an unknown model.

    The message names the file, line and field; the CLI prints it without a traceback.
    """


# -- the hierarchy ------------------------------------------------------------------------------
SOURCES = ("instruction", "context", "parametric")
ERROR_TYPES = ("contextual_ignorance", "contextual_overinclusion", "instruction_neglect")


@dataclass(frozen=True)
class Setting:
    """One knowledge-conflict setting (reference §1): whose answer is right, and how a DPO
    pair's rejected answer is wrong. Its builder is the function of the same name in
    `tasks/synthesis/recipes.py`."""

    source: str | None  # None: the edit's carrier, instruction or context (multi-hop)
    error_type: str | None  # None: no pair; multi-hop: the carrier's (instruction_neglect or contextual_ignorance)
    conflict: bool  # the right answer contradicts the world's


SETTINGS: dict[str, Setting] = {
    "closed_book": Setting("parametric", None, conflict=False),
    "ctx_support": Setting("context", None, conflict=False),
    "ctx_counterfactual": Setting("context", "contextual_ignorance", conflict=True),
    "ctx_irrelevant": Setting("parametric", "contextual_overinclusion", conflict=False),
    "ctx_mixed": Setting("context", "contextual_ignorance", conflict=True),
    "instr_only": Setting("instruction", "instruction_neglect", conflict=True),
    "instr_vs_ctx": Setting("instruction", "instruction_neglect", conflict=True),
    "instr_irrelevant": Setting("context", "contextual_ignorance", conflict=True),
    "multi_hop": Setting(None, None, conflict=True),
}
CONFLICT_SETTINGS = tuple(s for s, spec in SETTINGS.items() if spec.conflict)
# the conflicts about one fact, whose memory the probe's certainty measures (multi-hop asks a composition)
FACT_CONFLICTS = tuple(s for s in CONFLICT_SETTINGS if s != "multi_hop")
CARRIER_ERROR = {"instruction": "instruction_neglect", "context": "contextual_ignorance"}  # multi-hop pairs

SPLITS = ("train", "val", "test", "test_ood_relation", "test_ood_phrasing", "test_ood_domain")
TEST_SPLITS = SPLITS[2:]
# Keys of a metrics.json entry (a split or benchmark) that are not one model's figures.
NOT_MODELS = ("delta", "skipped")
# The split of a held-out domain's facts (facts.split.ood_domains): never train, val or test subjects.
OOD_DOMAIN = "test_ood_domain"
# What the model is taught to say when its memory holds no answer (synthesize.unknown_belief: abstain).
ABSTAIN = "I don't know"

# Ways to state a user assumption; each wraps the relation's statement as a clause. The last
# `facts.split.ood_phrasings` of them are held out for the OOD-phrasing split: keep the order.
ASSUMPTION_STYLES = (
    "Assume that {clause}.",
    "Suppose {clause}.",
    "For this question, take it as given that {clause}.",
    "Imagine a world in which {clause}.",
    "Pretend that {clause}.",
    "Let's say {clause}.",
    "In this hypothetical, {clause}.",
    "Treat the following as true: {Clause}.",
)

# -- the artifacts, relative to the project root: the paths dvc.yaml declares ---------------------
BASE_DIR = "models/base"
ADAPTER_DIR = "models/adapter"
TUNED_DIR = "models/tuned"
FACTS = "data/facts.jsonl"
RELATIONS = "data/relations.json"
PROBE = "data/probe.jsonl"
DATA_DIR = "data"  # one {split}.jsonl per split
VALIDATION = "reports/validation.json"
DATA_DOCS = "reports/data_docs"
TRAIN_LIVE = "reports/train"
METRICS = "reports/metrics.json"
SUMMARY = "reports/summary.json"  # the headline figures DVC shows as metrics (`dvc metrics show/diff`)
PREDICTIONS = "reports/predictions"
BASE_PREDICTIONS = "reports/base_predictions"  # the evaluate_base stage's: the base model's answers
ADHERENCE_CSV = "reports/plots/adherence.csv"
REPORTS = "reports"
FIGURES = "reports/figures"
DVC_LOCK = "dvc.lock"  # the last commit's copy pins the metrics a run is compared with
PROBE_CACHE = ".kpref_cache/probe"  # not an artifact: answers reused across runs and params
TRAIN_CHECKPOINTS = ".kpref_cache/train"  # not an artifact: what a killed train stage resumes from


# -- records ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fact:
    """One (subject, relation, object) triple from a fact source."""

    subject: str
    relation: str
    object: str
    object_type: str
    source: str
    aliases: tuple[str, ...] = ()
    counterfactual: str | None = None  # a source-given counterfactual object (MQuAKE's target_new)
    split: str | None = None  # set by the facts stage: train / val / test by subject, or test_ood_domain

    @property
    def key(self) -> str:
        return f"{self.relation}::{self.subject}"


@dataclass(frozen=True)
class Relation:
    """How a relation is asked, stated and assumed."""

    name: str
    object_type: str
    questions: tuple[str, ...]  # "{s}" is the subject
    statement: str  # "{s}" subject, "{o}" object; one sentence
    composed: str | None = None  # question about a city's country, "{s}" the city (multi-hop)
    answers: tuple[str, ...] = ()  # one statement per question, in that question's own words; () none

    def __post_init__(self):
        if self.answers and len(self.answers) != len(self.questions):
            raise KprefError(f"relation {self.name!r}: {len(self.answers)} answers for {len(self.questions)} "
                             "questions; give one answer statement per question, or none")

    def say(self, s: str, o: str) -> str:
        return self.statement.format(s=s, o=o)

    def answer(self, question: str, s: str, o: str) -> str:
        """The statement that answers `question` (a template) in that question's own words, or the
        relation's statement where it has none."""
        if self.answers and question in self.questions:
            return self.answers[self.questions.index(question)].format(s=s, o=o)
        return self.say(s, o)

    def head_pattern(self, subject_re: str) -> str:
        """The statement up to its object as a regex, `subject_re` where the subject goes
        ("The capital of {s} is " -> r"The\\ capital\\ of\\ <subject_re>\\ is\\ ")."""
        head = self.statement.partition("{o}")[0]
        return re.escape(head).replace(re.escape("{s}"), subject_re)

    def assume(self, s: str, o: str, style: int) -> str:
        clause = self.say(s, o).rstrip(".")
        # mid-sentence, "The capital of..." becomes "the capital of..."; a leading subject keeps its case
        lowered = clause if clause.startswith(s) else clause[0].lower() + clause[1:]
        return ASSUMPTION_STYLES[style].format(clause=lowered, Clause=clause)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Example:
    """A synthesized example. `answers` holds what each source would say (None: silent)."""

    id: str
    split: str
    setting: str
    subject: str
    relation: str
    question: str
    instruction: str | None
    contexts: list[str]
    target: str
    expected_source: str
    answers: dict[str, str | None]
    world_answer: str
    completion: str  # the assistant turn to train on; states `target`
    aliases: list[str] = field(default_factory=list)
    source: str = ""  # the fact source
    question_template: str = ""
    assumption_style: int | None = None
    context_format: str | None = None
    bridge: str | None = None  # multi-hop: the intermediate entity the edit goes through
    rejected: str | None = None  # DPO: a wrong answer of `error_type`
    error_type: str | None = None
    # the base model's probability of the world's answer, closed-book (data/probe.jsonl's certainty);
    # None where unmeasured: made-up facts, multi-hop questions
    base_certainty: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EvalItem:
    """The user-facing conflict format (`kpref evaluate --data`); synthesized examples map onto it."""

    id: str
    question: str
    instruction: str | None
    contexts: list[str]
    answers: list[str]
    expected_source: str
    setting: str = "unspecified"
    source_answers: dict[str, str | None] | None = None  # for memorization ratio / attribution
    group: str | None = None  # items of one group are one case: solved when any of them is (MQuAKE's rule)
    # how sure the base model is of what memory says (0-1; adherence is binned by it); None: measured
    # when the item is answered (tasks/evaluation/predict.py)
    base_certainty: float | None = None

    @classmethod
    def from_example(cls, ex: dict) -> "EvalItem":
        gold = [ex["target"], *ex.get("aliases", [])]
        src = dict(ex["answers"])
        src["world"] = ex["world_answer"]
        return cls(id=ex["id"], question=ex["question"], instruction=ex["instruction"], contexts=list(ex["contexts"]),
                   answers=gold, expected_source=ex["expected_source"], setting=ex["setting"], source_answers=src,
                   base_certainty=ex.get("base_certainty"))


def trained_facts(facts: list[Fact], ood_relations: tuple[str, ...], made_up: tuple[str, ...] = ()) -> list[Fact]:
    """The facts the model is trained on: train/val subjects, relations not held out; without the
    made-up sources' (`facts.split.conflict_sources`), where the base model's memory is wanted."""
    return [f for f in facts if f.split in ("train", "val") and f.relation not in ood_relations
            and f.source not in made_up]


# -- reading the files stages hand each other ---------------------------------------------------
def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) of a JSON Lines file, gzipped or not; a line that is not a JSON
    object names file and line."""
    path = Path(path)
    if not path.exists():
        raise KprefError(f"{path}: file not found")
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
    with (gzip.open if gzipped else open)(path, "rt", encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise KprefError(f"{path}:{n}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(obj, dict):
                raise KprefError(f"{path}:{n}: expected a JSON object, got {type(obj).__name__}")
            yield n, obj


def read_json_list(path: str | Path, what: str) -> list:
    """A JSON file holding one list (of `what`, for the message); an error names file and line."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise KprefError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(data, list):
        raise KprefError(f"{path}: expected a JSON list of {what}, got {type(data).__name__}")
    return data


def read_jsonl(path: str | Path) -> list[dict]:
    return [obj for _, obj in iter_jsonl(path)]


def read_facts(path: str | Path) -> list[Fact]:
    """data/facts.jsonl, as the facts stage wrote it."""
    return [Fact(**{**r, "aliases": tuple(r["aliases"])}) for r in read_jsonl(path)]


def read_relations(path: str | Path) -> dict[str, Relation]:
    """data/relations.json, as the facts stage wrote it."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    return {name: Relation(**{**r, "questions": tuple(r["questions"]), "answers": tuple(r.get("answers", ()))})
            for name, r in raw.items()}


def read_beliefs(path: str | Path) -> dict[str, str]:
    """data/probe.jsonl -> fact key -> the answer the base model committed to (facts it gave no
    clean answer to are left out)."""
    return {r["key"]: r["answer"] for r in read_jsonl(path) if r.get("answer")}


def read_certainty(path: str | Path) -> dict[str, float]:
    """data/probe.jsonl -> fact key -> the base model's probability of the fact's object (tasks/probe.py)."""
    return {r["key"]: r["certainty"] for r in read_jsonl(path) if r.get("certainty") is not None}


def read_belief_texts(path: str | Path) -> dict[str, str]:
    """data/probe.jsonl -> fact key -> what the base model said closed-book, as it said it."""
    return {r["key"]: r["belief"] for r in read_jsonl(path) if r.get("belief")}


def read_splits(data_dir: str | Path, splits: tuple[str, ...] = SPLITS) -> dict[str, list[dict]]:
    """The synthesized splits' records, {split: [record, ...]}, from data_dir/{split}.jsonl."""
    return {split: read_jsonl(Path(data_dir) / f"{split}.jsonl") for split in splits}


_EVAL_FIELDS = {
    "id": (str, int),
    "question": (str,),
    "instruction": (str, type(None)),
    "contexts": (list,),
    "answers": (list,),
    "expected_source": (str,),
}


def _eval_item_problem(obj: dict) -> str | None:
    """What is wrong with one line of a user's conflict set, naming the field; None if nothing."""
    for name, types in _EVAL_FIELDS.items():
        if name not in obj:
            return f"missing field '{name}'"
        if not isinstance(obj[name], types):
            want = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            return f"field '{name}' must be {want}, got {type(obj[name]).__name__}"
    if not all(isinstance(c, str) for c in obj["contexts"]):
        return "field 'contexts' must be a list of strings"
    if not obj["answers"] or not all(isinstance(a, str) and a.strip() for a in obj["answers"]):
        return "field 'answers' must be a non-empty list of non-empty strings"
    if not obj["question"].strip():
        return "field 'question' is empty"
    if obj["expected_source"] not in SOURCES:
        return f"field 'expected_source' must be one of {list(SOURCES)}, got {obj['expected_source']!r}"
    if not isinstance(obj.get("setting", ""), str):
        return f"field 'setting' must be str, got {type(obj['setting']).__name__}"
    if not isinstance(obj.get("group"), (str, type(None))):
        return f"field 'group' must be str or null, got {type(obj['group']).__name__}"
    sure = obj.get("base_certainty")
    if sure is not None and (isinstance(sure, bool) or not isinstance(sure, (int, float)) or not 0 <= sure <= 1):
        return f"field 'base_certainty' must be a probability between 0 and 1 or null, got {sure!r}"
    return None


def read_eval_items(path: str | Path) -> list[EvalItem]:
    """Read and check a user's conflict set; every problem names file, line and field."""
    items, seen = [], set()
    for n, obj in iter_jsonl(path):
        problem = _eval_item_problem(obj)
        if problem is None and str(obj["id"]) in seen:
            problem = f"field 'id': duplicate id {obj['id']!r}"
        if problem:
            raise KprefError(f"{path}:{n}: {problem}")
        seen.add(str(obj["id"]))
        items.append(EvalItem(id=str(obj["id"]), question=obj["question"], instruction=obj["instruction"],
                              contexts=obj["contexts"], answers=obj["answers"],
                              expected_source=obj["expected_source"], setting=obj.get("setting", "unspecified"),
                              group=obj.get("group"), base_certainty=obj.get("base_certainty")))
    if not items:
        raise KprefError(f"{path}: no examples")
    return items
