"""The Prometheus recording and alerting rules of a deployment, and promtool unit tests of them, built as data
from a :class:`~tritoncls.deploy.specs.MonitoringSpec` and dumped with ``yaml.safe_dump``.

Nothing is string-templated: label names (anything label.txt holds) reach the rule files as YAML values
(recording rules' labels, which Prometheus does not template) and PromQL string literals
(:mod:`.promql`), never as template or expression text. Annotations name the model through
``{{ $labels.model }}`` only.

Recording rules (``tritoncls:...``), per ``model`` (the ensemble's name; every pod of the deployment pooled):

- ``tritoncls:texts:increase1h`` / ``:increase30m``, ``tritoncls:requests:increase30m``: traffic, for the
  alerts' minimum volumes;
- ``tritoncls:label_share:ratio_rate1h{label}``: each label's share of the predicted labels over the last hour;
- ``tritoncls:label_share:reference{label}``: the reference's share, one constant rule per label;
- ``tritoncls:label_drift:tvd1h``: total variation distance between the two (labels missing on one side count
  with share 0 there);
- ``tritoncls:low_confidence:ratio_rate30m``, ``tritoncls:refused:ratio_rate30m``;
- ``tritoncls:request_duration_us:p99_max``: the worst pod's p99 from Triton's latency summary;
- ``tritoncls:queue_time_per_request:us_rate5m``: the autoscaler's metric over the whole deployment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import yaml

from tritoncls.deploy.promql import selector
from tritoncls.deploy.specs import MonitoringSpec
from tritoncls.runtime.metrics import LOW_CONFIDENCE, PREDICTED, REFUSED, TOP_CONFIDENCE

RULES_DIR = "rules"
RULE_FILE = "tritoncls.rules.yml"
TEST_FILE = "tritoncls.rules.test.yml"
TEXTS = f"{TOP_CONFIDENCE}_count"  # one per classified text, whatever the task
REQUEST_DURATION_SUMMARY = "nv_inference_request_summary_us"
QUEUE_DURATION = "nv_inference_queue_duration_us"
REQUEST_SUCCESS = "nv_inference_request_success"

SHARE, REFERENCE_SHARE, DRIFT = "tritoncls:label_share:ratio_rate1h", "tritoncls:label_share:reference", \
    "tritoncls:label_drift:tvd1h"
TEXTS_1H, TEXTS_30M, REQUESTS_30M = "tritoncls:texts:increase1h", "tritoncls:texts:increase30m", \
    "tritoncls:requests:increase30m"
LOW_RATIO, REFUSED_RATIO = "tritoncls:low_confidence:ratio_rate30m", "tritoncls:refused:ratio_rate30m"
LATENCY, QUEUE = "tritoncls:request_duration_us:p99_max", "tritoncls:queue_time_per_request:us_rate5m"


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str

    def rule(self) -> dict[str, Any]:
        return {"alert": self.name, "expr": self.expr, "for": self.for_, "labels": {"severity": self.severity},
                "annotations": {"summary": self.summary, "description": self.description}}

    def annotations_for(self, model: str) -> dict[str, str]:
        """The annotations as Prometheus expands them for ``model`` (what promtool compares)."""
        return {key: text.replace("{{ $labels.model }}", model)
                for key, text in (("summary", self.summary), ("description", self.description))}


class RuleSet:
    """The rules of one :class:`MonitoringSpec`: recording rules, alerts, and the promtool tests."""

    def __init__(self, spec: MonitoringSpec) -> None:
        self.spec = spec
        self.model = {"model": spec.model}

    # -- selectors ------------------------------------------------------------------------------

    def _of(self, metric: str) -> str:
        return selector(metric, self.model)

    def _rate(self, metric: str, window: str, by: str = "model") -> str:
        return f"sum by ({by}) (rate({self._of(metric)}[{window}]))"

    # -- recording rules -------------------------------------------------------------------------

    def recording_rules(self) -> list[dict[str, Any]]:
        spec, rules = self.spec, []
        if spec.metrics:
            rules += [
                _record(TEXTS_1H, f"sum by (model) (increase({self._of(TEXTS)}[1h]))"),
                _record(TEXTS_30M, f"sum by (model) (increase({self._of(TEXTS)}[30m]))"),
                _record(SHARE, f"{self._rate(PREDICTED, '1h', 'model, label')} / on(model) group_left() "
                               f"({self._rate(PREDICTED, '1h')} > 0)"),
                # A counter without a series yet (a recorder that creates it on its first increment) reads 0 here,
                # not "no data"; the served recorder creates every series at zero when the models load.
                _record(LOW_RATIO, f"({self._rate(LOW_CONFIDENCE, '30m')} or 0 * {self._rate(TEXTS, '30m')}) / "
                                   f"({self._rate(TEXTS, '30m')} > 0)"),
                # Requests: those the ensemble answered and those refused for their data. Not its failure counter:
                # Triton 2.51 counts each refused request twice there (reason OTHER; seen on the bundled server).
                _record(REQUESTS_30M, f"sum by (model) (increase({self._of(REQUEST_SUCCESS)}[30m])) + "
                                      f"{self._or_zero(f'sum by (model) (increase({self._of(REFUSED)}[30m]))')}"),
                _record(REFUSED_RATIO, f"{self._or_zero(self._rate(REFUSED, '30m'))} / ("
                                       f"{self._rate(REQUEST_SUCCESS, '30m')} + {self._or_zero(self._rate(REFUSED, '30m'))}"
                                       f" > 0)"),
            ]
        if spec.drift:
            rules += [_record(REFERENCE_SHARE, f"vector({_number(share)})", {"model": spec.model, "label": label})
                      for label, share in spec.drift.shares]
            live, reference = self._of(SHARE), self._of(REFERENCE_SHARE)
            rules.append(_record(DRIFT, (
                f"0.5 * sum by (model) (\n"
                f"  abs({live} - on(model, label) {reference})\n"
                f"  or on(model, label) {live}\n"
                f"  or on(model, label) ({reference} and on(model) {live})\n)")))
        latency = selector(REQUEST_DURATION_SUMMARY, {**self.model, "quantile": spec.latency_quantile})
        queue = selector(QUEUE_DURATION, regex={"model": spec.models})
        rules += [
            _record(LATENCY, f"max by (model) ({latency})"),
            # As the prometheus-adapter rule behind the HPA: the queue time of every model of the repository (the
            # steps queue, the ensemble does not) per request the ensemble completed, over every pod.
            _record(QUEUE, f"sum(rate({queue}[5m])) / (sum(rate({self._of(REQUEST_SUCCESS)}[5m])) > 0)", self.model),
        ]
        return rules

    def _or_zero(self, expr: str) -> str:
        """``expr``, or 0 for the served model where it has no series (a counter not yet created)."""
        return f"({expr} or 0 * {self._rate(REQUEST_SUCCESS, '5m')})"

    # -- alerts -----------------------------------------------------------------------------------

    def alerts(self) -> list[Alert]:
        spec, out = self.spec, []
        model = "{{ $labels.model }}"
        if spec.drift:
            drift = spec.drift
            out.append(Alert(
                "TritonclsLabelDrift",
                f"{self._of(DRIFT)} > {_number(drift.tvd_threshold)} and on(model) {self._of(TEXTS_1H)} >= "
                f"{drift.min_texts}", "15m", "warning",
                f"Predicted labels of {model} drifted from the reference",
                f"Over the last hour the shares of the labels {model} predicts are more than {drift.tvd_threshold:g} "
                f"(total variation distance) from the reference's ({drift.reference_texts} dev texts), with at least "
                f"{drift.min_texts} texts in the hour, for 15 minutes. Compare with `tritoncls monitor --prometheus "
                f"URL --reference REPOSITORY`."))
        if spec.low_confidence:
            low = spec.low_confidence
            out.append(Alert(
                "TritonclsLowConfidence",
                f"{self._of(LOW_RATIO)} > {_number(low.threshold_ratio)} and on(model) {self._of(TEXTS_30M)} >= "
                f"{low.min_texts}", "15m", "warning",
                f"Many low-confidence predictions from {model}",
                f"More than {low.threshold_ratio:.3g} of the texts {model} classified over 30 minutes had a top "
                f"probability below the low-confidence threshold (the reference: {low.expected_ratio:.3g}), with at "
                f"least {low.min_texts} texts, for 15 minutes: the traffic is unlike the training data."))
        if spec.metrics:
            out.append(Alert(
                "TritonclsRefusedInputs",
                f"{self._of(REFUSED_RATIO)} > {_number(spec.refused_ratio)} and on(model) {self._of(REQUESTS_30M)} "
                f">= {spec.refused_min_requests}", "15m", "warning",
                f"{model} refuses many requests for their data",
                f"More than {spec.refused_ratio:.0%} of the requests to {model} over 30 minutes were refused for their "
                f"data (empty, invalid UTF-8, too long, malformed; see tritoncls_refused_requests_total by reason), "
                f"with at least {spec.refused_min_requests} requests, for 15 minutes: a client sends broken requests."))
        out += [
            Alert("TritonclsLatencyP99High", f"{self._of(LATENCY)} > {spec.latency_threshold_us}", "10m", "critical",
                  f"p99 latency of {model} is high",
                  f"The p99 request duration of {model} on its slowest pod (Triton's summary over its sliding window) "
                  f"is above {spec.latency_threshold_us // 1000} ms for 10 minutes."),
            Alert("TritonclsQueueTimeHigh", f"{self._of(QUEUE)} > {spec.queue_threshold_us}", "10m", "critical",
                  f"Requests to {model} wait long in Triton's queues",
                  f"Requests to {model} waited more than {spec.queue_threshold_us // 1000} ms on average in Triton's "
                  f"queues over 5 minutes, for 10 minutes: twice the autoscaler's target; it is at maxReplicas or new "
                  f"pods do not start."),
        ]
        return out

    # -- files ----------------------------------------------------------------------------------

    def groups(self) -> list[dict[str, Any]]:
        return [{"name": f"tritoncls-{self.spec.name}",
                 "rules": self.recording_rules() + [alert.rule() for alert in self.alerts()]}]

    def rule_file(self) -> str:
        return _header(f"Prometheus rules for the tritoncls model {self.spec.model!r}, rendered by tritoncls "
                       f"deploy. Check: promtool check rules {RULE_FILE}; test: promtool test rules "
                       f"{TEST_FILE}.") + dump_yaml({"groups": self.groups()})

    def test_file(self) -> str:
        return _header("promtool unit tests of tritoncls.rules.yml (rendered by tritoncls deploy): each alert fires "
                       "on a synthetic bad series and stays silent on a normal one. Run: promtool test rules "
                       f"{TEST_FILE}") + dump_yaml(UnitTests(self).document())


class UnitTests:
    """Synthetic series for every alert: one test where it fires, one where it stays silent (and the value it
    watches is there, below its threshold, so that silence is not for want of data)."""

    STEP_MIN = 2  # minutes between samples, and between rule evaluations (fewer steps: faster)
    #: how long each alert's series run (its window, its ``for`` and some slack); alerts are evaluated at the end.
    #: promtool evaluates every rule at every step up to there, so shorter is faster.
    SPANS_MIN = {"TritonclsLabelDrift": 80, "TritonclsLowConfidence": 50, "TritonclsRefusedInputs": 50,
                 "TritonclsLatencyP99High": 15, "TritonclsQueueTimeHigh": 20}

    def __init__(self, rules: RuleSet) -> None:
        self.spec = rules.spec
        self.alerts = {alert.name: alert for alert in rules.alerts()}

    def document(self) -> dict[str, Any]:
        tests: list[dict[str, Any]] = []
        if self.spec.drift:
            tests += self._drift_tests()
        if self.spec.low_confidence:
            tests += self._low_confidence_tests()
        if self.spec.metrics:
            tests += self._refused_tests()
        tests += self._latency_tests() + self._queue_tests()
        return {"rule_files": [RULE_FILE], "evaluation_interval": f"{self.STEP_MIN}m", "tests": tests}

    # -- helpers ----------------------------------------------------------------------------------

    def _counter(self, alert: str, metric: str, per_step: float, labels: dict[str, str]) -> dict[str, str]:
        """A counter growing by ``per_step`` every sample for the span of ``alert``'s tests."""
        steps = self.SPANS_MIN[alert] // self.STEP_MIN
        return {"series": selector(metric, labels), "values": f"0+{_number(per_step)}x{steps}"}

    def _gauge(self, alert: str, metric: str, value: float, labels: dict[str, str]) -> dict[str, str]:
        """A series holding ``value`` for the span of ``alert``'s tests."""
        steps = self.SPANS_MIN[alert] // self.STEP_MIN
        return {"series": selector(metric, labels), "values": f"{_number(value)}+0x{steps}"}

    def _per_step(self, minimum: int, window_min: int) -> int:
        """Counts per sample so that a window of ``window_min`` minutes holds twice ``minimum``."""
        return 2 * math.ceil(minimum * self.STEP_MIN / window_min)

    def _of(self, **labels: str) -> dict[str, str]:
        return {"model": self.spec.model, **labels}

    def _test(self, name: str, alert: str, series: list[dict[str, str]], fires: bool,
              checks: list[dict[str, Any]] = ()) -> dict[str, Any]:
        expected = [{"exp_labels": {"severity": self.alerts[alert].severity, "model": self.spec.model},
                     "exp_annotations": self.alerts[alert].annotations_for(self.spec.model)}] if fires else []
        test: dict[str, Any] = {"name": name, "interval": f"{self.STEP_MIN}m", "input_series": series,
                                "alert_rule_test": [{"eval_time": f"{self.SPANS_MIN[alert]}m", "alertname": alert,
                                                     "exp_alerts": expected}]}
        if checks:
            test["promql_expr_test"] = list(checks)
        return test

    def _below(self, alert: str, record: str, threshold: float) -> dict[str, Any]:
        """``record`` exists at the end of ``alert``'s span and is below ``threshold``."""
        return {"expr": f"{selector(record, self._of())} < bool {_number(threshold)}",
                "eval_time": f"{self.SPANS_MIN[alert]}m", "exp_samples": [{"labels": selector("", self._of()), "value": 1}]}

    # -- per alert ----------------------------------------------------------------------------------

    def _drift_tests(self) -> list[dict[str, Any]]:
        drift, alert = self.spec.drift, "TritonclsLabelDrift"
        assert drift is not None
        # Texts per minute: an hour holds twice the alert's minimum. The normal series grow in the reference's
        # proportions exactly, so the live shares are the reference's; the bad one puts every text on the label the
        # reference predicts least.
        per_step = self._per_step(drift.min_texts, 60)
        rarest = min(drift.shares, key=lambda item: item[1])[0]
        normal = [self._counter(alert, PREDICTED, per_step * share, self._of(label=label)) for label, share in drift.shares]
        shifted = [self._counter(alert, PREDICTED, per_step if label == rarest else 0, self._of(label=label))
                   for label, _ in drift.shares]
        texts = self._counter(alert, TEXTS, per_step, self._of())
        constants = [{"expr": selector(REFERENCE_SHARE, self._of(label=label)), "eval_time": "1m",
                      "exp_samples": [{"labels": selector(REFERENCE_SHARE, self._of(label=label)), "value": share}]}
                     for label, share in drift.shares]
        return [
            self._test(f"{alert} fires when every text gets the label the reference predicts least", alert,
                       [*shifted, texts], True),
            self._test(f"{alert} stays silent while the labels come in the reference's proportions (the reference's "
                       f"label values, escaped, join the live ones)", alert, [*normal, texts], False,
                       [*constants, self._below(alert, DRIFT, 1e-6)]),
        ]

    def _low_confidence_tests(self) -> list[dict[str, Any]]:
        low, alert = self.spec.low_confidence, "TritonclsLowConfidence"
        assert low is not None
        per_step = self._per_step(low.min_texts, 30)
        texts = self._counter(alert, TEXTS, per_step, self._of())
        return [
            self._test(f"{alert} fires when every text is below the low-confidence threshold", alert,
                       [texts, self._counter(alert, LOW_CONFIDENCE, per_step, self._of())], True),
            self._test(f"{alert} stays silent at the reference's share", alert,
                       [texts, self._counter(alert, LOW_CONFIDENCE, math.floor(low.expected_ratio * per_step),
                                             self._of())], False, [self._below(alert, LOW_RATIO, low.threshold_ratio)]),
        ]

    def _refused_tests(self) -> list[dict[str, Any]]:
        alert = "TritonclsRefusedInputs"
        per_step = self._per_step(self.spec.refused_min_requests, 30)
        refused = per_step // 2
        failures = self._of(version="1", reason="OTHER")  # Triton 2.51 counts each refused request twice there
        return [
            self._test(f"{alert} fires when half the requests are refused as empty", alert,
                       [self._counter(alert, REQUEST_SUCCESS, per_step - refused, self._of(version="1")),
                        self._counter(alert, "nv_inference_request_failure", 2 * refused, failures),
                        self._counter(alert, REFUSED, refused, self._of(reason="empty"))], True),
            self._test(f"{alert} stays silent when no request is refused", alert,
                       [self._counter(alert, REQUEST_SUCCESS, per_step, self._of(version="1")),
                        self._counter(alert, "nv_inference_request_failure", 0, failures),
                        self._counter(alert, REFUSED, 0, self._of(reason="empty"))], False,
                       [self._below(alert, REFUSED_RATIO, self.spec.refused_ratio)]),
        ]

    def _latency_tests(self) -> list[dict[str, Any]]:
        alert, threshold = "TritonclsLatencyP99High", self.spec.latency_threshold_us
        quantile = self._of(version="1", quantile=self.spec.latency_quantile)
        fast = self._gauge(alert, REQUEST_DURATION_SUMMARY, threshold // 10, {**quantile, "pod": "a"})
        slow = self._gauge(alert, REQUEST_DURATION_SUMMARY, 2 * threshold, {**quantile, "pod": "b"})
        return [
            self._test(f"{alert} fires when one pod's p99 is twice the threshold", alert, [fast, slow], True),
            self._test(f"{alert} stays silent at a tenth of the threshold", alert, [fast], False,
                       [self._below(alert, LATENCY, threshold)]),
        ]

    def _queue_tests(self) -> list[dict[str, Any]]:
        alert, threshold, per_step = "TritonclsQueueTimeHigh", self.spec.queue_threshold_us, 60 * self.STEP_MIN
        steps = [m for m in self.spec.models if m != self.spec.model] or [self.spec.model]

        def series(queue_us_per_request: int) -> list[dict[str, str]]:
            queue_us = queue_us_per_request * per_step // len(steps)
            return [self._counter(alert, REQUEST_SUCCESS, per_step, self._of(version="1")),
                    *(self._counter(alert, QUEUE_DURATION, queue_us, {"model": step, "version": "1"}) for step in steps)]

        return [
            self._test(f"{alert} fires when requests wait twice the threshold in the steps' queues", alert,
                       series(2 * threshold), True),
            self._test(f"{alert} stays silent at a tenth of the threshold", alert, series(threshold // 10), False,
                       [self._below(alert, QUEUE, threshold)]),
        ]


def _record(name: str, expr: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"record": name, "expr": expr}
    if labels:
        rule["labels"] = dict(labels)
    return rule


def _number(value: float) -> str:
    """A number as PromQL reads it back exactly (Python's shortest round-trip form)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _header(text: str) -> str:
    return f"# {text}\n"


class _Dumper(yaml.SafeDumper):
    """SafeDumper without anchors and aliases (a series shared by two tests is written twice), and with
    multi-line strings (PromQL expressions) as literal blocks where YAML allows one; the emitter falls back to a
    quoted, escaped scalar for any string a block cannot hold."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)


def dump_yaml(document: Any) -> str:
    """YAML for rule files: keys in the order built, Unicode kept, long lines unfolded; strings quoted and
    escaped by the YAML emitter, whatever they hold."""
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1_000_000,
                     default_flow_style=False)


def prometheus_rule(spec: MonitoringSpec, labels: dict[str, str]) -> dict[str, Any]:
    """The same groups as a Prometheus Operator PrometheusRule (monitoring.coreos.com/v1)."""
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": {"name": spec.name, "labels": dict(labels)}, "spec": {"groups": RuleSet(spec).groups()}}
