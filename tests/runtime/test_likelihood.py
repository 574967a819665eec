import math

import torch

from tasks.core import prompt
from tasks.runtime.likelihood import answer_probability
from tasks.runtime.modeling import load_model


def test_an_answers_probability_is_the_product_of_its_tokens_whatever_its_batch(tiny_model_dir):
    model, tok = load_model(tiny_model_dir, precision="fp32")
    prompts = [prompt.render(tok, "What is the capital of Peru?") + "The capital of Peru is",
               prompt.render(tok, "What is the calling code of Peru?", ["A long passage about Peru."]) + "It is +",
               prompt.render(tok, "Who?") + "It is"]
    answers = [" Lima", "51", " the one who was there"]
    batched = answer_probability(model, tok, prompts, answers, [[0, 1, 2]])
    alone = [answer_probability(model, tok, [p], [a], [[0]])[0] for p, a in zip(prompts, answers)]
    for p, a, x, y in zip(prompts, answers, batched, alone):
        # by hand: the chain rule over the answer's tokens, each after all that comes before it
        head = tok(p, add_special_tokens=False)["input_ids"]
        tail = tok(a, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=torch.tensor([head + tail])).logits[0].float(), -1)
        want = math.exp(sum(logp[len(head) - 1 + j, t].item() for j, t in enumerate(tail)))
        assert 0 < y < 1 and math.isclose(x, y, rel_tol=1e-4) and math.isclose(y, want, rel_tol=1e-4)
    # a longer answer that begins with a shorter one is less probable than it
    assert answer_probability(model, tok, prompts[:1] * 2, [" Lima", " Lima Lima"], [[0, 1]])[1] < batched[0]
