"""The search: which serving configurations to measure, in which order, and which one wins at a p99 budget.

Pure logic: it never builds or serves. :func:`search` gets a ``measure(candidate) -> Measured`` callable
(the real one builds, serves and runs perf_analyzer; tests pass recorded measurements) and a clock.

Not a full grid: a coordinate search. It measures the default first, then one *stage* at a time
(layout x instances x threads, queue delay, length-group padding, bucket edges, tokenizer instances,
max batch size, precision), each stage trying the values of one dimension on the best candidate so
far and keeping a value only when it beats the best by ``min_gain``. Stages are ordered by how much
they moved throughput in docs/benchmarks.md (threads and layout first), so a short time budget still
measures what matters most.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from tritoncls.builder import BuildConfig
from tritoncls.measure.cpu_time import CpuPerText

#: The options the search varies (BuildConfig field names).
VARIED = ("layout", "instances", "intra_op_threads", "tokenizer_instances", "max_queue_delay_us", "max_batch_size",
          "group_padding", "buckets", "precision")
#: The builder's defaults for them (what ``build-repo`` gives without flags), read from BuildConfig itself.
DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(BuildConfig) if f.name in VARIED}


@dataclass(frozen=True)
class Candidate:
    """One serving configuration: build options (BuildConfig field names) that differ from the defaults."""

    options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, **options: Any) -> Candidate:
        changed = {k: (tuple(v) if isinstance(v, list) else v) for k, v in options.items() if DEFAULTS.get(k) != v}
        return cls(tuple(sorted(changed.items())))

    def get(self, key: str) -> Any:
        return dict(self.options).get(key, DEFAULTS.get(key))

    def with_(self, **changes: Any) -> Candidate:
        return Candidate.of(**(dict(self.options) | changes))

    def build_options(self) -> dict[str, Any]:
        """The options to pass to BuildConfig (and to write into tune.json)."""
        return dict(self.options)

    @property
    def name(self) -> str:
        """Short and unique: ``fused-i2t1-d4000-b16.24.40.128``; ``default`` for the builder's defaults."""
        if not self.options:
            return "default"
        g = self.get
        parts = [g("layout"), f"i{g('instances')}t{g('intra_op_threads')}"]
        extras = (("tokenizer_instances", "tok"), ("max_queue_delay_us", "d"), ("max_batch_size", "mbs"),
                  ("group_padding", "gp"), ("precision", ""))
        parts += [f"{short}{g(key)}" for key, short in extras if key in dict(self.options)]
        if "buckets" in dict(self.options):
            parts.append("b" + ".".join(str(b) for b in g("buckets")))
        return "-".join(parts)


@dataclass(frozen=True)
class Point:
    """One perf_analyzer measurement of a candidate."""

    batch_size: int
    concurrency: int
    texts_per_s: float
    p50_ms: float
    p99_ms: float
    texts_per_execution: float = 0.0
    cpu: CpuPerText | None = None  # where the CPU went, per text (Linux; None where unmeasured)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__) | {"cpu": self.cpu.to_dict() if self.cpu else None}


@dataclass
class Measured:
    """A candidate's measurements (or the error that stopped them)."""

    candidate: Candidate
    points: list[Point] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    stage: str = ""
    request_texts: int = 1  # the workload scored: requests of this many texts (1: single texts)

    def workload(self) -> list[Point]:
        """The points of the workload the search optimises (requests of ``request_texts`` texts)."""
        return [p for p in self.points if p.batch_size == self.request_texts]

    def best_within(self, budget_ms: float) -> Point | None:
        """The highest-throughput workload point whose p99 is within the budget."""
        inside = [p for p in self.workload() if p.p99_ms <= budget_ms]
        return max(inside, key=lambda p: p.texts_per_s, default=None)

    def score(self, budget_ms: float) -> float:
        """The workload's throughput at the budget (texts/s); 0 when no point meets it."""
        best = self.best_within(budget_ms)
        return best.texts_per_s if best else 0.0

    def lowest_p99_ms(self) -> float:
        return min((p.p99_ms for p in self.workload()), default=float("inf"))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.candidate.name, "build_options": _jsonable(self.candidate.build_options()),
                "stage": self.stage, "request_texts": self.request_texts, "points": [p.to_dict() for p in self.points],
                "error": self.error, "seconds": self.seconds}


