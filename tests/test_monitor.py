"""`tritoncls monitor`: live counters (a metrics port's Prometheus text, or Prometheus's query API) against the
reference distribution: PSI per distribution, chi-square for labels, the verdict and its exit status.

The served counters are rendered here as Triton writes them: every series a counter (the histograms as
``_bucket``/``_count``/``_sum`` counters), label values escaped; series at zero are left out, the harder case (the
recorder creates them at zero; the triton-marked test reads a real server's).
"""

from __future__ import annotations

import collections
import json
import math
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from tests.support import HOSTILE_LABELS, Prometheus, wait_for_flushed, write_tiny_export
from tritoncls.builder import BuildConfig, build_repository
from tritoncls.cli import main
from tritoncls.clients import make_client
from tritoncls.monitor.compare import chi_square, psi
from tritoncls.monitor.config import EXIT_DRIFT, EXIT_NOT_ENOUGH, EXIT_OK, MonitorConfig, MonitorError
from tritoncls.monitor.counts import parse_exposition
from tritoncls.monitor.monitor import monitor
from tritoncls.runtime import ManifestError
from tritoncls.runtime.metrics import (
    CONFIDENCE_BOUNDS,
    LABELS_PER_TEXT,
    LABELS_PER_TEXT_BOUNDS,
    LOW_CONFIDENCE,
    PREDICTED,
    REFERENCE_FILE,
    REFUSED,
    REPOSITORY_REFERENCE_FILE,
    TEXT_TOKENS,
    TOP_CONFIDENCE,
    TRUNCATED,
    Histogram,
    Reference,
    bound_text,
    token_bounds,
)
from tritoncls.server.triton import TritonServer

#: Label names Triton must escape in its exposition text (quotes, backslash, braces) and Chinese ones.
LABELS = ("病情诊断", 'say "hi"', "back\\slash", "{braces}", "a=b,c", "plain")
LABEL_COUNTS = (600, 500, 400, 250, 150, 100)
CONFIDENCE = (0, 5, 15, 30, 50, 80, 120, 200, 300, 400, 500, 300)  # 12 bins, 2000 texts
TOKENS = (0, 300, 700, 500, 300, 150, 40, 10, 0)  # token_bounds(128): 8 bounds, 9 bins


def reference(**changes) -> Reference:
    """2000 dev texts of a multi-class model; ``changes`` replace fields (then: live traffic described alike)."""
    ref = Reference(source="dev.txt", texts=2000, task="multi_class", labels=dict(zip(LABELS, LABEL_COUNTS)),
                    top_confidence=Histogram(CONFIDENCE_BOUNDS, CONFIDENCE),
                    text_tokens=Histogram(token_bounds(128), TOKENS), truncated=10, low_confidence_threshold=0.55,
                    low_confidence=100)
    return replace(ref, **changes)


def scaled(ref: Reference, factor: float) -> Reference:
    """The same shares, ``factor`` times the texts."""
    def times(h: Histogram | None) -> Histogram | None:
        return h and Histogram(h.bounds, tuple(round(c * factor) for c in h.counts))

    return replace(ref, texts=round(ref.texts * factor), labels={k: round(v * factor) for k, v in ref.labels.items()},
                   top_confidence=times(ref.top_confidence), text_tokens=times(ref.text_tokens),
                   labels_per_text=times(ref.labels_per_text), truncated=round(ref.truncated * factor),
                   low_confidence=round(ref.low_confidence * factor))


