"""``tritoncls tune``: build, serve and measure candidate configurations on the user's texts; pick the one
with the highest throughput of the workload (single texts, or ``--request_texts`` a request) within a p99
budget; write tune.json, tune_report.md and a plot.

Flow: checks (export, texts, tools) -> corpus facts (token lengths, bucket edges) -> INT8 accuracy when
the texts are labelled -> the search (:mod:`.search`) -> the default and the chosen configuration
measured again side by side (alternating, the workload, single texts and batched requests) with the in-process
length-sorted rate in the same run -> report. Exit code 3 when no candidate meets the budget.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from tritoncls.errors import USER_ERRORS
from tritoncls.measure.cpu_time import CpuPerText, ServerCpu, children_cpu_s, per_text, server_cpu
from tritoncls.tune.config import (
    SIDE_BY_SIDE_COST,
    TuneConfig,
    TuneError,
    TuneOutcome,
)
from tritoncls.tune.report import write_outputs
from tritoncls.tune.search import (
    Candidate,
    Measured,
    Point,
    SearchResult,
    Space,
    corpus_buckets,
    search,
)

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Up-front checks and corpus facts
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    texts: tuple[str, ...]
    labels: tuple[str, ...] | None
    lengths: tuple[int, ...]  # tokens per text, [CLS]/[SEP] included
    buckets: tuple[int, ...]  # from the length quantiles

    def facts(self) -> dict[str, Any]:
        lengths = np.asarray(self.lengths)
        return {"texts": len(self.texts), "labelled": self.labels is not None,
                "mean_tokens": round(float(lengths.mean()), 1),
                "token_quantiles": {q: int(np.quantile(lengths, q)) for q in (0.5, 0.8, 0.95, 0.99)},
                "corpus_buckets": list(self.buckets)}


def check_inputs(config: TuneConfig):
    """The export (a corrupt one fails here, naming the file), the texts, tritonserver and perf_analyzer."""
    from tritoncls.builder.plan import ExportInfo
    from tritoncls.measure.perf_analyzer import PerfAnalyzer
    from tritoncls.server.install import find_tritonserver

    export = ExportInfo.load(config.model)
    corpus = read_corpus(config, export.directory, export.max_seq_length)
    analyzer = PerfAnalyzer.find()
    find_tritonserver()
    return export, corpus, analyzer


def read_corpus(config: TuneConfig, export_dir: Path, max_seq_length: int) -> Corpus:
    from tritoncls.errors import DataError
    from tritoncls.measure.inprocess import token_rows
    from tritoncls.measure.texts import read_bench_texts

    path = Path(config.input)
    if not path.is_file():
        raise TuneError(f"--input {path}: not found; pass a file of texts, one a line (text or text<TAB>label).")
    try:
        data = read_bench_texts(path).head(config.max_texts)
    except DataError as exc:  # says the file, the line and the fix itself (an empty file too)
        raise TuneError(f"--input: {exc}") from None
    except UnicodeDecodeError as exc:
        raise TuneError(f"--input {path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8, "
                        f"one text a line.") from None
    if len(data) == 0:
        raise TuneError(f"--input {path}: holds no texts (only blank lines or nothing); tune measures the serving "
                        f"configuration on your own texts: pass a file with at least {config.batch_size} of them.")
    if len(data) < config.batch_size:
        raise TuneError(f"--input {path}: {len(data)} texts are fewer than one batched request of --batch_size "
                        f"{config.batch_size}; pass more texts or a smaller --batch_size.")
    lengths = tuple(len(row) for row in token_rows(export_dir, data.texts))
    return Corpus(data.texts, data.labels, lengths, corpus_buckets(lengths, max_seq_length))


def int8_accuracy(export_dir: Path, corpus: Corpus, labels: Sequence[str]) -> dict[str, Any] | None:
    """FP32 and INT8 dev score in-process (ONNX Runtime), or None for unlabelled texts.

    The export's task decides the score: accuracy (``fp32_accuracy``, ``int8_accuracy``) for a multi-class
    export, macro-F1 of the label sets (``fp32_macro_f1``, ``int8_macro_f1``, and how often INT8 gives the same
    whole set) for a multi-label or hierarchical one. ``drop_points`` is FP32 minus INT8 in points either way.
    """
    from tritoncls.measure.answers import agreement, inprocess_answers, metric, score, truth, unknown_labels
    from tritoncls.measure.inprocess import run_baseline
    from tritoncls.runtime import Manifest

    if corpus.labels is None:
        return None
    manifest = Manifest.load(export_dir)
    unknown = unknown_labels(manifest, corpus.labels)
    if unknown:
        log.warning("INT8 is not tried: labels %s of the texts are not the model's labels %s, so accuracy cannot be "
                    "checked", unknown[:5], list(labels)[:5])
        return None
    gold = truth(manifest, corpus.labels)
    name = metric(manifest)
    out: dict[str, Any] = {"texts": len(gold)}
    if manifest.task.multi_label:
        out |= {"task": manifest.task.task, "metric": name}
    answers = {}
    for precision in ("fp32", "int8"):
        _, logits = run_baseline(export_dir, corpus.texts, "onnxruntime", "sorted", precision=precision)
        answers[precision] = inprocess_answers(manifest, logits)
        out[f"{precision}_{name}"] = round(100.0 * score(manifest, gold, answers[precision]), 2)
    out["drop_points"] = round(out[f"fp32_{name}"] - out[f"int8_{name}"], 2)
    if manifest.task.multi_label:
        out["int8_label_set_agreement"] = round(100.0 * agreement(answers["int8"], answers["fp32"]), 2)
    return out


def int8_allowed(accuracy: dict[str, Any] | None, floor_points: float) -> bool:
    """INT8 is a candidate only when its measured accuracy is at most ``floor_points`` below FP32's."""
    return accuracy is not None and accuracy["drop_points"] <= floor_points


