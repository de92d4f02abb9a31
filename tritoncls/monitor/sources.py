"""Where ``tritoncls monitor`` reads the counters: a server's metrics port, or a Prometheus server's query API.

Both give :class:`~tritoncls.monitor.counts.Series`, so one function turns either into counts. Only the
standard library talks HTTP.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from tritoncls.monitor.config import MonitorError
from tritoncls.monitor.counts import (
    PREFIX,
    REBUILD_FIX,
    Series,
    choose_model,
    parse_exposition,
    served_models,
)
from tritoncls.runtime.metrics import (
    LABEL_LABEL,
    LABELS_PER_TEXT,
    LOW_CONFIDENCE,
    MODEL_LABEL,
    PREDICTED,
    REASON_LABEL,
    REFUSED,
    TEXT_TOKENS,
    TOP_CONFIDENCE,
    TRUNCATED,
)

SERVE_FIX = ("Start the server (`tritoncls serve --model_repository REPO` opens Triton's metrics port, 8002) or pass "
             "its address as --metrics_url http://HOST:PORT/metrics.")
PROMETHEUS_FIX = "Pass the Prometheus server's base URL as --prometheus (e.g. http://prometheus:9090)."
SUCCESS = "nv_inference_request_success"  # Triton's own per-model counter of answered requests


@dataclass(frozen=True)
class Scrape:
    """The chosen model and every ``tritoncls_`` series read."""

    model: str
    series: list[Series]


def http_get(url: str, timeout_s: float, fix: str) -> bytes:
    """The body of a GET; every way it can fail becomes one message naming ``url`` and ``fix``."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - the user's URL
            return response.read()
    except urllib.error.HTTPError as exc:
        detail = _error_detail(exc.read())
        raise MonitorError(f"{url}: HTTP {exc.code} {exc.reason}{detail}. {fix}") from None
    except urllib.error.URLError as exc:
        reason = "connection refused" if isinstance(exc.reason, ConnectionRefusedError) else str(exc.reason)
        raise MonitorError(f"{url}: cannot connect ({reason}). {fix}") from None
    except ValueError as exc:  # no scheme, a bad port
        raise MonitorError(f"{url}: not an http:// URL ({exc}). {fix}") from None
    except OSError as exc:  # a timeout, a reset
        raise MonitorError(f"{url}: no answer within {timeout_s:g} s ({exc}). {fix}") from None


def _error_detail(body: bytes) -> str:
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return ""
    return f" ({error})" if error else ""


# --- a metrics port -------------------------------------------------------------------------------------


def scrape_metrics_port(url: str, name: str | None, timeout_s: float) -> Scrape:
    """The ``tritoncls_`` series of the server at ``url`` and the model to compare.

    A repository that records metrics creates every series, at zero, when its models load; a port without any
    serves a repository that records none (built with ``--no_metrics``, or before metrics), or is no Triton's.
    """
    try:
        text = http_get(url, timeout_s, SERVE_FIX).decode("utf-8")
    except UnicodeDecodeError:
        raise MonitorError(f"{url}: the answer is not UTF-8 text. {SERVE_FIX}") from None
    series = parse_exposition(text, url)
    if series:
        return Scrape(choose_model(served_models(series), name, url), series)
    answered = _answered(text, name)
    if answered is None:
        raise MonitorError(f"{url}: neither tritoncls_ nor Triton's {SUCCESS} series: not the metrics port of a "
                           f"Triton server with a model loaded. {SERVE_FIX}")
    which = f"model {name!r}" if name else "the server"
    raise MonitorError(f"{url}: {which} has answered {answered:g} requests and exports no tritoncls_ series. "
                       f"{REBUILD_FIX}")


def _answered(text: str, name: str | None) -> float | None:
    """Requests Triton answered (for model ``name``, or all), None when its counter is not in ``text``."""
    from prometheus_client.parser import text_string_to_metric_families

    found = [s for family in text_string_to_metric_families(text) for s in family.samples
             if s.name.removesuffix("_total") == SUCCESS]
    if not found:
        return None
    return float(sum(s.value for s in found if name in (None, s.labels.get(MODEL_LABEL))))


# --- Prometheus -----------------------------------------------------------------------------------------

#: series name -> the label its query sums by (None: one total), for the counts over a window
_QUERIES: dict[str, str | None] = {
    PREDICTED: LABEL_LABEL,
    f"{TOP_CONFIDENCE}_bucket": "le",
    f"{TEXT_TOKENS}_bucket": "le",
    f"{LABELS_PER_TEXT}_bucket": "le",
    LOW_CONFIDENCE: None,
    TRUNCATED: None,
    REFUSED: REASON_LABEL,
}


def query_prometheus(base_url: str, window: str, name: str | None, timeout_s: float) -> Scrape:
    """The ``tritoncls_`` counts of the last ``window`` from Prometheus, summed over every scraped server
    (instance, pod) of the model: ``sum by (le) (increase(NAME{model="M"}[window]))`` and the like."""
    present = _instant(base_url, f'count by ({MODEL_LABEL}) (last_over_time({{__name__=~"{PREFIX}.+"}}[{window}]))',
                       timeout_s)
    models = sorted({labels.get(MODEL_LABEL, "") for labels, _ in present} - {""})
    if not models:
        raise MonitorError(f"{base_url}: Prometheus holds no tritoncls_ series of the last {window}: it does not "
                           f"scrape the server's metrics port (8002), or no text was classified. {REBUILD_FIX}")
    model = choose_model(models, name, base_url)
    selector = f'{{{MODEL_LABEL}="{_promql_string(model)}"}}'
    series = []
    for metric, by in _QUERIES.items():
        grouping = f" by ({by})" if by else ""
        for labels, value in _instant(base_url, f"sum{grouping} (increase({metric}{selector}[{window}]))", timeout_s):
            series.append(Series(metric, {**labels, MODEL_LABEL: model}, value))
    return Scrape(model, series)


def _promql_string(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _instant(base_url: str, query: str, timeout_s: float) -> list[tuple[dict[str, str], float]]:
    """An instant query's vector as (labels, value) pairs; NaN (no samples in range) counts as 0."""
    url = f"{base_url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    body = http_get(url, timeout_s, PROMETHEUS_FIX)
    try:
        answer = json.loads(body)
        if answer.get("status") != "success":
            raise MonitorError(f"{base_url}: Prometheus refused the query {query!r}: {answer.get('error')}. "
                               f"{PROMETHEUS_FIX}")
        result = answer["data"]["result"]
        pairs = [(dict(item.get("metric", {})), float(item["value"][1])) for item in result]
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise MonitorError(f"{base_url}: not a Prometheus query API answer ({type(exc).__name__}: {exc}) for "
                           f"{query!r}. {PROMETHEUS_FIX}") from None
    return [(labels, 0.0 if math.isnan(value) else value) for labels, value in pairs]
