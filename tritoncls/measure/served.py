"""Served measurements: build a repository, start tritonserver on it, run perf_analyzer sweeps, stop.

Each sweep point records perf_analyzer's throughput and latency percentiles and Triton's statistics
delta over that run (stage shares, texts per model execution). After the sweep the server's memory
is read per process: tritonserver and one python-backend stub per model instance.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tritoncls.clients.base import LabelSetPrediction, Prediction
from tritoncls.errors import BenchmarkError
from tritoncls.measure.cpu_time import cpu_by_role, cpu_shares
from tritoncls.measure.perf_analyzer import PerfAnalyzer, text_input_data, token_input_data, write_input_data
from tritoncls.measure.triton_stats import delta, fetch_statistics, stage_share

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RepoInfo:
    """What a benchmark needs to know of a built repository (read from its configs)."""

    path: Path
    ensemble: str
    steps: dict[str, str]  # stage -> model name
    text_input: str
    model_inputs: tuple[str, ...]
    pad_token_id: int
    build_config: dict[str, Any]

    @classmethod
    def load(cls, repo: Path) -> RepoInfo:
        from tritoncls.builder import MARKER
        from tritoncls.builder.validate import load_configs

        record = json.loads((repo / MARKER).read_text(encoding="utf-8"))
        configs = load_configs(repo)
        names = record["models"]
        ensemble = configs[names["ensemble"]]
        model = configs[names["model"]]
        params = {k: v.string_value for k, v in model.parameters.items()}
        tokenizer_params = {k: v.string_value for k, v in configs[names["tokenizer"]].parameters.items()}
        pad = params.get("pad_token_id") or tokenizer_params.get("pad_token_id") or "0"
        return cls(repo, names["ensemble"],
                   {"tokenizer": names["tokenizer"], "model": names["model"], "postprocess": names["postprocess"]},
                   ensemble.input[0].name, tuple(t.name for t in model.input), int(pad), record.get("build_config", {}))


@dataclass(frozen=True)
class SweepPoint:
    """One perf_analyzer run: ``target`` is ``ensemble`` (texts in) or ``model`` (the model step alone)."""

    target: str
    batch_size: int
    concurrency: int


@dataclass
class ServedResult:
    name: str
    repo: str
    build_config: dict[str, Any]
    points: list[dict[str, Any]] = field(default_factory=list)
    memory: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    startup_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "repo": self.repo, "build_config": self.build_config, "points": self.points,
                "memory": self.memory, "errors": self.errors, "startup_s": self.startup_s}


#: The reference-style peer of bench and compress: the PaddleNLP library's Python tokenizer, every request padded
#: to max_seq_length and computed at that width (the reference profile turns padding trimming off), no dynamic
#: batching, FP32.
REFERENCE_OPTIONS = {"profile": "reference", "padding": "max_length", "tokenizer": "paddlenlp"}


def reference_options(export_dir: Path) -> dict[str, Any]:
    """:data:`REFERENCE_OPTIONS` for the export at ``export_dir``. A model trained under other tokenizer rules
    than PaddleNLP's (an imported Hugging Face BERT: ``hf-bert``) keeps the wordpiece tokenizer, the only one
    that splits text by its rules; that peer then tokenizes faster than the reference would, so a ratio against
    it errs on the low side."""
    from tritoncls.runtime import Manifest

    if Manifest.load(export_dir).tokenizer.rules != "paddlenlp":
        return REFERENCE_OPTIONS | {"tokenizer": "wordpiece"}
    return dict(REFERENCE_OPTIONS)


def build(export_dir: Path, repo: Path, **options: Any) -> Path:
    """``build-repo`` with ``options`` (BuildConfig fields), replacing an earlier benchmark build."""
    from tritoncls.builder import BuildConfig, build_repository

    return build_repository(BuildConfig(model=str(export_dir), output=str(repo), force=True, **options))


def input_files(info: RepoInfo, texts: Sequence[str], rows: Sequence[Sequence[int]], sweep: Sequence[SweepPoint],
                workdir: Path) -> dict[tuple[str, int], Path]:
    """One input-data file per (target, batch size) of the sweep."""
    files: dict[tuple[str, int], Path] = {}
    for point in sweep:
        key = (point.target, point.batch_size)
        if key in files:
            continue
        if point.target == "ensemble":
            data = text_input_data(texts, info.text_input, point.batch_size)
        else:
            data = token_input_data(rows, info.model_inputs, point.batch_size, info.pad_token_id)
        files[key] = write_input_data(data, workdir / f"input_{point.target}_b{point.batch_size}.json")
    return files


def requests_per_window(point: SweepPoint, min_requests: int) -> int:
    """Responses each perf_analyzer window waits for: enough to see every in-flight request finish twice."""
    return max(min_requests, 2 * point.concurrency)


def measure(name: str, repo: Path, texts: Sequence[str], rows: Sequence[Sequence[int]], sweep: Sequence[SweepPoint],
            workdir: Path, analyzer: PerfAnalyzer, min_requests: int = 8, max_trials: int = 6,
            stability_pct: int = 20, label_texts: Sequence[str] = ()
            ) -> tuple[ServedResult, list[Prediction | LabelSetPrediction] | None]:
    """Serve ``repo`` and run the sweep; with ``label_texts`` also classify them (the served answers returned)."""
    from tritoncls.server import TritonServer
    from tritoncls.server.memory import server_memory

    info = RepoInfo.load(repo)
    workdir.mkdir(parents=True, exist_ok=True)
    files = input_files(info, texts, rows, sweep, workdir)
    result = ServedResult(name, str(repo), info.build_config)
    labels = None
    started = time.perf_counter()
    with TritonServer(repo, log_file=workdir / "tritonserver.log") as server:
        result.startup_s = time.perf_counter() - started
        log.info("[%s] server ready in %.1f s (gRPC %s)", name, result.startup_s, server.grpc_url)
        if label_texts:
            labels = classify(server.grpc_url, info.ensemble, label_texts)
        for point in sweep:
            model = info.ensemble if point.target == "ensemble" else info.steps["model"]
            before = fetch_statistics(server.grpc_url)
            cpu_before = cpu_by_role(server.process.pid) if server.process is not None else {}
            measured, stable = measure_point(analyzer, name, model, server.grpc_url, files, point, workdir,
                                              requests_per_window(point, min_requests), max_trials, stability_pct,
                                              result.errors)
            if measured is None:
                continue
            cpu = cpu_shares(cpu_before, cpu_by_role(server.process.pid)) if server.process is not None else {}
            after = fetch_statistics(server.grpc_url)
            share = stage_share(delta(after, before), info.steps)
            record = {"target": point.target, **measured.to_dict(), "stages": share.to_dict(), "stable": stable,
                      "server_cpu_shares": _by_step(cpu, info.steps)}
            result.points.append(record)
            log.info("[%s] %s b=%d c=%d: %.1f texts/s, p50 %.1f ms, p99 %.1f ms, %.1f texts/model run%s",
                     name, point.target, point.batch_size, point.concurrency, measured.inferences_per_s,
                     measured.p50_us / 1e3, measured.p99_us / 1e3, share.texts_per_model_execution,
                     "" if stable else " (did not stabilize)")
        if server.process is not None:
            result.memory = [m.to_dict() for m in server_memory(server.process.pid, repo)]
    return result, labels


def _by_step(shares: dict[str, float], steps: dict[str, str]) -> dict[str, float]:
    """CPU shares keyed by step ("tokenizer", "model", "postprocess", "fused") where a process serves one, else by
    process ("tritonserver": the front end)."""
    names = {model: step for step, model in steps.items()}
    return {names.get(role, role): share for role, share in shares.items()}


#: (window size factor, stability % or None for the configured one) per attempt. The last attempt drops
#: the stability requirement (perf_analyzer then reports its last windows); such a point is kept and
#: marked ``stable: false`` rather than lost, since on a shared machine other load can keep any
#: point from stabilizing.
ATTEMPTS = ((1, None), (2, None), (2, 1000))


def measure_point(analyzer: PerfAnalyzer, name: str, model: str, url: str, files: dict, point: SweepPoint,
                   workdir: Path, requests: int, max_trials: int, stability_pct: int, errors: list[str]):
    """One sweep point with retries; returns (PerfPoint or None, stable)."""
    for attempt, (factor, stability) in enumerate(ATTEMPTS):
        try:
            measured = analyzer.measure(model, url, files[(point.target, point.batch_size)], point.batch_size,
                                        point.concurrency, workdir, requests * factor, max_trials,
                                        stability or stability_pct)
            return measured, stability is None
        except BenchmarkError as exc:
            if attempt + 1 < len(ATTEMPTS) and "stable measurement" in str(exc):
                log.info("[%s] %s b=%d c=%d: unstable, measuring again (windows of %d requests%s)", name,
                         point.target, point.batch_size, point.concurrency, requests * ATTEMPTS[attempt + 1][0],
                         ", no stability requirement" if ATTEMPTS[attempt + 1][1] else "")
                continue
            log.warning("[%s] %s", name, exc)
            errors.append(str(exc))
            return None, False
    return None, False


def classify(grpc_url: str, ensemble: str, texts: Sequence[str], batch_size: int = 32) -> list[Prediction | LabelSetPrediction]:
    """What the served ensemble answers for ``texts`` (gRPC, requests of ``batch_size``), through the project's
    client: a :class:`Prediction` per text from a multi-class ensemble, a :class:`LabelSetPrediction` from a
    multi-label or hierarchical one (compare them with :mod:`tritoncls.measure.answers`)."""
    from tritoncls.clients.classify import make_client

    out: list[Prediction | LabelSetPrediction] = []
    with make_client(grpc_url, "grpc", model_name=ensemble) as client:
        for start in range(0, len(texts), batch_size):
            out += client.classify(list(texts[start:start + batch_size]))
    return out
