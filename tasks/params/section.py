"""What every params section shares: the section base class, and reading params.yaml into a typed
model with errors that name the file, line and key.

params.yaml is the only place a value lives: no field has a default, so a key missing from the
file is an error like a misspelt one, before any heavy work starts. A stage reads only its own
sections (its module's `Params`), so a knob added to another section never makes it stale;
`kpref check` reads the whole file (tasks/params/full.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from tasks.core.schema import KprefError

# params.yaml's top-level sections, in order (tests/params check them against params/full.py)
SECTIONS = ("base", "model", "facts", "probe", "synthesize", "validate", "train", "evaluate")

Precision = Literal["auto", "fp32", "bf16"]
PRECISION = "auto: bf16 on CUDA and on CPUs with AVX512-BF16/AMX, else fp32 (fp16 on old GPUs)"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StageParams(BaseModel):
    """The sections of params.yaml one stage reads; the others are left to their own stages."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


def positive_weights(v: dict[str, float]) -> dict[str, float]:
    if any(w < 0 for w in v.values()) or sum(v.values()) <= 0:
        raise ValueError("weights must be >= 0 and sum to > 0")
    return v


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map each key path in the YAML text to its 1-based line, for error messages."""
    lines: dict[tuple[str, ...], int] = {}

    def walk(node, path):
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = path + (str(k.value),)
                lines[key] = k.start_mark.line + 1
                walk(v, key)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                lines[path + (str(i),)] = v.start_mark.line + 1
                walk(v, path + (str(i),))

    try:
        walk(yaml.compose(text), ())
    except yaml.YAMLError:
        pass
    return lines


def _explain(err: dict, lines: dict[tuple[str, ...], int], source: str) -> str:
    loc = tuple(str(p) for p in err["loc"])
    key = ".".join(loc)
    line = next((lines[loc[:i]] for i in range(len(loc), 0, -1) if loc[:i] in lines), None)
    where = f"{source}:{line}" if line else source
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown key '{key}' (misspelt? `kpref check --explain` lists every key)"
    if err["type"] == "missing":
        return f"{where}: missing key '{key}' (params.yaml spells out every knob; `kpref check --explain` lists them)"
    return f"{where}: key '{key}': {err['msg']} (got {err.get('input')!r})"


M = TypeVar("M", bound=BaseModel)


def parse_params(text: str, model: type[M], source: str = "params.yaml") -> M:
    """`text` (params.yaml's) as `model`: every error at once, each naming the file, line and key."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise KprefError(f"{source}{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(raw, dict):
        raise KprefError(f"{source}: expected a mapping of sections at the top level, got {type(raw).__name__}")
    lines = _key_lines(text)
    msgs = [f"{source}:{lines[(str(k),)]}: unknown section '{k}' (params.yaml has {', '.join(SECTIONS)})"
            for k in raw if k not in SECTIONS]
    try:
        params = model.model_validate(raw)
    except ValidationError as e:
        msgs += [_explain(err, lines, source) for err in e.errors()]
    if msgs:
        raise KprefError("invalid params:\n  " + "\n  ".join(msgs))
    return params


def load_params(path: str | Path, model: type[M]) -> M:
    path = Path(path)
    if not path.exists():
        raise KprefError(f"{path}: params file not found")
    return parse_params(path.read_text(encoding="utf-8"), model, source=str(path))
