import random

import pytest

from tasks.core.schema import CARRIER_ERROR, SETTINGS, KprefError
from tasks.synthesis.recipes import RECIPES, Draw, Phrasing, build, recipe
from tests.conftest import shipped


def test_every_setting_has_exactly_one_recipe():
    assert set(RECIPES) == set(SETTINGS)
    with pytest.raises(KprefError, match="no setting"):
        @recipe
        def closed_books(d, f, ask):  # a typo of a setting's name is refused, not silently unused
            return {}


@pytest.fixture(scope="module")
def draw(small_world):
    facts, relations = small_world
    p = shipped().synthesize
    by_subject = {(f.relation, f.subject): f for f in facts}
    objects = {}
    for f in facts:
        objects.setdefault(f.relation, {}).setdefault(f.object, f.aliases)
    train = [f for f in facts if f.split == "train" and f.relation != "subregion"]
    pools = {}
    for f in train:
        pools.setdefault(f.relation, []).append(f)

    def make(seed: int) -> Draw:
        return Draw(random.Random(seed), relations, pools, {r: sorted(o.items()) for r, o in objects.items()},
                    by_subject, {f.key: f.object for f in facts}, p, Phrasing(1, ood=False),
                    test=False, subject_split="train")

    return make, train


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_each_recipe_follows_its_row_of_the_table(draw, setting):
    make, train = draw
    fact = next(f for f in train if f.relation == "city_country") if setting == "multi_hop" else train[0]
    row = build(make(1), setting, fact)
    spec = SETTINGS[setting]
    assert row["setting"] == setting
    assert row["expected_source"] == (spec.source or row["expected_source"])
    if spec.source is None:
        assert row["expected_source"] in CARRIER_ERROR and row["error_type"] == CARRIER_ERROR[row["expected_source"]]
    elif row["rejected"]:
        assert row["error_type"] == spec.error_type
    assert row["answers"][row["expected_source"]] == row["target"]
    assert build(make(1), setting, fact) == row  # same stream, same example
