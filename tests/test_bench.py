"""Benchmark harness: perf_analyzer CSV and input data, FLOP counting, Triton statistics, the report's
targets and shape, the text reader and the CLI. Fast: no model, no server, no speed assertions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tritoncls.benchmarks.report import REPORT_JSON, REPORT_MD, compute_targets, write_report
from tritoncls.errors import BenchmarkError, ConfigError, DataError
from tritoncls.measure.flops import EncoderShape, layer_flops, text_flops, total_flops, useful_flops_per_s
from tritoncls.measure.perf_analyzer import (
    PerfAnalyzer,
    equivalent_width,
    parse_csv,
    text_input_data,
    token_input_data,
    usable_steps,
)
from tritoncls.measure.texts import read_bench_texts
from tritoncls.measure.triton_stats import STAGES, ModelStats, delta, parse_statistics, stage_share
from tritoncls.runtime import Manifest

# Recorded from perf_analyzer 2.51.0 (tritonclient wheel) against tritonserver 2.51 (nvidia-pytriton 0.7.0),
# `-b 32 --concurrency-range 1:1 --async --measurement-mode count_windows -f out.csv`, tiny KUAKE-QIC export.
RECORDED_CSV_B32 = """\
Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute Input,Server Compute Infer,Server Compute Output,Client Recv,p50 latency,p90 latency,p95 latency,p99 latency
1,106.143,18,4301,2,159,308765,2621,8,299333,439361,484316,484316
"""
RECORDED_CSV_B1 = """\
Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute Input,Server Compute Infer,Server Compute Output,Client Recv,p50 latency,p90 latency,p95 latency,p99 latency
8,176.206,11,17233,2,260,23700,2008,3,36938,75435,88470,116096
"""

MEDIUM = EncoderShape(num_hidden_layers=6, hidden_size=768, intermediate_size=3072, num_labels=11)


# ---------------------------------------------------------------------------------------------
# perf_analyzer
# ---------------------------------------------------------------------------------------------


def test_parse_csv_reads_throughput_and_latency_percentiles_of_a_recorded_sample():
    (point,) = parse_csv(RECORDED_CSV_B32, "seqcls", batch_size=32)
    assert (point.model, point.batch_size, point.concurrency) == ("seqcls", 32, 1)
    assert point.inferences_per_s == pytest.approx(106.143)
    assert point.requests_per_s == pytest.approx(106.143 / 32)
    assert (point.p50_us, point.p90_us, point.p95_us, point.p99_us) == (299333, 439361, 484316, 484316)
    assert point.server_compute_infer_us == 308765 and point.network_us == 4301
    assert point.avg_us is None  # 2.51 writes no "Avg latency" column


def test_parse_csv_reads_every_concurrency_row_and_ignores_unknown_columns():
    header, row = RECORDED_CSV_B1.strip().split("\n")
    text = f"{header},Avg GPU Utilization\n{row},0\n{row.replace('8,176.206', '16,190.5', 1)},0\n"
    points = parse_csv(text, "seqcls", batch_size=1)
    assert [(p.concurrency, p.inferences_per_s) for p in points] == [(8, 176.206), (16, 190.5)]


def test_parse_csv_raises_when_the_file_holds_no_measurement():
    with pytest.raises(BenchmarkError, match="header"):
        parse_csv("error: failed to connect\n", "seqcls", 1)
    with pytest.raises(BenchmarkError, match="no measurement rows"):
        parse_csv(RECORDED_CSV_B1.split("\n")[0] + "\n", "seqcls", 1)
    with pytest.raises(BenchmarkError, match="p99 latency"):
        parse_csv("Concurrency,Inferences/Second,p50 latency\n1,2,3\n", "seqcls", 1)


def test_text_input_data_holds_one_real_text_per_step_and_a_multiple_of_the_batch_size():
    texts = [f"text {i}" for i in range(70)]
    data = text_input_data(texts, "text", batch_size=32)
    assert len(data["data"]) == 64
    assert data["data"][3] == {"text": {"content": ["text 3"], "shape": [1]}}
    assert len(text_input_data(texts, "text")["data"]) == 70
    json.dumps(data, ensure_ascii=False)  # what perf_analyzer reads


def test_usable_steps_refuses_fewer_texts_than_one_request():
    assert usable_steps(65, 32) == 64
    with pytest.raises(BenchmarkError, match="fewer than one request"):
        usable_steps(10, 32)


def test_token_input_data_at_batch_1_keeps_each_text_at_its_own_length():
    rows = [[1, 5, 2], [1, 5, 6, 7, 2]]
    data = token_input_data(rows, ("input_ids", "token_type_ids"), batch_size=1, pad_id=0)["data"]
    assert data[0]["input_ids"] == {"content": [1, 5, 2], "shape": [3]}
    assert data[1]["token_type_ids"] == {"content": [0] * 5, "shape": [5]}


def test_token_input_data_at_batch_n_pads_every_step_to_the_mean_file_order_batch_width():
    rows = [[1, 2], [1, 3, 4, 2], [1, 2], [1, 5, 5, 5, 5, 5, 2], [1, 9, 2]]
    assert equivalent_width([len(r) for r in rows[:4]], 2) == 6  # batches of widths 4 and 7 -> 5.5 -> 6
    data = token_input_data(rows, ("ids", "types"), batch_size=2, pad_id=0, pad_type_id=0)["data"]
    assert len(data) == 4  # a multiple of the batch size
    assert {tuple(step["ids"]["shape"]) for step in data} == {(6,)}  # perf_analyzer batches equal shapes only
    assert data[0]["ids"]["content"] == [1, 2, 0, 0, 0, 0]
    assert data[3]["ids"]["content"] == [1, 5, 5, 5, 5, 5]  # cut to the width


def test_perf_analyzer_command_uses_count_windows_grpc_and_writes_csv(tmp_path):
    analyzer = PerfAnalyzer(Path("/bin/perf_analyzer"), {})
    command = analyzer.command("seqcls", "127.0.0.1:8001", tmp_path / "in.json", 32, 2, tmp_path / "o.csv", 6, 5, 20)
    joined = " ".join(command)
    assert "-m seqcls" in joined and "-i grpc" in joined and "-b 32" in joined
    assert "--concurrency-range 2:2" in joined and "--measurement-mode count_windows" in joined
    assert "--measurement-request-count 6" in joined and f"-f {tmp_path / 'o.csv'}" in joined


# ---------------------------------------------------------------------------------------------
# FLOPs
# ---------------------------------------------------------------------------------------------


def test_layer_flops_counts_projections_attention_on_real_length_and_ffn():
    length, hidden, ffn = 10, 8, 32
    qkv, scores, context, out, mlp = 6 * 10 * 64, 2 * 100 * 8, 2 * 100 * 8, 2 * 10 * 64, 4 * 10 * 8 * 32
    assert layer_flops(length, hidden, ffn) == qkv + scores + context + out + mlp


def test_a_width_pruned_shape_counts_only_its_kept_heads():
    full = {"num_hidden_layers": 6, "hidden_size": 384, "intermediate_size": 1536, "num_attention_heads": 12,
            "attention_head_dim": 32, "num_labels": 11}
    assert EncoderShape.from_architecture(full).attention_width is None  # 12 x 32 = hidden: ordinary model
    half = EncoderShape.from_architecture(full | {"num_attention_heads": 6, "intermediate_size": 768})
    assert half.attention_width == 192
    length, hidden, attention, ffn = 20, 384, 192, 768
    expected = 8 * length * hidden * attention + 4 * length * length * attention + 4 * length * hidden * ffn
    assert layer_flops(length, hidden, ffn, attention) == expected
    assert text_flops(length, half) == 6 * expected + 2 * hidden * hidden + 2 * hidden * 11
    # about half the encoder work of the unpruned shape
    ratio = text_flops(length, half) / text_flops(length, EncoderShape.from_architecture(full))
    assert 0.5 < ratio < 0.55


def test_text_flops_of_the_medium_shape_is_about_85_mflop_per_token_plus_the_quadratic_attention_term():
    per_token = text_flops(1, MEDIUM) / 1e6
    assert 84 < per_token < 87
    # doubling the length more than doubles the work (attention is quadratic), and padding is never counted
    assert text_flops(36, MEDIUM) > 2 * text_flops(18, MEDIUM)
    assert text_flops(0, MEDIUM) == 0


def test_useful_flops_per_s_is_the_rate_times_the_mean_flops_of_the_texts():
    lengths = [10, 20, 30]
    expected = 5.0 * total_flops(lengths, MEDIUM) / 3
    assert useful_flops_per_s(5.0, lengths, MEDIUM) == pytest.approx(expected)
    assert EncoderShape.from_architecture({"num_hidden_layers": 6, "hidden_size": 768, "intermediate_size": 3072,
                                           "num_labels": 11}) == MEDIUM


# ---------------------------------------------------------------------------------------------
# Triton statistics
# ---------------------------------------------------------------------------------------------


def _stats(tokenizer_ns: int, model_ns: int, post_ns: int, queue_ns: int, executions: int = 4, inferences: int = 64) -> dict:
    def entry(name, compute, queue, execs=executions):
        return {"name": name, "version": "1", "inference_count": str(inferences), "execution_count": str(execs),
                "inference_stats": {"success": {"count": "2", "ns": "1"}, "queue": {"count": "2", "ns": str(queue)},
                                    "compute_input": {"count": "2", "ns": "0"},
                                    "compute_infer": {"count": "2", "ns": str(compute)},
                                    "compute_output": {"count": "2", "ns": "0"}}}

    return {"model_stats": [entry("tokenizer", tokenizer_ns, queue_ns), entry("seqcls_model", model_ns, queue_ns),
                            entry("seqcls_postprocess", post_ns, 0), entry("seqcls", 0, 0)]}


STEPS = {"tokenizer": "tokenizer", "model": "seqcls_model", "postprocess": "seqcls_postprocess"}


def test_stage_share_splits_server_time_into_tokenizer_model_postprocess_and_queue():
    before = parse_statistics(_stats(0, 0, 0, 0, executions=0, inferences=0))
    after = parse_statistics(_stats(1_000_000, 8_000_000, 500_000, 250_000))
    share = stage_share(delta(after, before), STEPS)
    assert share.seconds == pytest.approx({"tokenizer": 0.001, "model": 0.008, "postprocess": 0.0005, "queue": 0.0005})
    assert set(share.shares) == set(STAGES) and sum(share.shares.values()) == pytest.approx(1.0)
    assert share.shares["model"] == pytest.approx(0.8)
    assert share.texts_per_model_execution == pytest.approx(64 / 4)
    assert share.to_dict()["texts_per_model_execution"] == pytest.approx(16.0)


def test_parse_statistics_sums_versions_of_one_model():
    stats = _stats(10, 20, 30, 40)
    stats["model_stats"].append(dict(stats["model_stats"][1]))
    parsed = parse_statistics(stats)
    assert parsed["seqcls_model"] == ModelStats(128, 8, 80, 0, 40, 0)


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def _point(target: str, batch: int, concurrency: int, rate: float, tokenizer_share: float = 0.02) -> dict:
    shares = {"tokenizer": tokenizer_share, "model": 0.9 - tokenizer_share, "postprocess": 0.05, "queue": 0.05}
    return {"target": target, "model": "seqcls", "batch_size": batch, "concurrency": concurrency,
            "inferences_per_s": rate, "p50_us": 1000.0, "p90_us": 1500.0, "p95_us": 2000.0, "p99_us": 3000.0,
            "avg_us": None, "requests_per_s": rate / batch,
            "stages": {"seconds": {}, "shares": shares, "model_executions": 10, "model_inferences": 50,
                       "texts_per_model_execution": 5.0}}


def _inproc(runtime: str, order: str, rate: float, precision: str = "fp32") -> dict:
    return {"runtime": runtime, "order": order, "precision": precision, "batch_size": 32, "texts": 256,
            "seconds": 256 / rate, "padded_tokens": 100, "real_tokens": 50, "threads": 2, "texts_per_s": rate,
            "padding_ratio": 2.0}


def fake_limits():
    """numpy 72 GFLOP/s, ONNX Runtime's MatMul 100 (the best), a 268.8 GFLOP/s peak; INT8 400 GOP/s."""
    from tritoncls.measure.machine import GemmLimits, GemmRate, PrecisionLimit, peak_rate

    flags = {"avx2", "fma", "avx512f", "avx512_vnni"}
    fp32 = (GemmRate("numpy openblas, Prescott kernel", "fp32", 2048, 0.24, 2, 72.0),
            GemmRate("onnxruntime MatMul (MLAS)", "fp32", 2048, 0.17, 2, 100.0))
    int8 = (GemmRate("onnxruntime MatMulInteger", "int8", 2048, 0.04, 2, 400.0),)
    return GemmLimits(PrecisionLimit("fp32", fp32, peak_rate("fp32", flags, 2, 2.1, "test clock")),
                      PrecisionLimit("int8", int8, peak_rate("int8", flags, 2, 2.1, "test clock")), 1.5)


