"""The served metrics through a real Prometheus: Debian's ``prometheus`` on loopback (a temporary config and
data folder) scraping ``tritoncls serve`` while ``tritoncls classify`` runs over KUAKE-QIC dev.

- the per-label counts Prometheus reports equal the label counts in classify's output, exactly;
- the confidence histogram counts every text served;
- the HPA's prometheus-adapter query (rendered by ``deploy --target k8s``) returns a number during the load;
- hostile label names come through the scrape intact, and no request text ever reaches ``/metrics``.
"""

from __future__ import annotations

import collections
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.support import HOSTILE_LABELS, POD_LABELS, Prometheus, wait_for_flushed, write_tiny_export
from tritoncls.builder import BuildConfig, build_repository
from tritoncls.runtime import metrics as m
from tritoncls.server.triton import TritonServer

pytestmark = pytest.mark.triton

def _adapter_query(repo: Path, root: Path) -> str:
    """The HPA metric's PromQL as `deploy --target k8s` renders it, filled in as prometheus-adapter would."""
    from tritoncls.deploy import DeployConfig, deploy

    deploy(DeployConfig(model_repository=str(repo), output=str(root / "k8s"), target="k8s"))
    rules = yaml.safe_load((root / "k8s" / "prometheus-adapter-rules.yaml").read_text(encoding="utf-8"))
    query = rules["rules"]["custom"][0]["metricsQuery"]
    matchers = ",".join(f'{k}="{v}"' for k, v in POD_LABELS.items())
    return query.replace("<<.LabelMatchers>>", matchers).replace("<<.GroupBy>>", "pod")


def test_prometheus_counts_exactly_what_classify_wrote_and_the_hpa_query_has_a_value(kuake_observed, kuake_dir,
                                                                                       tmp_path):
    repo, served, prometheus = kuake_observed
    texts = [line.split("\t")[0] for line in (kuake_dir / "dev.txt").read_text(encoding="utf-8").splitlines() if line]
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    adapter = _adapter_query(repo, tmp_path)
    seen: list[float] = []

    errors: list[str] = []

    def poll(stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                seen.extend(float(item["value"][1]) for item in prometheus.query(adapter))
            except Exception as exc:  # noqa: BLE001 - a query that failed on a loaded machine: the next one counts
                errors.append(repr(exc))
            time.sleep(0.5)

    stop = threading.Event()
    poller = threading.Thread(target=poll, args=(stop,), daemon=True)
    poller.start()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tritoncls.cli", "classify", "--url", f"127.0.0.1:{served.grpc}",
             "--input", str(tmp_path / "texts.txt"), "--output", str(tmp_path / "out.tsv"), "--batch_size", "4",
             "--concurrency", "4"], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        wait_for_flushed(f"http://127.0.0.1:{served.metrics}/metrics", len(texts))
        prometheus.wait_for_scrape()
        prometheus.wait_for_scrape()  # the adapter's rate() needs the samples after the load too
    finally:
        stop.set()
        poller.join(timeout=15)
    seen.extend(float(item["value"][1]) for item in prometheus.query(adapter))  # its 1 m window holds the load
    rows = (tmp_path / "out.tsv").read_text(encoding="utf-8").splitlines()[1:]
    written = collections.Counter(row.split("\t")[1] for row in rows)
    assert sum(written.values()) == len(texts) == 1955
    counted = prometheus.values(f'sum by (label) ({m.PREDICTED}{{model="seqcls"}})', "label")
    assert {label: int(v) for label, v in counted.items() if v} == dict(written)
    assert set(counted) == set((repo / "seqcls_postprocess" / "1" / "label.txt").read_text(encoding="utf-8").split())
    total = prometheus.values(f'sum({m.TOP_CONFIDENCE}_count{{model="seqcls"}})', "")
    assert total == {"": float(len(texts))}
    tokens = prometheus.values(f'sum({m.TEXT_TOKENS}_count{{model="seqcls"}})', "")
    assert tokens == {"": float(len(texts))}
    assert seen and all(value >= 0 for value in seen), f"the HPA query {adapter!r} returned no number ({errors[:3]})"
    p99 = prometheus.values('nv_inference_request_summary_us{model="seqcls",quantile="0.99"}', "model")
    assert p99.get("seqcls", 0) > 0, "tritoncls serve exports no latency summaries (--metrics-config)"
    print(f"\nper-label counts equal over {len(texts)} texts; HPA queue metric samples: {len(seen)}, "
          f"max {max(seen):.0f} us")


