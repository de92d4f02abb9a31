"""Load and soak: a served ensemble (2 model instances) at concurrency 16, single KUAKE-QIC texts of mixed
lengths, no retries. Passes with zero errors, every label equal to the in-process runtime Predictor on the
same export, and server RSS (tritonserver + python-backend stubs) growing at most SOAK_RSS_BOUND_MIB
after the warm-up.

CI runs TRITONCLS_SOAK_REQUESTS (default 8000, about 20-60 s) requests; the full soak is
``TRITONCLS_SOAK_REQUESTS=20000 pytest tests/test_robust_soak.py -s`` or ``tritoncls soak`` (docs/robustness.md).
"""

from __future__ import annotations

import collections
import json
import os

import numpy as np
import pytest

from tritoncls.errors import ConfigError, DataError
from tritoncls.soak import SoakConfig, SoakReport, _judge, read_texts_column, soak

SOAK_REQUESTS = int(os.environ.get("TRITONCLS_SOAK_REQUESTS", "8000"))
SOAK_CONCURRENCY = 16
SOAK_RSS_BOUND_MIB = 32.0


@pytest.mark.triton
@pytest.mark.slow
@pytest.mark.kuake
def test_soak_single_texts_above_instance_count_no_errors_exact_labels_bounded_rss(soak_repo, kuake_export, kuake_dir,
                                                                                   tmp_path):
    report = soak(SoakConfig(input=str(kuake_dir / "train.txt"), requests=SOAK_REQUESTS, concurrency=SOAK_CONCURRENCY,
                             model_repository=str(soak_repo), reference_model=str(kuake_export),
                             warmup_requests=min(500, SOAK_REQUESTS // 4), max_rss_growth_mib=SOAK_RSS_BOUND_MIB,
                             max_seconds=600))
    print("\n" + report.summary())
    (tmp_path / "soak.json").write_text(json.dumps(report.to_dict(), indent=2))
    assert report.answered == SOAK_REQUESTS and report.errors == 0, report.error_kinds
    assert report.label_mismatches == 0
    assert report.max_confidence_diff <= 1e-4
    assert report.server_processes >= 5, "RSS must cover tritonserver and every python-backend stub"
    assert report.rss_growth_mib <= SOAK_RSS_BOUND_MIB
    assert report.passed, report.failures


@pytest.mark.triton
@pytest.mark.slow
@pytest.mark.kuake
def test_soak_command_over_http_against_a_running_server_finds_its_pid_and_exits_0(soak_repo, kuake_dir, tmp_path):
    from tritoncls.cli import main
    from tritoncls.server import TritonServer

    with TritonServer(soak_repo, log_file=tmp_path / "tritonserver.log") as server:
        code = main(["soak", "--url", server.http_url, "--protocol", "http", "--texts", str(kuake_dir / "dev.txt"),
                     "--requests", "300", "--concurrency", "8", "--warmup_requests", "50", "--report",
                     str(tmp_path / "report.json")])
    report = json.loads((tmp_path / "report.json").read_text())
    assert code == 0, report["failures"]
    assert report["answered"] == 300 and report["errors"] == 0 and report["label_mismatches"] is None
    assert report["rss_mib"]["start"] > 0, "the server's pid is found from the port it listens on"


def test_soak_fails_and_says_why_on_errors_mismatches_and_rss_growth():
    report = SoakReport(requests=10, concurrency=2, answered=8, errors=2, error_kinds={"boom": 2}, label_mismatches=1,
                        max_confidence_diff=0.5, rss_growth_mib=100.0)
    _judge(report, SoakConfig(input="x", url="127.0.0.1:1", requests=10, warmup_requests=0))
    assert not report.passed
    text = " | ".join(report.failures)
    for needle in ("2 errors, e.g. 'boom'", "1 labels differ", "confidence differs", "RSS grew 100.0 MiB"):
        assert needle in text


def test_soak_config_needs_exactly_one_target_and_sane_counts():
    with pytest.raises(ConfigError, match="either --url .* or --model_repository"):
        SoakConfig(input="x")
    with pytest.raises(ConfigError, match="--requests must be >= 1"):
        SoakConfig(input="x", url="h:1", requests=0)
    with pytest.raises(ConfigError, match="--warmup_requests"):
        SoakConfig(input="x", url="h:1", requests=10, warmup_requests=10)


def test_soak_texts_take_the_text_column_and_name_bad_lines(tmp_path):
    path = tmp_path / "dev.txt"
    path.write_bytes(b"\xef\xbb\xbfhead ache\tlabel_a\r\n\n  \nfever\n")
    assert read_texts_column(path) == ["head ache", "fever"]
    path.write_bytes(b"ok\nbad \xff\n")
    with pytest.raises(DataError, match=r"dev.txt:2: bytes .* at column 5 are not valid UTF-8"):
        read_texts_column(path)


# ---------------------------------------------------------------------------------------------
# Multi-label and hierarchical exports: the answer is the whole label set
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hierarchical", [False, True], ids=["multi_label", "hierarchical"])
def test_soak_compares_whole_label_sets_and_each_returned_probability_with_the_reference(tmp_path, hierarchical):
    from tests import support
    from tritoncls.clients.base import LabelSetPrediction
    from tritoncls.common.offline import OfflineConfig, open_predictor
    from tritoncls.soak import _fill, _Outcomes, _record, _reference

    texts = [line.split("\t")[0] for line in support.tiny_multi_label_lines(40, hierarchical)]
    export = support.write_varied_multi_label_export(tmp_path / "export", texts, hierarchical)
    reference = _reference(str(export), texts)
    served = [LabelSetPrediction(tuple(row)) for row in open_predictor(OfflineConfig(model=str(export))).predict_sets(texts)]
    assert {p.names for p in served} - {()} and () in {p.names for p in served}  # varied, none included

    def judged(predictions):
        outcomes = _Outcomes([None] * len(texts), [()] * len(texts), np.zeros(len(texts)), collections.Counter())
        for index, prediction in enumerate(predictions):
            _record(outcomes, index, prediction)
        report = SoakReport(requests=len(texts), concurrency=1)
        _fill(report, SoakConfig(input="x", url="h:1", requests=len(texts), warmup_requests=0), texts, outcomes,
              reference)
        return report

    same = judged(served)
    assert same.answered == len(texts) and same.label_mismatches == 0 and same.max_confidence_diff < 1e-6
    changed = next(i for i, p in enumerate(served) if p.labels)
    name, prob = served[changed].labels[0]
    off = list(served)
    off[changed] = LabelSetPrediction(served[changed].labels[1:])  # one label missing
    assert judged(off).label_mismatches == 1
    off[changed] = LabelSetPrediction(((name, prob + 0.01), *served[changed].labels[1:]))  # same set, other probability
    assert judged(off).label_mismatches == 0 and judged(off).max_confidence_diff == pytest.approx(0.01, abs=1e-6)


@pytest.mark.triton
def test_soak_of_a_served_multi_label_repository_passes_with_its_label_sets_equal_to_the_reference(tmp_path):
    from tests import support
    from tritoncls.builder import BuildConfig, build_repository

    lines = support.tiny_multi_label_lines(64)
    (tmp_path / "dev.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    export = support.write_varied_multi_label_export(tmp_path / "export", [line.split("\t")[0] for line in lines])
    repo = build_repository(BuildConfig(model=str(export), output=str(tmp_path / "repo")))
    report = soak(SoakConfig(input=str(tmp_path / "dev.txt"), requests=400, concurrency=4, model_repository=str(repo),
                             reference_model=str(export), warmup_requests=100, max_rss_growth_mib=64, max_seconds=300))
    print("\n" + report.summary())
    assert report.answered == 400 and report.errors == 0, report.error_kinds
    assert report.label_mismatches == 0 and report.max_confidence_diff <= 1e-4
    assert report.passed, report.failures
