"""params.yaml's `probe` section: how the base model is asked every fact closed-book."""
from __future__ import annotations

from pydantic import Field

from tasks.params.section import PRECISION, Precision, Section


class ProbeParams(Section):
    batch_size: int = Field(ge=1, description="Prompts generated together.")
    max_new_tokens: int = Field(ge=1, le=256, description="Longest closed-book answer read.")
    precision: Precision = Field(description=PRECISION)
