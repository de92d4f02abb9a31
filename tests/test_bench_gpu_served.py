"""``tritoncls bench-gpu``'s flow (issue 15), run here with CPU repositories: what CI can check of the
served-on-GPU benchmark on machines without a GPU. The GPU run itself is scripts/gpu_served.sh's job."""

from __future__ import annotations

import json

import pytest

from tests.support import write_tiny_export
from tritoncls.benchmarks.gpu_served import (
    REPORT_JSON,
    REPORT_MD,
    GpuBenchConfig,
    batch32_ratio,
    check_device,
    run_gpu_bench,
)
from tritoncls.errors import BenchmarkError, ConfigError


def test_gpu_defaults_serve_fp32_and_fp16_with_the_model_step_on_the_gpu_and_large_batches():
    config = GpuBenchConfig(model="m", input="t", output="o")
    assert config.resolved_precisions == ("fp32", "fp16")
    assert config.build_options("fp16") == {"device": "gpu", "precision": "fp16", "max_batch_size": 256,
                                            "instance_kind": "auto"}
    points = {(p.batch_size, p.concurrency) for p in config.sweep()}
    assert {(32, 1), (32, 4), (1, 64), (1, 512)} <= points


@pytest.mark.parametrize(("options", "message"), [
    ({"device": "tpu"}, "--device 'tpu'"),
    ({"device": "cpu", "precisions": ("fp16",)}, "fp16 on the GPU only"),
    ({"max_texts": 8}, "at least 32"),
    ({"instance_kind": "tpu"}, "--instance_kind 'tpu'"),
])
def test_bad_options_are_refused_naming_them(options, message):
    with pytest.raises(ConfigError, match=message):
        GpuBenchConfig(model="m", input="t", output="o", **options)


@pytest.mark.parametrize(("kind", "rendered"), [("auto", "KIND_GPU"), ("cpu", "KIND_CPU")])
def test_the_rehearsal_kind_keeps_the_cuda_model_step_in_a_cpu_instance(tmp_path, kind, rendered):
    from tritoncls.measure import served

    export = write_tiny_export(tmp_path / "export")
    config = GpuBenchConfig(model=str(export), input="t", output="o", instance_kind=kind)
    repo = served.build(export, tmp_path / "repo", **config.build_options("fp32"))
    (text,) = [t for p in repo.glob("*/config.pbtxt") if 'key: "device"' in (t := p.read_text())]
    assert f"kind: {rendered}" in text
    assert 'key: "device"\n  value: { string_value: "gpu" }' in text  # the session still asks for CUDA


def test_a_gpu_run_without_the_cuda_provider_says_how_to_get_it():
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has ONNX Runtime's CUDA provider")
    with pytest.raises(BenchmarkError, match="no CUDA provider .* install onnxruntime-gpu"):
        check_device("gpu")


def test_batch32_ratio_is_the_best_served_32_text_rate_over_inprocess_file_order():
    result = {"inprocess": {"file": 1000.0, "sorted": 1500.0},
              "served": {"points": [{"batch_size": 32, "inferences_per_s": 400.0},
                                    {"batch_size": 32, "inferences_per_s": 600.0},
                                    {"batch_size": 1, "inferences_per_s": 900.0}]}}
    assert batch32_ratio(result) == pytest.approx(0.6)
    assert batch32_ratio({"inprocess": {"file": 1000.0}, "served": {}}) is None


@pytest.mark.triton
def test_served_flow_on_the_cpu_measures_against_inprocess_and_checks_labels(perf_analyzer_ready, kuake_dir, tmp_path):
    export = write_tiny_export(tmp_path / "export")
    config = GpuBenchConfig(model=str(export), input=str(kuake_dir / "dev.txt"), output=str(tmp_path / "out"),
                            device="cpu", max_texts=64, label_texts=64, batch32_concurrency=(1,),
                            single_concurrency=(4,), min_requests=4, max_trials=3, stability_pct=50)
    report = run_gpu_bench(config)
    assert json.loads((tmp_path / "out" / REPORT_JSON).read_text()) == json.loads(json.dumps(report))
    (result,) = report["precisions"]
    assert result["errors"] == []
    assert result["label_agreement"] == 1.0 and result["inprocess_label_agreement"] == 1.0
    assert {(p["batch_size"], p["concurrency"]) for p in result["served"]["points"]} == {(32, 1), (1, 4)}
    assert result["inprocess"]["file"] > 0 and batch32_ratio(result) > 0
    assert "| fp32 |" in (tmp_path / "out" / REPORT_MD).read_text()


@pytest.mark.triton
def test_served_flow_of_a_multi_label_export_checks_whole_label_sets_against_cpu_fp32(perf_analyzer_ready, tmp_path):
    from tests import support

    lines = support.tiny_multi_label_lines(64)
    texts = tmp_path / "dev.txt"
    texts.write_text("\n".join(lines) + "\n", encoding="utf-8")
    export = support.write_varied_multi_label_export(tmp_path / "export", [line.split("\t")[0] for line in lines])
    config = GpuBenchConfig(model=str(export), input=str(texts), output=str(tmp_path / "out"), device="cpu",
                            max_texts=64, label_texts=64, batch32_concurrency=(1,), single_concurrency=(4,),
                            min_requests=4, max_trials=3, stability_pct=50)
    (result,) = run_gpu_bench(config)["precisions"]
    assert result["errors"] == []
    assert result["label_agreement"] == 1.0 and result["inprocess_label_agreement"] == 1.0
    assert all(p["stages"]["compute_shares"]["postprocess"] > 0 for p in result["served"]["points"])


def test_the_gpu_machine_script_parses_and_its_usage_names_every_step():
    """scripts/gpu_served.sh runs once on a lent GPU; a syntax error there would cost the whole session.
    (Its receive + run is rehearsed end to end by `gpu_served.sh rehearse`, which needs the network and Python 3.12.)"""
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts" / "gpu_served.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True).returncode == 0
    usage = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert usage.returncode == 2
    for step in ("prepare TRAINED_EXPORT", "receive .gpu/partK", "gpu_served.sh run", "gpu_served.sh rehearse"):
        assert step in usage.stdout
    assert "set -euo" not in usage.stdout  # the usage is the header comment, all of it and nothing more
