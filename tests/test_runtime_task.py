"""The task contract: heads (softmax or sigmoid, argmax or thresholds, the hierarchy rule), the manifest's task
fields, the multi-label postprocess outputs and parameters, and the fused parameters of every task."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests import support
from tritoncls import runtime as rt
from tritoncls.runtime import Manifest, TaskSpec


def test_sigmoid_matches_the_formula_and_stays_finite_at_extreme_logits():
    logits = np.array([[-1000.0, -5.0, 0.0, 5.0, 1000.0]], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        probs = rt.sigmoid(logits)
    np.testing.assert_allclose(probs[0, 1:4], 1 / (1 + np.exp(-logits[0, 1:4])), rtol=1e-6)
    assert probs[0, 0] == 0.0 and probs[0, 4] == 1.0


def test_multi_class_head_picks_the_most_probable_label_lower_id_on_ties():
    head = TaskSpec().head(["a", "b", "c"])
    probs, mask = head.predict(np.array([[0.0, 2.0, 1.0], [3.0, 3.0, 0.0]], dtype=np.float32))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    assert rt.label_sets(mask) == [[1], [0]]


def test_multi_label_head_takes_every_label_at_or_above_its_own_threshold_and_may_take_none():
    head = TaskSpec("multi_label", (0.5, 0.9, 0.2)).head(["a", "b", "c"])
    probs = np.array([[0.5, 0.8, 0.2], [0.1, 0.95, 0.1], [0.0, 0.0, 0.0]], dtype=np.float32)
    assert rt.label_sets(head.decide(probs)) == [[0, 2], [1], []]
    assert rt.label_sets(head.decide(probs, thresholds=np.full(3, 0.05))) == [[0, 1, 2], [0, 1, 2], []]


def test_hierarchical_head_never_returns_a_path_without_its_parent_at_any_depth():
    labels = ["A", "A##B", "A##B##C", "D", "D##E"]
    head = TaskSpec("hierarchical", (0.5,) * 5).head(labels)
    probs = np.array([
        [0.9, 0.9, 0.9, 0.1, 0.1],  # the whole path
        [0.1, 0.9, 0.9, 0.1, 0.9],  # children of absent parents: dropped, grandchildren too
        [0.9, 0.1, 0.9, 0.9, 0.9],  # a grandchild whose parent is absent: dropped
    ], dtype=np.float32)
    assert [[labels[i] for i in row] for row in rt.label_sets(head.decide(probs))] == [
        ["A", "A##B", "A##B##C"], [], ["A", "D", "D##E"]]


@pytest.mark.parametrize("spec, labels, message", [
    (lambda: TaskSpec("multi_label", (0.5,)), ["a", "b"], "1 thresholds for 2 labels"),
    (lambda: TaskSpec("hierarchical", (0.5, 0.5)), ["a", "b##c"], "its parent 'b' is not a label"),
    (lambda: TaskSpec("multi_label", (0.5, 1.5)), ["a", "b"], r"probabilities in \[0, 1\]"),
    (lambda: TaskSpec("multi_class", (0.5,)), ["a"], "has no thresholds"),
    (lambda: TaskSpec("multilabel"), ["a"], "not one of multi_class, multi_label, hierarchical"),
])
def test_task_spec_refuses_what_cannot_be_served_saying_why(spec, labels, message):
    with pytest.raises(rt.TaskError, match=message):
        spec().head(labels)


def test_task_spec_round_trips_through_its_dict_with_only_the_fields_its_task_has():
    for spec in (TaskSpec(), TaskSpec("multi_label", (0.25, 0.5)), TaskSpec("hierarchical", (0.5, 0.5), "/")):
        data = spec.to_dict()
        assert TaskSpec.from_dict(json.loads(json.dumps(data)), "x") == spec
    assert TaskSpec().to_dict() == {"task": "multi_class"}
    with pytest.raises(rt.TaskError, match="task.json: fields"):
        TaskSpec.from_dict({"task": "multi_label", "thresholds": "0.5"}, "task.json")

# ---------------------------------------------------------------------------------------------
# The manifest
# ---------------------------------------------------------------------------------------------


def test_manifest_of_a_multi_label_export_round_trips_its_task_and_thresholds(multi_label_export):
    manifest = Manifest.load(multi_label_export)
    assert manifest.task == TaskSpec("multi_label", (0.5, 0.5, 0.5, 0.3)) and manifest.format_version == 3
    data = manifest.to_dict()
    assert data["task"] == "multi_label" and data["thresholds"] == [0.5, 0.5, 0.5, 0.3]
    assert Manifest.from_dict(json.loads(manifest.to_json())) == manifest


def test_manifests_before_format_version_3_are_multi_class(tiny_export):
    manifest = Manifest.load(tiny_export)
    assert manifest.task == TaskSpec() and manifest.to_dict()["task"] == "multi_class"
    assert not manifest.head().spec.multi_label


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(format_version=2), "'multi_label' in a format_version 2 manifest"),
    (lambda m: m.update(thresholds=[0.5]), "1 thresholds for 4 labels"),
    (lambda m: m.update(thresholds="high"), "field 'thresholds' is 'high', expected list"),
    (lambda m: m.update(task="tags"), "task 'tags' is not one of"),
])
def test_manifest_with_a_bad_task_is_refused_naming_the_file(tmp_path, edit, message):
    export = support.write_multi_label_export(tmp_path / "export")
    support.edit_manifest(export, edit)
    with pytest.raises(rt.ManifestError, match=message) as caught:
        Manifest.load(export)
    assert "manifest.json" in str(caught.value) and "tritoncls export" in str(caught.value)


def test_hierarchical_manifest_needs_every_parent_path_among_its_labels(tmp_path):
    export = support.write_multi_label_export(tmp_path / "export", hierarchical=True)
    support.edit_manifest(export, lambda m: m.update(labels=["pos", "pos##joy", "x##y", "neg", "neg##anger"]))
    with pytest.raises(rt.ManifestError, match="label 'x##y': its parent 'x' is not a label"):
        Manifest.load(export)

# ---------------------------------------------------------------------------------------------
# The postprocess step and its parameters
# ---------------------------------------------------------------------------------------------


def test_multi_label_postprocess_pads_each_request_to_its_own_largest_set():
    step = rt.PostprocessStep(["a", "b", "c"], task=TaskSpec("multi_label", (0.5, 0.5, 0.5)))
    logits = np.array([[5.0, 5.0, 5.0], [5.0, -5.0, -5.0], [-5.0, -5.0, -5.0]], dtype=np.float32)
    first, error, second, third = step([logits[:2], rt.RequestError("bad"), logits[1:2], logits[2:]])
    assert isinstance(error, rt.RequestError)
    assert first.labels.tolist() == [[b"a", b"b", b"c"], [b"a", b"", b""]]
    assert first.label_count.tolist() == [[3], [1]] and first.label_count.dtype == np.int32
    assert first.label_probs[1, 1:].tolist() == [0.0, 0.0] and first.label_probs[0, 0] == pytest.approx(1 / (1 + np.exp(-5)))
    assert second.labels.tolist() == [[b"a"]]
    assert third.labels.shape == (1, rt.postprocess.MIN_SET_WIDTH) and third.label_count.tolist() == [[0]]
    np.testing.assert_allclose(first.probs, rt.sigmoid(logits[:2]))
    assert set(first.tensors()) == {rt.LABELS, rt.LABEL_PROBS, rt.LABEL_COUNT, rt.PROBS}
    assert first.sets()[1] == [("a", pytest.approx(0.9933, abs=1e-4))]


def test_hierarchical_postprocess_step_from_parameters_applies_thresholds_and_the_tree(hierarchical_export):
    params = rt.LabelSetParameters(task="hierarchical", num_labels=5, thresholds=(0.5, 0.5, 0.5, 0.5, 0.3))
    step = rt.PostprocessStep.from_parameters(params.to_strings(), hierarchical_export)
    logits = np.array([[-4.0, 4.0, 4.0, 4.0, -0.5]], dtype=np.float32)  # neg##anger at 0.38 >= 0.3
    (result,) = step([logits])
    assert [label for label, _ in result.sets()[0]] == ["neg", "neg##anger"]


def test_label_set_parameters_round_trip_and_are_told_apart_from_multi_class_ones():
    params = rt.LabelSetParameters(task="multi_label", num_labels=2, thresholds=(0.125, 0.3333333333333333))
    strings = params.to_strings()
    assert strings["thresholds"] == "0.125,0.3333333333333333"
    assert rt.postprocess_parameters(strings) == params
    assert isinstance(rt.postprocess_parameters(rt.PostprocessParameters(num_labels=2).to_strings()),
                      rt.PostprocessParameters)


def test_postprocess_parameters_with_thresholds_that_do_not_fit_the_labels_are_refused(multi_label_export):
    params = rt.LabelSetParameters(task="multi_label", num_labels=4, thresholds=(0.5,))
    with pytest.raises(rt.ParameterError, match="1 thresholds for 4 labels.*build-repo"):
        rt.PostprocessStep.from_parameters(params.to_strings(), multi_label_export)


def _fused_parameters(postprocess) -> rt.FusedParameters:
    return rt.FusedParameters(
        tokenizer=rt.TokenizerParameters(vocab_file="vocab.txt", special_tokens={"unk_token": "[UNK]"},
                                         max_seq_length=64, buckets=(16, 64), pad_token_id=0),
        model=rt.ModelParameters(pad_token_id=0),
        graph=rt.FusedGraphParameters(graph_inputs="input_ids,token_type_ids", graph_output="logits"),
        postprocess=postprocess)


@pytest.mark.parametrize("postprocess", [
    rt.PostprocessParameters(num_labels=3, top_k=2),
    rt.LabelSetParameters(task="hierarchical", num_labels=2, thresholds=(0.5, 0.4)),
], ids=["multi_class", "hierarchical"])
def test_fused_parameters_round_trip_for_every_task_writing_pad_token_id_once(postprocess):
    params = _fused_parameters(postprocess)
    strings = params.to_strings()
    assert list(strings).count("pad_token_id") == 1
    assert rt.FusedParameters.from_strings(strings) == params


def test_fused_parameters_refuse_an_unknown_key_and_a_missing_one():
    strings = _fused_parameters(rt.PostprocessParameters(num_labels=3)).to_strings()
    with pytest.raises(rt.ParameterError, match=r"unknown \['colour'\]"):
        rt.FusedParameters.from_strings({**strings, "colour": "blue"})
    del strings["graph_output"]
    with pytest.raises(rt.ParameterError, match=r"missing \['graph_output'\]"):
        rt.FusedParameters.from_strings(strings)