def write_reference(folder: Path, ref: Reference, name: str = REFERENCE_FILE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(ref.to_json(), encoding="utf-8")
    return folder


# --- the served counters, as Triton renders them ----------------------------------------------------


Sample = tuple[str, dict[str, str], float]


def served_series(live: Reference, model: str = "seqcls", refused: dict[str, int] | None = None,
                  zeros: bool = False) -> list[Sample]:
    """The tritoncls_ series a server would export after classifying ``live``'s texts (those at zero with
    ``zeros``)."""
    series: list[Sample] = [(PREDICTED, {"label": k, "model": model}, v) for k, v in live.labels.items()]
    for name, histogram in ((TOP_CONFIDENCE, live.top_confidence), (TEXT_TOKENS, live.text_tokens),
                            (LABELS_PER_TEXT, live.labels_per_text)):
        if histogram is None:
            continue
        running = np.cumsum(histogram.counts)
        for bound, value in zip((*map(bound_text, histogram.bounds), "+Inf"), running):
            series.append((f"{name}_bucket", {"le": bound, "model": model}, float(value)))
        series.append((f"{name}_count", {"model": model}, float(running[-1])))
        series.append((f"{name}_sum", {"model": model}, float(running[-1]) * 0.5))
    series += [(LOW_CONFIDENCE, {"model": model}, live.low_confidence), (TRUNCATED, {"model": model}, live.truncated)]
    series += [(REFUSED, {"reason": r, "model": model}, v) for r, v in (refused or {}).items()]
    return [s for s in series if s[2] or zeros]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def exposition(series: Sequence[Sample], answered: int = 0) -> str:
    """Prometheus text the way Triton writes custom counters, with a few of Triton's own series."""
    lines = ["# HELP nv_inference_request_success Number of successful inference requests",
             "# TYPE nv_inference_request_success counter",
             f'nv_inference_request_success{{model="seqcls",version="1"}} {answered}']
    for name in dict.fromkeys(s[0] for s in series):
        lines += [f"# HELP {name} {name}", f"# TYPE {name} counter"]
        for _, labels, value in (s for s in series if s[0] == name):
            rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
            lines.append(f"{name}{{{rendered}}} {value:g}")
    return "\n".join(lines) + "\n"


@contextmanager
def http_server(answer: Callable[[str], tuple[int, str]]) -> Iterator[str]:
    """A local HTTP server: ``answer(path)`` gives each GET's status and body. Yields its base URL."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            status, body = answer(self.path)
            data = body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def metrics_port(text: str) -> Iterator[str]:
    """A metrics port serving ``text``; yields its /metrics URL."""
    with http_server(lambda path: (200, text) if path == "/metrics" else (404, "not found")) as base:
        yield f"{base}/metrics"


def judge(folder: Path, live: Reference | str, **options):
    """monitor() against a metrics port serving ``live`` (a Reference rendered as series, or exposition text)."""
    text = live if isinstance(live, str) else exposition(served_series(live))
    with metrics_port(text) as url:
        return monitor(MonitorConfig(reference=str(folder), metrics_url=url, **options))


def verdicts(report) -> dict[str, str]:
    return {d.name: d.verdict for d in report.distributions}


# --- the statistics ---------------------------------------------------------------------------------


def test_psi_is_zero_for_equal_shares_and_follows_its_formula():
    assert psi([10, 20, 70], [1, 2, 7]) == pytest.approx(0.0)
    expected = (0.5 - 0.25) * math.log(0.5 / 0.25) + (0.5 - 0.75) * math.log(0.5 / 0.75)
    assert psi([25, 75], [50, 50]) == pytest.approx(expected)


def test_psi_counts_an_empty_bin_as_epsilon_instead_of_dividing_by_zero():
    value = psi([50, 50, 0], [50, 49, 1])
    assert math.isfinite(value) and 0 < value < 0.05


def test_chi_square_merges_cells_expected_below_five():
    test = chi_square([500, 500, 2, 1], [400, 600, 1, 0], ["a", "b", "c", "d"])
    assert test is not None and test.merged == ("c", "d", "a") and test.dof == 1
    assert chi_square([500, 500], [400, 600], ["a", "b"]).p_value < 1e-4
    assert chi_square([500, 0], [400, 0], ["a", "b"]) is None  # one cell left: nothing to test


# --- verdicts ---------------------------------------------------------------------------------------


def test_traffic_shaped_like_the_reference_is_no_drift_exit_0(tmp_path):
    folder = write_reference(tmp_path / "export", reference())
    report = judge(folder, scaled(reference(), 2))
    assert report.exit_status == EXIT_OK and report.verdict == "ok"
    assert set(verdicts(report).values()) == {"stable"}
    assert report.texts == 4000 and all(d.psi == pytest.approx(0.0, abs=1e-9) for d in report.distributions)
    labels = report.distributions[0]
    assert labels.bins == LABELS and labels.chi_square.p_value > 0.99  # hostile names parsed back exactly


def test_a_stream_of_two_labels_is_label_drift_exit_3(tmp_path):
    folder = write_reference(tmp_path / "export", reference())
    live = replace(reference(), labels=dict.fromkeys(LABELS, 0) | {LABELS[0]: 1000, LABELS[3]: 1000})
    report = judge(folder, live)
    assert report.exit_status == EXIT_DRIFT and report.drifted == ["labels"]
    labels = report.distributions[0]
    assert labels.psi > 1 and labels.chi_square.p_value < 1e-10
    assert labels.most_shifted()[0][0] == LABELS[3]  # 12.5% -> 50%


def test_low_confidence_and_long_texts_are_confidence_and_length_drift(tmp_path):
    folder = write_reference(tmp_path / "export", reference())
    live = reference(top_confidence=Histogram(CONFIDENCE_BOUNDS, (50, 300, 400, 400, 300, 200, 150, 100, 50, 30,
                                                                  15, 5)),
                     text_tokens=Histogram(token_bounds(128), (0, 10, 40, 100, 300, 500, 600, 300, 150)),
                     low_confidence=900, truncated=150)
    report = judge(folder, live)
    assert report.exit_status == EXIT_DRIFT
    assert verdicts(report) == {"labels": "stable", "top_confidence": "drift", "text_tokens": "drift"}
    rates = {r.name: r for r in report.rates}
    assert rates["low_confidence"].live == pytest.approx(0.45) and rates["low_confidence"].reference == 0.05
    assert rates["truncated"].live == pytest.approx(0.075)


def test_a_small_shift_is_moderate_not_drift(tmp_path):
    folder = write_reference(tmp_path / "export", reference())
    live = replace(reference(), labels=dict(zip(LABELS, (400, 500, 400, 250, 150, 300))))
    report = judge(folder, live)
    assert verdicts(report)["labels"] == "moderate" and report.exit_status == EXIT_OK


def test_fewer_texts_than_min_texts_is_not_enough_traffic_exit_4(tmp_path):
    folder = write_reference(tmp_path / "export", reference())
    live = replace(scaled(reference(), 0.05), labels=dict.fromkeys(LABELS, 0) | {LABELS[0]: 100})  # skewed, but 100
    report = judge(folder, live)
    assert report.verdict == "not enough traffic" and report.exit_status == EXIT_NOT_ENOUGH
    assert verdicts(report)["labels"] == "too few texts"
    assert judge(folder, live, min_texts=50).exit_status == EXIT_DRIFT


def test_a_server_that_classified_nothing_yet_is_not_enough_traffic(tmp_path):
    folder = write_reference(tmp_path / "export", reference())
    nothing = scaled(reference(), 0)
    assert nothing.texts == 0
    report = judge(folder, exposition(served_series(nothing, refused=dict.fromkeys(["empty", "too_long"], 0),
                                                    zeros=True)))
    assert report.exit_status == EXIT_NOT_ENOUGH and report.texts == 0
    assert set(verdicts(report).values()) == {"too few texts"} and report.refused == {"empty": 0, "too_long": 0}


def test_multi_label_traffic_compares_labels_per_text(tmp_path):
    per_text = Histogram(LABELS_PER_TEXT_BOUNDS, (100, 1400, 400, 100, 0, 0, 0, 0))
    ref = reference(task="multi_label", labels_per_text=per_text)
    folder = write_reference(tmp_path / "export", ref)
    report = judge(folder, scaled(ref, 1.0))
    assert verdicts(report)["labels_per_text"] == "stable"
    empty_sets = replace(ref, labels_per_text=Histogram(LABELS_PER_TEXT_BOUNDS, (1500, 400, 100, 0, 0, 0, 0, 0)))
    assert "labels_per_text" in judge(folder, empty_sets).drifted


def test_refused_requests_are_counted_by_reason(tmp_path):
    folder = write_reference(tmp_path / "export", reference())
    text = exposition(served_series(reference(), refused={"empty": 3, "too_long": 2}))
    assert judge(folder, text).refused == {"empty": 3.0, "too_long": 2.0}


# --- baseline snapshots -----------------------------------------------------------------------------


def test_a_baseline_snapshot_compares_only_the_counts_since_it(tmp_path):
    folder = write_reference(tmp_path / "export", reference())
    before = scaled(reference(), 5)  # 10000 texts as the reference
    skew = dict.fromkeys(LABELS, 0) | {LABELS[0]: 1000, LABELS[1]: 1000}
    after = replace(before, labels={k: v + skew[k] for k, v in before.labels.items()},
                    top_confidence=scaled(reference(), 6).top_confidence, text_tokens=scaled(reference(), 6).text_tokens,
                    low_confidence=600, truncated=60)
    snapshot = tmp_path / "snap.json"
    assert judge(folder, before, save_snapshot=str(snapshot)).exit_status == EXIT_OK
    assert json.loads(snapshot.read_text(encoding="utf-8"))["counts"]["labels"][LABELS[1]] == 2500

    assert judge(folder, after).exit_status == EXIT_OK  # diluted by the 10000 texts before
    report = judge(folder, after, baseline=str(snapshot))
    assert report.texts == 2000 and report.drifted == ["labels"] and report.since.startswith("the baseline of")


def test_the_same_file_as_baseline_and_snapshot_compares_each_run_with_the_previous_one(tmp_path):
    folder = write_reference(tmp_path / "export", reference())
    last = str(tmp_path / "last.json")
    judge(folder, scaled(reference(), 1), save_snapshot=last)
    report = judge(folder, scaled(reference(), 3), baseline=last, save_snapshot=last)
    assert report.texts == 4000 and report.exit_status == EXIT_OK
    assert judge(folder, scaled(reference(), 3), baseline=last, save_snapshot=last).texts == 0


def test_a_baseline_above_the_counters_means_a_restart_and_counts_since_it(tmp_path):
    folder = write_reference(tmp_path / "export", reference())
    snapshot = tmp_path / "snap.json"
    judge(folder, scaled(reference(), 5), save_snapshot=str(snapshot))
    report = judge(folder, reference(), baseline=str(snapshot))
    assert report.texts == 2000 and report.exit_status == EXIT_OK and "restarted" in report.notes[0]


def test_a_file_that_is_not_a_snapshot_is_refused(tmp_path):
    folder = write_reference(tmp_path / "export", reference())
    (tmp_path / "x.json").write_text('{"format": "other"}', encoding="utf-8")
    with pytest.raises(MonitorError, match="not a monitor snapshot.*--save_snapshot"):
        judge(folder, reference(), baseline=str(tmp_path / "x.json"))


# --- where the reference is -------------------------------------------------------------------------


def test_the_reference_is_a_file_an_export_or_a_repository(tmp_path):
    live = scaled(reference(), 1)
    write_reference(tmp_path / "export", reference())
    write_reference(tmp_path / "repo", reference(), REPOSITORY_REFERENCE_FILE)
    for where in (tmp_path / "export", tmp_path / "export" / REFERENCE_FILE, tmp_path / "repo"):
        assert judge(where, live).exit_status == EXIT_OK, where


def test_a_repository_names_its_model_and_its_low_confidence_threshold(tmp_path):
    repo = write_reference(tmp_path / "repo", reference(), REPOSITORY_REFERENCE_FILE)
    (repo / "tritoncls_build.json").write_text(json.dumps({"metrics": {"enabled": True, "model": "other",
                                                                       "low_confidence": 0.3}}), encoding="utf-8")
    text = exposition(served_series(reference(), "seqcls") + served_series(reference(), "other"))
    report = judge(repo, text)
    assert report.model == "other" and "not comparable" in report.notes[0]


def test_a_missing_or_bad_reference_says_how_to_record_one(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MonitorError, match="holds neither reference.json.*tritoncls export --reference_data"):
        judge(tmp_path / "empty", reference())
    with pytest.raises(MonitorError, match="not found"):
        judge(tmp_path / "nowhere.json", reference())
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    with pytest.raises(ManifestError, match="not valid JSON"):
        judge(tmp_path / "bad.json", reference())


# --- what the server exports ------------------------------------------------------------------------


def test_hostile_label_names_survive_the_exposition_escaping():
    text = exposition(served_series(reference()))
    assert '\\"hi\\"' in text and "back\\\\slash" in text
    parsed = {s.labels["label"]: s.value for s in parse_exposition(text, "url") if s.name == PREDICTED}
    assert parsed == dict(zip(LABELS, map(float, LABEL_COUNTS)))
    assert {s.name for s in parse_exposition(text, "url")} >= {f"{TOP_CONFIDENCE}_bucket", f"{TEXT_TOKENS}_count"}


def test_a_server_without_tritoncls_series_says_how_to_rebuild(tmp_path):
    folder = write_reference(tmp_path / "export", reference())
    for answered in (20, 0):
        with pytest.raises(MonitorError, match=rf"answered {answered} requests and exports no tritoncls_ series.*"
                                               r"--no_metrics"):
            judge(folder, exposition([], answered=answered))
    with pytest.raises(MonitorError, match="not the metrics port"):
        judge(folder, "# just a comment\n")


def test_the_model_is_the_only_one_or_named(tmp_path):
    folder = write_reference(tmp_path / "export", reference())
    text = exposition(served_series(reference(), "seqcls") + served_series(reference(), "fused"))
    with pytest.raises(MonitorError, match=r"several models.*\(fused, seqcls\); pass one as --name"):
        judge(folder, text)
    assert judge(folder, text, name="fused").model == "fused"
    with pytest.raises(MonitorError, match="no tritoncls_ series for model 'nope'.*fused, seqcls"):
        judge(folder, text, name="nope")


def test_bins_other_than_the_references_are_refused(tmp_path):
    folder = write_reference(tmp_path / "export", reference())
    longer = reference(text_tokens=Histogram(token_bounds(256), (0, 300, 700, 500, 300, 150, 40, 10, 0, 0, 0)))
    with pytest.raises(MonitorError, match=r"tritoncls_text_tokens_bucket has bins .*192.*max_seq_length"):
        judge(folder, longer)
    shorter = reference(text_tokens=Histogram(token_bounds(64), (0, 300, 700, 500, 300, 200, 0)))
    with pytest.raises(MonitorError, match="bins differently"):  # le=64 without le=96 and le=128 above it
        judge(folder, shorter)


def test_labels_the_reference_does_not_know_mean_another_models_reference(tmp_path):
    folder = write_reference(tmp_path / "export", reference())
    live = replace(reference(), labels={**reference().labels, "stranger": 5})
    with pytest.raises(MonitorError, match="'stranger'.*belongs to another model"):
        judge(folder, live)


def test_multi_label_series_against_a_multi_class_reference_are_refused(tmp_path):
    folder = write_reference(tmp_path / "export", reference())
    live = reference(labels_per_text=Histogram(LABELS_PER_TEXT_BOUNDS, (0, 2000, 0, 0, 0, 0, 0, 0)))
    with pytest.raises(MonitorError, match="multi-label .* multi_class model"):
        judge(folder, live)


# --- the command ------------------------------------------------------------------------------------


def test_the_command_reads_a_metrics_port_writes_the_report_and_exits_with_the_verdict(tmp_path, capsys):
    folder = write_reference(tmp_path / "export", reference())
    out = tmp_path / "report"
    with metrics_port(exposition(served_series(reference()))) as url:
        assert main(["monitor", "--reference", str(folder), "--metrics_url", url, "--output", str(out)]) == EXIT_OK
    text = capsys.readouterr().out
    assert "top_confidence" in text and "verdict: no drift (exit 0)" in text
    report = json.loads((out / "monitor.json").read_text(encoding="utf-8"))
    assert report["verdict"] == "ok" and report["distributions"][0]["bins"] == list(LABELS)
    assert "| labels |" in (out / "monitor.md").read_text(encoding="utf-8")
    assert (out / "monitor.png").read_bytes()[:4] == b"\x89PNG"

    skewed = replace(reference(), labels=dict.fromkeys(LABELS, 0) | {LABELS[0]: 2000})
    with metrics_port(exposition(served_series(skewed))) as url:
        assert main(["monitor", "--reference", str(folder), "--metrics-url", url]) == EXIT_DRIFT
    assert "verdict: DRIFT in labels (exit 3)" in capsys.readouterr().out


def test_the_command_names_a_refused_url_and_how_to_start_the_server(tmp_path, caplog):
    folder = write_reference(tmp_path / "export", reference())
    with http_server(lambda path: (200, "")) as base:
        pass  # the port is free again: nothing listens there
    with caplog.at_level("ERROR", logger="tritoncls"):
        assert main(["monitor", "--reference", str(folder), "--metrics_url", f"{base}/metrics"]) == 1
    message = caplog.records[-1].getMessage()
    assert f"{base}/metrics: cannot connect (connection refused)" in message and "tritoncls serve" in message


def test_options_that_do_not_go_together_are_usage_errors(tmp_path, capsys):
    for argv in (["--prometheus", "http://p:9090", "--baseline", "b.json"], ["--prometheus", "http://p:9090",
                                                                              "--window", "an hour"]):
        with pytest.raises(SystemExit) as info:
            main(["monitor", "--reference", str(tmp_path), *argv])
        assert info.value.code == 2
    assert "--window 'an hour'" in capsys.readouterr().err


# --- Prometheus -------------------------------------------------------------------------------------

_QUERY = re.compile(r'^sum(?: by \((\w+)\))? \(increase\((\w+)\{model="((?:[^"\\]|\\.)*)"\}\[(\w+)\]\)\)$')


def fake_prometheus(series: Sequence[Sample], seen: list[str]) -> Callable[[str], tuple[int, str]]:
    """An /api/v1/query endpoint answering monitor's queries from ``series`` (as increases over any window)."""
    def answer(path: str) -> tuple[int, str]:
        url = urllib.parse.urlsplit(path)
        query = urllib.parse.parse_qs(url.query).get("query", [""])[0]
        seen.append(query)
        if url.path != "/api/v1/query":
            return 404, "not found"
        if query.startswith("count by (model)"):
            models = sorted({labels["model"] for _, labels, _ in series})
            result = [{"metric": {"model": m}, "value": [0, "1"]} for m in models]
        elif match := _QUERY.match(query):
            by, name, model, _window = match.groups()
            sums: dict[str, float] = {}
            for _, labels, value in (s for s in series if s[0] == name and s[1]["model"] == model):
                key = labels.get(by, "") if by else ""
                sums[key] = sums.get(key, 0.0) + value
            result = [{"metric": {by: k} if by else {}, "value": [0, str(v)]} for k, v in sums.items()]
        else:
            return 400, json.dumps({"status": "error", "errorType": "bad_data", "error": f"parse error: {query}"})
        return 200, json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}})

    return answer


