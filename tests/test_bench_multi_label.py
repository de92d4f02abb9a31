"""bench with multi-label and hierarchical exports: the task comes from the manifest; served label sets are
compared with the in-process head's, scored by macro-F1; shape and INT8 variants keep the task; the report
states each step's share of server compute. Fast tests use the tiny exports written without training; one
test serves and benches a multi-label tiny export end to end (marked ``triton``)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests import support
from tritoncls.benchmarks.bench import PLANS, BenchConfig, _accuracy, _record_label_agreement, _Run
from tritoncls.benchmarks.report import REPORT_MD, compute_targets, step_compute, write_report
from tritoncls.clients.base import LabelSetPrediction, Prediction
from tritoncls.common.offline import OfflineConfig, open_predictor
from tritoncls.measure import answers
from tritoncls.measure.texts import read_bench_texts
from tritoncls.measure.triton_stats import ModelStats, stage_share
from tritoncls.runtime import Manifest


def write_lines(path: Path, count: int = 64, hierarchical: bool = False) -> Path:
    path.write_text("\n".join(support.tiny_multi_label_lines(count, hierarchical)) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# Answers: the task decides what a prediction is and how it scores
# ---------------------------------------------------------------------------------------------


def test_empty_label_fields_are_kept_as_texts_with_no_label(tmp_path):
    data = read_bench_texts(write_lines(tmp_path / "dev.txt", count=5))
    assert data.labels is not None and data.labels[0] == "" and data.labels[2] == "negative,sarcastic"


def test_truth_reads_label_sets_as_the_export_task_says_and_refuses_labels_it_does_not_have(multi_label_export,
                                                                                             tiny_export):
    manifest = Manifest.load(multi_label_export)  # positive, negative, neutral, sarcastic
    gold = answers.truth(manifest, ["positive,sarcastic", "", "neutral"])
    assert gold.tolist() == [[True, False, False, True], [False] * 4, [False, False, True, False]]
    assert answers.truth(manifest, ["positive,angry"]) is None
    assert answers.truth(manifest, ["positive", None]) is None  # a line without a label field
    assert answers.unknown_labels(manifest, ["positive,angry", "", "calm"]) == ["angry", "calm"]
    multi_class = Manifest.load(tiny_export)  # positive, negative, neutral: "a,b" is one (unknown) label there
    assert answers.truth(multi_class, ["negative", "positive"]).tolist() == [1, 0]
    assert answers.truth(multi_class, ["positive,negative"]) is None
    assert answers.truth(multi_class, [""]) is None


def test_inprocess_answers_are_the_predictors_label_sets(varied_label_sets):
    export, data = varied_label_sets
    manifest = Manifest.load(export)
    predictor = open_predictor(OfflineConfig(model=str(export)))
    sets = [tuple(name for name, _ in row) for row in predictor.predict_sets(list(data.texts))]
    got = answers.inprocess_answers(manifest, predictor.logits(data.texts).logits)
    assert got == sets and len(set(got)) > 3 and () in got  # varied, none included
    if manifest.task.hierarchical:  # a child only with its parent
        assert all(label.rsplit("##", 1)[0] in answer for answer in got for label in answer if "##" in label)


def test_served_answers_are_label_set_names_and_agreement_needs_the_whole_set():
    served = answers.served_answers([LabelSetPrediction((("a", 0.9), ("c", 0.6))), LabelSetPrediction(())])
    assert served == [("a", "c"), ()]
    assert answers.agreement(served, [("a", "c"), ()]) == 1.0
    assert answers.agreement(served, [("a",), ()]) == 0.5  # a subset is not the same answer
    assert answers.served_answers([Prediction("food", 0.8)]) == ["food"]


def test_label_sets_score_by_macro_f1_and_single_labels_by_accuracy(multi_label_export, tiny_export):
    manifest = Manifest.load(multi_label_export)
    gold = answers.truth(manifest, ["positive", "negative", "positive,neutral"])
    predicted = [("positive",), ("positive",), ("positive", "neutral")]
    # positive: P 2/3 R 1 F1 0.8; negative: 0; neutral: 1; sarcastic: no support, no prediction (0 by sklearn)
    assert answers.metric(manifest) == "macro_f1"
    assert answers.score(manifest, gold, predicted) == pytest.approx((0.8 + 0 + 1 + 0) / 4)
    multi_class = Manifest.load(tiny_export)
    assert answers.metric(multi_class) == "accuracy"
    assert answers.score(multi_class, answers.truth(multi_class, ["neutral", "positive"]),
                         ["neutral", "negative"]) == 0.5


# ---------------------------------------------------------------------------------------------
# bench's checks on a multi-label export (in-process; no server)
# ---------------------------------------------------------------------------------------------


def _run(tmp_path: Path, export: Path, data: Path) -> _Run:
    config = BenchConfig(model=str(export), input=str(data), output=str(tmp_path / "out"), mode="tiny")
    return _Run(config, config.plan(), tmp_path / "work")


def test_bench_scores_fp32_int8_and_fused_by_macro_f1_with_whole_set_agreement(varied_label_sets, tmp_path):
    export, data = varied_label_sets
    run = _run(tmp_path, export, data.path)
    _accuracy(run, export, data)
    acc = run.m["accuracy"]
    assert acc["metric"] == "macro_f1" and acc["task"] == Manifest.load(export).task.task
    expected = answers.score(Manifest.load(export), answers.truth(Manifest.load(export), data.labels),
                             answers.inprocess_answers(Manifest.load(export),
                                                       open_predictor(OfflineConfig(model=str(export)))
                                                       .logits(data.texts).logits))
    assert acc["fp32"] == pytest.approx(expected) and acc["fused_label_agreement"] == 1.0
    assert 0.9 <= acc["int8_label_agreement"] <= 1.0 and 0.0 <= acc["int8"] <= 1.0
    target = {t.name: t for t in compute_targets(run.m)}["int8_accuracy_drop"]
    assert target.measured == pytest.approx((acc["fp32"] - acc["int8"]) * 100)
    assert "macro_f1" in target.description and "macro_f1" in target.detail


def test_served_label_sets_are_checked_whole_against_the_inprocess_head(varied_label_sets, tmp_path):
    export, data = varied_label_sets
    manifest = Manifest.load(export)
    predictor = open_predictor(OfflineConfig(model=str(export)))
    logits = predictor.logits(data.texts).logits
    served = [LabelSetPrediction(tuple(row)) for row in predictor.predict_sets(list(data.texts))]
    run = _run(tmp_path, export, data.path)
    _record_label_agreement(run, manifest, served, logits, data)
    check = run.m["served_label_check"]
    assert check["agreement_with_inprocess"] == 1.0 and check["max_probability_diff"] < 1e-6
    assert check["metric"] == "macro_f1" and 0 <= check["served_macro_f1"] <= 1 and not run.failures
    assert check["labels_per_text"]["served"] == check["labels_per_text"]["inprocess"] > 0
    changed = next(i for i, p in enumerate(served) if p.labels)
    served[changed] = LabelSetPrediction(served[changed].labels[:-1])  # one label fewer
    _record_label_agreement(run, manifest, served, logits, data)
    assert run.m["served_label_check"]["agreement_with_inprocess"] == pytest.approx(1 - 1 / len(served))
    assert "served label sets differ from in-process label sets" in run.failures[0]


# ---------------------------------------------------------------------------------------------
# Variants keep the task
# ---------------------------------------------------------------------------------------------


def test_an_int8_variant_of_a_multi_label_export_keeps_its_task_and_thresholds(multi_label_export, tmp_path):
    from tritoncls.measure.variants import int8_export

    derived = Manifest.load(int8_export(multi_label_export, tmp_path / "int8"))
    assert derived.precision == "int8" and derived.task == Manifest.load(multi_label_export).task


@pytest.mark.slow  # exports a random-weight nano checkpoint with Paddle
def test_a_nano_shape_of_a_multi_label_export_is_a_multi_label_export_with_its_thresholds(tmp_path):
    from tritoncls.measure.variants import shape_export

    source = support.write_multi_label_export(tmp_path / "export", hierarchical=True)
    shape = Manifest.load(shape_export("nano", source, tmp_path / "work"))
    assert shape.task == Manifest.load(source).task and shape.labels == Manifest.load(source).labels
    assert shape.architecture["num_labels"] == len(shape.labels) and shape.architecture["hidden_size"] == 312
    assert shape_export("nano", source, tmp_path / "work") == tmp_path / "work" / "exports" / "nano"  # reused


# ---------------------------------------------------------------------------------------------
# Each step's share of server compute
# ---------------------------------------------------------------------------------------------


def _stats(tokenizer_ms: float, model_ms: float, post_ms: float, queue_ms: float, texts: int) -> dict[str, ModelStats]:
    def stats(compute_ms: float, queue: float) -> ModelStats:
        return ModelStats(texts, 4, int(queue * 1e6), 0, int(compute_ms * 1e6), 0)

    return {"tok": stats(tokenizer_ms, queue_ms), "model": stats(model_ms, queue_ms), "post": stats(post_ms, 0)}


def test_compute_shares_leave_the_queue_out_and_give_each_steps_time_per_text():
    share = stage_share(_stats(10, 80, 10, 100, texts=64), {"tokenizer": "tok", "model": "model", "postprocess": "post"})
    assert share.compute_shares == pytest.approx({"tokenizer": 0.1, "model": 0.8, "postprocess": 0.1})
    assert share.shares["postprocess"] == pytest.approx(10 / 300)  # of the whole server time, queue included
    assert share.us_per_text["postprocess"] == pytest.approx(10_000 / 64)
    assert set(share.to_dict()) >= {"shares", "compute_shares", "us_per_text"}


def test_compute_shares_count_a_batched_execution_once_where_per_request_time_counts_it_per_request():
    """Recorded shape of Triton 2.51's statistics: 3 single-text requests ran as one execution of 6 ms."""
    from tritoncls.measure.triton_stats import parse_statistics

    def entry(name: str, per_request_ms: float, executions: list[tuple[int, float]]) -> dict:
        def ns(ms: float) -> dict:
            return {"count": "1", "ns": str(int(ms * 1e6))}

        return {"name": name, "inference_count": "3", "execution_count": str(len(executions)),
                "inference_stats": {"queue": ns(0), "compute_input": ns(0), "compute_infer": ns(per_request_ms),
                                    "compute_output": ns(0)},
                "batch_stats": [{"batch_size": str(size), "compute_input": ns(0.5), "compute_infer": ns(ms - 1),
                                 "compute_output": ns(0.5)} for size, ms in executions]}

    stats = parse_statistics({"model_stats": [entry("tok", 3.0, [(1, 1.0)] * 3), entry("model", 18.0, [(3, 6.0)]),
                                              entry("post", 3.0, [(3, 1.0)])]})
    assert stats["model"].execution_compute_ns == 6_000_000 and stats["model"].compute_ns == 18_000_000
    share = stage_share(stats, {"tokenizer": "tok", "model": "model", "postprocess": "post"})
    assert share.compute_shares == pytest.approx({"tokenizer": 0.3, "model": 0.6, "postprocess": 0.1})
    assert share.us_per_text == pytest.approx({"tokenizer": 1000.0, "model": 2000.0, "postprocess": 1000 / 3})
    assert share.shares["model"] == pytest.approx(18 / 24)  # a request's view: it waited the whole batch


