"""``tritoncls bench``: every measurement behind the speed targets (docs/benchmarks.md) in one run, and the report with its targets.

The run, in order (each step's failure is recorded and the run goes on, so a report is always written):

1. the machine: description, versions, and its FP32 and INT8 GEMM limits (every kernel measured, the peaks);
2. the trained export (``--model``): dev score FP32 vs INT8, fused-graph label check, and served
   labels vs in-process labels;
3. per shape (random-weight ERNIE 3.0 medium/mini/nano with the trained export's vocabulary, labels and task):
   in-process baselines, ORT fusions and INT8 in-process, then served measurements with
   perf_analyzer: the default repository (ensemble and model step alone), and on the reference
   shape the reference-style repository and the INT8 repository;
4. optionally, thread/instance settings on the served ensemble;
5. ``report.json``, ``report.md`` and plots in ``--output``.

The task comes from the export's manifest, never from a flag: a multi-label or hierarchical export is
scored by macro-F1 and its served label sets must equal the in-process head's (:mod:`.answers`); a
multi-class one by accuracy and its served labels, as before.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from tritoncls.clients.base import LabelSetPrediction, Prediction
from tritoncls.errors import BenchmarkError, ConfigError, TritonclsError
from tritoncls.measure.answers import (
    agreement,
    inprocess_answers,
    max_probability_diff,
    mean_labels,
    metric,
    score,
    served_answers,
    truth,
)
from tritoncls.measure.flops import EncoderShape, total_flops
from tritoncls.measure.served import SweepPoint, reference_options
from tritoncls.measure.texts import BenchTexts, read_bench_texts
from tritoncls.runtime import Manifest

log = logging.getLogger(__name__)

MODES = ("full", "quick", "tiny")
TRAINED = "trained"  # the --model export itself, as a shape


@dataclass(frozen=True)
class Plan:
    """What one mode measures."""

    shapes: tuple[str, ...]
    max_texts: int | None
    ensemble_sweep: tuple[tuple[int, int], ...]  # (batch size, concurrency)
    model_sweep: tuple[tuple[int, int], ...]
    peer_sweep: tuple[tuple[int, int], ...]  # reference-style and INT8 repositories
    reference_shape: str
    baseline_runtimes: dict[str, tuple[str, ...]]  # shape -> runtimes ("*" for the others)
    settings: tuple[tuple[int, int], ...]  # (instances, intra-op threads) tried beyond the default
    settings_shapes: tuple[str, ...]
    max_trials: int
    stability_pct: int
    min_requests: int  # responses per perf_analyzer window (more at high concurrency)
    repeats: int
    label_check_texts: int  # 0: no served-vs-in-process label check
    variant_checks: bool = True  # ORT fusions and INT8 in-process on the shape
    #: the shape whose served metrics are measured on and off, back to back at the peer sweep (None: not measured)
    metrics_cost_shape: str | None = "nano"
    #: per-shape replacements of the fields above (quick mode keeps the medium shape light)
    shape_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    def for_shape(self, shape: str) -> Plan:
        return replace(self, **self.shape_overrides.get(shape, {}))


PLANS: dict[str, Plan] = {
    "full": Plan(
        shapes=("medium", "mini", "nano"), max_texts=None,
        ensemble_sweep=((1, 1), (1, 8), (1, 32), (8, 1), (8, 4), (32, 1), (32, 2), (32, 4)),
        model_sweep=((1, 32), (32, 1), (32, 2)), peer_sweep=((32, 1), (32, 2), (1, 32)),
        reference_shape="medium",
        baseline_runtimes={"*": ("onnxruntime", "paddle_inference", "paddle_dygraph")},
        settings=((1, 1), (2, 1), (1, 2)), settings_shapes=("nano", "medium"),
        max_trials=10, stability_pct=10, min_requests=12, repeats=2, label_check_texts=2000),
    "quick": Plan(
        shapes=("medium", "nano"), max_texts=256,
        ensemble_sweep=((32, 1), (32, 2), (1, 32)), model_sweep=((32, 1),), peer_sweep=((32, 1), (32, 2)),
        shape_overrides={"medium": {"max_texts": 128, "ensemble_sweep": ((32, 1), (1, 32)), "model_sweep": (),
                                    "variant_checks": False}},
        reference_shape="nano",
        baseline_runtimes={"nano": ("onnxruntime", "paddle_inference", "paddle_dygraph"), "*": ("onnxruntime",)},
        settings=(), settings_shapes=(),
        max_trials=6, stability_pct=25, min_requests=3, repeats=2, label_check_texts=0),
    "tiny": Plan(
        shapes=(TRAINED,), max_texts=64,
        ensemble_sweep=((32, 1), (1, 8)), model_sweep=((8, 1),), peer_sweep=((32, 1),),
        reference_shape=TRAINED,
        baseline_runtimes={"*": ("onnxruntime", "paddle_inference", "paddle_dygraph")},
        settings=(), settings_shapes=(),
        max_trials=5, stability_pct=50, min_requests=8, repeats=1, label_check_texts=64, metrics_cost_shape=None),
}


@dataclass(frozen=True)
class BenchConfig:
    """Options of ``tritoncls bench``; None fields take the mode's plan."""

    model: str
    input: str
    output: str
    mode: str = "full"
    shapes: tuple[str, ...] | None = None
    max_texts: int | None = None
    reference_shape: str | None = None
    work_dir: str | None = None
    instances: int = 1
    intra_op_threads: int = 0
    settings_sweep: bool | None = None
    plots: bool = True

    def __post_init__(self) -> None:
        from tritoncls.measure.variants import SHAPES

        if self.mode not in MODES:
            raise ConfigError(f"bench mode {self.mode!r}: choose one of {', '.join(MODES)}.")
        allowed = (*SHAPES, TRAINED)
        bad = [s for s in self.shapes or () if s not in allowed]
        if bad:
            raise ConfigError(f"--shapes {','.join(bad)}: unknown; choose from {', '.join(allowed)}.")
        if self.reference_shape is not None and self.reference_shape not in allowed:
            raise ConfigError(f"--reference_shape {self.reference_shape!r}: choose from {', '.join(allowed)}.")
        if self.max_texts is not None and self.max_texts < 32:
            raise ConfigError(f"--max_texts {self.max_texts}: use at least 32 (one request of 32 texts).")
        if self.instances < 1 or self.intra_op_threads < 0:
            raise ConfigError("--instances must be >= 1 and --intra_op_threads >= 0.")

    def plan(self) -> Plan:
        plan = PLANS[self.mode]
        shapes = self.shapes or plan.shapes
        reference = self.reference_shape or (plan.reference_shape if plan.reference_shape in shapes else shapes[0])
        settings = plan.settings if self.settings_sweep in (None, True) else ()
        if self.settings_sweep and not settings:
            settings = PLANS["full"].settings
        return replace(plan, shapes=tuple(shapes), reference_shape=reference,
                       max_texts=self.max_texts or plan.max_texts, settings=settings,
                       settings_shapes=tuple(s for s in (plan.settings_shapes or shapes) if s in shapes) or shapes[:1])


