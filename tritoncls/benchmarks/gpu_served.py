"""``tritoncls bench-gpu``: the ensemble served with its model step on the GPU, against the
in-process CUDA baseline on the same texts in the same run.

For each precision (FP32, and FP16 with the graph converted at build time) it builds a repository with
``--device gpu`` (the python-backend model step runs ONNX Runtime's CUDA provider, instance kind GPU; the
tokenizer and postprocess stay on the CPU), serves it with the bundled tritonserver and measures:

* requests of 32 texts at a few concurrencies, against in-process ONNX Runtime CUDA at batch 32 on the
  same texts (file order, as the requests come; length-sorted too), tokenization included on both sides;
* single-text requests at high concurrency, with Triton's statistics: texts per model execution and
  each step's share of the server time (where the python tokenizer or postprocess binds, it shows);
* served labels against in-process ONNX Runtime FP32 on the CPU (the reference every path must match):
  the label, or for a multi-label or hierarchical export (its manifest's task) the whole label set.

``device="cpu"`` runs the same flow with CPU repositories (FP32 only): that is what CI checks, on
machines with no GPU. Writes ``gpu_served.json`` and ``gpu_served.md`` into the output folder.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tritoncls.builder.config import INSTANCE_KINDS
from tritoncls.errors import BenchmarkError, ConfigError
from tritoncls.measure.answers import Answer, agreement, inprocess_answers, mask_answers, served_answers
from tritoncls.measure.served import SweepPoint
from tritoncls.measure.texts import read_bench_texts

log = logging.getLogger(__name__)

DEVICES = ("gpu", "cpu")
REPORT_JSON, REPORT_MD = "gpu_served.json", "gpu_served.md"
#: The floor docs/benchmarks.md sets: 32-text requests through the ensemble reach this share of in-process batch 32.
BATCH32_TARGET = 0.5


@dataclass(frozen=True)
class GpuBenchConfig:
    """Options of the served GPU benchmark; the sweeps default to what fills an H200 (``device="cpu"``
    shrinks them to what two CPU cores answer in seconds)."""

    model: str
    input: str
    output: str
    device: str = "gpu"
    precisions: tuple[str, ...] | None = None  # default: fp32 and fp16 on the GPU, fp32 on the CPU
    max_texts: int = 1024
    max_batch_size: int = 256
    # The model step's instance kind; "auto" is KIND_GPU with --device gpu. "cpu" (KIND_CPU) keeps ONNX Runtime's
    # CUDA session and lets scripts/gpu_served.sh rehearse the whole flow on a machine with no GPU visible.
    instance_kind: str = "auto"
    batch32_concurrency: tuple[int, ...] = (1, 2, 4)
    single_concurrency: tuple[int, ...] | None = None  # default: 64..512 on the GPU, 8 on the CPU
    label_texts: int = 512
    min_requests: int = 16
    max_trials: int = 6
    stability_pct: int = 25

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ConfigError(f"--device {self.device!r}: choose one of {', '.join(DEVICES)}.")
        bad = [p for p in self.resolved_precisions if p not in ("fp32", "fp16")]
        if bad or (self.device == "cpu" and "fp16" in self.resolved_precisions):
            raise ConfigError(f"precisions {list(self.resolved_precisions)}: fp32, and fp16 on the GPU only.")
        if self.instance_kind not in INSTANCE_KINDS:  # the builder's, checked before any work
            raise ConfigError(f"--instance_kind {self.instance_kind!r}: choose one of {', '.join(INSTANCE_KINDS)}.")
        if self.max_texts < 32 or self.max_batch_size < 32:
            raise ConfigError("--max_texts and the max batch size must be at least 32 (one request of 32 texts).")

    @property
    def resolved_precisions(self) -> tuple[str, ...]:
        return self.precisions or (("fp32", "fp16") if self.device == "gpu" else ("fp32",))

    @property
    def resolved_single_concurrency(self) -> tuple[int, ...]:
        return self.single_concurrency or ((64, 128, 256, 512) if self.device == "gpu" else (8,))

    def sweep(self) -> tuple[SweepPoint, ...]:
        return (*(SweepPoint("ensemble", 32, c) for c in self.batch32_concurrency),
                *(SweepPoint("ensemble", 1, c) for c in self.resolved_single_concurrency))

    def build_options(self, precision: str) -> dict[str, Any]:
        """build-repo options of the measured repository (BuildConfig fields)."""
        return {"device": self.device, "precision": precision, "max_batch_size": self.max_batch_size,
                "instance_kind": self.instance_kind}


@dataclass
class PrecisionResult:
    precision: str
    inprocess: dict[str, float] = field(default_factory=dict)  # order -> texts/s at batch 32
    served: dict[str, Any] = field(default_factory=dict)
    label_agreement: float | None = None
    inprocess_label_agreement: float | None = None
    errors: list[str] = field(default_factory=list)


def check_device(device: str) -> list[str]:
    """ONNX Runtime's providers here; refuses a GPU run without the CUDA provider (say how to get it)."""
    import onnxruntime as ort

    providers = ort.get_available_providers()
    if device == "gpu" and "CUDAExecutionProvider" not in providers:
        raise BenchmarkError(f"--device gpu: ONNX Runtime here has no CUDA provider (it has {providers}); install "
                             f"onnxruntime-gpu (pip install -e '.[gpu]', or the wheel carried to the GPU machine, "
                             f"see scripts/gpu_served.sh).")
    return providers


