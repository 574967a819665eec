from tasks import prompt
from tasks.generate import generate
from tasks.modeling import load_model


def test_answers_come_back_in_input_order_whatever_the_batching(tiny_model_dir):
    model, tok = load_model(tiny_model_dir, precision="fp32")
    questions = ["What is the capital of Peru?", "Which continent is Chile in?", "What is the currency of Peru?"]
    prompts = [prompt.render(tok, q, ["The capital of Peru is Quito."] * i) for i, q in enumerate(questions)]
    one = [generate(model, tok, [p], batch_size=1, max_new_tokens=4)[0] for p in prompts]
    assert generate(model, tok, prompts, batch_size=1, max_new_tokens=4) == one
    assert len(generate(model, tok, prompts, batch_size=2, max_new_tokens=4)) == 3
