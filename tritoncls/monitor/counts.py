"""A served model's counters, as ``tritoncls monitor`` compares them: parsed from a metrics port's Prometheus
text (or built from Prometheus query results), one model picked, histograms turned back into bins, and
snapshots that ``--baseline`` subtracts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from tritoncls.common.files import write_json
from tritoncls.monitor.config import MonitorError
from tritoncls.runtime.metrics import (
    LABEL_LABEL,
    LABELS_PER_TEXT,
    LABELS_PER_TEXT_BOUNDS,
    LOW_CONFIDENCE,
    MODEL_LABEL,
    PREDICTED,
    REASON_LABEL,
    REFUSED,
    TEXT_TOKENS,
    TOP_CONFIDENCE,
    TRUNCATED,
    Reference,
    bound_text,
)

PREFIX = "tritoncls_"
SNAPSHOT_FORMAT = "tritoncls-monitor-snapshot"
SNAPSHOT_VERSION = 1
REBUILD_FIX = ("The repository was built with `tritoncls build-repo --no_metrics`, or by a tritoncls that recorded no "
               "metrics: rebuild it with this version's `tritoncls build-repo` (metrics are on by default) and serve "
               "it again.")


class Series(NamedTuple):
    """One sample: a series name, its labels and its value."""

    name: str
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Bins:
    """Upper bounds and the non-cumulative count in each bin, plus one above the last bound."""

    bounds: tuple[float, ...]
    counts: tuple[float, ...]

    @property
    def total(self) -> float:
        return float(sum(self.counts))

    @classmethod
    def empty(cls, bounds: Sequence[float]) -> Bins:
        return cls(tuple(bounds), (0.0,) * (len(bounds) + 1))

    def to_dict(self) -> dict[str, Any]:
        return {"bounds": list(self.bounds), "counts": list(self.counts)}

    @classmethod
    def from_dict(cls, data: Any) -> Bins:
        bins = cls(tuple(float(b) for b in data["bounds"]), tuple(float(c) for c in data["counts"]))
        if len(bins.counts) != len(bins.bounds) + 1:
            raise ValueError("counts")
        return bins


@dataclass(frozen=True)
class Counts:
    """What one served model counted: texts per predicted label, the histograms as bins, the plain counters."""

    model: str
    labels: dict[str, float]
    top_confidence: Bins
    text_tokens: Bins
    labels_per_text: Bins | None  # multi-label and hierarchical models only
    low_confidence: float = 0.0
    truncated: float = 0.0
    refused: dict[str, float] = field(default_factory=dict)

    @property
    def texts(self) -> float:
        """Texts classified (the top-confidence histogram's count)."""
        return self.top_confidence.total

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "labels": dict(self.labels), "top_confidence": self.top_confidence.to_dict(),
                "text_tokens": self.text_tokens.to_dict(),
                "labels_per_text": self.labels_per_text.to_dict() if self.labels_per_text else None,
                "low_confidence": self.low_confidence, "truncated": self.truncated, "refused": dict(self.refused)}

    @classmethod
    def from_dict(cls, data: Any) -> Counts:
        per_text = data["labels_per_text"]
        return cls(model=str(data["model"]), labels={str(k): float(v) for k, v in dict(data["labels"]).items()},
                   top_confidence=Bins.from_dict(data["top_confidence"]), text_tokens=Bins.from_dict(data["text_tokens"]),
                   labels_per_text=Bins.from_dict(per_text) if per_text else None,
                   low_confidence=float(data["low_confidence"]), truncated=float(data["truncated"]),
                   refused={str(k): float(v) for k, v in dict(data["refused"]).items()})


# --- the Prometheus text of a metrics port --------------------------------------------------------------


def parse_exposition(text: str, where: str) -> list[Series]:
    """The ``tritoncls_`` samples of a metrics port's Prometheus text, label values unescaped."""
    from prometheus_client.parser import text_string_to_metric_families

    found = []
    try:
        for family in text_string_to_metric_families(text):
            found += [Series(series_name(s.name), dict(s.labels), float(s.value)) for s in family.samples
                      if s.name.startswith(PREFIX)]
    except ValueError as exc:
        raise MonitorError(f"{where}: not Prometheus text ({exc}). Point --metrics_url at Triton's metrics port "
                           f"(http://HOST:8002/metrics).") from None
    return found


def series_name(name: str) -> str:
    """A sample's name as the server wrote it. The histograms' series are exported as counters (runtime/metrics.py
    says why), and prometheus_client's parser names every counter sample ``..._total``: it reads
    ``tritoncls_text_tokens_bucket`` back as ``tritoncls_text_tokens_bucket_total``."""
    for suffix in ("_bucket", "_count", "_sum"):
        if name.endswith(f"{suffix}_total"):
            return name.removesuffix("_total")
    return name


