"""What ``tritoncls compress`` takes and gives: its options (:class:`CompressConfig`), one candidate
(:class:`Candidate`) and its measured result (:class:`CandidateResult`), and the names of the files it writes.
The pure choice logic (:mod:`.search`), the runner (:mod:`.compress`) and the report (:mod:`.report`) import
this module, and the report and the search not the runner."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from tritoncls.errors import ConfigError, TritonclsError

NO_CANDIDATE_WITHIN_BUDGET = 3  # the command's exit status then
REPORT_FILE = "compress_report.md"
REPORT_JSON = "compress_report.json"
PLOT_FILE = "compress.png"
OPTIONS_FILE = "compress.json"
RESULT_FILE = "result.json"  # one per candidate folder: a finished candidate (what --resume keeps)
#: --precisions: FP32, INT8 dynamic (ONNX Runtime quantize_dynamic) and INT8 static (calibrated on the train
#: texts), all three through build-repo (--precision int8 [--int8_mode static --calibration_data TRAIN]).
PRECISIONS = ("fp32", "int8", "int8_static")
#: --servings: how each candidate is served, as build-repo options ("cores": one instance per usable core).
#: default: build-repo's defaults (the ensemble, one model instance on every core); fused: the one-model layout
#: (one python execution a request instead of three); split / fused_split: one model instance per core, one
#: intra-op thread each, so concurrent requests run side by side instead of sharing one instance's threads.
SERVINGS: dict[str, dict[str, Any]] = {
    "default": {},
    "fused": {"layout": "fused"},
    "split": {"instances": "cores", "intra_op_threads": 1},
    "fused_split": {"layout": "fused", "instances": "cores", "intra_op_threads": 1},
}
DEFAULT_SERVING = "default"
#: Length buckets a corpus quantile is rounded up to.
LENGTH_BUCKETS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
BASELINE_STRUCTURE = "unpruned"
DEFAULT_TEST_FILE = "test.txt"
REFERENCE_NAME = "reference-style"


class CompressError(TritonclsError):
    """compress cannot run: a bad option, a checkpoint that is not fine-tuned, unusable data, a missing tool."""


class NoCandidateWithinBudget(CompressError):
    """No candidate's served score is within --max_drop of the unpruned model's; the message lists the closest."""


@dataclass(frozen=True)
class CompressConfig:
    """What ``tritoncls compress`` needs; field names match the CLI flags."""

    checkpoint: str
    dataset_dir: str
    output: str
    max_drop: float
    budget_minutes: float | None = None
    widths: tuple[str, ...] = ("3/4", "1/2")
    depths: tuple[int, ...] = ()
    precisions: tuple[str, ...] = PRECISIONS
    servings: tuple[str, ...] = (DEFAULT_SERVING,)
    epochs: int = 2
    learning_rate: float = 3e-5
    batch_size: int = 32
    #: prune's student settings (docs/pruning.md): which layers a depth keeps, and the distillation loss
    layer_selection: str = "spread"
    temperature: float = 2.0
    soft_label_weight: float = 0.5
    hidden_loss_weight: float = 0.0
    augment_copies: int = 0
    augment_rate: float = 0.15
    length_quantile: float = 0.99
    corpus_length: bool = True  # also export each structure at the corpus length bucket (when shorter)
    max_dev_texts: int | None = None
    request_texts: int = 32
    batch_concurrency: int = 2
    single_concurrency: int = 32
    min_requests: int = 8
    max_trials: int = 6
    stability_pct: int = 20
    resume: bool = False
    plots: bool = True
    label_file: str = "label.txt"
    train_file: str = "train.txt"
    dev_file: str = "dev.txt"
    #: scored through the server for every candidate beside dev (never used to choose); None: test.txt where the
    #: dataset has one. ``score_test`` False: no test scoring.
    test_file: str | None = None
    score_test: bool = True
    seed: int = 3

    def __post_init__(self) -> None:
        problems = []
        if not self.max_drop >= 0:
            problems.append(f"--max_drop {self.max_drop} must be >= 0 (points of the served dev score)")
        if self.budget_minutes is not None and self.budget_minutes <= 0:
            problems.append(f"--budget_minutes {self.budget_minutes} must be > 0")
        unknown = sorted(set(self.precisions) - set(PRECISIONS))
        if unknown or not self.precisions:
            problems.append(f"--precisions {' '.join(self.precisions)}: choose from {' '.join(PRECISIONS)}")
        if not self.servings or set(self.servings) - set(SERVINGS):
            problems.append(f"--servings {' '.join(self.servings)}: choose from {' '.join(SERVINGS)}")
        for text in self.widths:
            try:
                width = Fraction(str(text))
            except (ValueError, ZeroDivisionError):
                width = Fraction(0)
            if not 0 < width <= 1:
                problems.append(f"--widths {text}: a width is a fraction in (0, 1], e.g. 1/2 or 0.75")
        if any(d < 1 for d in self.depths):
            problems.append(f"--depths {' '.join(map(str, self.depths))}: layer counts must be >= 1")
        if not 0 < self.length_quantile <= 1:
            problems.append(f"--length_quantile {self.length_quantile} must lie in (0, 1]")
        positive = ("epochs", "batch_size", "request_texts", "batch_concurrency", "single_concurrency",
                    "min_requests", "max_trials", "stability_pct")
        problems += [f"--{name} must be >= 1" for name in positive if getattr(self, name) < 1]
        if self.max_dev_texts is not None and self.max_dev_texts < 1:
            problems.append("--max_dev_texts must be >= 1")
        if not self.learning_rate > 0:
            problems.append("--learning_rate must be > 0")
        if problems:
            raise ConfigError("; ".join(problems) + ".")

    @property
    def output_dir(self) -> Path:
        return Path(self.output)

    @property
    def dataset(self) -> Path:
        return Path(self.dataset_dir)

    @property
    def test_path(self) -> Path | None:
        """The test file to score, or None: ``--no_test``, or no ``--test_file`` and no test.txt in the dataset."""
        if not self.score_test:
            return None
        if self.test_file is not None:
            return self.dataset / self.test_file
        default = self.dataset / DEFAULT_TEST_FILE
        return default if default.is_file() else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Structure:
    """One model shape: the teacher itself or a pruned student, exported at one max_seq_length."""

    name: str  # "unpruned", "width_mult_0.5", "d4_w1_2"
    export_dir: str
    max_seq_length: int
    num_hidden_layers: int | None = None
    width: str = "1"
    parameters: int | None = None

    @property
    def key(self) -> str:
        return f"{self.name}-L{self.max_seq_length}"


@dataclass(frozen=True)
class Candidate:
    """A structure at one precision: one repository to build, serve and measure."""

    structure: Structure
    precision: str
    #: build-repo options beyond ``precision`` (the reference-style peer's, static INT8's, the serving's); they
    #: win over it.
    options: tuple[tuple[str, Any], ...] = ()
    peer: bool = False  # the reference-style deployment: measured beside the candidates, never chosen
    serving: str = DEFAULT_SERVING  # a key of SERVINGS

    @property
    def name(self) -> str:
        if self.peer:
            return REFERENCE_NAME
        suffix = "" if self.serving == DEFAULT_SERVING else f"-{self.serving}"
        return f"{self.structure.key}-{self.precision}{suffix}"

    def build_options(self) -> dict[str, Any]:
        """The BuildConfig fields this candidate is built with (what compress.json hands build-repo)."""
        return {"precision": self.precision, **dict(self.options)}


@dataclass
class CandidateResult:
    """One candidate's measured numbers, or its error. Scores are fractions (the task's metric)."""

    name: str
    structure: str
    precision: str
    max_seq_length: int
    export_dir: str
    build_options: dict[str, Any]
    peer: bool = False
    num_hidden_layers: int | None = None
    width: str = "1"
    serving: str = DEFAULT_SERVING
    score: float | None = None  # served dev score through the ensemble
    scored_texts: int = 0
    test_score: float | None = None  # served test score (reported, never used to choose); None: no test file
    test_texts: int = 0
    batch_texts_per_s: float | None = None  # --request_texts texts a request at --batch_concurrency
    batch_p99_ms: float | None = None
    single_texts_per_s: float | None = None  # one text a request at --single_concurrency
    single_p99_ms: float | None = None
    error: str | None = None
    seconds: float = 0.0
    measured: dict[str, Any] = field(default_factory=dict)  # the sweep points as served.measure records them

    @property
    def ok(self) -> bool:
        return self.error is None and self.score is not None and self.batch_texts_per_s is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> CandidateResult:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in record.items() if k in known})

    @classmethod
    def for_candidate(cls, candidate: Candidate) -> CandidateResult:
        s = candidate.structure
        return cls(candidate.name, s.name, candidate.precision, s.max_seq_length, s.export_dir,
                   candidate.build_options(), candidate.peer, s.num_hidden_layers, s.width, candidate.serving)


@dataclass
class CompressOutcome:
    """A finished run: every result, the unpruned FP32 default and the reference-style peer, the choice."""

    config: CompressConfig
    results: list[CandidateResult]
    baseline: CandidateResult | None
    reference: CandidateResult | None
    chosen: CandidateResult | None
    metric: str
    files: dict[str, Path] = field(default_factory=dict)
    closest: list[CandidateResult] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # the corpus lengths, the teacher, the machine