def fake_measurements() -> dict:
    """What a run would gather: medium meets target 1 and misses 2; nano misses 1; reference is 4x slower."""
    def shape(file_rate, sorted_rate, served_b32, served_single, flops_per_text):
        return {"export": "/x", "architecture": {"num_hidden_layers": 6}, "max_seq_length": 128,
                "useful_flops_per_text": flops_per_text, "inprocess": [
                    _inproc("onnxruntime", "file", file_rate), _inproc("onnxruntime", "sorted", sorted_rate)],
                "served": {"default": {"build_config": {"profile": "default"}, "points": [
                    _point("ensemble", 32, 1, served_b32 * 0.9), _point("ensemble", 32, 2, served_b32),
                    _point("ensemble", 1, 32, served_single), _point("model", 32, 1, served_b32)],
                    "memory": [{"pid": 1, "role": "tritonserver", "rss_mib": 40.0}], "errors": []}}}

    medium = shape(10.0, 20.0, 10.0, 12.0, 1.5e9)
    nano = shape(200.0, 300.0, 150.0, 200.0, 1e8)
    nano["served"]["default"]["points"][1]["stages"]["shares"]["tokenizer"] = 0.04
    nano["served"]["reference"] = {"build_config": {"profile": "reference"}, "points": [_point("ensemble", 32, 1, 40.0)]}
    nano["served"]["int8"] = {"build_config": {"profile": "default"}, "points": [_point("ensemble", 32, 1, 210.0)]}
    return {"mode": "quick", "reference_shape": "nano", "gemm_limits": fake_limits().to_dict(),
            "accuracy": {"fp32": 0.80, "int8": 0.795, "texts": 1955},
            "machine": {"cpu": "test", "versions": {"numpy": "1"}}, "data": {"path": "dev.txt", "texts": 256},
            "shapes": {"medium": medium, "nano": nano}}


