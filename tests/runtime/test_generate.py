import torch

from tasks.core import prompt
from tasks.runtime.generate import generate
from tasks.runtime.modeling import load_model


def test_answers_come_back_in_input_order_whatever_the_batching(tiny_model_dir):
    model, tok = load_model(tiny_model_dir, precision="fp32")
    questions = ["What is the capital of Peru?", "Which continent is Chile in?", "What is the currency of Peru?"]
    prompts = [prompt.render(tok, q, ["The capital of Peru is Quito."] * i) for i, q in enumerate(questions)]
    one = [generate(model, tok, [p], batch_size=1, max_new_tokens=4)[0] for p in prompts]
    assert generate(model, tok, prompts, batch_size=1, max_new_tokens=4) == one
    assert len(generate(model, tok, prompts, batch_size=2, max_new_tokens=4)) == 3


def test_first_token_entropy_is_the_one_generation_starts_from(tiny_model_dir):
    import math

    from tasks.runtime.generate import first_token_entropy, generate_answers

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


def test_a_shared_opening_run_once_gives_the_answers_of_each_prompt_alone(tiny_model_dir):
    import torch

    from tasks.runtime.generate import generate_answers, shared_prefix_plan

    model, tok = load_model(tiny_model_dir, precision="fp32")
    # large random weights: the answers are long and move with any position or mask off by one
    torch.manual_seed(0)
    for name, w in model.named_parameters():
        if "norm" not in name:
            w.data.normal_(0, 0.5)
    passages = [["The capital of Peru is Quito.", "Lima lies in Chile."], ["Paris is in Spain."], []]
    questions = ["What is the capital of Peru?", "Which continent is Chile in?", "Where is Paris?",
                 "What is the currency of the country whose capital is Lima?", "Who wrote Hamlet?"]
    prompts, keys = [], []
    for ctx in passages:
        for q in questions:
            prompts.append(prompt.render(tok, q, ctx, "Assume Paris is in Spain." if len(ctx) == 1 else None))
            keys.append(tuple(ctx))
    ids = tok(prompts, add_special_tokens=False)["input_ids"]
    # batch 4 splits each five-prompt key in two runs, and runs of unlike openings share a batch
    plan = shared_prefix_plan(ids, keys, 4)
    assert plan is not None and sorted(i for b in plan for r in b for i in r.rows) == list(range(len(prompts)))
    assert max(len(b) for b in plan) > 1 and all(sum(len(r.rows) for r in b) <= 4 for b in plan)
    for run in (r for b in plan for r in b):
        assert all(ids[i][: run.shared] == ids[run.rows[0]][: run.shared] for i in run.rows)
        assert all(run.shared < len(ids[i]) for i in run.rows)
    shared = generate_answers(model, tok, prompts, batch_size=4, max_new_tokens=5, prefix_keys=keys)
    alone = [generate_answers(model, tok, [p], batch_size=1, max_new_tokens=5)[0] for p in prompts]
    assert [a.text for a in shared] == [a.text for a in alone]
    assert all(abs(a.entropy - b.entropy) < 1e-3 for a, b in zip(shared, alone))
    # no key shared: the template's opening still is, once a batch
    alone = shared_prefix_plan(ids, list(range(len(prompts))), 4)
    assert alone is not None and all(len(b) == 1 and b[0].shared > 0 for b in alone)
    # an opening no longer than the padding it brings: plain batching, unchanged
    assert shared_prefix_plan([[1, 2], [3, 4, 5, 6]], [0, 1], 2) is None


def test_fixed_batches_run_their_shared_opening_once_with_the_answers_of_each_prompt_alone(tiny_model_dir):
    """The probe fixes its batches (its cache is keyed by them); each still runs the opening its
    prompts share once, and every prompt gets the answer it gets alone."""
    import torch

    from tasks.runtime.generate import generate_answers

    model, tok = load_model(tiny_model_dir, precision="fp32")
    torch.manual_seed(0)
    for name, w in model.named_parameters():
        if "norm" not in name:
            w.data.normal_(0, 0.5)
    questions = ["What is the capital of Peru?", "Which continent is Chile in?", "Where is Paris?",
                 "What is the currency of the country whose capital is Lima?", "Who wrote Hamlet?"]
    prompts = [prompt.render(tok, q) for q in questions]
    fixed = generate_answers(model, tok, prompts, max_new_tokens=5, groups=[[3, 0], [4, 1, 2]])
    alone = [generate_answers(model, tok, [p], batch_size=1, max_new_tokens=5)[0] for p in prompts]
    assert [a.text for a in fixed] == [a.text for a in alone]
    assert all(abs(a.entropy - b.entropy) < 1e-3 for a, b in zip(fixed, alone))


def test_an_answers_probability_is_the_mean_of_its_tokens_to_its_end(tiny_model_dir):
    from tasks.runtime.generate import generate_answers

    model, tok = load_model(tiny_model_dir, precision="fp32")
    prompts = [prompt.render(tok, "What is the capital of Peru?", ["The capital of Peru is Quito."] * i)
               for i in range(3)]
    ends = {tok.eos_token_id, tok.pad_token_id}
    for p, a in zip(prompts, generate_answers(model, tok, prompts, batch_size=3, max_new_tokens=6,
                                                     probability=True)):
        head = tok(p, add_special_tokens=False)["input_ids"]
        alone = model.generate(torch.tensor([head]), max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
        said = alone[0, len(head):].tolist()
        said = said[: next((j for j, t in enumerate(said) if t in ends), len(said))] or said[:1]
        with torch.no_grad():
            probs = torch.softmax(model(input_ids=torch.tensor([head + said])).logits[0].float(), -1)
        want = sum(probs[len(head) - 1 + j, t].item() for j, t in enumerate(said)) / len(said)
        assert abs(a.probability - want) < 1e-3
