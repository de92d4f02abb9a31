"""Decisions for the Prometheus rules and the Grafana dashboard of ``deploy --target k8s``: which rules a
repository gets and their thresholds. The rules themselves are written by :mod:`.rules`, the dashboard by
:mod:`.dashboard`.

Thresholds, and why (the rules' descriptions, the rendered README and docs/deploy.md say the same):

- **Label drift** (reference needed): the total variation distance (TVD) between the predicted labels' shares
  over the last hour and the reference's (the export's dev data) above ``DRIFT_TVD`` (0.2: a fifth of the
  traffic would have to change label to look like the reference) for 15 minutes, once the hour holds
  ``max(500, 50 x labels)`` texts. Sampling noise alone gives a TVD of about
  ``0.5 * sqrt(2/pi) * sum_i sqrt(p_i (1 - p_i) (1/n + 1/m))`` (``n`` live, ``m`` reference texts): about
  0.06 at that minimum with a large reference. When three times that noise is above 0.2 (a small reference),
  the threshold is raised to it, and capped at 0.45 (still below what a shift to one label reaches).
- **Low confidence** (reference needed): the share of texts whose top probability is below the served
  threshold, over 30 minutes, above ``max(0.05, min(2 r, (1 + r) / 2))`` for 15 minutes once the window
  holds 200 texts, where ``r`` is the reference's share (0.05 by construction: the threshold is the dev
  data's 5th percentile). Twice the expected share is 3 standard deviations above it at 200 texts for
  ``r`` = 0.05. Where the repository was built with another threshold (``build-repo --low_confidence``),
  ``r`` is read off the reference's confidence histogram (linear within a bin), an estimate.
- **p99 latency**: the worst pod's p99 of the ensemble's request duration (Triton's summary
  ``nv_inference_request_summary_us{quantile="0.99"}``, enabled by ``--metrics-config
  summary_latencies=true``) above 500 ms for 10 minutes: ten times the autoscaler's 50 ms queue target, so
  the server is slow beyond what queueing explains. A placeholder for your SLO: edit the rule file.
- **Queue time per request**: the autoscaler's metric over the whole deployment (5 minutes) above twice the
  HPA's target (100 ms) for 10 minutes: the autoscaler did not catch up (at maxReplicas, or pods pending).
- **Refused inputs**: requests refused for their data (empty, invalid UTF-8, too long, malformed) above 5 % of
  the ensemble's requests over 30 minutes for 15 minutes, once the window holds 100 requests: some client
  sends broken requests, not the model failing.
"""

from __future__ import annotations

import logging
import math

from tritoncls.deploy.repository import RepositoryInfo
from tritoncls.deploy.specs import Drift, LowConfidence, MonitoringSpec
from tritoncls.runtime.metrics import REPOSITORY_REFERENCE_FILE, Reference

log = logging.getLogger(__name__)

LATENCY_QUANTILE = "0.99"  # one of the summary's default quantiles (0.5, 0.9, 0.95, 0.99, 0.999)
LATENCY_THRESHOLD_US = 500_000
QUEUE_ALERT_FACTOR = 2  # times the HPA's queue-time target
DRIFT_TVD = 0.2
DRIFT_TVD_CAP = 0.45
DRIFT_NOISE_FACTOR = 3.0
DRIFT_MIN_TEXTS = 500  # as `tritoncls monitor`'s default --min_texts
DRIFT_TEXTS_PER_LABEL = 50
LOW_CONFIDENCE_FACTOR = 2.0
LOW_CONFIDENCE_FLOOR = 0.05
LOW_CONFIDENCE_MIN_TEXTS = 200
REFUSED_RATIO = 0.05
REFUSED_MIN_REQUESTS = 100


