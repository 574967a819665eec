import pytest

from tasks.core.schema import Fact
from tasks.probe import belief_answer, probe_batches, run_probe
from tasks.sources.relations import BUILTIN_RELATIONS
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


def _spy_batches(monkeypatch) -> list[frozenset[str]]:
    """Record every batch of prompts the probe generates."""
    import tasks.runtime.generate

    seen: list[frozenset[str]] = []
    real = tasks.runtime.generate.generate

    def spy(model, tok, prompts, batch_size, max_new_tokens, desc="", groups=None):
        seen.extend(frozenset(prompts[i] for i in g) for g in groups)
        return real(model, tok, prompts, batch_size, max_new_tokens, desc, groups)

    monkeypatch.setattr(tasks.runtime.generate, "generate", spy)
    return seen


def test_a_warm_probe_cache_gives_a_cold_runs_answers_and_skips_known_facts(tiny_model_dir, small_world, tmp_path,
                                                                           monkeypatch):
    facts, relations = small_world
    # two relations: the cached first one is reused whole, the other relation's batches change
    rel_a, rel_b = sorted({f.relation for f in facts})[:2]
    first = [f for f in facts if f.relation == rel_a][:6] + [f for f in facts if f.relation == rel_b][:2]
    more = first + [f for f in facts if f.relation == rel_b][2:5]
    p = shipped({"probe": {"batch_size": 4, "max_new_tokens": 3}}).probe
    batches = _spy_batches(monkeypatch)
    cold = run_probe(more, relations, tiny_model_dir, p, tmp_path / "cold.jsonl", tmp_path / "cold_cache")
    cold_batches = set(batches)
    assert cold == {"probed": 11, "cached": 0, "certainty": 11} and len(cold_batches) == 4  # 6 of a in 2, 5 of b in 2
    batches.clear()
    assert run_probe(first, relations, tiny_model_dir, p, tmp_path / "a.jsonl", tmp_path / "cache")["cached"] == 0
    batches.clear()
    warm = run_probe(more, relations, tiny_model_dir, p, tmp_path / "b.jsonl", tmp_path / "cache")
    # the first relation's batches are unchanged, so cached; b's were [2] and are now [4, 1]: asked again,
    # in exactly the batches a cold run asks (batch-mates change bf16 answers)
    assert warm == {"probed": 5, "cached": 6, "certainty": 11}
    assert batches and set(batches) <= cold_batches
    assert (tmp_path / "b.jsonl").read_bytes() == (tmp_path / "cold.jsonl").read_bytes()


def test_probe_batches_are_fixed_by_each_relations_own_facts():
    rels = ["capital", "currency", "capital", "capital", "currency", "capital"]
    keys = ["k3", "k9", "k1", "k3", "k2", "k0"]  # k3 twice: asked once
    assert probe_batches(rels, keys, 2) == [[5, 2], [0], [4, 1]]
    # one more currency fact leaves every capital batch as it was
    assert probe_batches(rels + ["currency"], keys + ["k5"], 2)[:2] == [[5, 2], [0]]


def test_the_probe_measures_certainty_of_every_fact_asked_and_of_those_only_measured(tiny_model_dir, small_world,
                                                                                    tmp_path):
    from tasks.core import prompt
    from tasks.core.schema import read_beliefs, read_certainty, read_jsonl
    from tasks.probe import certainty_prompt
    from tasks.runtime.likelihood import answer_probability
    from tasks.runtime.modeling import load_model
    from tasks.sources.registry import CountriesSource

    facts, relations = small_world
    relations = {**relations, "calling_code": BUILTIN_RELATIONS["calling_code"]}  # an answer after "+", not " "
    asked = [f for f in facts if f.relation == "capital"][:3]
    measured = asked + list(CountriesSource(("calling_code",), 200000).facts())[:2]
    p = shipped({"probe": {"batch_size": 4, "max_new_tokens": 3, "precision": "fp32"}}).probe
    run_probe(asked, relations, tiny_model_dir, p, tmp_path / "probe.jsonl", tmp_path / "cache", certain=measured)
    rows = read_jsonl(tmp_path / "probe.jsonl")
    assert [r["key"] for r in rows] == [f.key for f in measured]
    assert all(r["belief"] is None and r["answer"] is None for r in rows[3:])  # measured, not asked
    assert set(read_beliefs(tmp_path / "probe.jsonl")) <= {f.key for f in asked}
    sure = read_certainty(tmp_path / "probe.jsonl")
    # the world's object after the statement's head: "... The capital of X is" + " Lima", "... is +" + "51"
    model, tok = load_model(tiny_model_dir, precision=p.precision)
    code = measured[3]
    text, answer = certainty_prompt(tok, code, relations)
    assert text == prompt.render(tok, relations["calling_code"].questions[0].format(s=code.subject)) + \
        f"The calling code of {code.subject} is +" and answer == code.object
    assert certainty_prompt(tok, asked[0], relations)[1] == " " + asked[0].object
    alone = answer_probability(model, tok, [text], [answer], [[0]])[0]
    assert 0 < sure[code.key] < 1 and abs(sure[code.key] - alone) <= 1e-3 * alone