# ---------------------------------------------------------------------------------------------
# Measuring one candidate for real
# ---------------------------------------------------------------------------------------------


class Bench:
    """Builds a candidate's repository, serves it and runs perf_analyzer on the user's texts."""

    def __init__(self, config: TuneConfig, export_dir: Path, corpus: Corpus, analyzer, work: Path) -> None:
        from tritoncls.measure.perf_analyzer import text_input_data, write_input_data
        from tritoncls.runtime import TEXT

        self.config, self.export_dir, self.analyzer, self.work = config, export_dir, analyzer, work
        self.inputs = {b: write_input_data(text_input_data(corpus.texts, TEXT, b), work / f"input_b{b}.json")
                       for b in {1, config.batch_size, config.request_texts}}
        self.count = 0

    def measure(self, candidate: Candidate, batched: bool = False, stop_over_budget: bool = True) -> Measured:
        """Single texts at rising concurrency (stopping past the budget), and batched requests if asked."""
        self.count += 1
        folder = self.work / f"{self.count:02d}_{candidate.name}"
        result = Measured(candidate, request_texts=self.config.request_texts)
        try:
            repo = self._build(candidate, folder / "repo")
            self._serve(repo, folder, result, batched, stop_over_budget)
        except USER_ERRORS as exc:
            result.error = str(exc).splitlines()[0][:300]
            log.warning("[%s] %s", candidate.name, result.error)
        finally:
            shutil.rmtree(folder / "repo", ignore_errors=True)  # repositories are big; the logs stay
        return result

    def _build(self, candidate: Candidate, repo: Path) -> Path:
        from tritoncls.measure.served import build

        return build(self.export_dir, repo, name=self.config.name, **candidate.build_options())

    def _serve(self, repo: Path, folder: Path, result: Measured, batched: bool, stop_over_budget: bool) -> None:
        from tritoncls.measure.served import RepoInfo, SweepPoint, measure_point, requests_per_window
        from tritoncls.measure.triton_stats import delta, fetch_statistics, stage_share
        from tritoncls.server import TritonServer

        info = RepoInfo.load(repo)
        sweep = [SweepPoint("ensemble", b, c) for b, c in self.config.sweep(side_by_side=batched)]
        files = {("ensemble", b): path for b, path in self.inputs.items()}
        errors: list[str] = []
        with TritonServer(repo, log_file=folder / "tritonserver.log") as server:
            for point in sweep:
                if (stop_over_budget and point.batch_size == self.config.request_texts
                        and _over_budget(result, self.config.latency_budget_ms)):
                    continue  # more concurrency only adds latency
                before, cpu_before = fetch_statistics(server.grpc_url), _cpu_snapshot(server)
                measured, _ = measure_point(self.analyzer, result.candidate.name, info.ensemble, server.grpc_url,
                                            files, point, folder, requests_per_window(point, 8), 6, 20, errors)
                if measured is None:
                    continue
                stats = delta(fetch_statistics(server.grpc_url), before)
                share = stage_share(stats, info.steps)
                served = stats.get(info.ensemble)
                result.points.append(Point(point.batch_size, point.concurrency, measured.inferences_per_s,
                                           measured.p50_us / 1e3, measured.p99_us / 1e3,
                                           share.texts_per_model_execution,
                                           _cpu_per_text(server, cpu_before, served.inference_count if served else 0)))
        if errors and not result.points:
            result.error = errors[0].splitlines()[0][:300]