def test_a_fused_model_is_counted_once_as_the_model_stage():
    stats = {"seqcls": ModelStats(64, 4, 0, 0, int(50e6), 0)}
    share = stage_share(stats, {"tokenizer": "seqcls", "model": "seqcls", "postprocess": "seqcls"})
    assert share.seconds["model"] == pytest.approx(0.05) and share.seconds["tokenizer"] == 0.0
    assert share.compute_shares["model"] == 1.0


def _served(post_share: float) -> dict:
    def point(batch: int, concurrency: int, rate: float) -> dict:
        compute = {"tokenizer": 0.05, "model": 0.95 - post_share, "postprocess": post_share}
        return {"target": "ensemble", "batch_size": batch, "concurrency": concurrency, "inferences_per_s": rate,
                "p50_us": 1e3, "p95_us": 2e3, "p99_us": 3e3,
                "stages": {"shares": {**{k: v / 2 for k, v in compute.items()}, "queue": 0.5}, "compute_shares": compute,
                           "us_per_text": {"tokenizer": 50.0, "model": 900.0, "postprocess": 40.0},
                           "texts_per_model_execution": 8.0}}

    return {"default": {"build_config": {}, "points": [point(32, 1, 90.0), point(32, 2, 100.0), point(1, 8, 70.0),
                                                       point(1, 32, 80.0)]}}


