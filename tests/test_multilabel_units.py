"""Multi-label and hierarchical pieces that need no training and no server: the repository the builder renders
(configs, parameters, the python steps run as Triton would), the clients' reading of label-set outputs and the
predictions files they write, the Hugging Face import of a multi-label classifier, threshold tuning and
thresholds files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests import support
from tritoncls import runtime as rt
from tritoncls.builder import BuildConfig, build_repository
from tritoncls.builder.validate import parse_config
from tritoncls.clients.base import Signature, label_sets_from, signature_from
from tritoncls.common import metrics
from tritoncls.errors import BuildError, ClientError, ConfigError, DataError

# ---------------------------------------------------------------------------------------------
# The repository
# ---------------------------------------------------------------------------------------------


def _outputs(config) -> list[tuple[str, int, list[int]]]:
    return [(o.name, o.data_type, list(o.dims)) for o in config.output]


def test_a_multi_label_repository_returns_label_sets_and_carries_the_thresholds(multi_label_export, tmp_path):
    from tritonclient.grpc import model_config_pb2 as pb

    repo = build_repository(BuildConfig(model=str(multi_label_export), output=str(tmp_path / "repo")))
    ensemble, post = (parse_config(repo / name / "config.pbtxt") for name in ("seqcls", "seqcls_postprocess"))
    expected = [("labels", pb.TYPE_STRING, [-1]), ("label_probs", pb.TYPE_FP32, [-1]),
                ("label_count", pb.TYPE_INT32, [1]), ("probs", pb.TYPE_FP32, [4])]
    assert _outputs(ensemble) == _outputs(post) == expected
    params = rt.postprocess_parameters({k: v.string_value for k, v in post.parameters.items()})
    assert params == rt.LabelSetParameters(task="multi_label", num_labels=4, thresholds=(0.5, 0.5, 0.5, 0.3),
                                           metrics_model="seqcls", low_confidence=0.5)
    marker = json.loads((repo / "tritoncls_build.json").read_text(encoding="utf-8"))
    assert "multi_label" in json.dumps(marker)
    assert "(multi_label)" in (repo / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("layout", ["ensemble", "fused"])
def test_the_multi_label_python_steps_run_as_triton_runs_them_on_their_own_runtime_copy(hierarchical_export, tmp_path,
                                                                                         layout):
    repo = build_repository(BuildConfig(model=str(hierarchical_export), output=str(tmp_path / "repo"), layout=layout))
    done = support.run_python_steps(repo, blocked=["paddle", "paddlenlp"])
    assert done.returncode == 0, done.stderr[-3000:]
    final = "seqcls" if layout == "fused" else "seqcls_postprocess"
    assert f"{final} ok label_count label_probs labels probs" in done.stdout


def test_top_k_is_refused_for_a_multi_label_export_saying_what_it_gets_instead(multi_label_export, tmp_path):
    with pytest.raises(BuildError, match="multi_label model.*every label's probability.*`probs`.*drop --top_k"):
        build_repository(BuildConfig(model=str(multi_label_export), output=str(tmp_path / "repo"), top_k=2))


def test_a_multi_class_repository_is_rendered_as_before(tiny_export, tmp_path):
    repo = build_repository(BuildConfig(model=str(tiny_export), output=str(tmp_path / "repo")))
    post = parse_config(repo / "seqcls_postprocess" / "config.pbtxt")
    assert [o.name for o in post.output] == ["label", "confidence"] and "task" not in post.parameters

# ---------------------------------------------------------------------------------------------
# Clients
# ---------------------------------------------------------------------------------------------

LABEL_SET_METADATA = {"inputs": [{"name": "text", "datatype": "BYTES"}],
                      "outputs": [{"name": n} for n in ("labels", "label_probs", "label_count", "probs")]}


def test_the_client_reads_a_label_set_signature_and_asks_for_probs_only_on_request():
    signature = signature_from(LABEL_SET_METADATA, {"max_batch_size": 64}, "seqcls", "u")
    assert signature.label_sets and signature.requested() == ("labels", "label_probs", "label_count")
    assert signature.requested(all_probs=True)[-1] == "probs"
    broken = {**LABEL_SET_METADATA, "outputs": [{"name": "labels"}]}
    with pytest.raises(ClientError, match=r"no outputs \['label_probs', 'label_count'\]"):
        signature_from(broken, {}, "seqcls", "u")


def test_label_sets_are_cut_at_each_rows_count_and_keep_every_probability_when_sent():
    outputs = {"labels": np.array([[b"a", b"b"], [b"b", b""], [b"", b""]], dtype=object),
               "label_probs": np.array([[0.9, 0.6], [0.7, 0.0], [0.0, 0.0]], dtype=np.float32),
               "label_count": np.array([[2], [1], [0]], dtype=np.int32),
               "probs": np.array([[0.9, 0.6], [0.2, 0.7], [0.1, 0.1]], dtype=np.float32)}
    got = label_sets_from(outputs)
    assert [p.names for p in got] == [("a", "b"), ("b",), ()]
    assert got[0].labels[1] == ("b", pytest.approx(0.6)) and got[2].probs == pytest.approx((0.1, 0.1))
    assert got[1].row("x") == "x\tb\t0.700000" and got[2].row("y") == "y\t\t"
    del outputs["probs"]
    assert label_sets_from(outputs)[0].probs == ()


def test_classify_file_writes_label_sets_under_their_header_and_resume_keeps_it(stand_ins, tmp_path):
    from tritoncls.clients.chunked import ClassifyFileConfig, classify_file

    stand_ins.label_sets = True
    source = tmp_path / "texts.txt"
    source.write_text("first\nnone here\nthird\n", encoding="utf-8")
    config = ClassifyFileConfig(input=str(source), output=str(tmp_path / "out.tsv"), urls=("a:1",), chunk_size=2)
    classify_file(config)
    assert (tmp_path / "out.tsv").read_text(encoding="utf-8").splitlines() == [
        "text\tlabels\tprobabilities", "first\ta:1\t0.500000", "none here\t\t", "third\ta:1\t0.500000"]
    again = ClassifyFileConfig(input=str(source), output=str(tmp_path / "out.tsv"), urls=("a:1",), resume=True)
    assert classify_file(again).resumed_texts == 3


def test_a_signature_with_label_sets_is_not_mistaken_for_multi_class():
    assert not Signature("text", ("label", "confidence"), 8).label_sets

# ---------------------------------------------------------------------------------------------
# The Hugging Face import of a multi-label classifier
# ---------------------------------------------------------------------------------------------


def test_an_imported_multi_label_classifier_keeps_its_head_and_is_served_with_sigmoid(tmp_path):
    from tritoncls.modeling.checkpoint import saved_task
    from tritoncls.modeling.hf import import_hf

    folder = support.write_hf_folder(tmp_path / "hf", "bert", ["a short text", "another one"], num_labels=3)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config.update(problem_type="multi_label_classification", id2label={"0": "x", "1": "y", "2": "z"})
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    report = import_hf(folder, tmp_path / "ckpt")
    assert report.kept_classifier and report.task == "multi_label" and "multi_label" in report.summary()
    assert saved_task(tmp_path / "ckpt") == rt.TaskSpec("multi_label", (0.5, 0.5, 0.5))

# ---------------------------------------------------------------------------------------------
# Thresholds
# ---------------------------------------------------------------------------------------------


def test_tuned_thresholds_maximise_each_labels_f1_and_rare_labels_share_one():
    rng = np.random.default_rng(0)
    truth = np.zeros((200, 3), dtype=bool)
    truth[:100, 0] = True  # label 0: positives score 0.7, negatives 0.4
    truth[:60, 1] = True  # label 1: positives score 0.3, negatives 0.1
    truth[:2, 2] = True  # label 2: two positives only
    probs = np.where(truth, [0.7, 0.3, 0.9], [0.4, 0.1, 0.2]).astype(np.float32) + rng.normal(0, 0.01, truth.shape)
    tuned = metrics.tune_thresholds(probs.astype(np.float32), truth)
    assert 0.42 <= tuned.values[0] <= 0.68 and 0.12 <= tuned.values[1] <= 0.28
    assert "1 label(s) with fewer than 5 positives" in tuned.how
    head = rt.TaskSpec("multi_label", tuned.values).head(["a", "b", "c"])
    assert metrics.score("macro_f1", truth[:, :2], head.decide(probs.astype(np.float32))[:, :2]) == 1.0


def _noisy_label_sets(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """400 texts, 6 labels from frequent and clean to rare and noisy, with sigmoid-like scores."""
    rng = np.random.default_rng(seed)
    shares, separation = np.array([0.4, 0.3, 0.2, 0.1, 0.05, 0.03]), np.array([3.0, 2.0, 1.5, 1.0, 0.8, 0.5])
    truth = rng.random((400, 6)) < shares
    logits = rng.normal(0, 1, truth.shape) + np.where(truth, separation, -separation) - 1.0
    return (1 / (1 + np.exp(-logits))).astype(np.float32), truth


def test_micro_f1_thresholds_are_a_joint_optimum_no_single_label_can_improve():
    probs, truth = _noisy_label_sets()
    tuned = metrics.tune_thresholds(probs, truth, "micro_f1")
    assert "jointly for the micro-F1" in tuned.how

    def micro(values) -> float:
        return metrics.score("micro_f1", truth, probs >= np.asarray(values, dtype=np.float32))

    best = micro(tuned.values)
    shared = metrics.tune_thresholds(probs, truth, "micro_f1", min_positives=10 ** 9).values
    per_label_f1 = metrics.tune_thresholds(probs, truth, "macro_f1").values
    assert best >= micro(shared) and best >= micro(per_label_f1)
    for j in range(truth.shape[1]):  # one label moved anywhere on the grid, the others kept: never better
        for t in metrics.THRESHOLD_GRID[::7]:
            moved = list(tuned.values)
            moved[j] = float(t)
            assert micro(moved) <= best + 1e-12


def test_macro_f1_thresholds_give_each_label_its_own_best_f1():
    probs, truth = _noisy_label_sets(2)
    tuned = metrics.tune_thresholds(probs, truth, "macro_f1")
    for j in range(truth.shape[1]):
        f1 = [metrics.score("macro_f1", truth[:, [j]], probs[:, [j]] >= t) for t in metrics.THRESHOLD_GRID]
        assert metrics.score("macro_f1", truth[:, [j]], probs[:, [j]] >= np.float32(tuned.values[j])) == pytest.approx(max(f1))


def test_set_scores_count_micro_macro_and_subset_accuracy_in_percent():
    truth = np.array([[1, 0], [1, 1], [0, 0]], dtype=bool)
    predicted = np.array([[1, 0], [1, 0], [0, 1]], dtype=bool)
    scores = metrics.set_scores(truth, predicted)
    assert scores["subset_accuracy"] == pytest.approx(100 / 3)
    assert scores["micro_precision"] == pytest.approx(200 / 3) and scores["micro_recall"] == pytest.approx(200 / 3)
    assert scores["macro_f1"] == pytest.approx(50.0)  # label 0: F1 1; label 1: no true positive
    assert [row["count"] for row in scores["per_label"]] == [2, 1]


def test_set_scores_of_one_label_score_that_label_not_its_absence():
    truth = np.array([[1], [1], [0], [0]], dtype=bool)
    predicted = np.array([[1], [0], [1], [0]], dtype=bool)
    scores = metrics.set_scores(truth, predicted)
    assert scores["macro_f1"] == pytest.approx(50.0) and scores["micro_f1"] == pytest.approx(50.0)
    assert [row["count"] for row in scores["per_label"]] == [2]


def test_a_thresholds_file_names_every_label_once(tmp_path):
    path = metrics.write_thresholds(tmp_path / "t.tsv", ["a", "b"], [0.25, 0.5])
    assert metrics.read_thresholds(path, ["b", "a"]) == (0.5, 0.25)
    for text, message in (("a\t0.5\n", r"no threshold for 1 label\(s\)"), ("a\tx\nb\t1\n", "t.tsv:1: threshold 'x'"),
                          ("a\t0.5\na\t0.2\nb\t1\n", "t.tsv:2: label 'a' is given a threshold twice"),
                          ("a\t2\nb\t1\n", r"not a probability in \[0, 1\]"), ("c\t0.5\n", "label 'c' is not one")):
        path.write_text(text, encoding="utf-8")
        with pytest.raises(DataError, match=message):
            metrics.read_thresholds(path, ["a", "b"])


def test_threshold_overrides_are_for_label_sets_only():
    with pytest.raises(ConfigError, match="apply to multi_label and hierarchical"):
        metrics.override_thresholds(rt.TaskSpec(), ["a"], 0.5, None)
    assert metrics.override_thresholds(rt.TaskSpec("multi_label", (0.1, 0.2)), ["a", "b"], 0.3, None).thresholds == (
        0.3, 0.3)


def test_a_new_multi_label_head_starts_at_the_label_priors_and_a_trained_one_is_left_alone():
    from tritoncls.modeling.ernie import scratch_model
    from tritoncls.modeling.objective import Objective

    model = scratch_model({"num_hidden_layers": 1, "hidden_size": 16, "num_attention_heads": 2,
                           "intermediate_size": 16}, num_labels=3, vocab_size=30)
    targets = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0]], dtype=np.float32)
    assert not Objective("multi_class", ["a", "b", "c"]).init_head(model, targets)
    assert Objective("multi_label", ["a", "b", "c"]).init_head(model, targets)
    bias = model.classifier.bias.numpy()
    np.testing.assert_allclose(bias[:2], [0.0, np.log(0.25 / 0.75)], atol=1e-6)
    assert bias[2] == pytest.approx(np.log(1e-4 / (1 - 1e-4)), rel=1e-4)  # a label never seen: clipped, not -inf
    assert not Objective("multi_label", ["a", "b", "c"]).init_head(model, np.ones((2, 3), dtype=np.float32))
    np.testing.assert_array_equal(model.classifier.bias.numpy(), bias)