def served_models(series: Iterable[Series]) -> list[str]:
    """The ``model`` label values of the series, sorted."""
    return sorted({s.labels[MODEL_LABEL] for s in series if MODEL_LABEL in s.labels})


def choose_model(models: Sequence[str], name: str | None, where: str) -> str:
    """``name`` when it is served, else the only model; a clear error otherwise."""
    if not models:
        raise MonitorError(f"{where}: no tritoncls_ series. {REBUILD_FIX}")
    listed = ", ".join(models)
    if name is not None:
        if name not in models:
            raise MonitorError(f"{where}: no tritoncls_ series for model {name!r}; the served models with metrics "
                               f"are: {listed}. Pass one of them as --name.")
        return name
    if len(models) > 1:
        raise MonitorError(f"{where}: several models export tritoncls_ series ({listed}); pass one as --name.")
    return models[0]


def counts_of(series: Iterable[Series], model: str, reference: Reference, where: str) -> Counts:
    """The counters of ``model``, histograms rebuilt into the reference's bins (an error where they differ)."""
    mine = [s for s in series if s.labels.get(MODEL_LABEL) == model]
    labels: dict[str, float] = {}
    refused: dict[str, float] = {}
    plain = {LOW_CONFIDENCE: 0.0, TRUNCATED: 0.0}
    buckets: dict[str, dict[str, float]] = {TOP_CONFIDENCE: {}, TEXT_TOKENS: {}, LABELS_PER_TEXT: {}}
    for s in mine:
        if s.name == PREDICTED:
            label = s.labels.get(LABEL_LABEL, "")
            labels[label] = labels.get(label, 0.0) + s.value
        elif s.name == REFUSED:
            reason = s.labels.get(REASON_LABEL, "")
            refused[reason] = refused.get(reason, 0.0) + s.value
        elif s.name in plain:
            plain[s.name] += s.value
        elif s.name.endswith("_bucket") and s.name.removesuffix("_bucket") in buckets:
            le = s.labels.get("le", "")
            histogram = buckets[s.name.removesuffix("_bucket")]
            histogram[le] = histogram.get(le, 0.0) + s.value
    unknown = sorted(set(labels) - set(reference.labels))
    if unknown:
        raise MonitorError(f"{where}: model {model!r} predicts label(s) {', '.join(map(repr, unknown[:5]))} that the "
                           f"reference does not know ({len(reference.labels)} labels): the reference belongs to "
                           f"another model. Pass the reference of the export this repository was built from.")
    per_text_bounds = reference.labels_per_text.bounds if reference.labels_per_text else LABELS_PER_TEXT_BOUNDS
    if buckets[LABELS_PER_TEXT] and reference.labels_per_text is None:
        raise MonitorError(f"{where}: model {model!r} counts labels per text (a multi-label or hierarchical model) "
                           f"but the reference is of a {reference.task} model. Pass the reference of the export "
                           f"this repository was built from.")
    return Counts(
        model=model, labels={name: labels.get(name, 0.0) for name in reference.labels},
        top_confidence=rebuild_bins(buckets[TOP_CONFIDENCE], reference.top_confidence.bounds, TOP_CONFIDENCE, where),
        text_tokens=rebuild_bins(buckets[TEXT_TOKENS], reference.text_tokens.bounds, TEXT_TOKENS, where),
        labels_per_text=(rebuild_bins(buckets[LABELS_PER_TEXT], per_text_bounds, LABELS_PER_TEXT, where)
                         if reference.labels_per_text else None),
        low_confidence=plain[LOW_CONFIDENCE], truncated=plain[TRUNCATED], refused=refused)


def rebuild_bins(cumulative: dict[str, float], bounds: Sequence[float], name: str, where: str) -> Bins:
    """Cumulative ``le`` buckets -> non-cumulative counts in ``bounds`` (the reference's).

    The recorder creates every bucket at zero, but a bucket created on first use would be missing while zero (the
    low ones), so a missing bucket counts as zero. Every ``le`` must be one of the reference's bounds, and above the
    lowest bucket present every bound must be there: anything else means the server bins differently (another
    ``max_seq_length``, another tritoncls).
    """
    if not cumulative:
        return Bins.empty(bounds)
    texts = {bound_text(b): i for i, b in enumerate(bounds)} | {"+Inf": len(bounds)}
    present = {texts.get(le, -1) for le in cumulative}
    lowest = min(present)
    if -1 in present or present != set(range(lowest, len(bounds) + 1)):
        served = sorted(cumulative, key=_le_key)
        raise MonitorError(f"{where}: {name}_bucket has bins le={','.join(served)} but the reference's are "
                           f"le={','.join([*(bound_text(b) for b in bounds), '+Inf'])}: the served repository bins "
                           f"differently (built from another export or max_seq_length). Pass the reference of the "
                           f"export it was built from.")
    running = np.zeros(len(bounds) + 1)
    for le, value in cumulative.items():
        running[texts[le]] = value
    running = np.maximum.accumulate(running)  # a scrape between two series' increments may see them unequal
    return Bins(tuple(float(b) for b in bounds), tuple(float(c) for c in np.diff(running, prepend=0.0)))