@dataclass
class _Run:
    """Mutable state of one run: the measurements dict the report is built from."""

    config: BenchConfig
    plan: Plan
    work: Path
    m: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def step(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one step; a failure is logged, noted in the report and does not stop the run."""
        started = time.perf_counter()
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - one failed measurement must not lose the others
            message = f"{what}: {type(exc).__name__}: {exc}"
            log.error("%s", message)
            if not isinstance(exc, TritonclsError):
                log.error("%s", traceback.format_exc())
            self.failures.append(message)
            self.m.setdefault("notes", []).append(f"FAILED {message.splitlines()[0]}")
            return None
        finally:
            self.m.setdefault("timings_s", {})[what] = round(time.perf_counter() - started, 1)


def run_bench(config: BenchConfig) -> dict[str, Any]:
    """Measure everything the plan asks for and write the report into ``config.output``."""
    from tritoncls.benchmarks.report import write_report
    from tritoncls.measure import inprocess
    from tritoncls.measure.machine import machine_info
    from tritoncls.measure.perf_analyzer import PerfAnalyzer

    plan = config.plan()
    output = Path(config.output)
    work = Path(config.work_dir) if config.work_dir else output / "work"
    work.mkdir(parents=True, exist_ok=True)
    trained = Path(config.model)
    task = Manifest.load(trained).task  # fail early on a bad export; every shape keeps its task
    data = read_bench_texts(config.input)
    texts = data.head(plan.max_texts)
    analyzer = PerfAnalyzer.find()
    run = _Run(config, plan, work)
    started = time.perf_counter()
    run.m.update({
        "mode": config.mode, "started": _dt.datetime.now().isoformat(timespec="seconds"),
        "config": asdict(config), "plan": asdict(plan), "reference_shape": plan.reference_shape,
        "machine": machine_info(), "task": task.task, "shapes": {}, "notes": [],
    })
    log.info("bench (%s, %s export): %d texts from %s, shapes %s", config.mode, task.task, len(texts), data.path,
             ", ".join(plan.shapes))
    run.step("machine limits", lambda: _machine_limits(run))
    run.step("accuracy", lambda: _accuracy(run, trained, data.head(256 if config.mode == "tiny" else None)))
    if TRAINED not in plan.shapes and plan.label_check_texts:
        run.step("served labels", lambda: _served_label_check(run, trained, texts, analyzer))
    for shape in plan.shapes:
        run.step(f"shape {shape}", lambda shape=shape: _measure_shape(run, shape, trained, texts, analyzer))
    if plan.settings:
        run.step("settings", lambda: _settings_sweep(run, trained, texts, analyzer))
    run.m["data"] = {"path": str(data.path), "texts": len(texts), "texts_in_file": len(data),
                     "mean_tokens": float(np.mean([len(r) for r in inprocess.token_rows(trained, texts.texts)]))}
    run.m["duration_s"] = time.perf_counter() - started
    run.m["failures"] = run.failures
    report = write_report(run.m, output, plots=config.plots)
    log.info("report written to %s (%.0f s)", output, run.m["duration_s"])
    return report


# ---------------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------------


def _machine_limits(run: _Run) -> None:
    """The machine's GEMM limits, once per run, before anything is served: the useful-FLOP/s target divides
    by the best FP32 one."""
    from tritoncls.measure.machine import gemm_limits

    limits = gemm_limits()
    run.m["gemm_limits"] = limits.to_dict()
    for precision in (limits.fp32, limits.int8):
        unit = "GFLOP/s" if precision.precision == "fp32" else "GOP/s"
        log.info("%s GEMM limit: %s", precision.precision.upper(), "; ".join(
            f"{r.kernel} {r.gops_per_s:.1f} {unit}" for r in precision.measured) or "none measured")
        for failure in precision.failures:
            run.m["notes"].append(f"GEMM limit not measured: {failure}")


def _shape_export(run: _Run, shape: str, trained: Path) -> Path:
    from tritoncls.measure.variants import shape_export

    return trained if shape == TRAINED else shape_export(shape, trained, run.work)


def _runtimes(plan: Plan, shape: str) -> tuple[str, ...]:
    return plan.baseline_runtimes.get(shape, plan.baseline_runtimes.get("*", ("onnxruntime",)))


def _measure_shape(run: _Run, shape: str, trained: Path, texts: BenchTexts, analyzer) -> None:
    from tritoncls.measure import inprocess

    plan = run.plan.for_shape(shape)
    texts = texts.head(plan.max_texts)
    export_dir = _shape_export(run, shape, trained)
    manifest = Manifest.load(export_dir)
    rows = inprocess.token_rows(export_dir, texts.texts)
    lengths = np.array([len(r) for r in rows])
    arch = manifest.architecture
    flops = total_flops(lengths, EncoderShape.from_architecture(arch))
    entry: dict[str, Any] = {"export": str(export_dir), "architecture": arch, "max_seq_length": manifest.max_seq_length,
                             "task": manifest.task.task, "texts": len(texts),
                             "useful_flops_per_text": flops / len(lengths), "mean_tokens": float(lengths.mean()),
                             "inprocess": [], "served": {}, "skipped": []}
    run.m["shapes"][shape] = entry

    # In-process baselines (no server running).
    logits: dict[tuple[str, str], np.ndarray] = {}
    for runtime in _runtimes(plan, shape):
        for order in ("file", "sorted"):
            result = run.step(f"{shape} in-process {runtime} {order}", lambda runtime=runtime, order=order:
                              inprocess.run_baseline(export_dir, texts.texts, runtime, order, repeats=plan.repeats))
            if result:
                entry["inprocess"].append(result[0].to_dict())
                logits[(runtime, order)] = result[1]
    skipped = [r for r in inprocess.RUNTIMES if r not in _runtimes(plan, shape)]
    if skipped:
        entry["skipped"].append(f"in-process {', '.join(skipped)} (not in the {run.config.mode} plan for this shape)")
    base = next((item for item in entry["inprocess"] if item["runtime"] == "onnxruntime" and item["order"] == "sorted"), None)
    reference_logits = logits.get(("onnxruntime", "sorted"))
    if plan.variant_checks:
        run.step(f"{shape} fusion", lambda: entry.update(fusion=_variant_check(run, "fused", export_dir, texts, base, reference_logits)))
        run.step(f"{shape} int8 in-process", lambda: entry.update(int8=_variant_check(run, "int8", export_dir, texts, base, reference_logits)))
    else:
        entry["skipped"].append(f"ORT fusions and INT8 in-process (not in the {run.config.mode} plan for this shape)")

    # Served.
    sweep = [SweepPoint("ensemble", b, c) for b, c in plan.ensemble_sweep]
    sweep += [SweepPoint("model", b, c) for b, c in plan.model_sweep]
    repo_options = {"instances": run.config.instances, "intra_op_threads": run.config.intra_op_threads}
    label_texts = texts.texts[:plan.label_check_texts] if shape == TRAINED else ()
    served = run.step(f"{shape} served default", lambda: _serve(run, shape, "default", export_dir, texts, rows, sweep,
                                                                 analyzer, repo_options, label_texts))
    run.step(f"{shape} in-process onnxruntime again", lambda: _remeasure(entry, export_dir, texts, plan))
    run.step(f"{shape} model-step profile", lambda: entry.update(op_profile=_op_profile(entry, export_dir, rows, flops)))
    if served and label_texts and reference_logits is not None:
        _record_label_agreement(run, manifest, served[1], reference_logits[:len(label_texts)], texts.head(len(label_texts)))
    if shape == plan.reference_shape:
        peer = [SweepPoint("ensemble", b, c) for b, c in plan.peer_sweep]
        run.step(f"{shape} served reference", lambda: _serve(
            run, shape, "reference", export_dir, texts, rows, peer, analyzer,
            reference_options(export_dir), ()))
        int8_dir = run.work / "exports" / f"{shape}-int8"
        run.step(f"{shape} served int8", lambda: _serve(
            run, shape, "int8", _int8(export_dir, int8_dir), texts, rows, peer, analyzer, repo_options, ()))
    if shape == plan.metrics_cost_shape:
        _metrics_cost(run, shape, export_dir, texts, rows, analyzer, repo_options)


def _metrics_cost(run: _Run, shape: str, export_dir: Path, texts: BenchTexts, rows: Sequence[Sequence[int]],
                  analyzer, repo_options: dict[str, Any]) -> None:
    """The served metrics' cost: the same repository with metrics on and off, measured back to back (twice, in
    alternating order, so a load change on a shared machine does not favour one side) at the peer sweep."""
    peer = [SweepPoint("ensemble", b, c) for b, c in run.plan.peer_sweep]
    for name, metrics in (("metrics_on", True), ("metrics_off", False), ("metrics_off_2", False),
                          ("metrics_on_2", True)):
        run.step(f"{shape} served {name}", lambda name=name, metrics=metrics: _serve(
            run, shape, name, export_dir, texts, rows, peer, analyzer, repo_options | {"metrics": metrics}, ()))


def _op_profile(entry: dict[str, Any], export_dir: Path, rows: Sequence[Sequence[int]], useful_flops: float
                ) -> dict[str, Any]:
    """ONNX Runtime's per-operator profile of the export on the bench texts, in batches of the served single-text
    point's mean texts per model execution (32 where it was not measured): where the model step's time goes."""
    from tritoncls.measure.op_profile import profile_export

    points = [p for p in (entry["served"].get("default") or {}).get("points", [])
              if p["target"] == "ensemble" and p["batch_size"] == 1]
    single = max(points, key=lambda p: p["concurrency"]) if points else None
    per_run = (single or {}).get("stages", {}).get("texts_per_model_execution")
    batch = max(1, round(per_run)) if per_run else 32
    return profile_export(export_dir, rows, batch, useful_flops).to_dict()


def _remeasure(entry: dict[str, Any], export_dir: Path, texts: BenchTexts, plan: Plan) -> None:
    """ONNX Runtime in-process again, after the served runs, keeping the faster pass.

    The targets divide served rates by these; on a shared machine a load spike during the one
    in-process pass would otherwise inflate every ratio. Both passes are kept in the report.
    """
    from tritoncls.measure import inprocess

    for item in entry["inprocess"]:
        if item["runtime"] != "onnxruntime" or item["precision"] != "fp32":
            continue
        again = inprocess.run_baseline(export_dir, texts.texts, "onnxruntime", item["order"], repeats=plan.repeats)[0]
        item["texts_per_s_passes"] = [item["texts_per_s"], again.texts_per_s]
        if again.texts_per_s > item["texts_per_s"]:
            item.update(again.to_dict() | {"texts_per_s_passes": item["texts_per_s_passes"]})


def _int8(export_dir: Path, target: Path) -> Path:
    from tritoncls.measure.variants import int8_export

    return int8_export(export_dir, target)


def _serve(run: _Run, shape: str, name: str, export_dir: Path, texts: BenchTexts, rows: Sequence[Sequence[int]],
           sweep: Sequence[SweepPoint], analyzer,
           options: dict[str, Any], label_texts: Sequence[str]):
    from tritoncls.measure import served

    workdir = run.work / "served" / f"{shape}-{name}"
    repo = served.build(export_dir, workdir / "repository", **options)
    result, labels = served.measure(f"{shape}/{name}", repo, texts.texts, rows, sweep, workdir / "perf", analyzer,
                                    run.plan.min_requests, run.plan.max_trials, run.plan.stability_pct, label_texts)
    run.m["shapes"][shape]["served"][name] = result.to_dict() | {"full_width": result.build_config.get("trim_padding") is False}
    if result.errors:
        run.failures += [f"{shape}/{name}: {e.splitlines()[0]}" for e in result.errors]
    return result, labels


def _variant_check(run: _Run, variant: str, export_dir: Path, texts: BenchTexts, base: dict[str, Any] | None,
                   reference: np.ndarray | None) -> dict[str, Any]:
    """A fused or INT8 graph in-process: speed (sorted, batch 32) and agreement with FP32."""
    from tritoncls.measure import inprocess
    from tritoncls.measure.variants import fused_export, int8_export

    target = run.work / "exports" / f"{export_dir.name}-{variant}"
    derived = (fused_export if variant == "fused" else int8_export)(export_dir, target)
    result, logits = inprocess.run_baseline(derived, texts.texts, "onnxruntime", "sorted", repeats=run.plan.repeats)
    out: dict[str, Any] = {"export": str(derived), "texts_per_s": result.texts_per_s,
                           "baseline_texts_per_s": base["texts_per_s"] if base else None}
    out["speedup"] = out["texts_per_s"] / out["baseline_texts_per_s"] if out["baseline_texts_per_s"] else None
    if reference is not None:
        manifest = Manifest.load(export_dir)
        out["label_agreement"] = agreement(inprocess_answers(manifest, logits), inprocess_answers(manifest, reference))
        out["max_abs_diff"] = float(np.abs(logits - reference).max())
    variant = Manifest.load(derived).variant or {}
    out["fused_operators"] = variant.get("fused_operators")
    return out


def _accuracy(run: _Run, trained: Path, data: BenchTexts) -> None:
    """Dev score of the trained export, FP32 vs INT8 (and the fused graph), in-process ORT: accuracy for a
    multi-class export, macro-F1 of the label sets for a multi-label or hierarchical one (the manifest's task)."""
    from tritoncls.measure import inprocess
    from tritoncls.measure.variants import fused_export

    manifest = Manifest.load(trained)
    gold = truth(manifest, data.labels)
    if gold is None:
        run.m["accuracy"] = {"note": f"{data.path} has no labels from the export's label set: accuracy not measured."}
        return
    acc: dict[str, Any] = {"texts": len(data), "note": f"{trained} on {data.path} (in-process ONNX Runtime)"}
    if manifest.task.multi_label:
        acc |= {"task": manifest.task.task, "metric": metric(manifest)}
    graphs = {"fp32": trained, "int8": _int8(trained, run.work / "exports" / "trained-int8"),
              "fused": fused_export(trained, run.work / "exports" / "trained-fused")}
    answers = {name: inprocess_answers(manifest, inprocess.run_baseline(export, data.texts, "onnxruntime", "sorted")[1])
               for name, export in graphs.items()}
    for name in graphs:
        acc[name] = score(manifest, gold, answers[name])
    acc["int8_label_agreement"] = agreement(answers["int8"], answers["fp32"])
    acc["fused_label_agreement"] = agreement(answers["fused"], answers["fp32"])
    run.m["accuracy"] = acc
    log.info("dev %s: FP32 %.4f, INT8 %.4f, fused %.4f", metric(manifest), acc["fp32"], acc["int8"], acc["fused"])


def _served_label_check(run: _Run, trained: Path, texts: BenchTexts, analyzer) -> None:
    """Serve the trained export (default profile) and compare its answers with in-process ORT."""
    from tritoncls.measure import inprocess, served

    check = texts.head(run.plan.label_check_texts)
    workdir = run.work / "served" / "trained-labels"
    repo = served.build(trained, workdir / "repository")
    _, predictions = served.measure("trained/labels", repo, check.texts, [], [], workdir / "perf", analyzer,
                                    label_texts=check.texts)
    logits = inprocess.run_baseline(trained, check.texts, "onnxruntime", "sorted")[1]
    _record_label_agreement(run, Manifest.load(trained), predictions or [], logits, check)


def _record_label_agreement(run: _Run, manifest: Manifest, predictions: Sequence[Prediction | LabelSetPrediction],
                            logits: np.ndarray, texts: BenchTexts) -> None:
    """Served answers vs the in-process head's on the same texts: the label (multi-class) or the whole label
    set (multi-label, hierarchical) must be equal; and the task's score of the served answers where the texts
    carry the export's labels."""
    served = served_answers(predictions)
    local = inprocess_answers(manifest, logits)
    agree = agreement(served, local)
    check: dict[str, Any] = {"texts": len(served), "agreement_with_inprocess": agree}
    gold = truth(manifest, texts.labels)
    if gold is not None and served:
        check[f"served_{metric(manifest)}"] = score(manifest, gold, served)
    if manifest.task.multi_label:
        probs = manifest.head().probabilities(logits)
        check |= {"task": manifest.task.task, "metric": metric(manifest),
                  "max_probability_diff": max_probability_diff(manifest, predictions, probs),
                  "labels_per_text": {"served": mean_labels(served), "inprocess": mean_labels(local)}}
    run.m["served_label_check"] = check
    what = "label sets" if manifest.task.multi_label else "labels"
    log.info("served %s agree with in-process ONNX Runtime on %.2f%% of %d texts", what, agree * 100,
             len(served))
    if agree < 0.999:
        run.failures.append(f"served {what} differ from in-process {what} on {(1 - agree) * 100:.2f}% of texts")


def _settings_sweep(run: _Run, trained: Path, texts: BenchTexts, analyzer) -> None:
    """Instances x intra-op threads of the model step, on the served ensemble; the default row comes from
    the shape's main measurement."""
    from tritoncls.measure import inprocess

    plan = run.plan
    rows_out = []
    sweep = [SweepPoint("ensemble", 1, 32), SweepPoint("ensemble", 32, 2)]
    for shape in plan.settings_shapes:
        entry = run.m["shapes"].get(shape)
        if not entry:
            continue
        export_dir = Path(entry["export"])
        rows = inprocess.token_rows(export_dir, texts.texts)
        rows_out.append(_settings_row(run.m, shape, "default", run.config.instances, run.config.intra_op_threads))
        for instances, threads in plan.settings:
            row = _settings_point(run, shape, export_dir, texts, rows, sweep, analyzer, instances, threads)
            if row:
                rows_out.append(row)
    best = {}
    for row in rows_out:
        key = row["shape"]
        if row.get("single_c32") and (key not in best or row["single_c32"] > best[key]["single_c32"]):
            best[key] = row
    run.m["settings"] = {
        "note": "Model-step instances x ONNX Runtime intra-op threads (0 = ORT's default, one per core); "
                "single-text requests at concurrency 32 and 32 texts per request.",
        "rows": rows_out,
        "chosen": "; ".join(f"{k}: {v['instances']} instance(s), intra-op threads {v['intra_op_threads']}" for k, v in best.items()),
    }


def _settings_point(run: _Run, shape: str, export_dir: Path, texts: BenchTexts, rows, sweep, analyzer,
                    instances: int, threads: int) -> dict[str, Any] | None:
    name = f"i{instances}t{threads}"
    done = run.step(f"{shape} settings {name}", lambda: _serve(
        run, shape, name, export_dir, texts, rows, sweep, analyzer,
        {"instances": instances, "intra_op_threads": threads}, ()))
    return _settings_row(run.m, shape, name, instances, threads) if done else None


def _settings_row(m: dict[str, Any], shape: str, name: str, instances: int, threads: int) -> dict[str, Any]:
    from tritoncls.benchmarks.report import best_point, served_points

    single = [p for p in served_points(m, shape, name, "ensemble", 1) if p["concurrency"] == 32]
    batch = best_point(served_points(m, shape, name, "ensemble", 32))
    return {"shape": shape, "config": name, "instances": instances, "intra_op_threads": threads,
            "single_c32": single[0]["inferences_per_s"] if single else None,
            "batch32_best": batch["inferences_per_s"] if batch else None}


def report_summary(report: dict[str, Any]) -> str:
    """The targets table, where the time per text goes at the useful-FLOP/s target, the served-vs-in-process check
    and each step's share of server compute, for the CLI."""
    from tritoncls.benchmarks.report import flops_breakdown_lines, served_check_line, step_compute_lines, targets_table

    lines = targets_table(report.get("targets", []))
    breakdown = flops_breakdown_lines(report.get("flops_breakdown"))
    if breakdown:
        lines += ["", "Where the time per text goes at the useful-FLOP/s target's point:", *breakdown[:-1]]
    check = served_check_line(report.get("served_label_check"))
    if check:
        lines += ["", check]
    if report.get("step_compute"):
        lines += ["", "Server compute time by step (queue excluded):", *step_compute_lines(report["step_compute"])]
    return "\n".join(lines)


__all__ = ["BenchConfig", "BenchmarkError", "PLANS", "run_bench"]