def test_prometheus_counts_over_a_window_are_compared_the_same_way(tmp_path, capsys):
    folder = write_reference(tmp_path / "export", reference())
    skewed = replace(reference(), labels=dict.fromkeys(LABELS, 0) | {LABELS[1]: 1000, LABELS[2]: 1000})
    seen: list[str] = []
    with http_server(fake_prometheus(served_series(skewed), seen)) as base:
        code = main(["monitor", "--reference", str(folder), "--prometheus", base, "--window", "6h"])
    assert code == EXIT_DRIFT
    assert 'sum by (le) (increase(tritoncls_top_confidence_bucket{model="seqcls"}[6h]))' in seen
    out = capsys.readouterr().out
    assert "since the last 6h" in out and "verdict: DRIFT in labels" in out

    with http_server(fake_prometheus(served_series(reference()), [])) as base:
        report = monitor(MonitorConfig(reference=str(folder), prometheus=base + "/", window="30m"))
    assert report.exit_status == EXIT_OK and report.texts == 2000


def test_a_prometheus_without_tritoncls_series_or_a_bad_answer_is_a_clear_error(tmp_path):
    folder = write_reference(tmp_path / "export", reference())
    with http_server(fake_prometheus([], [])) as base, pytest.raises(MonitorError, match="does not scrape"):
        monitor(MonitorConfig(reference=str(folder), prometheus=base))
    with http_server(lambda path: (200, "<html>")) as base, pytest.raises(MonitorError, match="not a Prometheus"):
        monitor(MonitorConfig(reference=str(folder), prometheus=base))


