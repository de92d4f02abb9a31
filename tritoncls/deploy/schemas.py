"""Structural JSON schemas for the kinds Kubernetes' own OpenAPI does not know.

These are **tritoncls's own schemas, not the CRDs' published ones**: they cover the fields
``tritoncls deploy`` renders (required fields, types, enums, no unknown keys where we render the
whole object) for Prometheus Operator's PodMonitor (monitoring.coreos.com/v1), KServe's
ServingRuntime (serving.kserve.io/v1alpha1) and InferenceService (serving.kserve.io/v1beta1), and
prometheus-adapter's rule file. The ``kserve`` 0.21 wheel ships generated Python model classes, not
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

#: (apiVersion, kind) -> our schema
CRD_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("monitoring.coreos.com/v1", "PodMonitor"): POD_MONITOR,
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): SERVING_RUNTIME,
    ("serving.kserve.io/v1beta1", "InferenceService"): INFERENCE_SERVICE,
}
