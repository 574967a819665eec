"""How an item is answered: the prediction row, robustness's comparison, the confidence gain."""
import torch

from tasks.core.metrics import matches
from tasks.core.schema import EvalItem
from tasks.evaluate import evaluate_items
from tasks.evaluation.predict import same_answer
from tasks.runtime.modeling import load_model


def _irrelevant_item():
    return EvalItem("a", "What is the capital of Peru?", None, ["The capital of Chile is Santiago."], ["Lima"],
                    "parametric", "ctx_irrelevant",
                    {"instruction": None, "context": None, "parametric": "Lima", "world": "Lima"})


def test_same_answer_compares_named_entities():
    it = _irrelevant_item()
    assert same_answer("The capital of Peru is Lima.", "Lima, of course", it)
    assert not same_answer("It is Santiago.", "Lima", it)
    assert same_answer("I do not know", "I do not know.", it)
    assert not same_answer("I do not know", "No idea", it)
    # neither names a candidate: compared by what each adds to the question
    assert same_answer("The capital of Peru is Cuzco.", "The capital of Peru is known as Cuzco. It is old.", it)
    assert not same_answer("The capital of Peru is Cuzco.", "The capital of Peru is Arequipa.", it)
    # one answer under two of its names
    kz = EvalItem("b", "What are people from Kazakhstan called?", None, ["People from Oman are called Omani."],
                  ["Kazakhstani", "Kazakh", "Kazakhs"], "parametric", "ctx_irrelevant",
                  {"instruction": None, "context": None, "parametric": "Kazakhstani", "world": "Kazakhstani"})
    assert same_answer("People from Kazakhstan are called Kazakhs.", "They are called Kazakh.", kz)
    assert not same_answer("People from Kazakhstan are called Kazakhs.", "They are called Omani.", kz)


def test_irrelevant_robustness_uses_closed_book_answer(tiny_model_dir):
    model, tok = load_model(tiny_model_dir)
    ev = evaluate_items(model, tok, [_irrelevant_item()], batch_size=2, max_new_tokens=3)
    p = ev.predictions[0]
    same = same_answer(p["prediction"], p["closed_book_prediction"], _irrelevant_item())
    assert ev.metrics["irrelevant_robustness"] == float(same)
    known = matches(p["closed_book_prediction"], _irrelevant_item().answers)
    assert ev.metrics["irrelevant_robustness_known"] == (float(same) if known else None)
    assert ev.metrics["adherence_by_setting"] == {"ctx_irrelevant": float(p["correct"])}


def test_confidence_gain_is_the_entropy_the_context_takes_away(tiny_model_dir):
    from tasks.core import prompt
    from tasks.runtime.generate import first_token_entropy

    model, tok = load_model(tiny_model_dir, precision="fp32")
    # a random tiny model is near uniform over its vocabulary and barely reads the prompt: sharper
    # logits and a long passage move the first token's entropy by well over the 4 decimals kept
    with torch.no_grad():
        model.lm_head.weight.mul_(10)
    cf = EvalItem("c", "What is the capital of Peru?", None, ["The capital of Peru is Quito. " * 8, "Quito " * 6],
                  ["Quito"], "context", "ctx_counterfactual")
    cb = EvalItem("d", "What is the capital of Chile?", None, [], ["Santiago"], "parametric", "closed_book")
    ev = evaluate_items(model, tok, [cf, cb], batch_size=2, max_new_tokens=2)
    bare, full = first_token_entropy(model, tok, [prompt.render(tok, cf.question),
                                                  prompt.render(tok, cf.question, cf.contexts)], batch_size=1)
    gain = ev.predictions[0]["confidence_gain"]
    assert abs(gain - (bare - full)) < 1e-3 and gain != 0
    assert "confidence_gain" not in ev.predictions[1]  # nothing beside the question: nothing to gain
    assert ev.metrics["confidence_gain_by_setting"] == {"ctx_counterfactual": gain}



def test_a_conflict_item_without_a_certainty_gets_the_models_own_closed_book_one(tiny_model_dir):
    from tasks.core import prompt
    from tasks.evaluation.predict import predict
    from tasks.runtime.generate import generate_answers

    model, tok = load_model(tiny_model_dir, precision="fp32")
    ctx = ["The capital of Peru is Quito."]
    items = [EvalItem("given", "What is the capital of Peru?", None, ctx, ["Quito"], "context", "ctx_counterfactual",
                      base_certainty=0.25),
             EvalItem("measured", "What is the capital of Peru?", "Assume it is Cusco.", ctx, ["Cusco"], "instruction",
                      "unspecified"),
             EvalItem("agrees", "What is the capital of Chile?", None, ["Santiago is Chile's capital."], ["Santiago"],
                      "context", "ctx_support")]
    rows = predict(model, tok, items, batch_size=4, max_new_tokens=4, prior=True)
    closed = generate_answers(model, tok, [prompt.render(tok, items[1].question)], 1, 4, probability=True)[0]
    assert rows[0]["base_certainty"] == 0.25 and rows[1]["base_certainty"] == closed.probability
    assert "base_certainty" not in rows[2]  # no conflict: nothing to bin
    # the same question asked closed-book by another item: its answer there is the one measured
    asked = [*items, EvalItem("hop", "What is the capital of Peru?", None, [], ["Lima"], "parametric", "closed_book")]
    rows = predict(model, tok, asked, batch_size=4, max_new_tokens=4, prior=True)
    assert abs(rows[1]["base_certainty"] - closed.probability) < 1e-4 and "base_certainty" not in rows[3]
    # the tuned model's half of an evaluation measures nothing: it is binned by the base model's
    assert "base_certainty" not in predict(model, tok, items, batch_size=4, max_new_tokens=4)[1]
