import pytest

from tasks.probe import belief_answer, run_probe
from tasks.relations import BUILTIN_RELATIONS
from tasks.schema import Fact
from tests.conftest import shipped


@pytest.mark.parametrize("belief, answer", [
    ("The capital of Peru is Lima.", "Lima"),  # the world's answer, wherever it is named
    ("Peru's capital, Lima, is large.", "Lima"),
    ("The capital of Peru is Cuzco. It was the Inca capital.", "Cuzco"),
    ("The capital of peru is **Cuzco**", "Cuzco"),
    ("The capital of the Peru is Cuzco (the old one).", "Cuzco"),
    ("Peru is a country in South America.", None),  # commits to no capital
    ("The capital of Peru is Peru.", None),  # the subject is no answer
    ("The capital of Peru is A.", None),  # nothing left once normalised
    ("The capital of Peru is a city with a long and very old history", None),  # rambling
])
def test_belief_answer_reads_the_committed_answer(belief, answer):
    fact = Fact("Peru", "capital", "Lima", "city", "countries", aliases=("Lima City",))
    assert belief_answer(belief, fact, BUILTIN_RELATIONS["capital"]) == answer


def test_belief_answer_reads_currency_statements():
    fact = Fact("Chile", "currency", "Peso", "currency", "countries")
    assert belief_answer("The currency of Chile is the Escudo.", fact, BUILTIN_RELATIONS["currency"]) == "Escudo"
    assert belief_answer("The currency of Chile is Escudo.", fact, BUILTIN_RELATIONS["currency"]) == "Escudo"


def test_probe_cache_skips_known_facts(tiny_model_dir, small_world, tmp_path):
    facts, relations = small_world
    p = shipped({"probe": {"batch_size": 8, "max_new_tokens": 3}}).probe
    first = run_probe(facts[:5], relations, tiny_model_dir, p, tmp_path / "a.jsonl", tmp_path / "cache")
    again = run_probe(facts[:8], relations, tiny_model_dir, p, tmp_path / "b.jsonl", tmp_path / "cache")
    assert first == {"probed": 5, "cached": 0} and again == {"probed": 3, "cached": 5}
    a = (tmp_path / "a.jsonl").read_text().splitlines()
    assert (tmp_path / "b.jsonl").read_text().splitlines()[:5] == a