def _le_key(le: str) -> float:
    try:
        return float(le)
    except ValueError:
        return math.inf


# --- snapshots: the counters at one moment, for a later --baseline ---------------------------------------


def save_snapshot(counts: Counts, path: str | Path, source: str) -> Path:
    """Write ``counts`` (cumulative since the server started) with the time and where they came from."""
    return write_json(path, {"format": SNAPSHOT_FORMAT, "format_version": SNAPSHOT_VERSION, "source": source,
                             "taken_at": datetime.now(UTC).isoformat(timespec="seconds"),
                             "counts": counts.to_dict()})


@dataclass(frozen=True)
class Snapshot:
    counts: Counts
    taken_at: str
    source: str


def load_snapshot(path: str | Path) -> Snapshot:
    """A snapshot written by ``--save_snapshot``; a clear error for anything else."""
    path = Path(path)
    fix = "Pass a file written by `tritoncls monitor --save_snapshot`."
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MonitorError(f"{path}: not found. {fix}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MonitorError(f"{path}: not valid JSON ({exc}). {fix}") from None
    if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
        raise MonitorError(f"{path}: not a monitor snapshot (field 'format' must be {SNAPSHOT_FORMAT!r}). {fix}")
    try:
        return Snapshot(Counts.from_dict(data["counts"]), str(data["taken_at"]), str(data["source"]))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MonitorError(f"{path}: field {exc} is missing or has the wrong type. {fix}") from None


def since(counts: Counts, baseline: Snapshot, where: str) -> tuple[Counts, str | None]:
    """The counts since ``baseline``, and a note when a counter went down (the server restarted since: then
    the counts since its start, as Prometheus's ``increase`` reads a reset)."""
    base = baseline.counts
    if not base.model:  # taken before the server counted anything: every count is newer
        return counts, None
    if base.model != counts.model:
        raise MonitorError(f"{where}: the baseline is of model {base.model!r}, not {counts.model!r}. Pass a snapshot "
                           f"of the same model, or --name {base.model}.")
    pairs = [(counts.top_confidence, base.top_confidence), (counts.text_tokens, base.text_tokens)]
    if counts.labels_per_text and base.labels_per_text:
        pairs.append((counts.labels_per_text, base.labels_per_text))
    if any(now.bounds != then.bounds for now, then in pairs) or (counts.labels_per_text is None) != (
            base.labels_per_text is None):
        raise MonitorError(f"{where}: the baseline's bins differ from the served model's: it was taken from another "
                           f"repository. Take a new one with --save_snapshot.")
    diff = Counts(
        model=counts.model, labels={k: v - base.labels.get(k, 0.0) for k, v in counts.labels.items()},
        top_confidence=_minus(counts.top_confidence, base.top_confidence),
        text_tokens=_minus(counts.text_tokens, base.text_tokens),
        labels_per_text=(_minus(counts.labels_per_text, base.labels_per_text)
                         if counts.labels_per_text and base.labels_per_text else None),
        low_confidence=counts.low_confidence - base.low_confidence, truncated=counts.truncated - base.truncated,
        refused={k: v - base.refused.get(k, 0.0) for k, v in counts.refused.items()})
    if _went_down(diff) or any(k not in counts.refused for k in base.refused):
        return counts, (f"a counter went down since the baseline taken at {baseline.taken_at}: the server restarted "
                        f"since, so these are the counts since its start")
    return diff, None


def _minus(now: Bins, then: Bins) -> Bins:
    return Bins(now.bounds, tuple(a - b for a, b in zip(now.counts, then.counts)))


def _went_down(diff: Counts) -> bool:
    values = [*diff.labels.values(), *diff.top_confidence.counts, *diff.text_tokens.counts, diff.low_confidence,
              diff.truncated, *diff.refused.values(), *(diff.labels_per_text.counts if diff.labels_per_text else ())]
    return any(v < 0 for v in values)
