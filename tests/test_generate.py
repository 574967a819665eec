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


def test_first_token_entropy_is_the_one_generation_starts_from(tiny_model_dir):
    import math

    from tasks.generate import first_token_entropy, generate_answers

    model, tok = load_model(tiny_model_dir, precision="fp32")
    # unequal lengths: left padding in the batch must not move the figure
    prompts = [prompt.render(tok, "What is the capital of Peru?", ["The capital of Peru is Quito."] * i)
               for i in range(3)]
    answers = generate_answers(model, tok, prompts, batch_size=3, max_new_tokens=2)
    alone = [first_token_entropy(model, tok, [p], batch_size=1)[0] for p in prompts]
    batched = first_token_entropy(model, tok, prompts, batch_size=3)
    for a, x, y in zip(answers, alone, batched):
        assert 0 < a.entropy <= math.log(model.config.vocab_size) + 1e-3
        assert abs(a.entropy - x) < 1e-3 and abs(x - y) < 1e-3
