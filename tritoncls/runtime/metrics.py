"""What a served classifier reports about its own traffic: metric names, their bins, the reference
distribution an export records from dev data, and the recorders the python models use.

The metrics (Prometheus names; every series carries ``model``, the served model's name):

- ``tritoncls_predicted_total{label}``: texts per predicted label (multi-label: per label of each set);
- ``tritoncls_top_confidence``: the most probable label's probability per text, a histogram;
- ``tritoncls_low_confidence_total``: texts whose top probability is below the low-confidence threshold
  (recorded at export from dev data, overridable at build time);
- ``tritoncls_labels_per_text``: the size of each label set, a histogram (multi-label and hierarchical);
- ``tritoncls_text_tokens``: tokens per text, [CLS] and [SEP] included, after truncation, a histogram;
- ``tritoncls_truncated_total``: texts cut at ``max_seq_length``;
- ``tritoncls_refused_requests_total{reason}``: requests refused for their data (:data:`REFUSED_REASONS`).

The histograms are exported as cumulative counters (``NAME_bucket{le}``, ``NAME_count``, ``NAME_sum``), the
series a Prometheus histogram has, rather than through the python backend's HISTOGRAM kind: every metric
update is a round trip to the Triton process (about 20 us measured here), and a histogram takes one per
observed value, so 32 texts would cost about 2 ms per histogram. A recorder tallies the requests in-process
instead, and a background thread sends one increment per changed series once a second. PromQL
(``histogram_quantile``, ``rate``) reads the series the same way.

No text content ever reaches a metric: label values are the model's label names, the reasons below and
the model's name.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ManifestError

PREDICTED = "tritoncls_predicted_total"
TOP_CONFIDENCE = "tritoncls_top_confidence"
LOW_CONFIDENCE = "tritoncls_low_confidence_total"
LABELS_PER_TEXT = "tritoncls_labels_per_text"
TEXT_TOKENS = "tritoncls_text_tokens"
TRUNCATED = "tritoncls_truncated_total"
REFUSED = "tritoncls_refused_requests_total"
MODEL_LABEL = "model"  # the served model's name (the ensemble's, or the fused model's)
LABEL_LABEL = "label"
REASON_LABEL = "reason"

EMPTY, INVALID_UTF8, TOO_LONG, MALFORMED = "empty", "invalid_utf8", "too_long", "malformed"
REFUSED_REASONS = (EMPTY, INVALID_UTF8, TOO_LONG, MALFORMED)

CONFIDENCE_BOUNDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
LABELS_PER_TEXT_BOUNDS = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 8.0)
_TOKEN_STEPS = (8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024, 2048)
FLUSH_INTERVAL_S = 1.0  # how often a served model sends its tallied increments to Triton
DEFAULT_LOW_CONFIDENCE_QUANTILE = 0.05  # the low-confidence threshold: this share of dev texts falls below it

REFERENCE_FILE = "reference.json"  # in an export, named by the manifest
REPOSITORY_REFERENCE_FILE = "tritoncls_reference.json"  # at a repository's root, beside tritoncls_build.json
REFERENCE_FORMAT = "tritoncls-reference"
REFERENCE_VERSION = 1

HELP = {
    PREDICTED: "Texts classified, per predicted label (multi-label: each label of each set).",
    TOP_CONFIDENCE: "Probability of each text's most probable label.",
    LOW_CONFIDENCE: "Texts whose most probable label's probability is below the low-confidence threshold.",
    LABELS_PER_TEXT: "Labels predicted per text (multi-label and hierarchical tasks).",
    TEXT_TOKENS: "Tokens per text, [CLS] and [SEP] included, after truncation at max_seq_length.",
    TRUNCATED: "Texts cut at max_seq_length.",
    REFUSED: "Requests refused for their data, by reason.",
}


def token_bounds(max_seq_length: int) -> tuple[float, ...]:
    """Token-length bins for a model: the usual steps below ``max_seq_length``, and it."""
    return tuple(float(b) for b in (*[s for s in _TOKEN_STEPS if s < max_seq_length], max_seq_length))


def bound_text(bound: float) -> str:
    """A bin's upper bound as the ``le`` label shows it ("0.5", "16")."""
    return f"{bound:g}"


