"""The GPU check script: clear failures without a GPU or without onnxruntime-gpu, skeleton exports, and
its variant loop on the CPU (a CUDA variant fails alone, the others run)."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import pytest

from tests.support import write_tiny_export

_SPEC = importlib.util.spec_from_file_location("gpu_check", Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(gpu_check)  # a standalone script, not part of the package


def test_gpu_check_exits_2_and_says_why_without_a_gpu(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gpu_check, "gpu_devices", lambda: [])
    out = tmp_path / "gpu.json"
    code = gpu_check.main(["--model", str(tmp_path), "--input", str(tmp_path / "dev.txt"), "--output", str(out)])
    assert code == gpu_check.EXIT_NO_GPU
    assert "no NVIDIA GPU is visible" in capsys.readouterr().err
    report = json.loads(out.read_text())
    assert report["ok"] is False and "no NVIDIA GPU" in report["error"]


def test_gpu_check_exits_3_with_a_cpu_only_onnxruntime(tmp_path, monkeypatch, capsys):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    monkeypatch.setattr(gpu_check, "gpu_devices", lambda: ["GPU 0: pretend"])
    monkeypatch.setattr(gpu_check, "preload_cuda_libraries", lambda ort: [])
    code = gpu_check.main(["--model", str(tmp_path), "--input", str(tmp_path / "dev.txt"), "--output", str(tmp_path / "g.json")])
    assert code == gpu_check.EXIT_NO_CUDA_EP
    assert "install onnxruntime-gpu" in capsys.readouterr().err


def _one_matmul_export(directory: Path) -> Path:
    """An export whose graph is one MatMul (x[batch, seq] ids -> float) - enough for strip/refill."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((64, 128), dtype=np.float32), "big.w_0")
    bias = numpy_helper.from_array(np.full((128,), 0.5, dtype=np.float32), "small.b_0")
    nodes = [helper.make_node("Cast", ["input_ids"], ["x"], to=TensorProto.FLOAT),
             helper.make_node("MatMul", ["x", "big.w_0"], ["y"]), helper.make_node("Add", ["y", "small.b_0"], ["logits"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [None, 64])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 128])], [weight, bias])
    write_tiny_export(directory)  # a valid manifest; its graph is replaced below
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), str(directory / "model.onnx"))
    return directory


def test_strip_to_keeps_small_tensors_and_drops_big_weights_which_load_model_refills(tmp_path):
    import onnx

    export = _one_matmul_export(tmp_path / "export")
    skeleton = gpu_check.strip_export(export, tmp_path / "skeleton")
    assert (skeleton / "vocab.txt").is_file() and (skeleton / "manifest.json").is_file()
    assert (skeleton / "model.onnx").stat().st_size < (export / "model.onnx").stat().st_size / 4
    stored = {i.name: i for i in onnx.load(str(skeleton / "model.onnx")).graph.initializer}
    assert not stored["big.w_0"].raw_data and stored["small.b_0"].raw_data
    model, refilled = gpu_check.load_model(skeleton / "model.onnx", seed=1)
    assert refilled
    weights = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    assert weights["big.w_0"].shape == (64, 128) and 0.01 < weights["big.w_0"].std() < 0.03
    assert np.all(weights["small.b_0"] == 0.5)
    onnx.checker.check_model(model)
    again, _ = gpu_check.load_model(skeleton / "model.onnx", seed=1)
    assert np.array_equal(onnx.numpy_helper.to_array(again.graph.initializer[0]),
                          onnx.numpy_helper.to_array(model.graph.initializer[0]))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider' is not in available provider names")
def test_check_export_runs_cpu_and_fp16_graphs_and_reports_a_cuda_variant_that_cannot_load(kuake_export, kuake_dir):
    texts = gpu_check.read_texts(kuake_dir / "dev.txt", 64)
    result = gpu_check.check_export(kuake_export, texts, ["cpu_fp32", "cuda_fp32"], 32, 1, time.monotonic() + 120,
                                    Path("/tmp/tritoncls_gpu_check_test"))
    cpu, cuda = result["variants"]["cpu_fp32"], result["variants"]["cuda_fp32"]
    assert cpu["ok"] and cpu["label_agreement_vs_cpu_fp32"] == 1.0 and cpu["texts_per_s_sorted"] > 0
    assert not cuda["ok"] and "CUDAExecutionProvider" in cuda["error"]
    model, _ = gpu_check.load_model(kuake_export / "model.onnx")
    fp16, _ = gpu_check.to_fp16(model, fused=False, arch={"num_attention_heads": 4, "hidden_size": 64})
    assert any(i.data_type == 10 for i in fp16.graph.initializer)  # FLOAT16 weights


def test_gpu_check_bundle_carries_the_runtime_and_runs_without_tritoncls(tmp_path):
    """The bundle imports the runtime from beside the script, not from the installed package."""
    import subprocess
    import sys

    bundle = gpu_check.bundle(tmp_path / "bundle")
    assert (bundle / "gpu_check.py").is_file() and (bundle / "tritoncls_runtime" / "predictor.py").is_file()
    probe = ("import sys; sys.modules['tritoncls'] = None; import gpu_check; rt = gpu_check.runtime(); "
             "print(rt.__name__, rt.Predictor.__name__)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=bundle, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["tritoncls_runtime", "Predictor"]


def test_refill_to_writes_a_servable_export_without_the_paddle_graph(tmp_path):
    """The GPU machine gets skeletons (weights removed) and refills them; build-repo then builds the ONNX model
    step from them, with the Paddle graph left behind."""
    import onnx

    from tritoncls.builder import BuildConfig, build_repository

    export = write_tiny_export(tmp_path / "export")
    skeleton = gpu_check.strip_export(export, tmp_path / "skeleton")
    full = gpu_check.refill_export(skeleton, tmp_path / "refilled", seed=1)
    original = {i.name: tuple(i.dims) for i in onnx.load(export / "model.onnx").graph.initializer}
    refilled = onnx.load(full / "model.onnx")
    assert {i.name: tuple(i.dims) for i in refilled.graph.initializer} == original
    assert all(i.raw_data or i.float_data or i.int64_data or i.int32_data for i in refilled.graph.initializer)
    assert not list(full.glob("*.pdiparams"))
    repo = build_repository(BuildConfig(model=str(full), output=str(tmp_path / "repo"), device="gpu", precision="fp16"))
    assert (repo / "seqcls_model" / "1" / "model.onnx").is_file()
