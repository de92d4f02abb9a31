"""Static INT8 (issue 23): ONNX Runtime's static quantization calibrated on texts, in the library, the builder
(``build-repo --precision int8 --int8_mode static --calibration_data FILE``) and the benchmarks' derived exports.

The tiny export's random graph only pins the plumbing: a QDQ graph that ONNX accepts, ONNX Runtime runs and
that mostly agrees with FP32. How static compares with dynamic on a trained model is measured in
docs/benchmarks.md ("Static INT8"), not here.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from tests.support import TINY_WORDS, run_python_steps
from tritoncls.builder import MARKER, BuildConfig, build_repository
from tritoncls.cli.build_repo import main as build_repo_main
from tritoncls.common.onnx import (
    DEFAULT_CALIBRATION_TEXTS,
    CalibrationTexts,
    TextCalibrationReader,
    static_quantized_onnx,
)
from tritoncls.errors import BuildError, ConfigError, DataError
from tritoncls.runtime import Manifest, OnnxRunner, export_tokenizer, run_batched

WORDS = [w for w in TINY_WORDS if not w.startswith("##")]


def tiny_texts(count: int, seed: int = 0) -> list[str]:
    """Texts of the tiny export's words, 1 to 12 of them, so batches have several lengths."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12))) for _ in range(count)]


def write_texts(path: Path, texts: list[str], labels: bool = False) -> Path:
    lines = [f"{t}\tpositive" if labels else t for t in texts]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def logits(export: Path, onnx_file: Path, texts: list[str]) -> np.ndarray:
    manifest = Manifest.load(export)
    runner = OnnxRunner(onnx_file, manifest.onnx.input_names, manifest.onnx.output_name, 1)
    rows = export_tokenizer(export, manifest).encode(texts)
    return run_batched(rows, runner, manifest.tokenizer.pad_token_id, 8).logits


def ops(onnx_file: Path) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(str(onnx_file)).graph.node}


def test_static_int8_writes_a_valid_qdq_graph_whose_labels_mostly_agree_with_fp32(own_tiny_export, tmp_path):
    import onnx

    before = sorted(p.name for p in own_tiny_export.iterdir())
    calibration = CalibrationTexts.read(write_texts(tmp_path / "train.txt", tiny_texts(64), labels=True))
    out = tmp_path / "out"
    out.mkdir()
    target = static_quantized_onnx(own_tiny_export, calibration, out / "static.onnx")
    onnx.checker.check_model(onnx.load(str(target)))
    assert {"QuantizeLinear", "DequantizeLinear", "MatMul"} <= ops(target)
    assert not ops(target) & {"DynamicQuantizeLinear", "MatMulInteger"}  # scales fixed at build time
    assert sorted(p.name for p in own_tiny_export.iterdir()) == before  # nothing written beside the export
    assert [p.name for p in out.iterdir()] == ["static.onnx"]  # no work files left beside it

    texts = tiny_texts(40, seed=1)
    reference, quantized = logits(own_tiny_export, own_tiny_export / "model.onnx", texts), logits(own_tiny_export, target, texts)
    assert quantized.shape == reference.shape == (40, 3) and quantized.dtype == np.float32
    assert (quantized.argmax(1) == reference.argmax(1)).mean() >= 0.8
    np.testing.assert_allclose(quantized, reference, atol=0.25 * np.abs(reference).max())


def test_the_calibration_reader_feeds_the_manifests_input_names_int64_sorted_and_padded_per_batch(tiny_export):
    manifest = Manifest.load(tiny_export)
    texts = tiny_texts(20)
    reader = TextCalibrationReader(texts, tiny_export, manifest, batch_size=8)
    batches = [reader.get_next() for _ in range(len(reader))]
    assert len(reader) == 3 and reader.get_next() is None
    assert [len(b["input_ids"]) for b in batches] == [8, 8, 4]
    lengths = []
    for batch in batches:
        assert list(batch) == list(manifest.onnx.input_names)
        ids, types = batch["input_ids"], batch["token_type_ids"]
        assert ids.dtype == types.dtype == np.int64 and ids.shape == types.shape
        real = (ids != manifest.tokenizer.pad_token_id).sum(1)
        assert real.max() == ids.shape[1]  # padded to the batch's own longest text, not max_seq_length
        lengths += real.tolist()
    assert lengths == sorted(len(r) for r in export_tokenizer(tiny_export, manifest).encode(texts))
    reader.rewind()
    assert reader.get_next()["input_ids"].tolist() == batches[0]["input_ids"].tolist()


