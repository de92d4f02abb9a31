"""Export: the manifest's contents, and label/probability parity of every runtime on KUAKE-QIC dev."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tritoncls import modeling
from tritoncls.common import data
from tritoncls.common.offline import OfflineConfig, open_predictor
from tritoncls.common.onnx import onnx_io
from tritoncls.errors import ModelError
from tritoncls.modeling.dynamic import encode, predict_logits
from tritoncls.runtime import Manifest, ManifestError, TensorSpec, export_tokenizer, softmax

pytestmark = pytest.mark.slow


def test_manifest_records_labels_tokenizer_architecture_and_tensors(kuake_export, kuake_dir):
    manifest = Manifest.load(kuake_export)
    assert list(manifest.labels) == data.read_labels(kuake_dir / "label.txt")
    assert (kuake_export / manifest.label_file).read_text(encoding="utf-8").split("\n")[:-1] == list(manifest.labels)
    assert manifest.max_seq_length == 64
    assert manifest.precision == "fp32"
    tokenizer = manifest.tokenizer
    assert tokenizer.kind == "wordpiece" and tokenizer.do_lower_case is True
    assert all((kuake_export / name).is_file() for name in tokenizer.files.values())
    arch = manifest.architecture
    assert (arch["num_hidden_layers"], arch["hidden_size"], arch["num_attention_heads"]) == (2, 64, 4)
    assert arch["num_labels"] == 11
    onnx = manifest.onnx
    assert onnx.input_names == ("input_ids", "token_type_ids")
    assert onnx.outputs == (TensorSpec("logits", "float32", (-1, 11)),)
    graph = onnx_io(kuake_export / onnx.file)
    assert (graph.inputs, graph.outputs) == (onnx.inputs, onnx.outputs)
    paddle = manifest.paddle
    assert (kuake_export / paddle.model_file).is_file() and (kuake_export / paddle.params_file).is_file()
    assert paddle.input_names == ("input_ids", "token_type_ids")
    assert paddle.outputs[0].shape == (-1, 11)
    assert max(manifest.export_check.values()) < 1e-4
    assert {"paddlepaddle", "paddlenlp", "paddle2onnx", "onnxruntime"} <= set(manifest.versions)
    assert Manifest.from_dict(json.loads(manifest.to_json())) == manifest


def test_fast_tokenizer_matches_training_tokenizer_on_kuake_dev(kuake_export, kuake_dir):
    texts = [e.text for e in data.read_examples(kuake_dir / "dev.txt", data.read_labels(kuake_dir / "label.txt"))]
    texts += ["Ünïcödé ÀCCENTS", "emoji 😀 ok", "tab\u200bzero width", "x" * 500, "  spaced   out  "]
    slow = encode(modeling.load_tokenizer(kuake_export), texts, 64)
    fast = export_tokenizer(kuake_export, Manifest.load(kuake_export)).encode(texts)
    mismatches = [t for t, a, b in zip(texts, slow.input_ids, fast) if a != b]
    assert mismatches == []


def test_dynamic_static_and_onnx_agree_on_every_kuake_dev_text(kuake_checkpoint, kuake_export, kuake_dir):
    labels = data.read_labels(kuake_dir / "label.txt")
    texts = [e.text for e in data.read_examples(kuake_dir / "dev.txt", labels)]
    model = modeling.load_checkpoint_model(kuake_checkpoint)
    dynamic = softmax(predict_logits(model, encode(modeling.load_tokenizer(kuake_checkpoint), texts, 64), 32))
    results = {"dynamic": dynamic}
    for backend in ("paddle_inference", "onnxruntime"):
        predictor = open_predictor(OfflineConfig(model=str(kuake_export), backend=backend))
        results[backend] = predictor.predict_probs(texts).probs
    for name, probs in results.items():
        assert np.array_equal(probs.argmax(1), dynamic.argmax(1)), name
        assert np.abs(probs - dynamic).max() <= 1e-5, name


def test_offline_predictor_file_order_and_sorted_give_same_results(kuake_export, kuake_dir):
    texts = data.read_texts(kuake_dir / "data.txt")[:200]
    sorted_run = open_predictor(OfflineConfig(model=str(kuake_export))).predict_probs(texts)
    file_order = open_predictor(OfflineConfig(model=str(kuake_export), sort_by_length=False)).predict_probs(texts)
    assert np.abs(sorted_run.probs - file_order.probs).max() < 1e-5
    assert sorted_run.padded_tokens < file_order.padded_tokens


def test_export_refuses_to_overwrite_a_foreign_directory(kuake_checkpoint, tmp_path):
    from tritoncls.modeling.export import ExportConfig, export

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(ModelError, match="refusing to replace"):
        export(ExportConfig(checkpoint=str(kuake_checkpoint), output=str(tmp_path / "out")))


def test_a_missing_or_foreign_manifest_is_explained(tmp_path):
    with pytest.raises(ManifestError, match="tritoncls export"):
        Manifest.load(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ManifestError, match="field 'format'"):
        Manifest.load(tmp_path)


def test_predict_file_writes_the_offline_predictors_labels_for_every_line(tiny_export, tmp_path):
    from tritoncls.common.offline import predict_file

    texts = ["good movie", "bad movie", "中文 好"]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    done = predict_file(OfflineConfig(model=str(tiny_export)), tmp_path / "in.txt", tmp_path / "out.tsv", progress=False)
    header, *rows = [line.split("\t") for line in (tmp_path / "out.tsv").read_text(encoding="utf-8").splitlines()]
    predictor = open_predictor(OfflineConfig(model=str(tiny_export)))
    assert done.texts == 3 and done.output == tmp_path / "out.tsv" and header[0] == "text"
    assert [row[0] for row in rows] == texts and [row[1] for row in rows] == predictor.predict(texts)[0]


def test_the_export_records_the_reference_distribution_of_its_training_dev_data(kuake_export, kuake_dir):
    """The reference is the exported graph's own predictions on dev, through the served path's tokenizer and head."""
    from tritoncls.runtime import Predictor
    from tritoncls.runtime.metrics import CONFIDENCE_BOUNDS, REFERENCE_FILE, Reference

    manifest = Manifest.load(kuake_export)
    assert manifest.reference_file == REFERENCE_FILE
    reference = Reference.load(kuake_export / REFERENCE_FILE)
    texts = [e.text for e in data.read_examples(kuake_dir / "dev.txt", list(manifest.labels))]
    labels, confidences = Predictor.from_export(kuake_export).predict(texts)
    assert reference.texts == len(texts) == 1955 and reference.task == "multi_class"
    assert reference.labels == {label: labels.count(label) for label in manifest.labels}
    assert sum(reference.given_labels.values()) == 1955
    assert reference.top_confidence.bounds == CONFIDENCE_BOUNDS and reference.top_confidence.total == 1955
    below = sum(c < reference.low_confidence_threshold for c in confidences)
    assert below == reference.low_confidence and 0.03 <= below / 1955 <= 0.06  # the 5% quantile, ties aside
    assert reference.text_tokens.bounds[-1] == 64 and reference.text_tokens.total == 1955


def test_export_takes_other_reference_data_or_none_and_refuses_a_missing_file(kuake_checkpoint, kuake_dir, tmp_path):
    from tritoncls.errors import DataError
    from tritoncls.modeling.export import ExportConfig, export
    from tritoncls.runtime.metrics import Reference

    other = tmp_path / "some.txt"
    other.write_text("".join(line + "\n" for line in (kuake_dir / "dev.txt").read_text(encoding="utf-8")
                             .splitlines()[:40]), encoding="utf-8")
    out = export(ExportConfig(checkpoint=str(kuake_checkpoint), output=str(tmp_path / "a"), reference_data=str(other)))
    assert Reference.load(out / Manifest.load(out).reference_file).texts == 40
    out = export(ExportConfig(checkpoint=str(kuake_checkpoint), output=str(tmp_path / "b"), no_reference=True))
    assert Manifest.load(out).reference_file is None and not (out / "reference.json").exists()
    with pytest.raises(DataError, match="--reference_data .*absent.txt is not a file"):
        export(ExportConfig(checkpoint=str(kuake_checkpoint), output=str(tmp_path / "c"),
                            reference_data=str(tmp_path / "absent.txt")))
    assert not (tmp_path / "c").exists()
