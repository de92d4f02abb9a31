"""``tritoncls soak``: hold a served ensemble under load and check that it keeps its promises.

It sends ``requests`` single-text requests (texts drawn, shuffled, from a file of real texts, so
lengths are mixed) from ``concurrency`` threads, each request with no retries, and reports errors,
latency percentiles, throughput and the server's memory (RSS of tritonserver and its python-backend
stubs) at the start, after a warm-up and at the end. With ``reference_model`` every answer is
compared with the in-process :class:`~tritoncls.runtime.Predictor` on the same export.

It passes when every request was answered, no answer is an error, every answer equals the reference
(confidence within ``max_confidence_diff``) and RSS grew by at most ``max_rss_growth_mib`` after the
warm-up (allocators and caches grow during the first requests; a leak keeps growing).

The task is the export's (its manifest) and the server's (the ensemble's outputs): a multi-class answer is
a label and its confidence; a multi-label or hierarchical answer is the whole label set, and its
"confidence" the probability of each returned label, each compared with the reference's probability of
that label.
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tritoncls.clients.base import LabelSetPrediction, Prediction
from tritoncls.common.data import read_text_column
from tritoncls.errors import ClientError, ConfigError
from tritoncls.measure.answers import Answer
from tritoncls.server.memory import ServerMemory, find_listener

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class SoakConfig:
    """Options of ``tritoncls soak``; give ``url`` (a running server) or ``model_repository`` (start one)."""

    input: str
    requests: int = 20000
    concurrency: int = 16
    url: str | None = None
    model_repository: str | None = None
    protocol: str = "grpc"
    name: str = "seqcls"
    reference_model: str | None = None
    server_pid: int | None = None
    warmup_requests: int = 500
    max_rss_growth_mib: float = 32.0
    max_confidence_diff: float = 1e-4
    max_seconds: float = 3600.0
    timeout_s: float = 30.0
    seed: int = 0
    sample_every_s: float = 1.0

    def __post_init__(self) -> None:
        if (self.url is None) == (self.model_repository is None):
            raise ConfigError("soak: give either --url (a running server) or --model_repository (start one).")
        for name in ("requests", "concurrency"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be >= 1, got {getattr(self, name)}.")
        if not 0 <= self.warmup_requests < self.requests:
            raise ConfigError(f"--warmup_requests must lie in 0..--requests-1, got {self.warmup_requests}.")
        if self.max_seconds <= 0 or self.timeout_s <= 0:
            raise ConfigError("--max_seconds and --timeout_s must be > 0.")


@dataclass
class SoakReport:
    requests: int
    concurrency: int
    answered: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    label_mismatches: int | None = None
    max_confidence_diff: float | None = None
    seconds: float = 0.0
    requests_per_s: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    rss_mib: dict[str, float | None] = field(default_factory=dict)
    rss_growth_mib: float | None = None
    rss_by_requests_mib: dict[str, float] = field(default_factory=dict)  # after n requests: is it still growing?
    rss_bound_mib: float = 0.0
    server_processes: int = 0
    passed: bool = False
    failures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        lat, rss = self.latency_ms, self.rss_mib
        reference = ("no reference" if self.label_mismatches is None else
                     f"{self.label_mismatches} label mismatches (max |confidence diff| {self.max_confidence_diff:.1e})")
        memory = ("server RSS not measured" if rss.get("end") is None else
                  f"server RSS {rss['start']:.1f} MiB at start, {rss['after_warmup']:.1f} after warm-up, "
                  f"{rss['end']:.1f} at end (growth {self.rss_growth_mib:+.1f}, bound {self.rss_bound_mib:g}; "
                  f"peak {rss['peak']:.1f}; {self.server_processes} processes)")
        verdict = "PASS" if self.passed else "FAIL: " + "; ".join(self.failures)
        return (f"soak: {self.answered} of {self.requests} requests answered at concurrency {self.concurrency} in "
                f"{self.seconds:.1f} s ({self.requests_per_s:.1f} requests/s); {self.errors} errors; {reference}; "
                f"latency p50 {lat.get('p50', float('nan')):.1f} ms, p99 {lat.get('p99', float('nan')):.1f} ms, "
                f"max {lat.get('max', float('nan')):.1f} ms; {memory}. {verdict}")


def read_texts_column(path: str | Path) -> list[str]:
    """Texts of a file with one text a line, or ``text<TAB>label`` lines (the text is taken)."""
    return read_text_column(path)[0]


class _Sampler(threading.Thread):
    """Samples the server's RSS every ``every_s`` until stopped."""

    def __init__(self, memory: ServerMemory, every_s: float) -> None:
        super().__init__(daemon=True)
        self.memory = memory
        self.every_s = every_s
        self.samples: list[tuple[float, float]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append((time.monotonic(), self.memory.rss_mib()))
            self._halt.wait(self.every_s)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


@dataclass
class _Outcomes:
    labels: list[Answer | None]  # a label, or a label set (multi-label, hierarchical)
    scores: list[tuple[tuple[str, float], ...]]  # the probability of each returned label
    latencies_s: np.ndarray
    errors: collections.Counter
    rss_at: dict[int, float] = field(default_factory=dict)  # requests done -> server RSS (MiB)


def soak(config: SoakConfig) -> SoakReport:
    """Run the soak described by ``config``; starts and stops a server when given a repository."""
    texts = read_texts_column(config.input)
    rng = np.random.default_rng(config.seed)
    order = np.concatenate([rng.permutation(len(texts)) for _ in range(-(-config.requests // len(texts)))])
    sequence = [texts[i] for i in order[:config.requests]]
    if config.model_repository is not None:
        from tritoncls.server import TritonServer

        with TritonServer(config.model_repository) as server:  # before the reference: no fork after tokenizers ran
            url = server.grpc_url if config.protocol == "grpc" else server.http_url
            return _run(config, url, sequence, _reference(config.reference_model, sequence), server.process.pid)
    pid = config.server_pid or find_listener(int(config.url.rsplit(":", 1)[1]))
    if pid is None:
        log.warning("cannot tell which process serves %s; pass --server_pid to measure its memory", config.url)
    return _run(config, config.url, sequence, _reference(config.reference_model, sequence), pid)


@dataclass(frozen=True)
class _Expected:
    """The in-process answer to one text, and every label's probability."""

    answer: Answer
    probs: dict[str, float]


def _reference(export: str | None, sequence: list[str]) -> dict[str, _Expected] | None:
    """The in-process Predictor's answer to each distinct text (its head decides, as the export's task says)."""
    if export is None:
        return None
    from tritoncls.common.offline import OfflineConfig, open_predictor
    from tritoncls.measure.answers import mask_answers
    from tritoncls.runtime import Manifest

    unique = sorted(set(sequence))
    manifest = Manifest.load(export)
    result = open_predictor(OfflineConfig(model=export)).predict_probs(unique)
    answers = mask_answers(manifest, result.mask)
    return {text: _Expected(answer, dict(zip(manifest.labels, map(float, row))))
            for text, answer, row in zip(unique, answers, result.probs)}


def _run(config: SoakConfig, url: str, sequence: list[str], reference, pid: int | None) -> SoakReport:
    from tritoncls.clients.classify import make_client

    with make_client(url, config.protocol, model_name=config.name, timeout_s=config.timeout_s) as probe:
        probe.wait_until_ready(timeout_s=min(config.timeout_s, 60.0))
        probe.classify(sequence[:1])  # the server answers at all, before any clock starts
    memory = ServerMemory(pid) if pid is not None else None
    sampler = _Sampler(memory, config.sample_every_s) if memory else None
    rss_start = memory.rss_mib() if memory else None
    if sampler:
        sampler.start()
    outcomes = _Outcomes([None] * len(sequence), [()] * len(sequence),
                         np.full(len(sequence), np.nan, dtype=np.float64), collections.Counter())
    started = time.monotonic()
    marks = {config.warmup_requests, *(len(sequence) * k // 10 for k in range(1, 10))} - {0}
    _drive(config, url, sequence, outcomes, deadline=started + config.max_seconds,
           on_mark=(lambda done: outcomes.rss_at.__setitem__(done, memory.rss_mib())) if memory else None,
           marks=marks)
    seconds = time.monotonic() - started
    rss_end = memory.rss_mib() if memory else None
    if sampler:
        sampler.stop()
    report = SoakReport(requests=len(sequence), concurrency=config.concurrency, seconds=seconds,
                        rss_bound_mib=config.max_rss_growth_mib,
                        server_processes=len(memory.processes()) if memory else 0)
    _fill(report, config, sequence, outcomes, reference)
    _fill_memory(report, sampler, rss_start, rss_end, outcomes.rss_at, config.warmup_requests)
    _judge(report, config)
    return report


def _drive(config: SoakConfig, url: str, sequence: list[str], outcomes: _Outcomes, deadline: float,
           on_mark: Callable[[int], None] | None = None, marks: set[int] = frozenset()) -> None:
    """``concurrency`` threads take the next request index until all are sent or the deadline passes;
    ``on_mark(n)`` runs when the n-th request of ``marks`` has finished."""
    from tritoncls.clients.classify import make_client

    counter = itertools.count()
    lock = threading.Lock()
    finished = [0]

    def worker() -> None:
        client = make_client(url, config.protocol, model_name=config.name, timeout_s=config.timeout_s,
                             retries=0)
        try:
            while time.monotonic() < deadline:
                with lock:
                    index = next(counter)
                if index >= len(sequence):
                    return
                sent = time.perf_counter()
                try:
                    _record(outcomes, index, client.classify([sequence[index]])[0])
                except Exception as exc:  # noqa: BLE001 - every failure is counted, none stops the soak
                    with lock:
                        outcomes.errors[_error_kind(exc)] += 1
                outcomes.latencies_s[index] = time.perf_counter() - sent
                with lock:
                    finished[0] += 1
                    done = finished[0]
                if done in marks and on_mark is not None:
                    on_mark(done)
        finally:
            client.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(config.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()) + config.timeout_s + 5)


def _record(outcomes: _Outcomes, index: int, prediction: Prediction | LabelSetPrediction) -> None:
    """One answer: a label and its confidence, or a label set and each label's probability."""
    if isinstance(prediction, LabelSetPrediction):
        outcomes.labels[index] = prediction.names
        outcomes.scores[index] = prediction.labels
    else:
        outcomes.labels[index] = prediction.label
        outcomes.scores[index] = ((prediction.label, prediction.confidence),)


def _error_kind(exc: Exception) -> str:
    message = str(exc) if isinstance(exc, ClientError) else f"{type(exc).__name__}: {exc}"
    return message[:200]


def _fill(report: SoakReport, config: SoakConfig, sequence: list[str], outcomes: _Outcomes, reference) -> None:
    answered = [i for i, label in enumerate(outcomes.labels) if label is not None]
    report.answered = len(answered)
    report.errors = sum(outcomes.errors.values())
    report.error_kinds = dict(outcomes.errors.most_common(10))
    report.requests_per_s = report.answered / max(report.seconds, 1e-9)
    latencies = outcomes.latencies_s[~np.isnan(outcomes.latencies_s)] * 1000
    if latencies.size:
        report.latency_ms = {"p50": float(np.percentile(latencies, 50)), "p90": float(np.percentile(latencies, 90)),
                             "p99": float(np.percentile(latencies, 99)), "max": float(latencies.max()),
                             "mean": float(latencies.mean())}
    if reference is not None:
        expected = [reference[sequence[i]] for i in answered]
        report.label_mismatches = sum(outcomes.labels[i] != e.answer for i, e in zip(answered, expected))
        diffs = [abs(p - e.probs[name]) for i, e in zip(answered, expected) for name, p in outcomes.scores[i]
                 if name in e.probs]
        report.max_confidence_diff = float(max(diffs)) if diffs else 0.0


def _fill_memory(report: SoakReport, sampler: _Sampler | None, start: float | None, end: float | None,
                 rss_at: dict[int, float], warmup_requests: int) -> None:
    if sampler is None or start is None or end is None:
        report.rss_mib = {"start": None, "after_warmup": None, "end": None, "peak": None}
        return
    after_warmup = rss_at.get(warmup_requests, start)  # start when no warm-up was asked for
    report.rss_mib = {"start": start, "after_warmup": after_warmup, "end": end,
                      "peak": max([end, start, *rss_at.values(), *(rss for _, rss in sampler.samples)])}
    report.rss_by_requests_mib = {str(n): round(rss_at[n], 1) for n in sorted(rss_at)}
    report.rss_growth_mib = end - after_warmup


def _judge(report: SoakReport, config: SoakConfig) -> None:
    failures = []
    if report.answered + report.errors < report.requests:
        failures.append(f"only {report.answered + report.errors} of {report.requests} requests sent before "
                        f"--max_seconds {config.max_seconds:g}")
    if report.errors:
        failures.append(f"{report.errors} errors, e.g. {next(iter(report.error_kinds))!r}")
    if report.label_mismatches:
        failures.append(f"{report.label_mismatches} labels differ from the in-process reference")
    if report.max_confidence_diff is not None and report.max_confidence_diff > config.max_confidence_diff:
        failures.append(f"confidence differs from the reference by {report.max_confidence_diff:.1e} "
                        f"(> {config.max_confidence_diff:g})")
    if report.rss_growth_mib is not None and report.rss_growth_mib > config.max_rss_growth_mib:
        failures.append(f"server RSS grew {report.rss_growth_mib:.1f} MiB after warm-up "
                        f"(> {config.max_rss_growth_mib:g} MiB)")
    report.failures = failures
    report.passed = not failures


def write_report(report: SoakReport, path: str | Path) -> None:
    Path(path).write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
