import json

from tasks.report import build_report


def _metrics() -> dict:
    def model(adherence: float) -> dict:
        return {"n": 4, "adherence": adherence, "closed_book_accuracy": 0.5, "irrelevant_robustness": 0.75,
                "adherence_by_setting": {"closed_book": 0.5, "ctx_counterfactual": adherence},
                "source_confusion": {e: {f: int(e == f) for f in ("instruction", "context", "parametric", "none")}
                                     for e in ("instruction", "context", "parametric")}}

    def prior(top: float) -> dict:
        q = [{"n": 10, "certainty_min": k / 5, "certainty_max": k / 5 + 0.19, "certainty_mean": k / 5 + 0.1,
              "adherence": 1.0 if k < 4 else top, "adherence_ci95": [0.7, 1.0] if k < 4 else [top - 0.2, top],
              "adherence_by_setting": {}} for k in range(5)]
        return {"n": 50, "quintiles": q, "gap": {"delta": top - 1, "ci95": [top - 1.3, top - 0.9], "significant": True}}

    delta = {"adherence": 0.75, "closed_book_retention": -0.0312, "closed_book_retention_ci95": [-0.125, 0.0625],
             "closed_book_retention_significant": False}
    tests = {"base": {**model(0.25), "prior_strength": prior(0.4)}, "tuned": {**model(1.0), "prior_strength": prior(0.9)}}
    return {"test": {**tests, "delta": delta}, "test_ood_relation": {}}


def test_report_writes_markdown_html_and_figures(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps(_metrics()))
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "tuned_test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": "x", "setting": "ctx_counterfactual", "expected_source": "context", "prediction": "Quito",
         "correct": True},
        {"id": "y", "setting": "instr_vs_ctx", "expected_source": "instruction", "prediction": "It is Lima.",
         "expected": ["Cusco"], "correct": False, "question": "What is the capital of Peru?",
         "instruction": "Assume that the capital of Peru is Cusco.", "contexts": ["The capital of Peru is Lima."]}]))
    out = build_report(tmp_path / "metrics.json", tmp_path / "missing.json", tmp_path / "live", tmp_path / "pred",
                       tmp_path / "reports", tmp_path / "reports" / "figures")
    md, html = out["md"].read_text(), out["html"].read_text()
    assert "| a counterfactual passage | 25% | 100% |" in md and "figures/adherence_test.png" in md
    # retention stands beside adherence in the first table, above every per-split section, in
    # percentages and points, under a few sentences that say what tuning did
    for text in (md, html):
        top = text[: text.index("Held-out subjects")]  # the per-split section's title
        assert "Headlines" in top and "held-out subjects" in top and "-3 pts [-12, +6]" in top and "100% (25%)" in top
        assert "In short" in top and "follows a counterfactual passage 100% of the time, the base model 25%" in top
        assert "it answers 50% right against the base model's 50%: -3 pts [-12, +6]." in top
        assert "No setting of any split or benchmark fell significantly below the base model." in top
    # labels, not metrics.json's keys; EM only where answers are spans (benchmarks), not here
    assert "| closed-book accuracy | 50% | 50% |" in md and "closed_book_accuracy" not in md
    assert "exact match" not in md and "irrelevant_robustness" not in md
    # a failure in full: everything the model was given, what was expected and what it said
    for text in (md, html):
        failure = text[text.index("Failures, in full"):]
        assert "Instruction: Assume that the capital of Peru is Cusco." in failure
        assert "Context: The capital of Peru is Lima." in failure
        assert "Question: What is the capital of Peru?" in failure
        assert "Cusco" in failure and "It is Lima." in failure and "Quito" not in failure
    # the strongest memories: bottom and top quintile of the base's certainty, and the gap, drawn as ClashEval does
    for text in (md, html):
        strong = text[text.index("Conflicts against the strongest memories"):]
        assert "90% [70%, 90%] (0.80-0.99)" in strong and "-10 pts [-40, +0], significant" in strong
    assert html.count("data:image/png;base64,") == 3  # adherence, source confusion, prior; no curves without training
    figures = sorted(p.name for p in (tmp_path / "reports" / "figures").iterdir())
    assert figures == ["adherence_test.png", "confusion_test.png", "prior_strength.png"]  # the empty split: nothing


def test_training_curves_draw_dpo_rewards_when_there_was_a_dpo_phase(tmp_path):
    from tasks.reporting.figures import plot_loss

    def tsv(path, key, values):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"step\t{key}\n" + "".join(f"{i}\t{v}\n" for i, v in enumerate(values)))

    live = tmp_path / "live"
    assert plot_loss(live) is None  # nothing trained, nothing drawn
    dpo = live / "plots" / "metrics" / "dpo"
    tsv(dpo / "loss.tsv", "loss", [0.69, 0.6, 0.5])
    tsv(dpo / "rewards" / "margins.tsv", "margins", [0.0, 0.2, 0.5])
    only_dpo = plot_loss(live)
    tsv(live / "plots" / "metrics" / "loss.tsv", "loss", [2.0, 1.0, 0.5])
    tsv(live / "plots" / "metrics" / "learning_rate.tsv", "learning_rate", [1e-4, 8e-4, 2e-4])
    both = plot_loss(live)
    assert only_dpo and both and both != only_dpo
    from io import BytesIO

    from PIL import Image

    # one panel per kind of curve: DPO loss and rewards; then SFT loss and the learning rate too
    assert Image.open(BytesIO(both)).size[0] > 1.8 * Image.open(BytesIO(only_dpo)).size[0]
