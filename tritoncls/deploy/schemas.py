"""Structural JSON schemas for the kinds Kubernetes' own OpenAPI does not know.

These are **tritoncls's own schemas, not the CRDs' published ones**: they cover the fields
``tritoncls deploy`` renders (required fields, types, enums, no unknown keys where we render the
whole object) for Prometheus Operator's PodMonitor and PrometheusRule (monitoring.coreos.com/v1),
KServe's ServingRuntime (serving.kserve.io/v1alpha1) and InferenceService (serving.kserve.io/v1beta1),
prometheus-adapter's rule file, a Prometheus rule file and its promtool unit tests, and the parts of a
Grafana dashboard's JSON model that tritoncls renders (Grafana itself cannot run here). promtool, where
found, is the final judge of the rules (:mod:`tritoncls.deploy.validate`). The ``kserve`` 0.21 wheel ships generated Python model classes, not
CRD schemas, so there is nothing of KServe's to validate against offline. The pod parts of a
ServingRuntime (containers, volumes) are validated against Kubernetes' own Container and Volume
schemas by :mod:`tritoncls.deploy.validate`.
"""

from __future__ import annotations

from typing import Any

_STR = {"type": "string", "minLength": 1}
_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {"type": "object", "required": ["name"],
             "properties": {"name": {"type": "string", "pattern": "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"},
                            "namespace": _STR, "labels": _LABELS, "annotations": _LABELS}}


def _object(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
            "properties": {"apiVersion": {"const": api_version}, "kind": {"const": kind},
                           "metadata": _METADATA, "spec": spec}}


POD_MONITOR = _object("monitoring.coreos.com/v1", "PodMonitor", {
    "type": "object", "required": ["selector", "podMetricsEndpoints"], "additionalProperties": False,
    "properties": {
        "selector": {"type": "object", "required": ["matchLabels"],
                     "properties": {"matchLabels": {**_LABELS, "minProperties": 1}}},
        "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["port"], "additionalProperties": False,
            "properties": {"port": _STR, "path": {"type": "string", "pattern": "^/"},
                           "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"}}}}}})

SERVING_RUNTIME = _object("serving.kserve.io/v1alpha1", "ServingRuntime", {
    "type": "object", "required": ["supportedModelFormats", "containers"], "additionalProperties": False,
    "properties": {
        "annotations": _LABELS,
        "supportedModelFormats": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["name"], "additionalProperties": False,
            "properties": {"name": _STR, "version": {"type": "string"}, "autoSelect": {"type": "boolean"},
                           "priority": {"type": "integer", "minimum": 1}}}},
        "protocolVersions": {"type": "array", "items": {"enum": ["v1", "v2", "grpc-v1", "grpc-v2"]}},
        "containers": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["name", "image"]}},
        "volumes": {"type": "array", "items": {"type": "object", "required": ["name"]}}}})

INFERENCE_SERVICE = _object("serving.kserve.io/v1beta1", "InferenceService", {
    "type": "object", "required": ["predictor"], "additionalProperties": False,
    "properties": {"predictor": {
        "type": "object", "required": ["model"], "additionalProperties": False,
        "properties": {
            "minReplicas": {"type": "integer", "minimum": 0}, "maxReplicas": {"type": "integer", "minimum": 1},
            "model": {"type": "object", "required": ["modelFormat", "storageUri"], "additionalProperties": False,
                      "properties": {"modelFormat": {"type": "object", "required": ["name"],
                                                     "properties": {"name": _STR, "version": {"type": "string"}}},
                                     "runtime": _STR,
                                     "storageUri": {"type": "string", "pattern": "^[a-z0-9]+://\\S+$"}}}}}}})

ADAPTER_RULES = {
    "type": "object", "required": ["rules"], "additionalProperties": False,
    "properties": {"rules": {"type": "object", "required": ["custom"], "properties": {"custom": {
        "type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["seriesQuery", "resources", "name", "metricsQuery"],
            "additionalProperties": False,
            "properties": {
                "seriesQuery": _STR, "metricsQuery": _STR,
                "resources": {"type": "object", "required": ["overrides"]},
                "name": {"type": "object", "required": ["as"], "additionalProperties": False,
                         "properties": {"matches": _STR, "as": _STR}}}}}}}}}

_DURATION = {"type": "string", "pattern": "^([0-9]+(ms|s|m|h|d|w|y))+$"}
#: Prometheus label names (label values are any UTF-8)
_PROM_LABELS = {"type": "object", "propertyNames": {"pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"},
                "additionalProperties": {"type": "string"}}
