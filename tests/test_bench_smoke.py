"""`tritoncls bench --tiny` end to end: real tritonserver, perf_analyzer, baselines and report (wiring only)."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.triton, pytest.mark.slow]


def test_bench_tiny_serves_measures_and_writes_a_report_with_every_target(perf_analyzer_ready, kuake_export, kuake_dir,
                                                                          tmp_path):
    from tritoncls.cli import main

    output = tmp_path / "report"
    code = main(["bench", "--tiny", "--model", str(kuake_export), "--data", str(kuake_dir / "dev.txt"),
                 "--output", str(output), "--no_plots"])
    report = json.loads((output / "report.json").read_text(encoding="utf-8"))
    assert code == 0, report["failures"]
    assert {t["name"].split("[")[0] for t in report["targets"]} == {
        "ensemble_b32_vs_inprocess_ort", "single_text_c32_vs_inprocess_sorted", "vs_reference_default", "vs_reference_int8",
        "int8_accuracy_drop", "tokenizer_share_b32", "useful_flops_vs_best_fp32_gemm"}
    assert all({"name", "measured", "threshold", "met"} <= set(t) for t in report["targets"])
    served = report["shapes"]["trained"]["served"]
    assert {"default", "reference", "int8"} <= set(served)
    default = served["default"]
    assert {(p["target"], p["batch_size"]) for p in default["points"]} == {("ensemble", 32), ("ensemble", 1), ("model", 8)}
    assert all(p["inferences_per_s"] > 0 and p["p99_us"] >= p["p50_us"] for p in default["points"])
    assert any(m["role"] == "tritonserver" for m in default["memory"])
    assert {r["runtime"] for r in report["shapes"]["trained"]["inprocess"]} == {"onnxruntime", "paddle_inference", "paddle_dygraph"}
    assert report["served_label_check"]["agreement_with_inprocess"] == 1.0
    assert report["accuracy"]["int8_label_agreement"] > 0.9
    assert (output / "report.md").read_text(encoding="utf-8").count("| target | measured | threshold | met |") == 1