def inprocess_rates(export_dir: Path, texts: list[str], device: str, onnx_file: Path | None,
                    repeats: int = 3) -> tuple[dict[str, float], list[Answer]]:
    """Texts/s of in-process ONNX Runtime at batch 32 (tokenization included; best of ``repeats`` after a
    warm-up) in file order and sorted by length, and the answers it gives (labels, or label sets)."""
    from tritoncls.measure.inprocess import best_run
    from tritoncls.runtime import Manifest, Predictor

    rates: dict[str, float] = {}
    for order, sort in (("file", False), ("sorted", True)):
        predictor = Predictor.from_export(export_dir, onnx_file=onnx_file, device=device, batch_size=32,
                                          sort_by_length=sort)
        best, logits = best_run(predictor, texts, repeats)
        rates[order] = len(texts) / best.seconds
    return rates, inprocess_answers(Manifest.load(export_dir), logits)


def reference_answers(export_dir: Path, texts: list[str]) -> list[Answer]:
    """In-process ONNX Runtime FP32 on the CPU: the answers every served and in-process path must give."""
    from tritoncls.runtime import Manifest, Predictor

    result = Predictor.from_export(export_dir, device="cpu").predict_probs(texts)
    return mask_answers(Manifest.load(export_dir), result.mask)


def run_gpu_bench(config: GpuBenchConfig) -> dict[str, Any]:
    """Build, serve and measure each precision; write the JSON and markdown reports; the report dict."""
    from tritoncls.measure.machine import driver_info, machine_info
    from tritoncls.measure.perf_analyzer import PerfAnalyzer
    from tritoncls.runtime import Manifest

    export_dir, output = Path(config.model), Path(config.output)
    Manifest.load(export_dir)  # fail early on a bad export
    providers = check_device(config.device)
    texts = list(read_bench_texts(config.input).texts[:config.max_texts])
    if len(texts) < 32:
        raise ConfigError(f"{config.input}: {len(texts)} texts; the benchmark needs at least 32.")
    analyzer = PerfAnalyzer.find()
    output.mkdir(parents=True, exist_ok=True)
    label_texts = texts[:config.label_texts]
    reference = reference_answers(export_dir, label_texts)
    report: dict[str, Any] = {
        "started": _dt.datetime.now().isoformat(timespec="seconds"), "config": asdict(config),
        "machine": machine_info() | {"onnxruntime_providers": providers, "gpu": driver_info() or None},
        "texts": len(texts), "label_texts": len(label_texts), "precisions": [],
    }
    for precision in config.resolved_precisions:
        result = _measure_precision(config, precision, export_dir, output / "work", texts, label_texts,
                                    reference, analyzer)
        report["precisions"].append(asdict(result))
    write_reports(report, output)
    return report


