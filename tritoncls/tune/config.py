"""What ``tritoncls tune`` takes and gives: its options (:class:`TuneConfig`), its outcome
(:class:`TuneOutcome`) and the names of the files it writes. The runner (:mod:`.tune`) and the report
(:mod:`.report`) both import this module, and not each other."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tritoncls.errors import BenchmarkError
from tritoncls.tune.search import DEFAULTS, Measured, SearchResult

NO_CANDIDATE_MEETS_BUDGET = 3  # the command's exit code then
OPTIONS_FILE = "tune.json"
REPORT_FILE = "tune_report.md"
RESULTS_FILE = "tune_results.json"
#: A side-by-side measurement (every concurrency, no stop at the budget, plus batched requests, then the
#: in-process rate) costs about this many search candidates' time; the search keeps that much for them.
SIDE_BY_SIDE_COST = 1.75
PLOT_FILE = "tune_plot.png"


class TuneError(BenchmarkError):
    """tune cannot run: a bad option, an unusable export or text file, a missing tool."""


@dataclass(frozen=True)
class TuneConfig:
    """What ``tritoncls tune`` needs; field names match the CLI flags."""

    model: str
    input: str
    output: str
    latency_budget_ms: float = 200.0
    budget_minutes: float = 10.0
    concurrencies: tuple[int, ...] = (1, 4, 16, 32)
    batch_size: int = 32  # the batched requests of the final side-by-side
    request_texts: int = 1  # texts per request of the workload the search optimises (1: single texts)
    client_cpus: tuple[int, ...] = ()  # pin perf_analyzer to these CPUs, the server to the others
    max_texts: int | None = 1024
    accuracy_floor: float = 1.0  # INT8 may lose at most this many accuracy points
    final_rounds: int = 2
    max_candidates: int | None = None  # stop the search after this many (the default included)
    min_gain: float = 0.03
    name: str = "seqcls"
    plots: bool = True
    stages: tuple[str, ...] | None = None  # only these search stages (tests); None: all

    def __post_init__(self) -> None:
        problems = []
        if self.latency_budget_ms <= 0:
            problems.append(f"--latency_budget_ms {self.latency_budget_ms} must be > 0")
        if self.budget_minutes <= 0:
            problems.append(f"--budget_minutes {self.budget_minutes} must be > 0")
        if not self.concurrencies or sorted(set(self.concurrencies)) != list(self.concurrencies) or min(self.concurrencies) < 1:
            problems.append(f"--concurrencies {list(self.concurrencies)} must be rising counts >= 1, e.g. 1 4 16 32")
        if self.batch_size < 1 or self.final_rounds < 1 or self.request_texts < 1:
            problems.append("--batch_size, --request_texts and --final_rounds must be >= 1")
        if self.max_texts is not None and self.max_texts < max(self.batch_size, self.request_texts, 1):
            problems.append(f"--max_texts {self.max_texts} must hold at least one request of "
                            f"{max(self.batch_size, self.request_texts)} texts")
        if self.max_candidates is not None and self.max_candidates < 1:
            problems.append(f"--max_candidates {self.max_candidates} must be >= 1 (the default counts as one)")
        if self.request_texts > DEFAULTS["max_batch_size"]:
            problems.append(f"--request_texts {self.request_texts} is more than the default max_batch_size "
                            f"{DEFAULTS['max_batch_size']}, which every search starts from; send smaller requests")
        if any(cpu < 0 for cpu in self.client_cpus):
            problems.append(f"--client_cpus {list(self.client_cpus)} must be CPU numbers >= 0")
        if self.accuracy_floor < 0:
            problems.append(f"--accuracy_floor {self.accuracy_floor} must be >= 0 (accuracy points INT8 may lose)")
        if problems:
            raise TuneError("invalid tune options:\n  " + "\n  ".join(problems))

    @property
    def output_dir(self) -> Path:
        return Path(self.output)

    @property
    def workload(self) -> str:
        """The workload the search optimises, in words."""
        return "single texts" if self.request_texts == 1 else f"requests of {self.request_texts} texts"

    def sweep(self, side_by_side: bool) -> list[tuple[int, int]]:
        """(texts per request, concurrency) to measure: the workload at rising concurrency; side by side also
        single texts (when the workload is batched) and ``batch_size`` texts a request at concurrency 1 and 2."""
        points = [(self.request_texts, c) for c in self.concurrencies]
        if side_by_side:
            if self.request_texts != 1:
                points += [(1, c) for c in self.concurrencies]
            if self.batch_size != self.request_texts:
                points += [(self.batch_size, c) for c in (1, 2)]
        return points


@dataclass
class TuneOutcome:
    config: TuneConfig
    machine: dict[str, Any]
    corpus: dict[str, Any]
    accuracy: dict[str, Any] | None
    result: SearchResult
    final: dict[str, list[Measured]]  # "default" / "tuned" -> one Measured per round
    inprocess_sorted: dict[str, dict[str, Any]]  # precision -> the best round's in-process length-sorted run
    seconds: float

    @property
    def met(self) -> bool:
        return self.result.best is not None


def config_dict(config: TuneConfig) -> dict[str, Any]:
    return asdict(config)
