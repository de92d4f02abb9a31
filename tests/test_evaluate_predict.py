"""evaluate, predict (checkpoint and export) and analyze, end to end on the shipped demo data."""

from __future__ import annotations

import json

import pytest

from tritoncls.cli import main
from tritoncls.common import data

pytestmark = pytest.mark.slow


def test_evaluate_writes_metrics_bad_cases_and_confusion_matrix(demo_checkpoint, demo_dir, tmp_path):
    report_path, bad_cases, png = tmp_path / "eval.json", tmp_path / "bad_case.txt", tmp_path / "cm.png"
    code = main(["evaluate", "--dataset_dir", str(demo_dir), "--params_path", str(demo_checkpoint), "--device", "cpu",
                 "--max_seq_length", "64", "--bad_case_path", str(bad_cases), "--confusion_matrix", str(png),
                 "--report_json", str(report_path)])
    assert code == 0
    report = json.loads(report_path.read_text(encoding="utf-8"))
    dev = report["splits"]["dev"]
    assert dev["size"] == 100 and report["splits"]["train"]["size"] == 400
    assert dev["accuracy"] <= dev["top2_accuracy"] <= dev["top3_accuracy"]
    assert [row["label"] for row in dev["per_class"]] == data.read_labels(demo_dir / "label.txt")
    assert sum(row["count"] for row in dev["per_class"]) == 100
    lines = bad_cases.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "Confidence\tPrediction\tLabel\tText"
    assert len(lines) - 1 == round((1 - dev["accuracy"]) * 100)
    assert all(len(line.split("\t")) == 4 for line in lines)
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_evaluate_names_the_file_it_scored_where_it_is_not_dev_txt(demo_checkpoint, demo_dir, tmp_path, caplog):
    run = ["evaluate", "--dataset_dir", str(demo_dir), "--params_path", str(demo_checkpoint), "--max_seq_length", "64",
           "--bad_case_path", str(tmp_path / "bad.txt"), "--confusion_matrix", ""]
    with caplog.at_level("INFO"):
        assert main([*run, "--dev_file", "test.txt"]) == 0
    assert "Accuracy in dev dataset (test.txt):" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO"):
        assert main(run) == 0
    assert "Accuracy in dev dataset: " in caplog.text


def test_predict_checkpoint_and_offline_export_write_the_same_labels(demo_checkpoint, demo_export, demo_dir, tmp_path):
    common = ["--max_seq_length", "64", "--device", "cpu"]
    assert main(["predict", "--dataset_dir", str(demo_dir), "--params_path", str(demo_checkpoint),
                 "--output_file", str(tmp_path / "dyn.tsv"), *common]) == 0
    for backend in ("onnxruntime", "paddle_inference"):
        assert main(["predict", "--model", str(demo_export), "--backend", backend, "--input",
                     str(demo_dir / "data.txt"), "--output", str(tmp_path / f"{backend}.tsv"), *common]) == 0
    # --input without a data set: the texts from the file, the labels from the checkpoint's own label.txt
    assert main(["predict", "--checkpoint", str(demo_checkpoint), "--input", str(demo_dir / "data.txt"),
                 "--output", str(tmp_path / "input.tsv"), *common]) == 0
    dynamic = [line.split("\t")[:2] for line in (tmp_path / "dyn.tsv").read_text(encoding="utf-8").splitlines()]
    assert dynamic[0] == ["text", "label"] and len(dynamic) == 41
    assert [row[0] for row in dynamic[1:]] == data.read_texts(demo_dir / "data.txt")
    for backend in ("onnxruntime", "paddle_inference", "input"):
        rows = [line.split("\t")[:2] for line in (tmp_path / f"{backend}.tsv").read_text(encoding="utf-8").splitlines()]
        assert rows == dynamic, backend


def test_predict_input_wins_over_the_data_sets_data_txt(demo_checkpoint, demo_dir, tmp_path):
    (tmp_path / "texts.txt").write_text("hello\nmy parcel never arrived\n", encoding="utf-8")
    assert main(["predict", "--dataset_dir", str(demo_dir), "--checkpoint", str(demo_checkpoint), "--input",
                 str(tmp_path / "texts.txt"), "--output", str(tmp_path / "p.tsv"), "--device", "cpu"]) == 0
    rows = [line.split("\t")[0] for line in (tmp_path / "p.tsv").read_text(encoding="utf-8").splitlines()]
    assert rows == ["text", "hello", "my parcel never arrived"]


def test_predict_without_a_data_set_needs_the_checkpoints_label_file(demo_checkpoint, tmp_path, caplog):
    import shutil

    bare = tmp_path / "ckpt"
    shutil.copytree(demo_checkpoint, bare)
    (bare / "label.txt").unlink()
    (tmp_path / "texts.txt").write_text("hello\n", encoding="utf-8")
    code = main(["predict", "--checkpoint", str(bare), "--input", str(tmp_path / "texts.txt"), "--device", "cpu"])
    assert code == 1 and "has no label.txt" in caplog.text and "--dataset_dir" in caplog.text


def test_predict_refuses_a_label_file_of_another_size(demo_checkpoint, demo_dir, tmp_path, caplog):
    (tmp_path / "label.txt").write_text("a\nb\n", encoding="utf-8")
    (tmp_path / "data.txt").write_text("hello\n", encoding="utf-8")
    code = main(["predict", "--dataset_dir", str(tmp_path), "--params_path", str(demo_checkpoint), "--device", "cpu"])
    assert code == 1 and "predicts 5 labels" in caplog.text


def test_analyze_reports_lengths_balance_and_a_suggested_length(demo_dir, tmp_path):
    from tritoncls.training.analysis import AnalyzeConfig, analyze

    report = analyze(AnalyzeConfig(dataset_dir=str(demo_dir), report=str(tmp_path / "a.json")))
    assert report["train"]["size"] == 400 and set(report["train"]["label_counts"].values()) == {80}
    assert report["train"]["truncated_share"] == 0.0
    assert report["suggested_max_seq_length"] in (16, 32)
    assert report["dev_texts_in_train"] == 0