def _measure_precision(config: GpuBenchConfig, precision: str, export_dir: Path, work: Path, texts: list[str],
                       label_texts: list[str], reference: list[str], analyzer) -> PrecisionResult:
    from tritoncls.common.onnx import float16_onnx
    from tritoncls.measure import served
    from tritoncls.runtime import Manifest, export_tokenizer

    result = PrecisionResult(precision)
    graph = None
    if precision == "fp16":
        graph = float16_onnx(export_dir / Manifest.load(export_dir).onnx.file, work / "model.fp16.onnx")
    result.inprocess, labels = inprocess_rates(export_dir, texts, config.device, graph)
    result.inprocess_label_agreement = agreement(labels[:len(reference)], reference)
    log.info("[%s] in-process %s batch 32: %.0f texts/s (file order), %.0f (sorted)", precision, config.device,
             result.inprocess["file"], result.inprocess["sorted"])
    try:
        repo = served.build(export_dir, work / f"repo_{precision}", **config.build_options(precision))
        rows = export_tokenizer(export_dir, Manifest.load(export_dir)).encode(texts)
        measured, served_labels = served.measure(
            f"{config.device}_{precision}", repo, texts, rows, config.sweep(), work / f"pa_{precision}", analyzer,
            config.min_requests, config.max_trials, config.stability_pct, label_texts)
    except Exception as exc:  # noqa: BLE001 - one precision failing must not lose the other
        log.error("[%s] served measurement failed: %s", precision, exc)
        result.errors.append(f"{type(exc).__name__}: {exc}")
        return result
    result.served = measured.to_dict()
    result.errors += measured.errors
    result.label_agreement = agreement(served_answers(served_labels or []), reference)
    return result


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def batch32_ratio(result: dict[str, Any]) -> float | None:
    """Best served texts/s at 32 texts a request over in-process batch 32 in file order."""
    rates = [p["inferences_per_s"] for p in result.get("served", {}).get("points", []) if p["batch_size"] == 32]
    base = result.get("inprocess", {}).get("file")
    return max(rates) / base if rates and base else None


def write_reports(report: dict[str, Any], output: Path) -> None:
    (output / REPORT_JSON).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (output / REPORT_MD).write_text(markdown(report), encoding="utf-8")


def markdown(report: dict[str, Any]) -> str:
    device = report["config"]["device"]
    machine = report["machine"]
    lines = [f"# The ensemble served on the {device.upper()}", "",
             f"{report['started']}; {_machine_name(machine)}; ONNX Runtime providers "
             f"{', '.join(machine['onnxruntime_providers'])}; {report['texts']} texts "
             f"({report['label_texts']} for labels). Served and in-process in the same run.", "",
             "| precision | in-process b32 texts/s (file / sorted) | served b32 best texts/s | ratio (target "
             f">= {BATCH32_TARGET}) | labels vs CPU FP32: served / in-process |",
             "| --- | --- | --- | --- | --- |"]
    for r in report["precisions"]:
        ratio = batch32_ratio(r)
        best = max((p["inferences_per_s"] for p in r.get("served", {}).get("points", []) if p["batch_size"] == 32),
                   default=None)
        lines.append(f"| {r['precision']} | {_num(r['inprocess'].get('file'))} / {_num(r['inprocess'].get('sorted'))} "
                     f"| {_num(best)} | {'-' if ratio is None else f'{ratio:.2f}'} | {_pct(r['label_agreement'])} / "
                     f"{_pct(r['inprocess_label_agreement'])} |")
    lines += ["", "| precision | batch | concurrency | texts/s | p50 ms | p99 ms | texts/model run | tokenizer | "
              "model | postprocess | queue |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in report["precisions"]:
        for p in r.get("served", {}).get("points", []):
            shares = p["stages"]["shares"]
            lines.append(f"| {r['precision']} | {p['batch_size']} | {p['concurrency']} | {_num(p['inferences_per_s'])} | "
                         f"{p['p50_us'] / 1e3:.1f} | {p['p99_us'] / 1e3:.1f} | "
                         f"{p['stages']['texts_per_model_execution']:.1f} | "
                         + " | ".join(f"{shares.get(s, 0.0):.0%}" for s in ("tokenizer", "model", "postprocess", "queue"))
                         + " |")
    errors = [f"- {r['precision']}: {e}" for r in report["precisions"] for e in r["errors"]]
    if errors:
        lines += ["", "Errors:", *errors]
    return "\n".join(lines) + "\n"


def _machine_name(machine: dict[str, Any]) -> str:
    gpu = machine.get("gpu")
    return f"{gpu['name']} (driver {gpu['driver']}, {gpu['memory']})" if gpu else str(machine.get("cpu"))


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"