def _cpu_snapshot(server) -> tuple[ServerCpu | None, float]:
    """The server's and this process's children's (perf_analyzer's) CPU counters now."""
    return (server_cpu(server.process.pid) if server.process is not None else None), children_cpu_s()


def _cpu_per_text(server, before: tuple[ServerCpu | None, float], texts: int) -> CpuPerText | None:
    """CPU per served text since ``before``: front end, python models, load generator (None off Linux)."""
    after = _cpu_snapshot(server)
    if before[0] is None or after[0] is None:
        return None
    return per_text(after[0].minus(before[0]), after[1] - before[1], texts)


def _over_budget(result: Measured, budget_ms: float) -> bool:
    points = result.workload()
    return bool(points) and points[-1].p99_ms > budget_ms


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def run_tune(config: TuneConfig) -> TuneOutcome:
    """The whole tune run; writes its files into ``config.output``. With ``client_cpus`` perf_analyzer runs on
    those CPUs and everything else (tritonserver, the in-process runs) on the rest."""
    started = time.monotonic()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # tokenizers runs here, then servers fork
    export, corpus, analyzer = check_inputs(config)
    server_cpus = split_cpus(config.client_cpus)
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, server_cpus)  # tritonserver and the in-process runs inherit it
    try:
        return _tune(config, export, corpus, replace(analyzer, cpus=config.client_cpus), started)
    finally:
        os.sched_setaffinity(0, previous)


def split_cpus(client_cpus: Sequence[int]) -> set[int]:
    """The CPUs left to the server when perf_analyzer takes ``client_cpus``; they must be CPUs this process
    may use, and leave at least one."""
    usable = os.sched_getaffinity(0)
    stray = sorted(set(client_cpus) - usable)
    if stray:
        raise TuneError(f"--client_cpus {stray} are not CPUs this process may use (usable: {sorted(usable)})")
    server = usable - set(client_cpus)
    if not server:
        raise TuneError(f"--client_cpus {sorted(client_cpus)} leaves no CPU for tritonserver (usable: {sorted(usable)})")
    return server


def _tune(config: TuneConfig, export, corpus: Corpus, analyzer, started: float) -> TuneOutcome:
    """The search, the side-by-side rounds and the outputs, on the CPUs the server may use."""
    from tqdm import tqdm

    output = config.output_dir
    work = output / "work"
    work.mkdir(parents=True, exist_ok=True)
    machine = measuring_machine(config.client_cpus)
    log.info("tune: %d texts (%.1f tokens each), p99 budget %.0f ms, %.1f min, %d usable cores",
             len(corpus.texts), float(np.mean(corpus.lengths)), config.latency_budget_ms, config.budget_minutes,
             machine["usable_cpus"])
    accuracy = int8_accuracy(export.directory, corpus, export.labels)
    int8_ok = int8_allowed(accuracy, config.accuracy_floor)
    if accuracy is not None:
        name = accuracy.get("metric", "accuracy")
        log.info("INT8 %s %.2f%% vs FP32 %.2f%% (floor: %.2f points): INT8 %s", name, accuracy[f"int8_{name}"],
                 accuracy[f"fp32_{name}"], config.accuracy_floor,
                 "is within the floor" if int8_ok else "is below the floor and is not tried")
    bench = Bench(config, export.directory, corpus, analyzer, work)
    space = Space(cores=machine["usable_cpus"], corpus_buckets=_new_buckets(corpus.buckets, export.max_seq_length),
                  int8=int8_ok, request_texts=config.request_texts)
    bar = tqdm(desc="tune: candidates", unit="candidate", disable=None)

    def progress(done: Measured, best: Measured | None) -> None:
        bar.update(1)
        bar.set_postfix_str(f"{done.candidate.name}: {done.score(config.latency_budget_ms):.0f} texts/s; best "
                            f"{best.candidate.name if best else '-'}")
        log.info("[%s] %s: %.1f texts/s within p99 %.0f ms (%.0f s)%s", done.stage, done.candidate.name,
                 done.score(config.latency_budget_ms), config.latency_budget_ms, done.seconds,
                 f"; error: {done.error}" if done.error else "")

    result = search(bench.measure, space, config.latency_budget_ms, config.budget_minutes * 60 - _elapsed(started),
                    time.monotonic, config.min_gain, _stages(config.stages), progress, config.max_candidates,
                    reserve_candidates=SIDE_BY_SIDE_COST * 2 * config.final_rounds)
    bar.close()
    final, inprocess = side_by_side(bench, result, config, corpus)
    outcome = TuneOutcome(config, machine, corpus.facts(), accuracy, result, final, inprocess,
                          time.monotonic() - started)

    write_outputs(outcome, export.directory)
    return outcome