def test_targets_hold_one_entry_per_issue_target_with_name_measured_threshold_and_met():
    targets = {t.name: t for t in compute_targets(fake_measurements())}
    assert list(targets) == [
        "ensemble_b32_vs_inprocess_ort[medium]", "ensemble_b32_vs_inprocess_ort[nano]",
        "single_text_c32_vs_inprocess_sorted[medium]", "vs_reference_default[nano]", "vs_reference_int8[nano]",
        "int8_accuracy_drop", "tokenizer_share_b32[nano]", "useful_flops_vs_best_fp32_gemm[medium]"]
    assert targets["ensemble_b32_vs_inprocess_ort[medium]"].measured == pytest.approx(1.0)  # best over concurrency
    assert targets["ensemble_b32_vs_inprocess_ort[medium]"].met
    assert targets["ensemble_b32_vs_inprocess_ort[nano]"].measured == pytest.approx(0.75)
    assert not targets["ensemble_b32_vs_inprocess_ort[nano]"].met
    assert targets["single_text_c32_vs_inprocess_sorted[medium]"].measured == pytest.approx(0.6)
    assert targets["vs_reference_default[nano]"].measured == pytest.approx(150 / 40)
    assert targets["vs_reference_default[nano]"].met
    assert targets["vs_reference_int8[nano]"].measured == pytest.approx(210 / 40) and targets["vs_reference_int8[nano]"].met
    assert targets["int8_accuracy_drop"].measured == pytest.approx(0.5) and targets["int8_accuracy_drop"].met
    assert targets["tokenizer_share_b32[nano]"].measured == pytest.approx(0.04) and targets["tokenizer_share_b32[nano]"].met
    flops = targets["useful_flops_vs_best_fp32_gemm[medium]"]  # against ONNX Runtime's 100, not numpy's 72
    assert flops.measured == pytest.approx(12.0 * 1.5e9 / 1e9 / 100.0) and flops.threshold == 0.75 and not flops.met
    assert "onnxruntime MatMul (MLAS)" in flops.detail and "268.8" in flops.detail