def test_the_report_states_each_steps_share_of_server_compute_for_both_tasks(tmp_path):
    m = {"task": "multi_label", "shapes": {
        "nano": {"task": "multi_label", "architecture": {}, "served": _served(0.08)},
        "trained": {"task": "multi_class", "architecture": {}, "served": _served(0.02)}}}
    rows = step_compute(m)
    assert [(r["shape"], r["request"], r["concurrency"]) for r in rows] == [
        ("nano", "32 texts/request", 2), ("nano", "1 text/request", 32),
        ("trained", "32 texts/request", 2), ("trained", "1 text/request", 32)]
    assert rows[0]["compute_shares"]["postprocess"] == 0.08 and rows[0]["task"] == "multi_label"
    write_report(m, tmp_path, plots=False)
    markdown = (tmp_path / REPORT_MD).read_text(encoding="utf-8")
    assert "## Server compute time by step" in markdown
    assert "| nano | default | multi_label | 32 texts/request | 2 | 5.0% | 87.0% | 8.0% | 40 | 4.0% |" in markdown
    assert json.loads((tmp_path / "report.json").read_text())["step_compute"] == rows


# ---------------------------------------------------------------------------------------------
# End to end: build, serve and bench a multi-label tiny export
# ---------------------------------------------------------------------------------------------


