"""tritoncls tune: up-front errors (no server), and one small end-to-end run against the real tritonserver
and perf_analyzer (tiny export, two candidates) whose chosen options build-repo renders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import TINY_LABELS, TINY_WORDS
from tritoncls.benchmarks.tune.tune import TuneConfig, TuneError
from tritoncls.cli import main


def write_texts(path: Path, count: int = 64) -> Path:
    """``count`` labelled lines of the tiny vocabulary, of mixed lengths."""
    words = [w for w in TINY_WORDS if not w.startswith("##")]
    lines = [" ".join(words[(i + j) % len(words)] for j in range(2 + i % 11)) + f"\t{TINY_LABELS[i % 3]}"
             for i in range(count)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tune(export: Path, texts: Path, output: Path, *extra: str) -> int:
    return main(["tune", "--model", str(export), "--input", str(texts), "--output", str(output), "--no_plots",
                 "--concurrencies", "1", "4", "--max_texts", "64", *extra])


def test_tune_fails_up_front_on_an_empty_text_file(tiny_export, tmp_path, caplog):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    assert tune(tiny_export, empty, tmp_path / "out") == 1
    assert "empty.txt: texts file is empty" in caplog.text and not (tmp_path / "out").exists()


def test_tune_fails_up_front_on_a_corrupt_export_naming_the_file(own_tiny_export, tmp_path, caplog):
    (own_tiny_export / "model.onnx").write_bytes(b"not a graph")
    assert tune(own_tiny_export, write_texts(tmp_path / "t.txt"), tmp_path / "out") == 1
    assert "model.onnx: not a valid ONNX model" in caplog.text and not (tmp_path / "out").exists()


def test_tune_fails_up_front_on_a_missing_text_file(tiny_export, tmp_path, caplog):
    assert tune(tiny_export, tmp_path / "absent.txt", tmp_path / "out") == 1
    assert "absent.txt: not found" in caplog.text


@pytest.mark.parametrize("options, problem", [
    ({"latency_budget_ms": 0}, "--latency_budget_ms"),
    ({"concurrencies": (8, 1)}, "--concurrencies"),
    ({"max_candidates": 0}, "--max_candidates"),
])
def test_tune_config_refuses_bad_options(options, problem):
    with pytest.raises(TuneError, match=problem):
        TuneConfig(model="m", input="i", output="o", **options)


@pytest.mark.triton
def test_tune_end_to_end_two_candidates_then_build_repo_options_renders_the_choice(perf_analyzer_ready, tiny_export,
                                                                                  tmp_path):
    from tritoncls.builder.validate import parse_config

    texts, out = write_texts(tmp_path / "texts.txt"), tmp_path / "tune"
    assert tune(tiny_export, texts, out, "--max_candidates", "2", "--final_rounds", "1", "--latency_budget_ms",
                "60000", "--budget_minutes", "5") == 0
    results = json.loads((out / "tune_results.json").read_text(encoding="utf-8"))
    assert [c["name"] for c in results["candidates"]] == ["default", "fused-i2t1"]
    assert all(c["error"] is None and c["points"] for c in results["candidates"])
    assert results["int8_accuracy"]["fp32_accuracy"] >= 0  # the texts carry the model's labels
    assert {p["batch_size"] for p in results["side_by_side"]["tuned"][0]["points"]} == {1, 32}
    assert results["summary"]["tuned_vs_default"] > 0
    report = (out / "tune_report.md").read_text(encoding="utf-8")
    assert "Default vs tuned, side by side" in report and "usable cores" in report
    options = json.loads((out / "tune.json").read_text(encoding="utf-8"))
    chosen = options["build_options"]
    assert options["candidate"] == results["best"] and options["measured_on"]["usable_cpus"] >= 1

    repo = tmp_path / "repo"
    assert main(["build-repo", "--model", str(tiny_export), "--output", str(repo), "--options",
                 str(out / "tune.json")]) == 0
    config = parse_config(repo / "seqcls" / "config.pbtxt")
    params = {k: v.string_value for k, v in config.parameters.items()}
    expected_layout = chosen.get("layout", "ensemble")
    assert (config.backend == "python") == (expected_layout == "fused")
    if expected_layout == "fused":
        assert config.instance_group[0].count == chosen["instances"]
        assert params["intra_op_threads"] == str(chosen["intra_op_threads"])


@pytest.mark.triton
def test_tune_exits_3_with_the_closest_candidates_when_no_configuration_meets_the_budget(perf_analyzer_ready,
                                                                                        tiny_export, tmp_path):
    out = tmp_path / "tune"
    assert tune(tiny_export, write_texts(tmp_path / "texts.txt"), out, "--max_candidates", "1",
                "--latency_budget_ms", "0.001") == 3
    report = (out / "tune_report.md").read_text(encoding="utf-8")
    assert "No configuration meets the budget of 0.001 ms" in report and "| default |" in report
    assert not (out / "tune.json").exists()
