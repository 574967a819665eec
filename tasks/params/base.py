"""params.yaml's `base` section: what every stage shares."""
from __future__ import annotations

from pydantic import Field

from tasks.params.section import Section


class BaseParams(Section):
    seed: int = Field(ge=0, description="Seed for the subject split, synthesis order, LoRA init and data shuffling.")
