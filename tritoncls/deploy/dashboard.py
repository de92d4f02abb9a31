"""The Grafana dashboard of a deployment (JSON model, schemaVersion 39), built as data from a
:class:`~tritoncls.deploy.specs.MonitoringSpec` and dumped with ``json.dumps``.

Panels: traffic per predicted label, label shares against the reference and the drift distance, the
low-confidence share, the top-probability and token-length distributions (heatmaps of the histograms'
buckets), truncated and refused texts, latency (Triton's p50/p99 summaries and the mean from its counters),
queue time per request, requests per second, and labels per text for multi-label tasks. The Prometheus data
source is a dashboard variable (``datasource``), so the JSON imports into any Grafana. Model names reach the
queries only through :func:`tritoncls.deploy.promql.selector`; label names never do (queries group by label).
"""

from __future__ import annotations

import json
from typing import Any

from tritoncls.deploy import rules as r
from tritoncls.deploy.promql import selector
from tritoncls.deploy.specs import MonitoringSpec
from tritoncls.runtime.metrics import LABELS_PER_TEXT, PREDICTED, REFUSED, TEXT_TOKENS, TOP_CONFIDENCE, TRUNCATED

DASHBOARD_FILE = "grafana-dashboard.json"
SCHEMA_VERSION = 39  # Grafana 10.x/11.x dashboards
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
WIDTH, HEIGHT = 12, 8  # two panels per row of Grafana's 24 columns
RATE = "$__rate_interval"


