"""Records shared by every stage: facts, synthesized examples, user conflict items."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from tasks.errors import KprefError

SOURCES = ("instruction", "context", "parametric")


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
    split: str | None = None  # set by the facts stage: train / val / test by subject

    @property
    def key(self) -> str:
        return f"{self.relation}::{self.subject}"


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

    @classmethod
    def from_example(cls, ex: dict) -> "EvalItem":
        gold = [ex["target"], *ex.get("aliases", [])]
        src = dict(ex["answers"])
        src["world"] = ex["world_answer"]
        return cls(
            id=ex["id"],
            question=ex["question"],
            instruction=ex["instruction"],
            contexts=list(ex["contexts"]),
            answers=gold,
            expected_source=ex["expected_source"],
            setting=ex["setting"],
            source_answers=src,
        )


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object); a line that is not a JSON object names file and line."""
    path = Path(path)
    if not path.exists():
        raise KprefError(f"{path}: file not found")
    with open(path, encoding="utf-8") as fh:
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


def read_jsonl(path: str | Path) -> list[dict]:
    return [obj for _, obj in iter_jsonl(path)]


_EVAL_FIELDS = {
    "id": (str, int),
    "question": (str,),
    "instruction": (str, type(None)),
    "contexts": (list,),
    "answers": (list,),
    "expected_source": (str,),
}


def read_eval_items(path: str | Path) -> list[EvalItem]:
    """Read and check a user's conflict set; every problem names file, line and field."""
    items, seen = [], set()
    for n, obj in iter_jsonl(path):
        where = f"{path}:{n}"
        for name, types in _EVAL_FIELDS.items():
            if name not in obj:
                raise KprefError(f"{where}: missing field '{name}'")
            if not isinstance(obj[name], types):
                want = " or ".join("null" if t is type(None) else t.__name__ for t in types)
                raise KprefError(f"{where}: field '{name}' must be {want}, got {type(obj[name]).__name__}")
        if not all(isinstance(c, str) for c in obj["contexts"]):
            raise KprefError(f"{where}: field 'contexts' must be a list of strings")
        if not obj["answers"] or not all(isinstance(a, str) and a.strip() for a in obj["answers"]):
            raise KprefError(f"{where}: field 'answers' must be a non-empty list of non-empty strings")
        if not obj["question"].strip():
            raise KprefError(f"{where}: field 'question' is empty")
        if obj["expected_source"] not in SOURCES:
            raise KprefError(f"{where}: field 'expected_source' must be one of {list(SOURCES)}, got {obj['expected_source']!r}")
        setting = obj.get("setting", "unspecified")
        if not isinstance(setting, str):
            raise KprefError(f"{where}: field 'setting' must be str, got {type(setting).__name__}")
        if str(obj["id"]) in seen:
            raise KprefError(f"{where}: field 'id': duplicate id {obj['id']!r}")
        seen.add(str(obj["id"]))
        items.append(
            EvalItem(
                id=str(obj["id"]),
                question=obj["question"],
                instruction=obj["instruction"],
                contexts=obj["contexts"],
                answers=obj["answers"],
                expected_source=obj["expected_source"],
                setting=setting,
            )
        )
    if not items:
        raise KprefError(f"{path}: no examples")
    return items


def example_features():
    """The Arrow schema of synthesized splits, for `datasets.load_dataset("json", ..., features=...)`.

    JSON has no types for an all-null column (an OOD split without multi-hop has no `bridge`),
    so loading several splits together needs the schema spelled out.
    """
    from datasets import Features, List, Value

    s = Value("string")
    return Features({
        "id": s, "split": s, "setting": s, "subject": s, "relation": s, "question": s, "instruction": s,
        "contexts": List(s), "target": s, "expected_source": s,
        "answers": {"instruction": s, "context": s, "parametric": s, "distractor": s},
        "world_answer": s, "completion": s, "aliases": List(s), "source": s, "question_template": s,
        "assumption_style": Value("int64"), "context_format": s, "bridge": s, "rejected": s, "error_type": s,
    })


def load_splits(data_dir: str | Path, splits: tuple[str, ...] | None = None):
    """The synthesized splits as a `datasets.DatasetDict`."""
    from datasets import load_dataset

    from tasks.synthesize import SPLITS

    files = {s: str(Path(data_dir) / f"{s}.jsonl") for s in (splits or SPLITS)}
    return load_dataset("json", data_files=files, features=example_features())