def bin_counts(values: np.ndarray, bounds: Sequence[float]) -> np.ndarray:
    """Non-cumulative counts: values <= bounds[0], in (bounds[0], bounds[1]], ..., and above the last bound
    (len(bounds) + 1 bins), the way a Prometheus histogram's ``le`` buckets split them."""
    index = np.searchsorted(np.asarray(bounds, dtype=np.float64), np.asarray(values, dtype=np.float64), side="left")
    return np.bincount(index, minlength=len(bounds) + 1).astype(np.int64)


def cumulative(counts: Sequence[int]) -> list[int]:
    """Non-cumulative bin counts -> the ``le`` buckets' cumulative counts (the last is +Inf, the total)."""
    return np.cumsum(np.asarray(counts, dtype=np.int64)).tolist()


# --- the reference distribution (recorded at export, compared by `tritoncls monitor`) -------------------


@dataclass(frozen=True)
class Histogram:
    """Bins (upper bounds) and the non-cumulative count in each, plus one above the last bound."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.counts) != len(self.bounds) + 1:
            raise ManifestError(f"a histogram with {len(self.bounds)} bounds needs {len(self.bounds) + 1} counts, "
                                f"got {len(self.counts)}")

    @classmethod
    def of(cls, values: np.ndarray, bounds: Sequence[float]) -> Histogram:
        return cls(tuple(float(b) for b in bounds), tuple(int(c) for c in bin_counts(values, bounds)))

    @property
    def total(self) -> int:
        return int(sum(self.counts))

    def to_dict(self) -> dict[str, Any]:
        return {"bounds": list(self.bounds), "counts": list(self.counts)}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Histogram:
        if not isinstance(data, dict) or not isinstance(data.get("bounds"), list) or not isinstance(
                data.get("counts"), list):
            raise ManifestError(f"{where}: a histogram is an object with 'bounds' and 'counts' lists")
        return cls(tuple(float(b) for b in data["bounds"]), tuple(int(c) for c in data["counts"]))


@dataclass(frozen=True)
class Reference:
    """What the model does on its dev data: the baseline a served model's traffic is compared with."""

    source: str  # the data file the reference was computed on
    texts: int
    task: str
    labels: dict[str, int]  # predicted label -> texts (multi-label: per label of each set), label.txt order
    top_confidence: Histogram
    text_tokens: Histogram
    truncated: int
    low_confidence_threshold: float
    low_confidence: int  # dev texts below the threshold
    token_quantiles: dict[str, float] = field(default_factory=dict)  # "p50", "p90", "p99"
    labels_per_text: Histogram | None = None  # multi-label and hierarchical tasks
    given_labels: dict[str, int] = field(default_factory=dict)  # the data's own labels, for comparison

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(format=REFERENCE_FORMAT, format_version=REFERENCE_VERSION,
                   top_confidence=self.top_confidence.to_dict(), text_tokens=self.text_tokens.to_dict(),
                   labels_per_text=self.labels_per_text.to_dict() if self.labels_per_text else None)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Reference:
        if not isinstance(data, dict) or data.get("format") != REFERENCE_FORMAT:
            raise ManifestError(f"{where}: not a tritoncls reference distribution (field 'format' must be "
                                f"{REFERENCE_FORMAT!r}). Re-run `tritoncls export` with --reference_data.")
        try:
            per_text = data.get("labels_per_text")
            return cls(
                source=str(data["source"]), texts=int(data["texts"]), task=str(data["task"]),
                labels={str(k): int(v) for k, v in dict(data["labels"]).items()},
                top_confidence=Histogram.from_dict(data["top_confidence"], f"{where}: top_confidence"),
                text_tokens=Histogram.from_dict(data["text_tokens"], f"{where}: text_tokens"),
                truncated=int(data["truncated"]), low_confidence_threshold=float(data["low_confidence_threshold"]),
                low_confidence=int(data["low_confidence"]),
                token_quantiles={str(k): float(v) for k, v in dict(data.get("token_quantiles", {})).items()},
                labels_per_text=Histogram.from_dict(per_text, f"{where}: labels_per_text") if per_text else None,
                given_labels={str(k): int(v) for k, v in dict(data.get("given_labels", {})).items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{where}: field {exc} is missing or has the wrong type. Re-run `tritoncls export` "
                                f"with --reference_data.") from None

    @classmethod
    def load(cls, path: str | Path) -> Reference:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ManifestError(f"{path}: not found. Export with `tritoncls export --reference_data DEV.txt` to "
                                f"record the reference distribution.") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestError(f"{path}: not valid JSON ({exc}). Re-run `tritoncls export`.") from None
        return cls.from_dict(data, str(path))


def low_confidence_threshold(top_probs: np.ndarray, quantile: float = DEFAULT_LOW_CONFIDENCE_QUANTILE) -> float:
    """The top probability below which ``quantile`` of the texts fall (rounded to 4 places)."""
    if not len(top_probs):
        return 0.0
    return round(float(np.quantile(np.asarray(top_probs, dtype=np.float64), quantile)), 4)


def reference_of(*, source: str, task: str, labels: Sequence[str], probs: np.ndarray, mask: np.ndarray,
                 lengths: np.ndarray, truncated: np.ndarray, max_seq_length: int,
                 given: Sequence[Sequence[str]] = (), low_confidence: float | None = None) -> Reference:
    """The reference distribution of one data set's predictions: ``probs`` and the predicted ``mask``
    [texts, labels], each text's token count and whether it was cut."""
    top = probs.max(axis=1) if probs.size else np.zeros(0, dtype=np.float32)
    threshold = low_confidence_threshold(top) if low_confidence is None else float(low_confidence)
    per_label = mask.sum(axis=0)
    given_counts = dict.fromkeys(labels, 0)
    for names in given:
        for name in names:
            given_counts[name] = given_counts.get(name, 0) + 1
    multi = task != "multi_class"
    quantiles = {f"p{int(q * 100)}": float(np.quantile(lengths, q)) for q in (0.5, 0.9, 0.99)} if len(lengths) else {}
    return Reference(
        source=source, texts=int(len(probs)), task=task,
        labels={name: int(per_label[i]) for i, name in enumerate(labels)},
        top_confidence=Histogram.of(top, CONFIDENCE_BOUNDS),
        text_tokens=Histogram.of(lengths, token_bounds(max_seq_length)),
        truncated=int(np.asarray(truncated).sum()), low_confidence_threshold=threshold,
        low_confidence=int((top < threshold).sum()), token_quantiles=quantiles,
        labels_per_text=Histogram.of(mask.sum(axis=1), LABELS_PER_TEXT_BOUNDS) if multi else None,
        given_labels=given_counts if given else {},
    )


# --- recorders (the python models' side) ---------------------------------------------------------------


class Recorder:
    """Takes a batch's facts; this one drops them (metrics off, and every in-process path)."""

    enabled = False

    def tokens(self, lengths: Sequence[int], truncated: Sequence[bool]) -> None:
        """Token counts of the texts of one call, and which were cut."""

    def refused(self, reason: str) -> None:
        """One request refused for its data."""

    def predictions(self, probs: np.ndarray, mask: np.ndarray) -> None:
        """Probabilities and predicted mask [texts, labels] of one call."""


@dataclass(frozen=True)
class MetricsSettings:
    """What a python model's recorder needs: the served model's name, and per step what it measures (the
    tokenizer: ``max_seq_length``; the postprocess: the labels, the low-confidence threshold, the task)."""

    model: str
    labels: tuple[str, ...] = ()
    max_seq_length: int = 0
    low_confidence: float = 0.0
    multi_label: bool = False

    def merged(self, other: MetricsSettings) -> MetricsSettings:
        """The fused model's settings: the tokenizer's and the postprocess step's together."""
        return MetricsSettings(self.model or other.model, self.labels or other.labels,
                               self.max_seq_length or other.max_seq_length,
                               self.low_confidence or other.low_confidence, self.multi_label or other.multi_label)


SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


class Tally(Recorder):
    """Sums one call's facts into per-series increments; :meth:`drain` hands them over and starts again.

    Series are keyed ``(metric name, ((label name, value), ...))``; a histogram ``H`` becomes ``H_bucket``
    (with ``le``), ``H_count`` and ``H_sum``. Pure numpy: the Triton recorder sends what it drains.
    """

    enabled = True

    def __init__(self, settings: MetricsSettings) -> None:
        self.settings = settings
        self.token_bounds = token_bounds(settings.max_seq_length) if settings.max_seq_length else ()
        self.pending: dict[SeriesKey, float] = {}

    def _add(self, name: str, value: float, **labels: str) -> None:
        if value:
            key = (name, tuple(sorted(labels.items())))
            self.pending[key] = self.pending.get(key, 0.0) + float(value)

    def _observe(self, name: str, bounds: Sequence[float], values: np.ndarray) -> None:
        if not len(values):
            return
        buckets = cumulative(bin_counts(values, bounds))
        for bound, count in zip((*bounds, float("inf")), buckets):
            self._add(f"{name}_bucket", count, le="+Inf" if bound == float("inf") else bound_text(bound))
        self._add(f"{name}_count", len(values))
        self._add(f"{name}_sum", float(np.sum(values, dtype=np.float64)))

    def tokens(self, lengths: Sequence[int], truncated: Sequence[bool]) -> None:
        self._observe(TEXT_TOKENS, self.token_bounds, np.asarray(lengths, dtype=np.float64))
        self._add(TRUNCATED, int(np.count_nonzero(truncated)))

    def refused(self, reason: str) -> None:
        self._add(REFUSED, 1, reason=reason if reason in REFUSED_REASONS else MALFORMED)

    def predictions(self, probs: np.ndarray, mask: np.ndarray) -> None:
        if not len(probs):
            return
        labels = self.settings.labels
        for index in np.flatnonzero(mask.any(axis=0)):
            self._add(PREDICTED, int(mask[:, index].sum()), label=labels[index])
        top = probs.max(axis=1).astype(np.float64)
        self._observe(TOP_CONFIDENCE, CONFIDENCE_BOUNDS, top)
        self._add(LOW_CONFIDENCE, int((top < self.settings.low_confidence).sum()))
        if self.settings.multi_label:
            self._observe(LABELS_PER_TEXT, LABELS_PER_TEXT_BOUNDS, mask.sum(axis=1).astype(np.float64))

    def drain(self) -> dict[SeriesKey, float]:
        pending, self.pending = self.pending, {}
        return pending


class TritonRecorder(Tally):
    """A :class:`Tally` whose increments a background thread sends through the python backend's custom-metrics
    API (``pb_utils``, passed in: it exists only inside Triton) every ``flush_interval_s``, every series labelled
    with ``model``.

    Sending from ``execute`` cost about 6% of nano's throughput at 32-text requests on 2 busy cores (each
    update is a synchronous round trip to the Triton process, about 25 of them a request): the requests only
    tally now, and the series lag the traffic by at most ``flush_interval_s``. ``close`` (the python model's
    ``finalize``) sends what is left.
    """

    def __init__(self, pb_utils: Any, settings: MetricsSettings, flush_interval_s: float = FLUSH_INTERVAL_S) -> None:
        super().__init__(settings)
        self.pb_utils = pb_utils
        self.families: dict[str, Any] = {}
        self.series: dict[SeriesKey, Any] = {}
        for key in self.series_keys():
            self._metric(key)  # every series from the start, at 0: rates and shares exist before traffic
        self.flush_interval_s = flush_interval_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if flush_interval_s > 0:
            self._thread = threading.Thread(target=self._flush_every_interval, name="tritoncls-metrics", daemon=True)
            self._thread.start()

    def _flush_every_interval(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            self.flush()

    def tokens(self, lengths: Sequence[int], truncated: Sequence[bool]) -> None:
        with self._lock:
            super().tokens(lengths, truncated)
        self._flush_now()

    def refused(self, reason: str) -> None:
        with self._lock:
            super().refused(reason)
        self._flush_now()

    def predictions(self, probs: np.ndarray, mask: np.ndarray) -> None:
        with self._lock:
            super().predictions(probs, mask)
        self._flush_now()

    def _flush_now(self) -> None:
        if self._thread is None:  # no background thread: every call sends its own increments
            self.flush()

    def flush(self) -> None:
        """Send the increments tallied since the last flush."""
        with self._lock:
            pending = self.drain()
        for key, value in pending.items():
            self._metric(key).increment(value)

    def close(self) -> None:
        """Stop the background thread and send what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5 * self.flush_interval_s + 1)
        self.flush()

    def series_keys(self) -> list[SeriesKey]:
        """The series this recorder exports (a label's counter exists before it is first predicted)."""
        s = self.settings
        keys: list[SeriesKey] = []

        def histogram(name: str, bounds: Sequence[float]) -> None:
            keys.extend((f"{name}_bucket", (("le", bound_text(b)),)) for b in bounds)
            keys.extend([(f"{name}_bucket", (("le", "+Inf"),)), (f"{name}_count", ()), (f"{name}_sum", ())])

        if s.max_seq_length:
            histogram(TEXT_TOKENS, self.token_bounds)
            keys.append((TRUNCATED, ()))
            keys.extend((REFUSED, ((REASON_LABEL, reason),)) for reason in REFUSED_REASONS)
        if s.labels:
            keys.extend((PREDICTED, ((LABEL_LABEL, label),)) for label in s.labels)
            histogram(TOP_CONFIDENCE, CONFIDENCE_BOUNDS)
            keys.append((LOW_CONFIDENCE, ()))
            if s.multi_label:
                histogram(LABELS_PER_TEXT, LABELS_PER_TEXT_BOUNDS)
        return keys

    def _metric(self, key: SeriesKey) -> Any:
        metric = self.series.get(key)
        if metric is None:
            name, labels = key
            family = self.families.get(name)
            if family is None:
                family = self.pb_utils.MetricFamily(name=name, description=_help(name),
                                                    kind=self.pb_utils.MetricFamily.COUNTER)
                self.families[name] = family
            metric = self.series[key] = family.Metric(labels={MODEL_LABEL: self.settings.model, **dict(labels)})
        return metric


def _help(name: str) -> str:
    for base in (name, name.removesuffix("_bucket"), name.removesuffix("_count"), name.removesuffix("_sum")):
        if base in HELP:
            suffix = name[len(base):]
            part = {"_bucket": " Cumulative count per bin (le).", "_count": " Count.", "_sum": " Sum."}.get(suffix, "")
            return HELP[base] + part
    return name


def counter_names(multi_label: bool) -> list[str]:
    """Every series name a repository of this kind exports (histograms as their three series)."""
    names = [PREDICTED, LOW_CONFIDENCE, TRUNCATED, REFUSED]
    for histogram in (TOP_CONFIDENCE, TEXT_TOKENS, *([LABELS_PER_TEXT] if multi_label else [])):
        names += [f"{histogram}_bucket", f"{histogram}_count", f"{histogram}_sum"]
    return names


def label_shares(counts: Mapping[str, float]) -> dict[str, float]:
    """Counts -> shares of their total (all zeros for an empty total)."""
    total = float(sum(counts.values()))
    return {k: (v / total if total else 0.0) for k, v in counts.items()}