def test_calibration_texts_read_labeled_lines_and_sample_a_larger_file_the_same_way_each_time(tmp_path):
    texts = [f"text number {i}" for i in range(1000)]
    path = write_texts(tmp_path / "train.txt", texts, labels=True)
    first, again = CalibrationTexts.read(path), CalibrationTexts.read(path)
    assert len(first.texts) == DEFAULT_CALIBRATION_TEXTS and first.available == 1000 and first.texts == again.texts
    assert set(first.texts) <= set(texts) and list(first.texts) == sorted(first.texts, key=texts.index)  # file order
    assert first.to_dict()["texts_in_file"] == 1000 and "seeded" in first.to_dict()["sample"]
    few = CalibrationTexts.read(write_texts(tmp_path / "few.txt", texts[:5]))
    assert few.texts == tuple(texts[:5]) and few.to_dict()["sample"] == "every text"


def test_a_missing_or_empty_calibration_file_is_refused_naming_it(tmp_path):
    with pytest.raises(DataError, match=r"missing\.txt: calibration texts file not found \(it does not exist\)"):
        CalibrationTexts.read(tmp_path / "missing.txt")
    (tmp_path / "blank.txt").write_text("\n  \n", encoding="utf-8")
    with pytest.raises(DataError, match=r"blank\.txt: texts file is empty"):
        CalibrationTexts.read(tmp_path / "blank.txt")
    with pytest.raises(DataError, match="0 calibration texts asked for"):
        CalibrationTexts.read(write_texts(tmp_path / "ok.txt", ["good"]), count=0)


def test_build_repo_renders_a_static_int8_repository_from_the_flags_and_records_it(tiny_export, tmp_path):
    calibration = write_texts(tmp_path / "train.txt", tiny_texts(50), labels=True)
    repo = tmp_path / "repo"
    assert build_repo_main(["--model", str(tiny_export), "--output", str(repo), "--precision", "int8",
                            "--int8_mode", "static", "--calibration_data", str(calibration),
                            "--calibration_texts", "32"]) == 0
    graph = repo / "seqcls_model" / "1" / "model.onnx"
    assert "QuantizeLinear" in ops(graph) and "DynamicQuantizeLinear" not in ops(graph)
    record = json.loads((repo / MARKER).read_text(encoding="utf-8"))
    assert record["build_config"].items() >= {"precision": "int8", "int8_mode": "static",
                                              "calibration_data": str(calibration), "calibration_texts": 32}.items()
    quantization = record["quantization"]
    assert quantization["mode"] == "static" and quantization["calibration_method"] == "MinMax"
    assert quantization["calibration"] == {"file": str(calibration.resolve()), "texts": 32, "texts_in_file": 50,
                                           "sample": "seeded random sample (seed 0)"}
    done = run_python_steps(repo, blocked=["paddle", "paddlenlp"])
    assert done.returncode == 0, done.stderr
    assert "seqcls_model ok" in done.stdout


def test_int8_without_a_mode_stays_dynamic_and_other_precisions_record_no_quantization(tiny_export, tmp_path):
    int8 = build_repository(BuildConfig(model=str(tiny_export), output=str(tmp_path / "int8"), precision="int8"))
    record = json.loads((int8 / MARKER).read_text(encoding="utf-8"))
    assert record["build_config"]["int8_mode"] == "dynamic" and record["quantization"]["mode"] == "dynamic"
    assert "DynamicQuantizeLinear" in ops(int8 / "seqcls_model" / "1" / "model.onnx")
    fp32 = build_repository(BuildConfig(model=str(tiny_export), output=str(tmp_path / "fp32")))
    record = json.loads((fp32 / MARKER).read_text(encoding="utf-8"))
    assert record["build_config"]["int8_mode"] is None and record["quantization"] is None


