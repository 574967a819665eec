"""The whole of params.yaml, typed: every section, and every knob with its type, range and
description (`kpref check --explain`). Only the command line and the flow read the whole file;
each stage reads its own sections (tasks/params/section.py)."""
from __future__ import annotations

from pathlib import Path
from types import UnionType
from typing import Iterator, Literal, Union, get_args, get_origin

from pydantic import BaseModel, Field

from tasks.params import section
from tasks.params.base import BaseParams
from tasks.params.evaluate import EvaluateParams
from tasks.params.facts import FactsParams
from tasks.params.model import ModelParams
from tasks.params.probe import ProbeParams
from tasks.params.section import StageParams
from tasks.params.synthesize import SynthesizeParams
from tasks.params.train import TrainParams
from tasks.params.validate import ValidateParams


class Params(StageParams):
    """Every section of params.yaml."""

    base: BaseParams
    model: ModelParams
    facts: FactsParams
    probe: ProbeParams
    synthesize: SynthesizeParams
    validate_: ValidateParams = Field(alias="validate")
    train: TrainParams
    evaluate: EvaluateParams


def _type_name(annotation) -> str:
    """'one of auto|fp32|bf16', 'list of str', 'str | null': what a user may write."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return "one of " + "|".join(map(str, args))
    if origin in (tuple, list):
        return "list of " + _type_name(args[0])
    if origin is dict:
        return f"mapping of {_type_name(args[0])} to {_type_name(args[1])}"
    if origin in (Union, UnionType):
        return " | ".join("null" if a is type(None) else _type_name(a) for a in args)
    return getattr(annotation, "__name__", str(annotation))


def knobs(model: type[BaseModel] = Params, prefix: str = "") -> Iterator[tuple[str, str, str]]:
    """Every knob as (dotted key, type and range, description), in params.yaml's order."""
    for name, f in model.model_fields.items():
        key = prefix + (f.alias or name)
        if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel):
            yield from knobs(f.annotation, key + ".")
            continue
        kind = _type_name(f.annotation)
        bounds = [f"{op} {getattr(m, attr)}" for m in f.metadata
                  for attr, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")) if hasattr(m, attr)]
        yield key, kind + (f" ({', '.join(bounds)})" if bounds else ""), f.description or ""


def parse_params(text: str, source: str = "params.yaml") -> Params:
    return section.parse_params(text, Params, source)


def load_params(path: str | Path = "params.yaml") -> Params:
    return section.load_params(path, Params)