@pytest.mark.triton
def test_bench_tiny_on_a_multi_label_export_serves_the_inprocess_label_sets_and_reports_the_postprocess_share(
        perf_analyzer_ready, tmp_path, monkeypatch):
    """The tiny export has no Paddle graph or checkpoint: the in-process baselines are ONNX Runtime only."""
    from tritoncls.benchmarks import bench
    from tritoncls.cli import main

    texts = write_lines(tmp_path / "dev.txt")
    export = support.write_varied_multi_label_export(tmp_path / "export", read_bench_texts(texts).texts)
    monkeypatch.setitem(bench.PLANS, "tiny", replace(PLANS["tiny"], baseline_runtimes={"*": ("onnxruntime",)}))
    output = tmp_path / "report"
    code = main(["bench", "--tiny", "--model", str(export), "--input", str(texts), "--output", str(output),
                 "--no_plots"])
    report = json.loads((output / "report.json").read_text(encoding="utf-8"))
    assert code == 0, report["failures"]
    assert report["task"] == "multi_label" and report["shapes"]["trained"]["task"] == "multi_label"
    check = report["served_label_check"]
    assert check["texts"] == 64 and check["agreement_with_inprocess"] == 1.0 and check["task"] == "multi_label"
    assert check["max_probability_diff"] <= 1e-4
    assert 0 < check["labels_per_text"]["served"] < len(Manifest.load(export).labels)
    assert report["accuracy"]["metric"] == "macro_f1" and report["accuracy"]["int8_label_agreement"] >= 0.9
    assert {"default", "reference", "int8"} <= set(report["shapes"]["trained"]["served"])
    rows = [r for r in report["step_compute"] if r["repository"] == "default"]
    assert {r["request"] for r in rows} == {"32 texts/request", "1 text/request"}
    for row in rows:
        assert 0 < row["compute_shares"]["postprocess"] < 1 and row["us_per_text"]["postprocess"] > 0
        assert sum(row["compute_shares"].values()) == pytest.approx(1.0)
    markdown = (output / "report.md").read_text(encoding="utf-8")
    assert "Served label sets agree with in-process ONNX Runtime on 100.00% of 64 texts" in markdown
    assert "## Server compute time by step" in markdown and "## Dev macro_f1" in markdown
    assert np.isfinite([t["measured"] for t in report["targets"] if t["measured"] is not None]).all()


def test_the_task_ab_script_reports_medians_of_the_within_round_ratios():
    """scripts/task_ab.py (the interleaved A/B behind docs/benchmarks.md's multi-label figures) parses its
    exports and summarises complete rounds only."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "task_ab.py"
    spec = importlib.util.spec_from_file_location("task_ab", path)
    task_ab = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(task_ab)
    args = task_ab.parse_args(["a=/x", "b=/y", "--input", "dev.txt", "--output", "out"])
    assert args.exports == ["a=/x", "b=/y"] and args.rounds == 3

    def record(ratio_b32: float, ratio_single: float, post_share: float) -> dict:
        point = {"compute_shares": {"postprocess": post_share}, "us_per_text": {"postprocess": 100.0}}
        return {"export": "a", "b32_c1": point, "b1_c32": point, "b32_c1_vs_inprocess_file": ratio_b32,
                "b1_c32_vs_inprocess_sorted": ratio_single}

    records = [record(1.0, 0.5, 0.02), record(1.4, 1.1, 0.03), record(2.0, 0.9, 0.04), {"export": "a"}]
    line = task_ab.summary("a", records)
    assert "file order 1.40" in line and "sorted 0.90" in line and "3.0% (32/request)" in line
    assert "(medians of 3 rounds)" in line and task_ab.summary("b", records) == "b: no complete round"