def test_the_tokenizer_target_gives_its_cpu_share_and_its_share_without_a_second_request_beside_it():
    from tritoncls.benchmarks.report import step_compute, step_compute_lines

    m = fake_measurements()
    points = m["shapes"]["nano"]["served"]["default"]["points"]
    points[0]["stages"]["shares"]["tokenizer"] = 0.03  # concurrency 1
    points[1]["server_cpu_shares"] = {"tokenizer": 0.031, "model": 0.9, "postprocess": 0.03, "tritonserver": 0.039}
    points[1]["stages"]["compute_shares"] = {"tokenizer": 0.1, "model": 0.85, "postprocess": 0.05}
    points[1]["stages"]["us_per_text"] = {"tokenizer": 10.0, "model": 100.0, "postprocess": 5.0}
    target = {t.name: t for t in compute_targets(m)}["tokenizer_share_b32[nano]"]
    assert target.measured == pytest.approx(0.04)  # the target itself stays the wall-time share at the best point
    assert "its share of the server's CPU time there: 3.1%" in target.detail
    assert "at concurrency 1 (no other request's model step beside it on the cores): 3.0%" in target.detail
    table = "\n".join(step_compute_lines(step_compute(m)))
    assert "| 3.1% / 90.0% / 3.0% / 3.9% |" in table


def test_cpu_by_role_names_the_root_process_tritonserver_and_a_stub_by_its_model(tmp_path):
    import subprocess
    import sys
    import time

    from tritoncls.measure.cpu_time import cpu_by_role, cpu_shares

    stub = tmp_path / "repo" / "tokenizer" / "1" / "model.py"  # a stand-in stub: its argv names a model.py
    stub.parent.mkdir(parents=True)
    stub.write_text("import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
                    "time.sleep(30)\n", encoding="utf-8")
    root = subprocess.Popen([sys.executable, "-c", f"import subprocess, sys; subprocess.run([sys.executable, "
                             f"{str(stub)!r}, 'shm_region'])"])
    try:
        before = {"tritonserver": 0.0, "tokenizer": 0.0}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            after = cpu_by_role(root.pid)
            if after.get("tokenizer", 0.0) >= 0.25:
                break
            time.sleep(0.1)
        assert set(after) == {"tritonserver", "tokenizer"} and after["tokenizer"] >= 0.25, after
        shares = cpu_shares(before, after)
        assert shares["tokenizer"] > shares["tritonserver"] and sum(shares.values()) == pytest.approx(1.0)
    finally:
        for child in __import__("psutil").Process(root.pid).children(recursive=True):
            child.kill()
        root.kill()
        root.wait()
    assert cpu_by_role(root.pid) == {}


def test_the_metrics_cost_target_compares_both_on_runs_with_both_off_runs():
    m = fake_measurements()
    served = m["shapes"]["nano"]["served"]
    for name, rate in (("metrics_on", 99.0), ("metrics_off", 100.0), ("metrics_off_2", 102.0), ("metrics_on_2", 97.0)):
        served[name] = {"build_config": {"metrics": "off" not in name}, "points": [_point("ensemble", 32, 1, rate)]}
    target = {t.name: t for t in compute_targets(m)}["metrics_on_vs_off_b32[nano]"]
    assert target.measured == pytest.approx(196 / 202) and not target.met and "99.0 / 97.0" in target.detail
    served["metrics_on_2"]["points"][0]["inferences_per_s"] = 101.0
    assert {t.name: t for t in compute_targets(m)}["metrics_on_vs_off_b32[nano]"].met
    del served["metrics_off_2"]
    assert {t.name: t for t in compute_targets(m)}["metrics_on_vs_off_b32[nano]"].measured is None


def test_a_target_without_its_measurement_is_reported_unmet_with_measured_none():
    m = fake_measurements()
    del m["shapes"]["nano"]["served"]["reference"]
    m["accuracy"] = {"note": "dev.txt has no labels"}
    targets = {t.name: t for t in compute_targets(m)}
    assert targets["vs_reference_default[nano]"].measured is None and not targets["vs_reference_default[nano]"].met
    assert targets["int8_accuracy_drop"].measured is None and "no labels" in targets["int8_accuracy_drop"].detail