@pytest.mark.parametrize("layout", ["ensemble", "fused"])
def test_hostile_label_names_survive_the_scrape_and_no_text_reaches_the_metrics(layout, tmp_path):
    export = write_tiny_export(tmp_path / "export", labels=HOSTILE_LABELS)
    repo = build_repository(BuildConfig(model=str(export), output=str(tmp_path / "repo"), layout=layout))
    secret = "SECRET-request-text-7f3a 私密文本"
    with TritonServer(repo, log_file=tmp_path / "tritonserver.log") as server:
        from tritoncls.clients import make_client

        with make_client(server.grpc_url, "grpc") as client:
            client.classify([secret, "good movie", f"{secret} again"])
            with pytest.raises(Exception, match="empty"):
                client.classify([""])
        wait_for_flushed(server.metrics_url, 3)
        with urllib.request.urlopen(server.metrics_url, timeout=10) as response:
            exposition = response.read().decode("utf-8")
        with Prometheus(tmp_path / "prometheus", [f"127.0.0.1:{server.metrics_port}"]) as prometheus:
            prometheus.wait_for_scrape()
            counted = prometheus.values(f'{m.PREDICTED}{{model="seqcls"}}', "label")
            refused = prometheus.values(f'{m.REFUSED}{{model="seqcls"}}', "reason")
    assert set(counted) == set(HOSTILE_LABELS), sorted(set(counted) ^ set(HOSTILE_LABELS))
    assert sum(counted.values()) == 3
    assert refused["empty"] == 1 and sum(refused.values()) == 1
    assert "SECRET" not in exposition and "私密" not in exposition
    assert all(name in exposition for name in m.counter_names(multi_label=False))


def _scraped(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    from tritoncls.monitor.counts import series_name

    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode("utf-8")
    return {(series_name(s.name), tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples if s.name.startswith("tritoncls_")}


def test_a_label_set_repository_counts_every_label_of_every_set_and_the_set_sizes(varied_label_sets, tmp_path):
    export, data = varied_label_sets
    repo = build_repository(BuildConfig(model=str(export), output=str(tmp_path / "repo")))
    texts = list(data.texts)
    with TritonServer(repo, log_file=tmp_path / "tritonserver.log") as server:
        from tritoncls.clients import make_client

        with make_client(server.grpc_url, "grpc") as client:
            predictions = client.classify(texts)
        wait_for_flushed(server.metrics_url, len(texts))
        series = _scraped(server.metrics_url)
    sizes = [len(p.labels) for p in predictions]
    assert sum(sizes) > 0 and len(set(sizes)) > 1, f"the tiny model gives no varied label sets: {sizes}"
    per_label = collections.Counter(label for p in predictions for label, _ in p.labels)
    model = (("model", "seqcls"),)
    assert series[(f"{m.LABELS_PER_TEXT}_count", model)] == len(texts)
    assert series[(f"{m.LABELS_PER_TEXT}_sum", model)] == sum(sizes)
    assert series[(f"{m.LABELS_PER_TEXT}_bucket", (("le", "0"), *model))] == sizes.count(0)
    counted = {dict(labels)["label"]: v for (name, labels), v in series.items() if name == m.PREDICTED}
    assert {k: v for k, v in counted.items() if v} == dict(per_label)
    assert series[(f"{m.TOP_CONFIDENCE}_count", model)] == len(texts)