def dashboard(spec: MonitoringSpec) -> dict[str, Any]:
    """The dashboard's JSON model."""
    panels = _Panels(spec).all()
    for index, panel in enumerate(panels):
        panel["id"] = index + 1
        panel["gridPos"] = {"h": HEIGHT, "w": WIDTH, "x": (index % 2) * WIDTH, "y": (index // 2) * HEIGHT}
    return {
        "title": f"tritoncls: {spec.model}", "uid": f"tritoncls-{spec.name}"[:40], "tags": ["tritoncls", "triton"],
        "description": f"The served classifier {spec.model!r}: traffic per label, drift, confidence, input lengths, "
                       f"refusals, latency and queues (rendered by tritoncls deploy).",
        "editable": True, "schemaVersion": SCHEMA_VERSION, "version": 1, "refresh": "1m", "timezone": "browser",
        "time": {"from": "now-6h", "to": "now"}, "annotations": {"list": []}, "links": [],
        "templating": {"list": [{"name": "datasource", "label": "Prometheus", "type": "datasource",
                                 "query": "prometheus", "current": {}, "hide": 0, "refresh": 1}]},
        "panels": panels,
    }


def dashboard_json(spec: MonitoringSpec) -> str:
    return json.dumps(dashboard(spec), indent=2, ensure_ascii=False) + "\n"


class _Panels:
    def __init__(self, spec: MonitoringSpec) -> None:
        self.spec = spec
        self.model = {"model": spec.model}

    def _of(self, metric: str, **matchers: str) -> str:
        return selector(metric, {**self.model, **matchers})

    def all(self) -> list[dict[str, Any]]:
        spec = self.spec
        panels: list[dict[str, Any]] = []
        if spec.metrics:
            panels += [self.traffic(), self.shares()]
            if spec.drift:
                panels.append(self.drift())
            panels += [self.low_confidence(), self.confidence(), self.tokens(), self.truncated_and_refused(),
                       self.refused_share()]
            if spec.multi_label is not False:
                panels.append(self.labels_per_text())
        return panels + [self.latency(), self.queue(), self.requests()]

    def traffic(self) -> dict[str, Any]:
        return _timeseries("Texts per second by predicted label",
                           "tritoncls_predicted_total: each label's predictions per second (multi-label: each label "
                           "of each set).",
                           [_target(f"sum by (label) (rate({self._of(PREDICTED)}[{RATE}]))", "{{label}}")], "ops")

    def shares(self) -> dict[str, Any]:
        targets = [_target(f"sum by (label) ({self._of(r.SHARE)})", "{{label}}")]
        text = "Each label's share of the predictions over the last hour"
        if self.spec.drift:
            targets.append(_target(f"sum by (label) ({self._of(r.REFERENCE_SHARE)})", "{{label}} (reference)", "B"))
            text += ", and its share on the reference data (legend '(reference)')"
        return _timeseries("Label shares, last hour", text + ".", targets, "percentunit")

    def drift(self) -> dict[str, Any]:
        drift = self.spec.drift
        assert drift is not None
        return _timeseries("Label drift (total variation distance from the reference)",
                           f"Half the sum of |live share - reference share| over the labels, last hour. The alert "
                           f"TritonclsLabelDrift fires above {drift.tvd_threshold:g} for 15 minutes.",
                           [_target(self._of(r.DRIFT), "distance")], "short", drift.tvd_threshold)

    def low_confidence(self) -> dict[str, Any]:
        low = self.spec.low_confidence
        text = "Share of texts whose top probability is below the low-confidence threshold, over 30 minutes."
        if low:
            text += f" The reference's share: {low.expected_ratio:.3g}; TritonclsLowConfidence fires above " \
                    f"{low.threshold_ratio:.3g}."
        return _timeseries("Low-confidence share", text, [_target(self._of(r.LOW_RATIO), "low confidence")],
                           "percentunit", low.threshold_ratio if low else None)

    def confidence(self) -> dict[str, Any]:
        return _heatmap("Top probability per text", f"{TOP_CONFIDENCE}: texts per bin of their most probable "
                        f"label's probability.", f"sum by (le) (increase({self._of(TOP_CONFIDENCE + '_bucket')}[{RATE}]))")

    def tokens(self) -> dict[str, Any]:
        return _heatmap("Tokens per text", f"{TEXT_TOKENS}: texts per bin of their token count, [CLS] and [SEP] "
                        f"included, after truncation.", f"sum by (le) (increase({self._of(TEXT_TOKENS + '_bucket')}[{RATE}]))")

    def truncated_and_refused(self) -> dict[str, Any]:
        return _timeseries("Truncated texts and refused requests per second",
                           "Texts cut at max_seq_length, and requests refused for their data, by reason.",
                           [_target(f"sum(rate({self._of(TRUNCATED)}[{RATE}]))", "truncated texts"),
                            _target(f"sum by (reason) (rate({self._of(REFUSED)}[{RATE}]))", "refused: {{reason}}", "B")],
                           "ops")

    def refused_share(self) -> dict[str, Any]:
        return _timeseries("Refused share of requests",
                           f"Requests refused for their data over all requests, 30 minutes. TritonclsRefusedInputs "
                           f"fires above {self.spec.refused_ratio:.0%}.",
                           [_target(self._of(r.REFUSED_RATIO), "refused")], "percentunit", self.spec.refused_ratio)

    def labels_per_text(self) -> dict[str, Any]:
        return _heatmap("Labels per text (multi-label and hierarchical tasks)",
                        f"{LABELS_PER_TEXT}: texts per number of labels predicted; empty for multi-class models.",
                        f"sum by (le) (increase({self._of(LABELS_PER_TEXT + '_bucket')}[{RATE}]))")

    def latency(self) -> dict[str, Any]:
        quantiles = [_target(f"max({self._of(r.REQUEST_DURATION_SUMMARY, quantile=q)})", f"p{label} (slowest pod)",
                             ref) for q, label, ref in (("0.5", "50", "A"), (self.spec.latency_quantile, "99", "B"))]
        mean = _target(f"sum(rate({self._of('nv_inference_request_duration_us')}[{RATE}])) / "
                       f"sum(rate({self._of(r.REQUEST_SUCCESS)}[{RATE}]))", "mean", "C")
        return _timeseries("Request duration of the ensemble",
                           f"Triton's latency summary (--metrics-config summary_latencies=true; quantiles over its "
                           f"sliding window, per pod) and the mean from its counters. TritonclsLatencyP99High fires "
                           f"above {self.spec.latency_threshold_us // 1000} ms.",
                           [*quantiles, mean], "µs", self.spec.latency_threshold_us)

    def queue(self) -> dict[str, Any]:
        return _timeseries("Queue time per request",
                           f"Microseconds each request waited in the steps' queues (the autoscaler's metric, over "
                           f"the deployment, 5 minutes). TritonclsQueueTimeHigh fires above "
                           f"{self.spec.queue_threshold_us // 1000} ms.",
                           [_target(self._of(r.QUEUE), "queue time per request")], "µs", self.spec.queue_threshold_us)

    def requests(self) -> dict[str, Any]:
        return _timeseries("Requests per second", "Requests the ensemble answered, and those that failed, by reason.",
                           [_target(f"sum(rate({self._of(r.REQUEST_SUCCESS)}[{RATE}]))", "success"),
                            _target(f"sum by (reason) (rate({self._of('nv_inference_request_failure')}[{RATE}]))",
                                    "failure: {{reason}}", "B")], "reqps")


def _target(expr: str, legend: str, ref: str = "A") -> dict[str, Any]:
    return {"refId": ref, "datasource": dict(DATASOURCE), "expr": expr, "legendFormat": legend, "range": True}


def _timeseries(title: str, description: str, targets: list[dict[str, Any]], unit: str,
                threshold: float | None = None) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    custom: dict[str, Any] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "spanNulls": False}
    if threshold is not None:
        steps.append({"color": "red", "value": threshold})
        custom["thresholdsStyle"] = {"mode": "line"}
    return {"type": "timeseries", "title": title, "description": description, "datasource": dict(DATASOURCE),
            "targets": targets,
            "fieldConfig": {"defaults": {"unit": unit, "custom": custom,
                                         "thresholds": {"mode": "absolute", "steps": steps}}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"}}}


def _heatmap(title: str, description: str, expr: str) -> dict[str, Any]:
    target = {**_target(expr, "{{le}}"), "format": "heatmap"}
    return {"type": "heatmap", "title": title, "description": description, "datasource": dict(DATASOURCE),
            "targets": [target], "fieldConfig": {"defaults": {}, "overrides": []},
            "options": {"calculate": False, "yAxis": {"axisPlacement": "left"}, "cellGap": 1,
                        "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64},
                        "tooltip": {"show": True, "yHistogram": True}, "legend": {"show": True}}}
