from tasks.core.prompt import (
    ANSWER_HINT,
    conversation,
    preference,
    prompt_key,
    user_message,
)

RECORD = {"question": "What is the capital of Peru?", "contexts": ["The capital of Peru is Quito.", "Lima is big."],
          "instruction": "Assume that the capital of Peru is Cusco.", "completion": "The capital of Peru is Cusco.",
          "rejected": "The capital of Peru is Quito."}


def test_user_message_orders_instruction_context_question():
    text = user_message(RECORD["question"], RECORD["contexts"], RECORD["instruction"])
    assert text.splitlines() == ["Instruction: Assume that the capital of Peru is Cusco.", "Context:",
                                 "[1] The capital of Peru is Quito.", "[2] Lima is big.",
                                 "Question: What is the capital of Peru?", ANSWER_HINT]
    assert user_message("Q?", ["One passage."]).startswith("Context: One passage.\nQuestion: Q?")


def test_prompt_key_tells_prompts_apart_not_answers():
    k = prompt_key(RECORD["question"], RECORD["instruction"], RECORD["contexts"])
    assert k == prompt_key(RECORD["question"], RECORD["instruction"], tuple(RECORD["contexts"]))
    assert k != prompt_key(RECORD["question"], None, RECORD["contexts"])


def test_training_rows_share_the_prompt():
    sft, pair = conversation(RECORD), preference(RECORD)
    assert sft["prompt"] == pair["prompt"]
    assert sft["completion"] == pair["chosen"] == [{"role": "assistant", "content": RECORD["completion"]}]
    assert pair["rejected"][0]["content"] == RECORD["rejected"]
