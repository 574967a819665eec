"""params.yaml's `train` section: the method, LoRA, the optimizer, DPO, device and precision."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from tasks.params.section import PRECISION, Precision, Section


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
    precision: Precision = Field(description=PRECISION + "; weights stay fp32, bf16 is autocast.")
    attention: Literal["auto", "eager", "sdpa"] = Field(
        description="Attention kernel in training: auto is eager on the CPU (faster there than torch's CPU "
                    "flash-attention backward) and transformers' own choice elsewhere (sdpa where the model has it). "
                    "The same function; rounding differs.")