def test_write_report_writes_json_with_targets_markdown_tables_and_plots(tmp_path):
    report = write_report(fake_measurements(), tmp_path)
    saved = json.loads((tmp_path / REPORT_JSON).read_text(encoding="utf-8"))
    assert len(saved["targets"]) == 8
    for target in saved["targets"]:
        assert {"name", "measured", "threshold", "met"} <= set(target)
        assert isinstance(target["met"], bool)
    markdown = (tmp_path / REPORT_MD).read_text(encoding="utf-8")
    assert "| target | measured | threshold | met |" in markdown
    assert "## Shape `medium`" in markdown and "Server RSS per process" in markdown
    assert "## Machine limits" in markdown and "| fp32 | onnxruntime MatMul (MLAS) | 2048^3 | 2 | 100.0 GFLOP/s | **best" in markdown
    assert "| int8 | theoretical peak (assumed): 2 cores x 2.10 GHz x 256 ops/cycle | | | 1075.2 GOP/s |" in markdown
    assert saved["gemm_limits"]["fp32"]["best"]["kernel"] == "onnxruntime MatMul (MLAS)"
    assert {Path(p).name for p in report["plots"]} == {"latency_medium.png", "latency_nano.png", "stage_shares.png", "ratios.png"}
    assert all((tmp_path / Path(p).name).stat().st_size > 1000 for p in report["plots"])


# ---------------------------------------------------------------------------------------------
# Texts, config, CLI
# ---------------------------------------------------------------------------------------------


def test_read_bench_texts_keeps_file_order_and_labels_when_every_line_has_one(tmp_path):
    path = tmp_path / "dev.txt"
    path.write_text("\ufeff第一\t治疗方案\n\nsecond\t其他\r\n", encoding="utf-8")
    texts = read_bench_texts(path)
    assert texts.texts == ("第一", "second") and texts.labels == ("治疗方案", "其他")
    (tmp_path / "data.txt").write_text("a\nb\tx\n", encoding="utf-8")
    assert read_bench_texts(tmp_path / "data.txt").labels is None
    assert read_bench_texts(path).head(1).texts == ("第一",)


def test_read_bench_texts_names_file_and_line_of_an_empty_text(tmp_path):
    path = tmp_path / "dev.txt"
    path.write_text("ok\tx\n\tlabel\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"dev.txt:2: the text is empty"):
        read_bench_texts(path)


def test_bench_config_rejects_unknown_shapes_and_too_few_texts():
    from tritoncls.benchmarks.bench import BenchConfig

    with pytest.raises(ConfigError, match="--shapes large"):
        BenchConfig(model="m", input="d", output="o", shapes=("large",))
    with pytest.raises(ConfigError, match="--max_texts"):
        BenchConfig(model="m", input="d", output="o", max_texts=4)
    plan = BenchConfig(model="m", input="d", output="o", mode="quick", shapes=("nano",)).plan()
    assert plan.shapes == ("nano",) and plan.reference_shape == "nano" and plan.max_texts == 256


def test_bench_help_lists_the_options(capsys):
    from tritoncls.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--model", "--data", "--output", "--quick", "--tiny", "--shapes", "--max_texts"):
        assert option in out


def test_server_memory_names_python_stubs_by_their_model():
    from tritoncls.server.memory import role_of

    stub = ["/x/triton_python_backend_stub", "/repo/seqcls_model/1/model.py", "triton_python_backend_shm_region_3",
            "1048576", "1048576", "123", "/x/backends/python", "336", "seqcls_model_0_0", "DEFAULT"]
    assert role_of(stub, None) == "seqcls_model"
    assert role_of(["/usr/bin/tritonserver", "--model-repository=/r"], None) == "tritonserver"


def test_sgemm_rate_names_numpys_blas_kernel_and_reports_the_rate():
    from tritoncls.measure.machine import sgemm_rate

    rate = sgemm_rate(size=128, repeats=2)
    assert rate.size == 128 and rate.seconds > 0 and rate.threads >= 1 and rate.precision == "fp32"
    assert rate.kernel.startswith("numpy ") and "kernel" in rate.kernel
    assert rate.gops_per_s == pytest.approx(2 * 128 ** 3 / rate.seconds / 1e9)  # a product is 2 n^3 FLOPs


def test_sgemm_rate_keeps_the_fastest_repeat(monkeypatch):
    """Other processes only ever slow a run down: the best of the repeats is the machine's rate."""
    from tritoncls.measure import machine

    clock = iter([0.0, 3.0, 10.0, 11.0, 20.0, 22.0])  # three timed products: 3 s, 1 s, 2 s
    monkeypatch.setattr(machine.time, "perf_counter", lambda: next(clock))
    rate = machine.sgemm_rate(size=4, repeats=3)
    assert rate.seconds == 1.0 and rate.gops_per_s == pytest.approx(2 * 4 ** 3 / 1e9)


def test_numpys_kernel_is_named_from_numpys_own_blas_when_another_package_loaded_one_first(monkeypatch):
    """scipy's OpenBLAS 0.3.30 picks SkylakeX on this CPU where numpy's 0.3.23 picks Prescott: name numpy's."""
    import numpy
    import threadpoolctl

    from tritoncls.measure.machine import blas_info

    libs = Path(numpy.__file__).resolve().parent.parent / "numpy.libs"
    monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda: [
        {"user_api": "blas", "filepath": "/x/scipy.libs/libscipy_openblas.so", "architecture": "SkylakeX"},
        {"user_api": "openmp", "filepath": "/x/libgomp.so"},
        {"user_api": "blas", "filepath": str(libs / "libopenblas64_.so"), "architecture": "Prescott"}])
    assert blas_info()["architecture"] == "Prescott"