def monitoring_spec(repo: RepositoryInfo, name: str, queue_target_us: int) -> MonitoringSpec:
    """The rules and thresholds for ``repo`` served as ``name``; says in the log what is left out and why."""
    metrics = repo.metrics_enabled is not False
    reference = repo.reference if metrics else None
    drift = _drift(reference) if reference else None
    low = _low_confidence(reference, repo.low_confidence_threshold) if reference else None
    queue_us = QUEUE_ALERT_FACTOR * queue_target_us
    reasons = []
    if drift:
        noise = _tvd_noise(drift.shares, drift.min_texts, drift.reference_texts)
        raised = (f", raised from {DRIFT_TVD:g}: the reference's {drift.reference_texts} texts are few for "
                  f"{len(drift.shares)} labels" if drift.tvd_threshold > DRIFT_TVD else "")
        reasons.append(f"TritonclsLabelDrift: the total variation distance between the last hour's label shares and "
                       f"the reference's above {drift.tvd_threshold:g} for 15m, once the hour holds {drift.min_texts} "
                       f"texts (chance alone gives about {noise:.2f} there{raised})")
    if low:
        reasons.append(f"TritonclsLowConfidence: more than {low.threshold_ratio:.3g} of the texts of 30m below the "
                       f"low-confidence threshold for 15m, with at least {low.min_texts} texts (the reference's share: "
                       f"{low.expected_ratio:.3g})")
    if metrics:
        reasons.append(f"TritonclsRefusedInputs: more than {REFUSED_RATIO:.0%} of the requests of 30m refused for their "
                       f"data for 15m, with at least {REFUSED_MIN_REQUESTS} requests (a client sends broken requests)")
    reasons += [
        f"TritonclsLatencyP99High: the slowest pod's p99 request duration of {repo.ensemble} above "
        f"{LATENCY_THRESHOLD_US // 1000} ms for 10m (ten times the autoscaler's {queue_target_us // 1000} ms queue "
        f"target; put your SLO there)",
        f"TritonclsQueueTimeHigh: queue time per request over 5m above {queue_us // 1000} ms for 10m (twice the "
        f"autoscaler's target: it has not caught up)",
    ]
    for line in monitoring_notes(repo):
        log.warning("%s", line)
    return MonitoringSpec(
        name=name, model=repo.ensemble, models=repo.model_names or (repo.ensemble,), metrics=metrics,
        multi_label=(reference.task != "multi_class") if reference else None, drift=drift, low_confidence=low,
        refused_ratio=REFUSED_RATIO, refused_min_requests=REFUSED_MIN_REQUESTS, latency_quantile=LATENCY_QUANTILE,
        latency_threshold_us=LATENCY_THRESHOLD_US, queue_threshold_us=queue_us, reasons=tuple(reasons))


def monitoring_notes(repo: RepositoryInfo) -> tuple[str, ...]:
    """What the rules leave out for ``repo``, and how to get it (printed, logged and in README.md)."""
    if repo.metrics_enabled is False:
        return ("The repository was built with --no_metrics: its python steps export no tritoncls_* series, so the "
                "rules and the dashboard watch Triton's latency and queue time only.",)
    notes = []
    if repo.metrics_enabled is None:
        notes.append("The repository was built before tritoncls recorded metrics: its python steps export no "
                     "tritoncls_* series until it is rebuilt with this tritoncls's build-repo; the rules on them stay "
                     "silent until then.")
    if repo.reference is None:
        notes.append(f"No {REPOSITORY_REFERENCE_FILE} in the repository: the rules have no label-drift and no "
                     f"low-confidence alert (both compare with the reference). Export with --reference_data DEV.txt "
                     f"and rebuild the repository to get them.")
    elif _drift(repo.reference) is None:
        notes.append(f"{REPOSITORY_REFERENCE_FILE} has fewer than two labels with predictions: no label-drift rules.")
    return tuple(notes)


def _drift(reference: Reference) -> Drift | None:
    total = sum(reference.labels.values())
    if total <= 0 or len(reference.labels) < 2:
        return None
    shares = tuple((label, count / total) for label, count in reference.labels.items())
    min_texts = max(DRIFT_MIN_TEXTS, DRIFT_TEXTS_PER_LABEL * len(shares))
    noise = _tvd_noise(shares, min_texts, reference.texts)
    threshold = min(max(DRIFT_TVD, round(DRIFT_NOISE_FACTOR * noise, 2)), DRIFT_TVD_CAP)
    return Drift(shares=shares, reference_texts=reference.texts, tvd_threshold=threshold, min_texts=min_texts)


def _tvd_noise(shares: tuple[tuple[str, float], ...], live_texts: int, reference_texts: int) -> float:
    """The expected TVD between two samples of the same distribution (``live_texts`` and ``reference_texts``
    draws): 0.5 * sum of E|difference of the shares|, each difference about normal."""
    spread = 1.0 / live_texts + (1.0 / reference_texts if reference_texts > 0 else 0.0)
    return 0.5 * math.sqrt(2.0 / math.pi) * sum(math.sqrt(p * (1.0 - p) * spread) for _, p in shares)


def _low_confidence(reference: Reference, served_threshold: float | None) -> LowConfidence | None:
    if reference.texts <= 0:
        return None
    if served_threshold is None or math.isclose(served_threshold, reference.low_confidence_threshold, abs_tol=1e-9):
        expected = reference.low_confidence / reference.texts
    else:
        expected = share_below(reference, served_threshold)
    threshold = max(LOW_CONFIDENCE_FLOOR, min(LOW_CONFIDENCE_FACTOR * expected, (1.0 + expected) / 2.0))
    return LowConfidence(expected_ratio=round(expected, 4), threshold_ratio=round(threshold, 4),
                         min_texts=LOW_CONFIDENCE_MIN_TEXTS)


def share_below(reference: Reference, threshold: float) -> float:
    """The share of the reference's texts whose top probability is below ``threshold``, from its confidence
    histogram: whole bins below it, and the bin holding it in proportion (linear within the bin)."""
    histogram = reference.top_confidence
    if histogram.total <= 0:
        return 0.0
    edges = (0.0, *histogram.bounds, 1.0)
    below = 0.0
    for low, high, count in zip(edges, edges[1:], histogram.counts):
        if threshold >= high:
            below += count
        elif threshold > low:
            below += count * (threshold - low) / (high - low)
    return below / histogram.total
