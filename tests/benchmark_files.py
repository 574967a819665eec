"""Small benchmark files written for the tests in each benchmark's published format (made-up
records, not benchmark data): MQuAKE's case list, IfQA's question list, MRQA's JSON Lines."""
from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path


def _rewrite(prompt, subject, true, new, question):
    return {"prompt": prompt, "relation_id": "P0", "subject": subject, "question": question,
            "target_true": {"str": true, "id": "Q1"}, "target_new": {"str": new, "id": "Q2"}}


def _hop(question, answer, aliases=()):
    return {"question": question, "cloze": question, "answer": answer, "answer_alias": list(aliases)}


MQUAKE = [
    {
        "case_id": 11,
        "requested_rewrite": [
            _rewrite("{} was written by", "Song of Rivers", "Ana Lind", "Bo Ek", "Who wrote Song of Rivers?"),
            _rewrite("{} is a citizen of", "Bo Ek", "Sweden", "Peru", "What is the country of citizenship of Bo Ek?"),
        ],
        "questions": ["Of which country is the writer of Song of Rivers a citizen?",
                      "The author of Song of Rivers holds citizenship of which country?",
                      "Which country's citizen wrote Song of Rivers?"],
        "answer": "Sweden", "answer_alias": ["Kingdom of Sweden"],
        "new_answer": "Peru", "new_answer_alias": ["Republic of Peru"],
        "single_hops": [_hop("Who wrote Song of Rivers?", "Ana Lind"),
                        _hop("What is the country of citizenship of Ana Lind?", "Sweden", ["Kingdom of Sweden"])],
        "new_single_hops": [_hop("Who wrote Song of Rivers?", "Bo Ek", ["B. Ek"]),
                            _hop("What is the country of citizenship of Bo Ek?", "Peru", ["Republic of Peru"])],
        "orig": {"triples": [], "triples_labeled": [], "new_triples": [], "new_triples_labeled": [],
                 "edit_triples": []},
    },
    {
        "case_id": 12,
        "requested_rewrite": [
            _rewrite("The capital of {} is", "Norland", "Oslo", "Bergen", "What is the capital of Norland?"),
        ],
        "questions": ["What is the capital of the country Ana Lind is a citizen of?",
                      "Which city is the capital of Ana Lind's country?",
                      "Ana Lind's country has which capital?"],
        "answer": "Stockholm", "answer_alias": [],
        "new_answer": "Bergen", "new_answer_alias": [],
        # the first hop is asked by case 11 too: closed-book once
        "single_hops": [_hop("What is the country of citizenship of Ana Lind?", "Sweden"),
                        _hop("What is the capital of Sweden?", "Stockholm")],
        "new_single_hops": [_hop("What is the capital of Norland?", "Bergen")],
        "orig": {"triples": [], "triples_labeled": [], "new_triples": [], "new_triples_labeled": [],
                 "edit_triples": []},
    },
]

IFQA = [
    {"idx": 0, "question": "If the river Ama flowed north instead of south, which sea would it reach?",
     "answers": ["Cold Sea"], "context": ["The Ama flows south from the hills into the Warm Sea."]},
    {"idx": 1, "question": "If the bridge had been built ten years later, and opened a year after that, "
                           "in which year would it have opened?",
     "answers": ["1961"], "context": ["The bridge was built in 1950.", "It opened to traffic in 1950."]},
    {"idx": 2, "question": "What would the town be called if it had kept its first name?",
     "answers": ["Oldbury"], "context": []},
]

_PASSAGES = [
    ("[TLE] Lake Vira [SEP] Lake Vira lies in Tarnland. Its largest town is Pell, and Pell sits on its shore.",
     "Where is Lake Vira?", "Tarnland"),
    ("[TLE] Mount Orr [PAR] Mount Orr was first climbed in 1921 by a team from Kessland.",
     "When was Mount Orr first climbed?", "1921"),
    ("[DOC] The Fen Railway opened in 1887 and runs through Dunmark.",
     "When did the Fen Railway open?", "1887"),
    ("The river Sil rises in Vossia and flows to the sea.", "Where does the river Sil rise?", "Vossia"),
]


def _mrqa_records() -> list[dict]:
    recs = [{"header": {"dataset": "TestQA", "split": "dev"}}]
    for i, (context, question, answer) in enumerate(_PASSAGES):
        spans, start = [], context.find(answer)
        while start >= 0:
            spans.append([start, start + len(answer) - 1])  # inclusive, as MRQA publishes them
            start = context.find(answer, start + 1)
        recs.append({"id": f"p{i}", "context": context, "context_tokens": [],
                     "qas": [{"qid": f"q{i}", "question": question, "question_tokens": [], "answers": [answer],
                              "detected_answers": [{"text": answer, "char_spans": spans, "token_spans": []}],
                              "is_impossible": False}]})
    return recs


def write_mquake(path: Path, cases: list | None = None) -> Path:
    path.write_text(json.dumps(cases if cases is not None else MQUAKE, indent=1))
    return path


def write_ifqa(path: Path) -> Path:
    path.write_text(json.dumps(IFQA, indent=4))
    return path


def write_mrqa(path: Path, records: list[dict] | None = None) -> Path:
    text = "".join(json.dumps(r) + "\n" for r in (records if records is not None else _mrqa_records()))
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def mrqa_records() -> list[dict]:
    return copy.deepcopy(_mrqa_records())