@pytest.mark.parametrize("dynamic", [False, True])
def test_the_int8_gemm_runs_through_onnxruntime_and_reports_a_positive_rate(dynamic):
    from tritoncls.measure.machine import onnxruntime_int8_gemm_rate

    rate = onnxruntime_int8_gemm_rate(size=64, repeats=1, dynamic=dynamic)
    assert rate.precision == "int8" and rate.size == 64 and rate.gops_per_s > 0
    assert ("DynamicQuantizeMatMul" in rate.kernel) == dynamic and "MatMulInteger" in rate.kernel


def test_the_peak_is_cores_times_clock_times_the_widest_multiply_add_the_flags_show_and_says_it_is_assumed():
    from tritoncls.measure.machine import peak_rate

    avx512 = peak_rate("fp32", {"avx2", "fma", "avx512f"}, cores=2, clock_ghz=2.1, clock_source="cpu MHz")
    assert avx512.gops_per_s == pytest.approx(2 * 2.1 * 64) and avx512.ops_per_cycle_per_core == 64
    assert "assumed" in avx512.assumption and "cpu MHz" in avx512.assumption
    assert peak_rate("fp32", {"avx2", "fma"}, 4, 3.0).gops_per_s == pytest.approx(4 * 3.0 * 32)  # 2 FMA x 8 lanes x 2
    assert peak_rate("int8", {"avx2", "avx512_vnni"}, 2, 2.0).gops_per_s == pytest.approx(2 * 2.0 * 256)
    assert peak_rate("int8", {"avx512_vnni", "amx_int8"}, 1, 1.0).ops_per_cycle_per_core == 2048
    unreadable = peak_rate("fp32", {"avx512f"}, 2, None)
    assert unreadable.gops_per_s is None and unreadable.clock_source == "not readable"
    assert peak_rate("int8", {"sse2"}, 2, 2.0).gops_per_s is None  # no integer multiply-add known


def test_the_clock_comes_from_cpufreq_then_proc_cpuinfo_and_is_none_when_neither_is_readable(tmp_path):
    from tritoncls.measure.machine import cpu_clock_ghz

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\ncpu MHz\t\t: 2100.000\nflags\t\t: avx2\n")
    clock, source = cpu_clock_ghz(tmp_path / "sys", cpuinfo)
    assert clock == pytest.approx(2.1) and "cpu MHz" in source
    (tmp_path / "sys" / "cpu0" / "cpufreq").mkdir(parents=True)
    (tmp_path / "sys" / "cpu0" / "cpufreq" / "cpuinfo_max_freq").write_text("3500000\n")  # kHz
    clock, source = cpu_clock_ghz(tmp_path / "sys", cpuinfo)
    assert clock == pytest.approx(3.5) and "cpuinfo_max_freq" in source
    assert cpu_clock_ghz(tmp_path / "none", tmp_path / "missing") == (None, "not readable")


def test_physical_cores_counts_hyperthread_siblings_once(tmp_path):
    from tritoncls.measure.machine import physical_cores

    for cpu, siblings in ((0, "0,2"), (1, "1,3"), (2, "0,2"), (3, "1,3")):
        (tmp_path / f"cpu{cpu}" / "topology").mkdir(parents=True)
        (tmp_path / f"cpu{cpu}" / "topology" / "thread_siblings_list").write_text(siblings + "\n")
    assert physical_cores([0, 1, 2, 3], tmp_path) == 2
    assert physical_cores([0, 2], tmp_path) == 1
    assert physical_cores([7, 8], tmp_path) == 2  # no topology: each CPU counts


def test_openblas_is_measured_again_with_the_kernel_for_the_widest_simd_only_where_it_picked_a_narrower_one():
    from tritoncls.measure.machine import openblas_kernel_to_force

    assert openblas_kernel_to_force("Prescott", {"avx2", "fma", "avx512f"}) == "SkylakeX"
    assert openblas_kernel_to_force("Cooperlake", {"avx2", "fma", "avx512f"}) is None
    assert openblas_kernel_to_force("Prescott", {"avx2", "fma"}) == "Haswell"
    assert openblas_kernel_to_force("Haswell", {"avx2", "fma"}) is None
    assert openblas_kernel_to_force("Prescott", {"sse2"}) is None


def test_the_limits_record_picks_the_fastest_kernel_per_precision_and_keeps_every_rate():
    limits = fake_limits()
    assert limits.fp32.best.kernel == "onnxruntime MatMul (MLAS)" and limits.int8.best.gops_per_s == 400.0
    saved = limits.to_dict()
    assert [r["gops_per_s"] for r in saved["fp32"]["measured"]] == [72.0, 100.0]
    assert saved["fp32"]["best"]["gops_per_s"] == 100.0 and saved["fp32"]["unit"] == "GFLOP/s"
    assert saved["int8"]["unit"] == "GOP/s" and saved["fp32"]["peak"]["gops_per_s"] == pytest.approx(268.8)
    from tritoncls.measure.machine import PrecisionLimit

    assert PrecisionLimit("int8", (), limits.int8.peak).best is None