_RULE = {
    "type": "object", "required": ["expr"], "additionalProperties": False,
    "properties": {"record": {"type": "string", "pattern": "^[a-zA-Z_:][a-zA-Z0-9_:]*$"},
                   "alert": {"type": "string", "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"}, "expr": _STR,
                   "for": _DURATION, "labels": _PROM_LABELS, "annotations": _PROM_LABELS},
    "oneOf": [{"required": ["record"], "not": {"anyOf": [{"required": ["alert"]}, {"required": ["for"]},
                                                         {"required": ["annotations"]}]}},
              {"required": ["alert"], "not": {"required": ["record"]}}]}
_RULE_GROUPS = {"type": "array", "minItems": 1, "items": {
    "type": "object", "required": ["name", "rules"], "additionalProperties": False,
    "properties": {"name": _STR, "interval": _DURATION, "rules": {"type": "array", "minItems": 1, "items": _RULE}}}}

PROMETHEUS_RULE = _object("monitoring.coreos.com/v1", "PrometheusRule", {
    "type": "object", "required": ["groups"], "additionalProperties": False, "properties": {"groups": _RULE_GROUPS}})

#: a Prometheus rule file (what `promtool check rules` reads)
PROMETHEUS_RULES = {"type": "object", "required": ["groups"], "additionalProperties": False,
             "properties": {"groups": _RULE_GROUPS}}

#: a promtool unit-test file (what `promtool test rules` reads)
RULE_TESTS = {
    "type": "object", "required": ["rule_files", "tests"], "additionalProperties": False,
    "properties": {
        "rule_files": {"type": "array", "minItems": 1, "items": _STR}, "evaluation_interval": _DURATION,
        "tests": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["input_series", "alert_rule_test"], "additionalProperties": False,
            "properties": {
                "name": _STR, "interval": _DURATION,
                "input_series": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["series", "values"], "additionalProperties": False,
                    "properties": {"series": _STR, "values": _STR}}},
                "alert_rule_test": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["eval_time", "alertname", "exp_alerts"],
                    "additionalProperties": False,
                    "properties": {"eval_time": _DURATION, "alertname": _STR, "exp_alerts": {"type": "array", "items": {
                        "type": "object", "additionalProperties": False,
                        "properties": {"exp_labels": _PROM_LABELS, "exp_annotations": _PROM_LABELS}}}}}},
                "promql_expr_test": {"type": "array", "items": {
                    "type": "object", "required": ["expr", "eval_time", "exp_samples"], "additionalProperties": False,
                    "properties": {"expr": _STR, "eval_time": _DURATION, "exp_samples": {"type": "array", "items": {
                        "type": "object", "required": ["labels", "value"], "additionalProperties": False,
                        "properties": {"labels": _STR, "value": {"type": "number"}}}}}}}}}}}}

_DATASOURCE = {"type": "object", "required": ["type", "uid"], "additionalProperties": False,
               "properties": {"type": {"const": "prometheus"}, "uid": {"const": "${datasource}"}}}
#: the parts of a Grafana dashboard JSON model that tritoncls renders
GRAFANA_DASHBOARD = {
    "type": "object", "required": ["title", "uid", "schemaVersion", "templating", "panels"],
    "properties": {
        "title": _STR, "uid": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,40}$"},
        "schemaVersion": {"type": "integer", "minimum": 36},
        "templating": {"type": "object", "required": ["list"], "properties": {"list": {
            "type": "array", "contains": {"type": "object", "required": ["name", "type", "query"],
                                          "properties": {"name": {"const": "datasource"}, "type": {"const": "datasource"},
                                                         "query": {"const": "prometheus"}}}}}},
        "panels": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["id", "type", "title", "gridPos", "datasource", "targets"],
            "properties": {
                "id": {"type": "integer", "minimum": 1}, "type": {"enum": ["timeseries", "heatmap", "stat"]},
                "title": _STR, "description": {"type": "string"}, "datasource": _DATASOURCE,
                "gridPos": {"type": "object", "required": ["h", "w", "x", "y"], "additionalProperties": False,
                            "properties": {"h": {"type": "integer", "minimum": 1},
                                          "w": {"type": "integer", "minimum": 1, "maximum": 24},
                                          "x": {"type": "integer", "minimum": 0, "maximum": 23},
                                          "y": {"type": "integer", "minimum": 0}}},
                "targets": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["refId", "expr", "datasource"],
                    "properties": {"refId": {"type": "string", "pattern": "^[A-Z]$"}, "expr": _STR,
                                   "datasource": _DATASOURCE, "legendFormat": {"type": "string"},
                                   "format": {"enum": ["time_series", "heatmap", "table"]}}}}}}}}}

#: (apiVersion, kind) -> our schema
CRD_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("monitoring.coreos.com/v1", "PodMonitor"): POD_MONITOR,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PROMETHEUS_RULE,
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): SERVING_RUNTIME,
    ("serving.kserve.io/v1beta1", "InferenceService"): INFERENCE_SERVICE,
}
