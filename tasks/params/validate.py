"""params.yaml's `validate` section: the data quality gate's tolerances."""
from __future__ import annotations

from pydantic import Field

from tasks.params.section import Section


class ValidateParams(Section):
    max_failed_examples: int = Field(ge=1, description="Example ids shown per failed expectation.")
    balance_tolerance: float = Field(ge=0, lt=1, description="Allowed gap between a setting's share in train/val and "
                                                             "its share in the mix.")