def test_gemm_limits_records_a_failed_kernel_and_keeps_the_others(monkeypatch):
    from tritoncls.measure import machine

    def rate(kernel, precision="fp32", gops=10.0):
        return machine.GemmRate(kernel, precision, 8, 1.0, 2, gops)

    def broken(*args, **kwargs):
        raise RuntimeError("no MatMulInteger kernel")

    monkeypatch.setattr(machine, "all_cpu_flags", lambda: ["avx2", "fma", "avx512f"])
    monkeypatch.setattr(machine, "blas_info", lambda: {"internal_api": "openblas", "architecture": "Prescott"})
    monkeypatch.setattr(machine, "sgemm_rate", lambda size, repeats: rate("numpy Prescott", gops=30.0))
    monkeypatch.setattr(machine, "numpy_forced_kernel_rate", lambda core, size, repeats: rate(f"numpy {core}", gops=150.0))
    monkeypatch.setattr(machine, "onnxruntime_sgemm_rate", lambda size, repeats: rate("ort", gops=140.0))
    monkeypatch.setattr(machine, "onnxruntime_int8_gemm_rate",
                        lambda size, repeats, dynamic=False: broken() if not dynamic else rate("ort dq", "int8", 300.0))
    limits = machine.gemm_limits(size=8, repeats=1)
    assert limits.fp32.best.kernel == "numpy SkylakeX" and len(limits.fp32.measured) == 3
    assert "OPENBLAS_CORETYPE=SkylakeX" in limits.notes[0]
    assert [r.kernel for r in limits.int8.measured] == ["ort dq"]
    assert limits.int8.failures == ("onnxruntime MatMulInteger: RuntimeError: no MatMulInteger kernel",)


def test_a_report_saved_before_the_limits_compares_against_the_best_of_its_two_sgemm_rates():
    m = fake_measurements()
    del m["gemm_limits"]
    m["sgemm"] = {"size": 2048, "gflops": 72.0, "blas": "openblas 0.3.23.dev (Prescott)"}
    m["sgemm_onnxruntime"] = {"size": 2048, "gflops": 90.0, "blas": "onnxruntime 1.32.0 MatMul (MLAS)"}
    target = {t.name: t for t in compute_targets(m)}["useful_flops_vs_best_fp32_gemm[medium]"]
    assert target.measured == pytest.approx(18.0 / 90.0) and "onnxruntime 1.32.0 MatMul" in target.detail


def test_the_flops_breakdown_splits_the_time_per_text_into_the_limits_time_each_step_and_the_rest():
    from tritoncls.benchmarks.report import flops_breakdown, flops_breakdown_lines

    m = fake_measurements()
    point = m["shapes"]["medium"]["served"]["default"]["points"][2]  # single texts at concurrency 32: 12 texts/s
    point["stages"]["us_per_text"] = {"tokenizer": 2000.0, "model": 60000.0, "postprocess": 1000.0}
    b = flops_breakdown(m, "medium")
    assert b["wall_us_per_text"] == pytest.approx(1e6 / 12)
    assert b["at_limit_us_per_text"] == pytest.approx(1e6 * 1.5e9 / 100e9)  # 15 ms at 100 GFLOP/s
    assert b["model_step_vs_limit"] == pytest.approx(15000 / 60000) and b["model_step_useful_gflops"] == pytest.approx(25.0)
    assert b["outside_steps_us_per_text"] == pytest.approx(1e6 / 12 - 63000)
    text = "\n".join(flops_breakdown_lines(b))
    assert "| model step compute | 60000 | 72.0% |" in text and "0.25 of the limit" in text
    del m["gemm_limits"]
    assert flops_breakdown(m, "medium") is None


def test_int8_runs_are_compared_with_the_int8_limit_and_fp32_runs_with_the_fp32_one():
    from tritoncls.benchmarks.report import useful_rates

    m = fake_measurements()
    m["shapes"]["nano"]["int8"] = {"texts_per_s": 500.0}
    rows = {(r["shape"], r["run"]): r for r in useful_rates(m)}
    served = rows[("nano", "served int8, 32 texts/request, best concurrency")]
    assert served["precision"] == "int8" and served["vs_limit"] == pytest.approx(210.0 * 0.1 / 400.0)
    assert rows[("nano", "in-process INT8, sorted, batch 32")]["vs_limit"] == pytest.approx(500.0 * 0.1 / 400.0)
    fp32 = rows[("medium", "served default, single texts, concurrency 32")]
    assert fp32["precision"] == "fp32" and fp32["vs_limit"] == pytest.approx(18.0 / 100.0)