@pytest.mark.parametrize("options, message", [
    ({"precision": "int8", "int8_mode": "static"}, "--int8_mode: static calibrates activation ranges on texts: add "
                                                   "--calibration_data FILE"),
    ({"int8_mode": "static", "calibration_data": "t.txt"}, "--int8_mode: applies to --precision int8 only (this "
                                                           "build is fp32)"),
    ({"calibration_data": "t.txt"}, "--calibration_data: is read by static INT8 quantization only: add --precision "
                                    "int8 --int8_mode static"),
    ({"precision": "int8", "int8_mode": "dynamic", "calibration_data": "t.txt"},
     "--calibration_data: is read by static INT8 quantization only, and --int8_mode is dynamic"),
    ({"precision": "int8", "int8_mode": "fast"}, "--int8_mode: 'fast' is not allowed; choose one of dynamic, static"),
    ({"calibration_texts": 64}, "--calibration_texts: applies to --calibration_data only"),
    ({"precision": "int8", "int8_mode": "static", "calibration_data": "t.txt", "calibration_texts": 0},
     "--calibration_texts: 0 must be >= 1"),
    ({"precision": "int8", "int8_mode": "static", "calibration_data": "t.txt", "device": "gpu"},
     "--precision: int8 is ONNX Runtime dynamic quantization on CPU (or static, with --int8_mode static)"),
])
def test_static_int8_options_are_refused_where_they_do_nothing_naming_the_flag(options, message, tmp_path):
    with pytest.raises(ConfigError) as error:
        BuildConfig(model="m", output=str(tmp_path), **options)
    assert message in str(error.value)


def test_the_build_repo_command_refuses_static_int8_without_calibration_data(tiny_export, tmp_path, caplog):
    assert build_repo_main(["--model", str(tiny_export), "--output", str(tmp_path / "repo"), "--precision", "int8",
                            "--int8_mode", "static"]) == 1
    assert "--int8_mode: static calibrates activation ranges on texts: add --calibration_data FILE" in caplog.text
    assert not (tmp_path / "repo").exists()


def test_a_missing_calibration_file_fails_the_build_naming_the_flag_and_the_file(tiny_export, tmp_path):
    missing = tmp_path / "missing.txt"
    config = BuildConfig(model=str(tiny_export), output=str(tmp_path / "repo"), precision="int8", int8_mode="static",
                         calibration_data=str(missing))
    with pytest.raises(BuildError, match=rf"--calibration_data {missing}: calibration texts file not found"):
        build_repository(config)
    assert not (tmp_path / "repo").exists()


def test_a_static_int8_variant_export_records_its_calibration_and_predicts_like_fp32(tiny_export, tmp_path):
    from tritoncls.measure.variants import int8_export, int8_static_export
    from tritoncls.runtime import Predictor

    calibration = write_texts(tmp_path / "train.txt", tiny_texts(64))
    static = int8_static_export(tiny_export, tmp_path / "static", calibration)
    dynamic = int8_export(tiny_export, tmp_path / "dynamic")
    manifest = Manifest.load(static)
    assert manifest.precision == "int8" and manifest.variant["variant"] == "int8-static"
    assert manifest.variant["quantization"]["mode"] == "static"
    assert manifest.variant["quantization"]["calibration"]["texts"] == 64
    assert "QuantizeLinear" in ops(static / "model.onnx")
    texts = tiny_texts(40, seed=2)
    labels = {name: Predictor.from_export(export, threads=1).predict(texts)[0]
              for name, export in (("fp32", tiny_export), ("static", static), ("dynamic", dynamic))}
    assert np.mean([a == b for a, b in zip(labels["static"], labels["fp32"])]) >= 0.8
