"""Multi-label and hierarchical models through train, evaluate, predict and export, on the shipped demo sets:
the task and thresholds travel with the checkpoint and the export, and the dynamic graph, the static graph
(Paddle Inference), ONNX Runtime and the checkpoint predictor give the same label sets. The real multi-label
sets (GoEmotions, CAIL2019) are read whole by the data readers here; the measurements on them are in
docs/multilabel.md."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from tests import support
from tritoncls.cli import main
from tritoncls.common import data, metrics
from tritoncls.common.offline import OfflineConfig, open_predictor
from tritoncls.errors import ConfigError, DataError
from tritoncls.runtime import Manifest, TaskSpec, label_sets

PROB_TOLERANCE = 1e-4


def _texts(root: Path, split: str = "test") -> list[str]:
    return [line.split("\t")[0] for line in (root / f"{split}.txt").read_text(encoding="utf-8").splitlines()]


def test_training_a_multi_label_model_saves_its_task_and_dev_tuned_thresholds(ml_checkpoint, ml_dir):
    task = json.loads((ml_checkpoint / "task.json").read_text(encoding="utf-8"))
    labels = data.read_labels(ml_dir / "label.txt", "multi_label")
    assert task["task"] == "multi_label" and task["metric"] == "macro_f1"
    assert len(task["thresholds"]) == len(labels) == 5 and all(0 < t < 1 for t in task["thresholds"])
    assert "per label on 100 dev texts" in task["thresholds_from"]
    training = json.loads((ml_checkpoint / "training_config.json").read_text(encoding="utf-8"))
    assert training["task"] == "multi_label" and training["metric"] == "macro_f1"


@pytest.mark.slow  # its fixtures (trained models) are looked up by name
@pytest.mark.parametrize("which", ["ml", "tree"])
def test_every_prediction_path_gives_the_dynamic_graphs_label_sets(which, request):
    checkpoint, export, root = (request.getfixturevalue(f"{which}_{part}") for part in ("checkpoint", "export", "dir"))
    texts = _texts(root)
    probs, mask = support.DynamicGraph(checkpoint, export).predict_sets(texts)
    assert mask.any() and not mask.all(), "a model that predicts every label or none tests nothing"
    for backend in ("onnxruntime", "paddle_inference"):
        got = open_predictor(OfflineConfig(model=str(export), backend=backend)).predict_probs(texts)
        assert label_sets(got.mask) == label_sets(mask), backend
        assert np.abs(got.probs - probs).max() <= PROB_TOLERANCE, backend


def test_hierarchical_predictions_never_hold_a_path_without_its_parent(tree_export, tree_dir):
    manifest = Manifest.load(tree_export)
    assert manifest.task.task == "hierarchical"
    parents = manifest.head().parents
    mask = open_predictor(OfflineConfig(model=str(tree_export))).predict_probs(_texts(tree_dir)).mask
    children = np.flatnonzero(parents >= 0)
    assert not (mask[:, children] & ~mask[:, parents[children]]).any()
    assert mask[:, children].any(), "no path below the top level predicted: the rule was not exercised"


def test_export_records_the_checkpoints_task_or_the_thresholds_given_to_it(ml_checkpoint, ml_export, tmp_path):
    saved = json.loads((ml_checkpoint / "task.json").read_text(encoding="utf-8"))
    assert Manifest.load(ml_export).task == TaskSpec("multi_label", tuple(saved["thresholds"]))
    assert main(["export", "--checkpoint", str(ml_checkpoint), "--output", str(tmp_path / "exp"),
                 "--threshold", "0.35"]) == 0
    assert Manifest.load(tmp_path / "exp").task.thresholds == (0.35,) * 5


def test_evaluate_reports_set_scores_per_label_and_per_level_and_writes_both_sets_of_bad_cases(
        tree_checkpoint, tree_dir, tmp_path):
    assert main(["evaluate", "--dataset_dir", str(tree_dir), "--checkpoint", str(tree_checkpoint),
                 "--max_seq_length", "64", "--bad_case_path", str(tmp_path / "bad.txt"),
                 "--report", str(tmp_path / "eval.json")]) == 0
    report = json.loads((tmp_path / "eval.json").read_text(encoding="utf-8"))
    dev = report["splits"]["dev"]
    assert report["task"] == "hierarchical" and dev["size"] == 100
    assert {"micro_f1", "macro_f1", "micro_precision", "macro_recall", "subset_accuracy"} <= set(dev)
    assert [level["level"] for level in dev["levels"]] == [1, 2]
    assert dev["levels"][0]["labels"] == ["commerce", "support"]
    assert len(dev["per_label"]) == 7 and {"label", "threshold", "f1", "count"} <= set(dev["per_label"][0])
    lines = (tmp_path / "bad.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "Prediction\tConfidences\tLabel\tText" and len(lines) > 1
    predicted, confidences, given, text = lines[1].split("\t")
    assert predicted != given and len(confidences.split(",")) == len(predicted.split(",")) if predicted else True
    assert not (tmp_path / "confusion_matrix.png").exists()


def test_thresholds_given_to_evaluate_and_predict_replace_the_checkpoints(ml_checkpoint, ml_dir, tmp_path):
    run = ["predict", "--dataset_dir", str(ml_dir), "--checkpoint", str(ml_checkpoint), "--max_seq_length", "64"]
    assert main([*run, "--threshold", "0", "--output", str(tmp_path / "all.tsv")]) == 0
    assert main([*run, "--threshold", "1", "--output", str(tmp_path / "none.tsv")]) == 0
    every = (tmp_path / "all.tsv").read_text(encoding="utf-8").splitlines()
    assert every[0] == "text\tlabels\tprobabilities"
    assert all(len(row.split("\t")[1].split(",")) == 5 for row in every[1:])
    assert all(row.split("\t")[1:] == ["", ""] for row in (tmp_path / "none.tsv").read_text().splitlines()[1:])
    labels = data.read_labels(ml_dir / "label.txt", "multi_label")
    (tmp_path / "t.tsv").write_text("".join(f"{label}\t{0.0 if i == 3 else 1.0}\n" for i, label in enumerate(labels)))
    assert main([*run, "--thresholds_file", str(tmp_path / "t.tsv"), "--output", str(tmp_path / "one.tsv")]) == 0
    assert {row.split("\t")[1] for row in (tmp_path / "one.tsv").read_text().splitlines()[1:]} == {labels[3]}


def test_evaluate_tunes_thresholds_on_dev_for_a_metric_and_writes_them_for_export(ml_checkpoint, ml_dir, tmp_path):
    run = ["evaluate", "--dataset_dir", str(ml_dir), "--checkpoint", str(ml_checkpoint), "--max_seq_length", "64",
           "--bad_case_path", str(tmp_path / "bad.txt")]
    for metric in ("macro_f1", "micro_f1"):
        tuned = tmp_path / f"{metric}.tsv"
        assert main([*run, "--tune_thresholds", str(tuned), "--metric", metric,
                     "--report", str(tmp_path / f"{metric}.json")]) == 0
        report = json.loads((tmp_path / f"{metric}.json").read_text(encoding="utf-8"))
        labels = data.read_labels(ml_dir / "label.txt", "multi_label")
        thresholds = metrics.read_thresholds(tuned, labels)
        assert report["thresholds"] == list(thresholds) and report["tuned_thresholds"]["metric"] == metric
        # the dev score at the tuned thresholds is the best the rule can do there: no lower than the checkpoint's
        assert main([*run, "--thresholds_file", str(tuned), "--report", str(tmp_path / "again.json")]) == 0
        again = json.loads((tmp_path / "again.json").read_text(encoding="utf-8"))["splits"]["dev"]
        assert again[metric] == pytest.approx(report["splits"]["dev"][metric])
    assert main(["export", "--checkpoint", str(ml_checkpoint), "--output", str(tmp_path / "exp"),
                 "--thresholds_file", str(tmp_path / "micro_f1.tsv")]) == 0
    assert Manifest.load(tmp_path / "exp").task.thresholds == thresholds


@pytest.mark.parametrize("extra, message", [
    (["--metric", "micro_f1"], "give --tune_thresholds FILE with it"),
    (["--tune_thresholds", "t.tsv", "--threshold", "0.5"], "drop --threshold"),
    (["--tune_thresholds", "t.tsv", "--metric", "accuracy"], "invalid choice"),
])
def test_evaluate_refuses_tuning_options_that_do_not_fit(ml_checkpoint, ml_dir, tmp_path, extra, message, capsys,
                                                        caplog):
    args = ["evaluate", "--dataset_dir", str(ml_dir), "--checkpoint", str(ml_checkpoint),
            "--bad_case_path", str(tmp_path / "bad.txt"), *extra]
    if "invalid choice" in message:
        with pytest.raises(SystemExit):
            main(args)
        assert message in capsys.readouterr().err
    else:
        assert main(args) == 1 and message in caplog.text
    assert not (tmp_path / "bad.txt").exists() and not (tmp_path / "t.tsv").exists()


def test_checkpoint_predict_and_offline_predict_write_the_same_file(ml_checkpoint, ml_export, ml_dir, tmp_path):
    assert main(["predict", "--dataset_dir", str(ml_dir), "--checkpoint", str(ml_checkpoint),
                 "--max_seq_length", "64", "--output", str(tmp_path / "dynamic.tsv")]) == 0
    assert main(["predict", "--model", str(ml_export), "--input", str(ml_dir / "data.txt"),
                 "--output", str(tmp_path / "onnx.tsv")]) == 0
    dynamic = [row.split("\t") for row in (tmp_path / "dynamic.tsv").read_text(encoding="utf-8").splitlines()]
    onnx = [row.split("\t") for row in (tmp_path / "onnx.tsv").read_text(encoding="utf-8").splitlines()]
    assert [row[:2] for row in dynamic] == [row[:2] for row in onnx]


def test_int8_keeps_most_label_sets_of_fp32(ml_export, ml_dir):
    texts = _texts(ml_dir)
    fp32 = open_predictor(OfflineConfig(model=str(ml_export))).predict_probs(texts).mask
    int8 = open_predictor(OfflineConfig(model=str(ml_export), precision="int8")).predict_probs(texts).mask
    agreement = float((fp32 == int8).all(axis=1).mean())
    assert agreement >= 0.8, f"INT8 label sets agree with FP32 on only {agreement:.1%} of texts"


def test_deploy_renders_and_validates_a_multi_label_repository(ml_export, tmp_path):
    from tritoncls.builder import BuildConfig, build_repository
    from tritoncls.deploy import DeployConfig, deploy

    repo = build_repository(BuildConfig(model=str(ml_export), output=str(tmp_path / "repo")))
    for target, extra in (("k8s", {}), ("kserve", {"storage_uri": "s3://models/ml"})):
        deploy(DeployConfig(model_repository=str(repo), output=str(tmp_path / target), target=target, **extra))
        marker = json.loads((tmp_path / target / "tritoncls_deploy.json").read_text(encoding="utf-8"))
        assert marker["ensemble"] == "seqcls" and len(marker["files"]) >= 3, target


def test_resuming_a_multi_label_checkpoint_as_multi_class_is_refused(ml_checkpoint, ml_dir, tmp_path):
    from tritoncls.training.train import TrainConfig, train

    config = TrainConfig(dataset_dir=str(ml_dir), output=str(tmp_path / "c"), init_from_ckpt=str(ml_checkpoint),
                         task="multi_class")
    with pytest.raises((ConfigError, DataError), match="multi_label"):
        train(config)
    assert not (tmp_path / "c").exists()


@pytest.mark.slow
def test_multi_label_data_without_task_is_refused_naming_the_flag_and_nothing_is_written(ml_dir, tmp_path, caplog):
    out = tmp_path / "ckpt"
    assert main(["train", "--dataset_dir", str(ml_dir), "--output", str(out), "--from_scratch",
                 "--model_name", "ernie-3.0-nano-zh", "--epochs", "1"]) != 0
    assert "train.txt:" in caplog.text and "Pass --task multi_label" in caplog.text
    assert not out.exists() and not list(tmp_path.glob(".ckpt*"))


@pytest.mark.slow
@pytest.mark.parametrize("task, file, line, message", [
    ("multi_label", "train.txt", "x\tbilling,refund", r"train.txt:\d+: label 'refund' is not in the label file"),
    ("multi_label", "train.txt", "x\tbilling,billing", r"train.txt:\d+: label 'billing' is listed more than once"),
    ("multi_label", "label.txt", "bug,urgent", r"label.txt:\d+: label 'bug,urgent' contains ','"),
    ("hierarchical", "train.txt", "x\tcommerce##billing", r"train.txt:\d+: 'commerce##billing' is listed without its "
                                                         r"parent 'commerce'"),
    ("hierarchical", "label.txt", "legal##privacy", r"label.txt:\d+: label 'legal##privacy': its parent 'legal' is "
                                                    r"not in the label file"),
])
def test_train_refuses_each_data_error_with_file_line_and_writes_nothing(task, file, line, message, request, tmp_path,
                                                                         caplog):
    import shutil

    source = request.getfixturevalue("tree_dir" if task == "hierarchical" else "ml_dir")
    data = shutil.copytree(source, tmp_path / "data")
    with (data / file).open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    out = tmp_path / "ckpt"
    assert main(["train", "--dataset_dir", str(data), "--task", task, "--output", str(out), "--from_scratch",
                 "--model_name", "ernie-3.0-nano-zh", "--epochs", "1"]) == 1
    assert re.search(message, caplog.text), caplog.text[-500:]
    assert not out.exists() and not list(tmp_path.glob(".ckpt*"))


def test_bad_threshold_options_are_refused_before_anything_runs():
    from tritoncls.training.train import TrainConfig

    with pytest.raises(ConfigError, match="apply to multi_label and hierarchical"):
        TrainConfig(dataset_dir="d", threshold=0.5)
    with pytest.raises(ConfigError, match="not both"):
        TrainConfig(dataset_dir="d", task="multi_label", threshold=0.5, thresholds_file="t.tsv")
    with pytest.raises(ConfigError, match="a multi_label task is scored by macro_f1, micro_f1"):
        TrainConfig(dataset_dir="d", task="multi_label", metric="accuracy")


@pytest.mark.parametrize("folder, task, sizes", [
    ("goemotions/multilabel", "multi_label", (43410, 5426, 5427)),
    ("goemotions/hierarchical", "hierarchical", (43410, 5426, 5427)),
    ("cail2019_divorce", "multi_label", (9317, 1213, 1155)),
])
def test_the_real_multi_label_sets_are_read_whole_with_their_task(folder, task, sizes):
    root = support.SHARED_DATA / folder
    if not (root / "test.txt").is_file():
        pytest.skip(f"{root} not found (set TRITONCLS_SHARED_DATA or place ../shared beside the repo)")
    labels = data.read_labels(root / "label.txt", task)
    read = [data.read_examples(root / f"{split}.txt", labels, task) for split in ("train", "dev", "test")]
    assert tuple(len(examples) for examples in read) == sizes
    assert any(not e.label_ids for e in read[0]) == (folder == "cail2019_divorce")  # CAIL: 56% without a label
    with pytest.raises(DataError, match=f"Pass --task {task}"):
        data.read_examples(root / "train.txt", labels)