def test_the_op_profile_splits_a_real_exports_model_time_by_operator_and_counts_the_products_flops(demo_export):
    from tritoncls.measure.flops import EncoderShape, total_flops
    from tritoncls.measure.inprocess import token_rows
    from tritoncls.measure.op_profile import ATTENTION, SESSION, WEIGHTS, profile_export

    texts = [f"text number {i} " + "word " * (i % 7) for i in range(40)]
    rows = token_rows(demo_export, texts)
    shape = EncoderShape.from_architecture(Manifest.load(demo_export).architecture)
    useful = total_flops(np.array([len(r) for r in rows]), shape)
    profile = profile_export(demo_export, rows, batch_size=8, useful_flops=useful, threads=1, limit_repeats=1)
    kinds = {k.kind: k for k in profile.kinds}
    assert profile.batches == 5 and profile.total_us > 0
    assert sum(k.share for k in profile.kinds) == pytest.approx(1.0)  # the session's own time closes the sum
    assert SESSION in kinds and kinds[WEIGHTS].flops > 0 and kinds[ATTENTION].flops > 0
    # the products execute the useful FLOPs and the padded positions' on top (sorted batches pad a little)
    assert profile.executed_product_flops >= useful * 0.999
    record = profile.to_dict()
    assert 0 <= record["padding_flops_share"] < 0.5
    limits = record["product_limits"]
    assert limits and all(p["gflops_per_s"] > 0 for p in limits)
    assert all(p["size"][1] in (shape.hidden_size, shape.intermediate_size) for p in limits)  # the layers' products


def test_the_op_profile_counts_only_the_runs_after_the_warm_pass():
    from tritoncls.measure.op_profile import second_pass

    def run(ts):
        return {"cat": "Session", "name": "model_run", "ts": ts, "dur": 10}

    def node(ts):
        return {"cat": "Node", "name": "MatMul_kernel_time", "ts": ts, "dur": 1}

    events = [run(0), node(2), run(20), node(22), run(40), node(42), run(60), node(62)]
    assert second_pass(events, 2) == [run(40), node(42), run(60), node(62)]  # two warm runs, two counted
    assert second_pass(events[:2], 2) == events[:2]  # fewer runs than the warm pass: nothing to drop


def test_a_product_with_packed_weights_counts_as_a_weight_product_and_two_activations_as_attention():
    from tritoncls.measure.op_profile import ATTENTION, WEIGHTS, product_flops, summarize, typical_products

    weights = {"cat": "Node", "name": "MatMul_1_kernel_time", "dur": 100, "args": {
        "op_name": "MatMul", "input_type_shape": [{"float": [4, 10, 32]}], "output_type_shape": [{"float": [4, 10, 64]}]}}
    attention = {"cat": "Node", "name": "FusedMatMul_2_kernel_time", "dur": 50, "args": {
        "op_name": "FusedMatMul", "input_type_shape": [{"float": [4, 2, 10, 16]}, {"float": [4, 2, 10, 16]}],
        "output_type_shape": [{"float": [4, 2, 10, 10]}]}}
    softmax = {"cat": "Node", "name": "Softmax_3_kernel_time", "dur": 30, "args": {"op_name": "Softmax"}}
    run = {"cat": "Session", "name": "model_run", "dur": 200}
    assert product_flops(weights) == (WEIGHTS, 2.0 * 40 * 32 * 64, (40, 32, 64))
    assert product_flops(attention) == (ATTENTION, 2.0 * 80 * 16 * 10, (80, 16, 10))
    kinds, total, executed, sizes = summarize([weights, attention, softmax, run])
    assert total == 200 and executed == 2.0 * 40 * 32 * 64 + 2.0 * 80 * 16 * 10
    assert [(k.kind, k.us) for k in kinds] == [(WEIGHTS, 100), (ATTENTION, 50), ("softmax", 30),
                                               ("session, outside the operators", 20)]
    assert typical_products({(40, 32, 64): 2, (20, 32, 64): 2, (40, 64, 32): 1}) == [(30, 32, 64), (40, 64, 32)]


def test_the_breakdown_shows_the_op_profile_with_each_products_rate_against_the_limit():
    from tritoncls.benchmarks.report import flops_breakdown, flops_breakdown_lines

    m = fake_measurements()
    point = m["shapes"]["medium"]["served"]["default"]["points"][2]
    point["stages"]["us_per_text"] = {"tokenizer": 2000.0, "model": 60000.0, "postprocess": 1000.0}
    m["shapes"]["medium"]["op_profile"] = {
        "batch_size": 12, "batches": 3, "threads": 2, "total_us": 1000.0, "useful_flops": 9e9,
        "executed_product_flops": 1e10, "padding_flops_share": 0.1,
        "kinds": [{"kind": "products with weights", "us": 600.0, "share": 0.6, "nodes": 9, "flops": 3e7,
                   "gflops_per_s": 50.0},
                  {"kind": "GELU", "us": 400.0, "share": 0.4, "nodes": 3, "flops": 0.0, "gflops_per_s": None}],
        "product_limits": [{"size": [240, 768, 768], "gflops_per_s": 80.0}]}
    text = "\n".join(flops_breakdown_lines(flops_breakdown(m, "medium")))
    assert "| products with weights | 60.0% | 0.6 | 9 | 50.0 | 0.50 |" in text
    assert "| GELU | 40.0% | 0.4 | 3 | n/a |  |" in text
    assert "Padding: 10.0% of the FLOPs" in text and "240x768x768: 80.0 GFLOP/s (0.80 of the limit)" in text
    assert "in 3 batches of 12" in text