# --- a real server ----------------------------------------------------------------------------------


@pytest.mark.triton
def test_a_real_triton_metrics_port_and_prometheus_read_back_what_was_classified(tmp_path):
    """Triton's own exposition (counters created at zero, histogram series typed as counters, escaped hostile
    labels) parses into the counts the answers imply; Debian's Prometheus, scraping it, answers monitor's queries."""
    export = write_tiny_export(tmp_path / "export", labels=HOSTILE_LABELS, max_seq_length=64)
    repo = build_repository(BuildConfig(model=str(export), output=str(tmp_path / "repo")))
    ones = reference(labels=dict.fromkeys(HOSTILE_LABELS, 1),
                     text_tokens=Histogram(token_bounds(64), (1,) * (len(token_bounds(64)) + 1)))
    folder = write_reference(tmp_path / "reference", ones)
    texts = [f"good movie number {i} " + "great " * (i % 40) for i in range(60)]
    with TritonServer(repo, log_file=tmp_path / "tritonserver.log") as server, \
            Prometheus(tmp_path / "prometheus", [f"127.0.0.1:{server.metrics_port}"]) as prometheus:
        before = monitor(MonitorConfig(reference=str(folder), metrics_url=server.metrics_url, min_texts=1))
        prometheus.wait_for_scrape()  # the series at zero, before the traffic
        with make_client(server.grpc_url, "grpc") as client:
            answers = client.classify(texts)
        wait_for_flushed(server.metrics_url, len(texts))  # the recorder sends its tally once a second
        after = monitor(MonitorConfig(reference=str(folder), metrics_url=server.metrics_url, min_texts=1))
        prometheus.wait_for_scrape()
        window = monitor(MonitorConfig(reference=str(folder), prometheus=prometheus.url, window="5m", min_texts=1))
    assert before.texts == 0 and before.verdict == "not enough traffic"
    assert after.model == "seqcls" and after.texts == len(texts)
    answered = collections.Counter(a.label for a in answers)
    labels = after.distributions[0]
    assert dict(zip(labels.bins, labels.live)) == {name: float(answered[name]) for name in HOSTILE_LABELS}
    tokens = next(d for d in after.distributions if d.name == "text_tokens")
    assert tokens.live_total == len(texts) and tokens.live[-1] == 0  # nothing above max_seq_length
    # increase() extrapolates to the window's edges: the same shares, about the same count
    assert window.model == "seqcls" and window.texts == pytest.approx(len(texts), rel=0.5)
    assert np.allclose(window.distributions[0].shares()[1], labels.shares()[1], atol=0.02)
