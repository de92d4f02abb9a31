"""tritoncls tune: up-front errors (no server), and one small end-to-end run against the real tritonserver
and perf_analyzer (tiny export, two candidates) whose chosen options build-repo renders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import TINY_LABELS, TINY_WORDS
from tritoncls.cli import main
from tritoncls.tune.config import TuneConfig, TuneError


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


@pytest.mark.parametrize("accuracy, allowed", [
    (None, False),  # unlabelled texts: INT8 is not tried
    ({"drop_points": 0.4}, True),
    ({"drop_points": 1.0}, True),
    ({"drop_points": 1.5}, False),
])
def test_int8_is_a_candidate_only_within_the_accuracy_floor(accuracy, allowed):
    from tritoncls.tune.tune import int8_allowed

    assert int8_allowed(accuracy, 1.0) is allowed


def test_the_sweep_measures_the_workload_and_side_by_side_also_single_texts_and_batches():
    single = TuneConfig(model="m", input="i", output="o", concurrencies=(1, 8))
    assert single.sweep(side_by_side=False) == [(1, 1), (1, 8)] and single.workload == "single texts"
    assert single.sweep(side_by_side=True) == [(1, 1), (1, 8), (32, 1), (32, 2)]
    batched = TuneConfig(model="m", input="i", output="o", concurrencies=(1, 8), request_texts=8)
    assert batched.sweep(side_by_side=False) == [(8, 1), (8, 8)] and batched.workload == "requests of 8 texts"
    assert batched.sweep(side_by_side=True) == [(8, 1), (8, 8), (1, 1), (1, 8), (32, 1), (32, 2)]


def test_client_cpus_leave_the_rest_to_the_server_and_must_be_usable():
    from tritoncls.tune.tune import split_cpus

    usable = os.sched_getaffinity(0)
    assert split_cpus(()) == usable
    with pytest.raises(TuneError, match="not CPUs this process may use"):
        split_cpus((max(usable) + 1000,))
    with pytest.raises(TuneError, match="leaves no CPU for tritonserver"):
        split_cpus(tuple(usable))


def test_perf_analyzer_runs_on_its_client_cpus():
    from tritoncls.measure.perf_analyzer import PerfAnalyzer

    cpu = min(os.sched_getaffinity(0))
    pinned = PerfAnalyzer(Path(sys.executable), dict(os.environ), cpus=(cpu,))
    shown = subprocess.run([sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
                           capture_output=True, text=True, preexec_fn=pinned._pin, check=True).stdout
    assert shown.strip() == f"[{cpu}]"


@pytest.mark.parametrize("options, problem", [
    ({"latency_budget_ms": 0}, "--latency_budget_ms"),
    ({"request_texts": 0}, "--request_texts"),
    ({"client_cpus": (-1,)}, "--client_cpus"),
    ({"request_texts": 65}, "--request_texts 65 is more than the default max_batch_size 64"),
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
    cpu = results["side_by_side"]["tuned"][0]["points"][0]["cpu"]  # read from /proc around the real run
    assert cpu["texts"] > 0 and cpu["models_ms"] > 0 and cpu["frontend_ms"] > 0 and cpu["client_ms"] > 0
    assert results["inprocess_sorted"]["fp32"]["cpu_ms_per_text"] > 0
    report = (out / "tune_report.md").read_text(encoding="utf-8")
    assert "Default vs tuned, side by side" in report and "usable cores" in report
    assert "Where the CPU went: tuned single texts at concurrency 4" in report
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
    out, usable = tmp_path / "tune", os.sched_getaffinity(0)
    client = ["--client_cpus", str(max(usable))] if len(usable) > 1 else []  # perf_analyzer off the server's CPUs
    assert tune(tiny_export, write_texts(tmp_path / "texts.txt"), out, "--max_candidates", "1",
                "--latency_budget_ms", "0.001", "--request_texts", "4", *client) == 3
    assert os.sched_getaffinity(0) == usable  # tune gives its CPUs back
    report = (out / "tune_report.md").read_text(encoding="utf-8")
    assert "No configuration meets the budget of 0.001 ms" in report and "| default |" in report
    assert "requests of 4 texts at concurrency 1, 4" in report
    results = json.loads((out / "tune_results.json").read_text(encoding="utf-8"))
    assert {p["batch_size"] for p in results["candidates"][0]["points"]} == {4}  # the workload's requests
    if client:
        assert results["machine"]["client_cpus"] == [max(usable)] and results["machine"]["usable_cpus"] == len(usable) - 1
        assert f"perf_analyzer ran on CPUs [{max(usable)}], off the server's" in report
    assert not (out / "tune.json").exists()


# ---------------------------------------------------------------------------------------------
# The outputs, from recorded measurements (no server)
# ---------------------------------------------------------------------------------------------


def recorded_outcome(tmp_path: Path, budget_ms: float):
    from tritoncls.tune.config import TuneOutcome
    from tritoncls.tune.search import Candidate, Measured, Point, SearchResult

    def measured(candidate, rates, p99s, batched=()):
        points = [Point(1, c, r, p / 2, p, 4.0) for c, r, p in zip((1, 4), rates, p99s)]
        points += [Point(32, c, r, p / 2, p, 32.0) for c, r, p in batched]
        return Measured(candidate, points, seconds=20.0, stage="x")

    default, fused = Candidate(), Candidate.of(layout="fused", instances=2, intra_op_threads=1)
    runs = [measured(default, (50.0, 90.0), (20.0, 60.0)), measured(fused, (70.0, 150.0), (15.0, 40.0))]
    best = runs[1] if runs[1].score(budget_ms) > 0 else None
    final = {"default": [measured(default, (48.0, 95.0), (20.0, 61.0), [(1, 200.0, 300.0)])],
             "tuned": [measured(fused, (72.0, 152.0), (15.0, 41.0), [(1, 400.0, 150.0)])]} if best else {
        "default": [], "tuned": []}
    config = TuneConfig(model="m", input="dev.txt", output=str(tmp_path / "tune"), latency_budget_ms=budget_ms,
                        concurrencies=(1, 4), final_rounds=1)
    config.output_dir.mkdir(parents=True)
    machine = {"cpu": "test CPU", "usable_cpus": 2, "usable_cpus_source": "os.sched_getaffinity(0) when tune ran",
               "load_average_1m_at_start": 1.0, "hostname": "h", "date": "today"}
    corpus = {"texts": 64, "mean_tokens": 18.0, "corpus_buckets": [16, 24, 128]}
    accuracy = {"texts": 64, "fp32_accuracy": 70.0, "int8_accuracy": 69.5, "drop_points": 0.5}
    return TuneOutcome(config, machine, corpus, accuracy, SearchResult(budget_ms, runs, best), final,
                       {"fp32": {"texts_per_s": 160.0}}, 60.0)


def test_outputs_write_tune_json_report_and_plot_with_the_side_by_side_ratios(tmp_path):
    from tritoncls.builder.options import read_options
    from tritoncls.tune.report import write_outputs

    outcome = recorded_outcome(tmp_path, budget_ms=100.0)
    files = write_outputs(outcome, Path("EXPORT"))
    assert set(files) == {"results", "options", "plot", "report"} and files["plot"].stat().st_size > 0
    assert read_options(files["options"]).build_options == {"layout": "fused", "instances": 2, "intra_op_threads": 1}
    summary = json.loads(files["results"].read_text(encoding="utf-8"))["summary"]
    assert summary["tuned_vs_default"] == pytest.approx(152.0 / 95.0)
    assert summary["tuned_single_text_c4_vs_inprocess_sorted"] == pytest.approx(152.0 / 160.0)
    report = files["report"].read_text(encoding="utf-8")
    assert "## Chosen: `fused-i2t1`" in report and "**1.60**" in report and "**0.95** of the in-process FP32 rate" in report
    assert "| INT8 | 69.50% |" in report and "2 usable cores" in report
    assert "--options " + str(outcome.config.output_dir / "tune.json") in report


def test_outputs_without_a_candidate_in_budget_list_the_closest_and_remove_a_stale_tune_json(tmp_path):
    from tritoncls.tune.report import write_outputs

    outcome = recorded_outcome(tmp_path, budget_ms=5.0)
    (outcome.config.output_dir / "tune.json").write_text("{}", encoding="utf-8")
    files = write_outputs(outcome, Path("EXPORT"))
    assert "options" not in files and not (outcome.config.output_dir / "tune.json").exists()
    report = files["report"].read_text(encoding="utf-8")
    assert "No configuration meets the budget of 5 ms" in report
    assert report.index("| fused-i2t1 | 15.0 |") < report.index("| default | 20.0 |")


def test_report_says_where_the_cpu_went_next_to_the_in_process_cpu_per_text(tmp_path):
    from dataclasses import replace

    from tritoncls.measure.cpu_time import CpuPerText
    from tritoncls.tune.report import write_outputs

    outcome = recorded_outcome(tmp_path, budget_ms=100.0)
    tuned = outcome.final["tuned"][0]
    tuned.points[1] = replace(tuned.points[1], cpu=CpuPerText(300, frontend_ms=0.5, models_ms=2.5, client_ms=1.0))
    outcome.inprocess_sorted["fp32"]["cpu_ms_per_text"] = 2.4
    files = write_outputs(outcome, Path("EXPORT"))
    summary = json.loads(files["results"].read_text(encoding="utf-8"))["summary"]
    assert summary["inprocess_cpu_vs_served_server_cpu"] == pytest.approx(2.4 / 3.0)
    assert summary["cpu_bound_texts_per_s_client_elsewhere"] == pytest.approx(2 * 1000 / 3.0)
    report = files["report"].read_text(encoding="utf-8")
    assert "| 2.500 | 0.500 | 1.000 | 4.000 | 2.400 |" in report
    assert "costs 1.25x the in-process CPU per text" in report and "took 25% of the CPU" in report


def test_report_of_a_batched_workload_names_it_and_compares_its_requests(tmp_path):
    from dataclasses import replace

    from tritoncls.tune.report import write_outputs

    outcome = recorded_outcome(tmp_path, budget_ms=400.0)
    outcome = replace(outcome, config=replace(outcome.config, request_texts=32, concurrencies=(1,)))
    for rounds in outcome.final.values():
        for m in rounds:
            m.request_texts = 32
    files = write_outputs(outcome, Path("EXPORT"))
    summary = json.loads(files["results"].read_text(encoding="utf-8"))["summary"]
    assert summary["tuned_vs_default"] == pytest.approx(400.0 / 200.0)
    assert summary["tuned_requests_of_32_c1_vs_inprocess_sorted"] == pytest.approx(400.0 / 160.0)
    report = files["report"].read_text(encoding="utf-8")
    assert "| **requests of 32 texts, best within p99 400 ms (texts/s)** | 200.0 | 400.0 | **2.00** |" in report


def test_report_leaves_the_cpu_table_out_where_cpu_was_not_measured(tmp_path):
    from tritoncls.tune.report import write_outputs

    files = write_outputs(recorded_outcome(tmp_path, budget_ms=100.0), Path("EXPORT"))
    assert "Where the CPU went" not in files["report"].read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# A multi-label export: the INT8 floor is on macro-F1 of the label sets (the manifest's task)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hierarchical", [False, True], ids=["multi_label", "hierarchical"])
def test_int8_floor_of_a_multi_label_export_is_checked_on_macro_f1_of_its_label_sets(tmp_path, hierarchical):
    from tests import support
    from tritoncls.tune.tune import int8_accuracy, read_corpus

    lines = support.tiny_multi_label_lines(64, hierarchical)
    texts = tmp_path / "dev.txt"
    texts.write_text("\n".join(lines) + "\n", encoding="utf-8")
    export = support.write_varied_multi_label_export(tmp_path / "export", [line.split("\t")[0] for line in lines],
                                                     hierarchical)
    config = TuneConfig(model=str(export), input=str(texts), output=str(tmp_path / "out"), max_texts=64)
    corpus = read_corpus(config, export, 64)
    assert corpus.labels[0] == ""  # a text with no label still counts
    accuracy = int8_accuracy(export, corpus, corpus.labels)
    assert accuracy["metric"] == "macro_f1" and accuracy["task"] == ("hierarchical" if hierarchical else "multi_label")
    assert 0 <= accuracy["int8_macro_f1"] <= 100 and accuracy["texts"] == 64
    assert accuracy["drop_points"] == pytest.approx(accuracy["fp32_macro_f1"] - accuracy["int8_macro_f1"], abs=0.011)
    assert 90 <= accuracy["int8_label_set_agreement"] <= 100
    assert "fp32_accuracy" not in accuracy


def test_int8_is_not_tried_where_the_texts_name_labels_a_multi_label_export_does_not_have(multi_label_export,
                                                                                        tmp_path, caplog):
    from tritoncls.tune.tune import int8_accuracy, read_corpus

    texts = tmp_path / "dev.txt"
    texts.write_text("".join(f"good movie {i}\tpositive,angry\n" for i in range(32)), encoding="utf-8")
    config = TuneConfig(model=str(multi_label_export), input=str(texts), output=str(tmp_path / "out"))
    assert int8_accuracy(multi_label_export, read_corpus(config, multi_label_export, 64), ()) is None
    assert "labels ['angry'] of the texts are not the model's labels" in caplog.text


def test_report_of_a_multi_label_export_names_macro_f1_and_the_label_set_agreement(tmp_path):
    from dataclasses import replace

    from tritoncls.tune.report import write_outputs

    outcome = recorded_outcome(tmp_path, budget_ms=100.0)
    accuracy = {"texts": 64, "task": "multi_label", "metric": "macro_f1", "fp32_macro_f1": 48.2, "int8_macro_f1": 47.9,
                "drop_points": 0.3, "int8_label_set_agreement": 97.5}
    report = write_outputs(replace(outcome, accuracy=accuracy), Path("EXPORT"))["report"].read_text(encoding="utf-8")
    assert "| precision | macro_f1 (in-process, same texts) |" in report and "| INT8 | 47.90% |" in report
    assert "INT8 gives FP32's whole label set on 97.50% of the texts" in report