def _jsonable(options: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}


# ---------------------------------------------------------------------------------------------
# The search space
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Space:
    """What the search may try on this machine, for this model and corpus."""

    cores: int
    corpus_buckets: tuple[int, ...] = ()  # from the corpus's token-length quantiles; () skips the stage
    int8: bool = False  # INT8 met the accuracy floor (or no labels: not tried)
    queue_delays_us: tuple[int, ...] = (0, 500, 4000, 8000)
    group_paddings: tuple[float, ...] = (1.1, 1.5)
    max_batch_sizes: tuple[int, ...] = (32, 128)
    request_texts: int = 1  # a max_batch_size below the workload's request size cannot serve it


def threading_options(cores: int) -> list[tuple[int, int]]:
    """(instances, intra-op threads) worth trying: one instance on every core, one per core with one
    thread each, and a single thread; never more threads than cores (oversubscribing was the worst row)."""
    options = [(cores, 1), (1, 0), (1, 1)]
    if cores >= 4:
        options.append((cores // 2, 2))
    return list(dict.fromkeys(options))


Stage = tuple[str, Callable[[Candidate, Space], list[Candidate]]]


def _layout_and_threads(best: Candidate, space: Space) -> list[Candidate]:
    """Both layouts x the threading options, the most promising first (one thread per core, fused)."""
    out = []
    for instances, threads in threading_options(space.cores):
        for layout in ("fused", "ensemble"):
            out.append(best.with_(layout=layout, instances=instances, intra_op_threads=threads))
    return out


def _queue_delay(best: Candidate, space: Space) -> list[Candidate]:
    return [best.with_(max_queue_delay_us=d) for d in space.queue_delays_us]


def _group_padding(best: Candidate, space: Space) -> list[Candidate]:
    if best.get("layout") != "fused":
        return []  # the ensemble's model step keeps its 1.2 (its config keys are pinned)
    return [best.with_(group_padding=g) for g in space.group_paddings]


def _buckets(best: Candidate, space: Space) -> list[Candidate]:
    return [best.with_(buckets=space.corpus_buckets)] if space.corpus_buckets else []


def _tokenizer_instances(best: Candidate, space: Space) -> list[Candidate]:
    if best.get("layout") != "ensemble" or space.cores < 2:
        return []
    return [best.with_(tokenizer_instances=2)]


def _max_batch_size(best: Candidate, space: Space) -> list[Candidate]:
    return [best.with_(max_batch_size=m) for m in space.max_batch_sizes if m >= space.request_texts]


def _precision(best: Candidate, space: Space) -> list[Candidate]:
    return [best.with_(precision="int8")] if space.int8 else []


#: In the order they run: what moved throughput most in docs/benchmarks.md first.
STAGES: tuple[Stage, ...] = (
    ("layout x instances x threads", _layout_and_threads),
    ("max_queue_delay_us", _queue_delay),
    ("precision", _precision),
    ("buckets", _buckets),
    ("group_padding", _group_padding),
    ("tokenizer_instances", _tokenizer_instances),
    ("max_batch_size", _max_batch_size),
)


# ---------------------------------------------------------------------------------------------
# The search
# ---------------------------------------------------------------------------------------------


@dataclass
class SearchResult:
    budget_ms: float
    measured: list[Measured]
    best: Measured | None  # None: no candidate met the budget
    stopped_early: bool = False  # the time budget ended the search before every stage ran

    @property
    def default(self) -> Measured:
        return self.measured[0]

    def closest(self, count: int = 3) -> list[Measured]:
        """The candidates nearest the budget (lowest p99 first, each once): what to show when none meets it."""
        out: list[Measured] = []
        for m in sorted((m for m in self.measured if m.points), key=Measured.lowest_p99_ms):
            if all(m.candidate != kept.candidate for kept in out):
                out.append(m)
        return out[:count]


def search(measure: Callable[[Candidate], Measured], space: Space, budget_ms: float, time_budget_s: float,
           clock: Callable[[], float], min_gain: float = 0.03, stages: Sequence[Stage] = STAGES,
           progress: Callable[[Measured, Measured | None], None] | None = None,
           max_candidates: int | None = None, reserve_candidates: float = 0.0,
           remeasure_incumbent: bool = True) -> SearchResult:
    """Measure the default, then each stage's candidates on the best so far, until the time budget ends.

    The best is what the stages kept (a value beating the best by ``min_gain``), not the single highest
    score: a noise-level win of one stage does not carry into the next. With ``remeasure_incumbent`` each
    stage after the first measures the best again before its candidates, and they must beat that fresh
    reading: on a shared machine load moves a measurement by 2x, and an old lucky reading would otherwise
    block every later value. A candidate is started only when the time left covers the mean time a
    candidate has taken plus ``reserve_candidates`` more such times (kept for what runs after the search),
    and while fewer than ``max_candidates`` measurements (the default included) have run.
    """
    start = clock()
    measured: list[Measured] = []

    def run(candidate: Candidate, stage: str) -> Measured:
        began = clock()
        result = measure(candidate)
        result.seconds, result.stage = clock() - began, stage
        measured.append(result)
        if progress:
            progress(result, _best(measured, budget_ms))
        return result

    def may_start() -> bool:
        return not (_out_of_time(clock() - start, time_budget_s, measured, reserve_candidates)
                    or (max_candidates is not None and len(measured) >= max_candidates))

    best = run(Candidate(), "default")
    stopped = False
    for index, (stage, propose) in enumerate(stages):
        fresh = _fresh(propose(best.candidate, space), {m.candidate for m in measured})
        if fresh and index > 0 and remeasure_incumbent:
            if not may_start():
                stopped = True
                break
            best = run(best.candidate, f"{stage} (the best so far, again)")
        for candidate in fresh:
            if not may_start():
                stopped = True
                break
            result = run(candidate, stage)
            if result.score(budget_ms) > best.score(budget_ms) * (1 + min_gain):
                best = result
        if stopped:
            break
    return SearchResult(budget_ms, measured, best if best.score(budget_ms) > 0 else None, stopped)


def _fresh(candidates: Iterable[Candidate], done: set[Candidate]) -> list[Candidate]:
    return [c for c in dict.fromkeys(candidates) if c not in done]


def _best(measured: Iterable[Measured], budget_ms: float) -> Measured | None:
    scored = [m for m in measured if m.score(budget_ms) > 0]
    return max(scored, key=lambda m: m.score(budget_ms), default=None)


def _out_of_time(elapsed_s: float, budget_s: float, measured: Iterable[Measured], reserve: float = 0.0) -> bool:
    times = [m.seconds for m in measured]
    mean = sum(times) / len(times) if times else 0.0
    return elapsed_s + mean * (1 + reserve) > budget_s


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (p99_ms, texts_per_s) points no other point beats on both (lower latency, higher throughput),
    by rising latency."""
    front: list[tuple[float, float]] = []
    for latency, rate in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or rate > front[-1][1]:
            front.append((latency, rate))
    return front


def corpus_buckets(lengths: Sequence[int], max_seq_length: int,
                   quantiles: Sequence[float] = (0.5, 0.8, 0.95, 0.99), multiple: int = 8) -> tuple[int, ...]:
    """Bucket edges at the corpus's token-length quantiles, rounded up to ``multiple``, then max_seq_length."""
    import numpy as np

    if not lengths:
        return ()
    values = np.quantile(np.asarray(lengths), list(quantiles))
    edges = {int(-(-int(np.ceil(v)) // multiple) * multiple) for v in values}
    return tuple(sorted({e for e in edges if 2 < e < max_seq_length} | {max_seq_length}))
