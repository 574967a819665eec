"""params.yaml's `synthesize` section: the settings' mix, the split sizes and how examples are drawn."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from tasks.core.schema import SETTINGS
from tasks.params.section import Section, positive_weights


class PairParams(Section):
    max_type_ratio: float = Field(ge=1, description="DPO pairs: the most common error type at most this many times "
                                                    "the least common.")


class StrongPriorParams(Section):
    train: float = Field(ge=0.0, le=1.0, description="Share of each conflict setting's train/val examples asked "
                                                     "about facts the base model is surest of (each relation's most "
                                                     "certain fifth, by the probe's certainty); 0: a uniform draw.")
    test: float = Field(ge=0.0, le=1.0, description="The same share in every test split: the stratum the top "
                                                    "quintile of the base's certainty is scored on.")


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
    strong_prior: StrongPriorParams
    pairs: PairParams

    @field_validator("mix")
    @classmethod
    def _known_settings(cls, v: dict[str, float]):
        unknown = sorted(set(v) - set(SETTINGS))
        if unknown:
            raise ValueError(f"unknown setting(s) {unknown}; expected some of {list(SETTINGS)}")
        return positive_weights(v)

    @field_validator("context_formats")
    @classmethod
    def _formats(cls, v):
        return positive_weights(v)