def _new_buckets(buckets: tuple[int, ...], max_seq_length: int) -> tuple[int, ...]:
    """The corpus buckets, or () when they equal the builder's defaults (nothing new to try)."""
    from tritoncls.builder.config import DEFAULT_BUCKETS
    from tritoncls.builder.plan import clip_buckets

    return () if buckets == clip_buckets(DEFAULT_BUCKETS, max_seq_length) else buckets


def _stages(names: tuple[str, ...] | None):
    from tritoncls.tune.search import STAGES

    if names is None:
        return STAGES
    unknown = sorted(set(names) - {name for name, _ in STAGES})
    if unknown:
        raise TuneError(f"unknown search stages {unknown}; known: {[name for name, _ in STAGES]}")
    return tuple(stage for stage in STAGES if stage[0] in names)


def _elapsed(started: float) -> float:
    return time.monotonic() - started


def side_by_side(bench: Bench, result: SearchResult, config: TuneConfig,
                 corpus: Corpus) -> tuple[dict[str, list[Measured]], dict[str, dict[str, Any]]]:
    """The default and the chosen configuration measured again, alternating, with batched requests too; each
    round ends with the in-process length-sorted rate (FP32, and the chosen precision), so all three see
    the same load."""
    final: dict[str, list[Measured]] = {"default": [], "tuned": []}
    inprocess: dict[str, dict[str, Any]] = {}
    if result.best is None:
        return final, inprocess
    precisions = list(dict.fromkeys(("fp32", result.best.candidate.get("precision"))))
    for round_ in range(config.final_rounds):
        for role, candidate in (("default", Candidate()), ("tuned", result.best.candidate)):
            measured = bench.measure(candidate, batched=True, stop_over_budget=False)
            measured.stage = f"side by side, round {round_ + 1}"
            final[role].append(measured)
            log.info("[side by side %d] %s: %.1f texts/s within p99 %.0f ms", round_ + 1, role,
                     measured.score(config.latency_budget_ms), config.latency_budget_ms)
        for precision in precisions:
            run = inprocess_sorted(bench.export_dir, corpus, precision)
            if run and run["texts_per_s"] > inprocess.get(precision, {}).get("texts_per_s", 0.0):
                inprocess[precision] = run
    return final, inprocess


def inprocess_sorted(export_dir: Path, corpus: Corpus, precision: str = "fp32") -> dict[str, Any] | None:
    """In-process ONNX Runtime, batch 32, length-sorted, all cores: the best an offline job does."""
    from tritoncls.measure.inprocess import run_baseline

    try:
        result, _ = run_baseline(export_dir, corpus.texts, "onnxruntime", "sorted", precision=precision)
    except USER_ERRORS as exc:
        log.warning("in-process baseline (%s) failed: %s", precision, exc)
        return None
    return result.to_dict()


def measuring_machine(client_cpus: Sequence[int] = ()) -> dict[str, Any]:
    """The machine that measures: what tune.json and the report say the options were measured on (the usable
    CPUs are the server's: without those perf_analyzer was pinned to)."""
    from tritoncls.measure.machine import cpu_flags, cpu_model

    return {"cpu": cpu_model(), "cpu_flags": cpu_flags(), "usable_cpus": len(os.sched_getaffinity(0)),
            "usable_cpus_source": "os.sched_getaffinity(0) when tune ran"
                                  + (", without --client_cpus" if client_cpus else ""),
            "client_cpus": sorted(client_cpus) or None,
            "logical_cores": os.cpu_count(), "load_average_1m_at_start": round(os.getloadavg()[0], 2),
            "hostname": os.uname().nodename, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
