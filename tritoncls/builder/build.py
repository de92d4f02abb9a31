"""``build_repository``: export directory in, validated self-contained Triton model repository out.

Layout written (default names)::

    REPO/
      tritoncls_build.json        what was built, from what, with which options (marks a tritoncls repository)
      README.md                   how to serve and query it
      seqcls/1/                   ensemble: text -> label, confidence [, top_k_labels, top_k_probs]
      seqcls/config.pbtxt
      tokenizer/1/{model.py, tritoncls_runtime/, vocab.txt, tokenizer_config.json, ...}
      seqcls_model/1/{model.py, tritoncls_runtime/, model.onnx}     (--backend python)
      seqcls_postprocess/1/{model.py, tritoncls_runtime/, label.txt}

The repository is rendered into a temporary folder beside REPO, validated, and only then moved
into place, so a failed build never leaves a half-written repository behind.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from tritoncls import __version__
from tritoncls import runtime as rt
from tritoncls.builder.config import BuildConfig
from tritoncls.builder.options import provenance
from tritoncls.builder.plan import (
    ONNX_FILE,
    VERSION,
    ExportInfo,
    ModelDir,
    RepositoryPlan,
    low_confidence,
    plan_repository,
)
from tritoncls.builder.render import PYTHON_MODELS_DIR, Renderer
from tritoncls.builder.validate import CONFIG, validate_repository
from tritoncls.common.files import check_replaceable, stage_folder
from tritoncls.common.onnx import (
    CalibrationTexts,
    TextCalibrationReader,
    float16_onnx,
    int8_record,
    quantize_int8,
    quantize_int8_static,
)
from tritoncls.errors import BuildError, DataError

log = logging.getLogger(__name__)

MARKER = rt.contract.REPOSITORY_MARKER
REFERENCE = rt.metrics.REPOSITORY_REFERENCE_FILE  # the export's reference distribution, for monitor and deploy
MARKER_FORMAT = rt.contract.REPOSITORY_FORMAT


def build_repository(config: BuildConfig, renderer: Renderer | None = None) -> Path:
    """Render, validate and move into place the repository ``config`` describes; returns its path."""
    export = ExportInfo.load(config.model, "onnx" if config.resolved().onnx_model_step else "paddle")
    plan = plan_repository(config, export)
    target = Path(config.output)
    check_not_over_export(target, export.directory)
    check_target(target, config.force)
    calibration = calibration_texts(plan.config.resolved())

    def fill(staging: Path) -> None:
        write_repository(plan, staging, renderer or Renderer(), calibration)
        validate_repository(staging, export.manifest.paddle)

    stage_folder(target, fill, "building")
    _warn_about(plan)
    log.info("Built Triton model repository %s (ensemble %r, model step backend %s)",
             target, plan.names.ensemble, plan.config.backend)
    return target


def check_not_over_export(target: Path, export_dir: Path) -> None:
    """Refuse an --output that is the export or holds it: replacing it would delete what it is built from."""
    output, source = target.resolve(), export_dir.resolve()
    if output == source or output in source.parents:
        raise BuildError(f"--output {target} {'is' if output == source else 'holds'} the export {export_dir} "
                         f"(--model); writing the repository there would delete it. Choose another --output.")


def check_target(target: Path, force: bool) -> None:
    """Refuse to touch an existing output unless --force, and never replace a non-repository."""
    check_replaceable(target, MARKER, force, BuildError, not_ours="is not a tritoncls repository",
                      existing="a model repository")


def calibration_texts(config: BuildConfig) -> CalibrationTexts | None:
    """The texts a static INT8 build calibrates on, read before anything is rendered; None for other builds."""
    if config.int8_mode != "static" or config.calibration_data is None:
        return None
    try:
        return CalibrationTexts.read(config.calibration_data, config.calibration_texts)
    except DataError as exc:
        raise BuildError(f"--calibration_data {exc}") from None


def write_repository(plan: RepositoryPlan, root: Path, renderer: Renderer,
                     calibration: CalibrationTexts | None = None) -> None:
    for model in plan.models:
        _write_model(model, root, renderer, plan, calibration)
    record = build_record(plan, calibration)
    (root / MARKER).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if plan.export.reference is not None:
        shutil.copy2(plan.export.path(plan.export.manifest.reference_file), root / REFERENCE)
    (root / "README.md").write_text(renderer.render("README.md.j2", plan=plan, marker=MARKER), encoding="utf-8")


def _write_model(model: ModelDir, root: Path, renderer: Renderer, plan: RepositoryPlan,
                 calibration: CalibrationTexts | None) -> None:
    folder = root / model.spec.name
    version_dir = folder / VERSION
    version_dir.mkdir(parents=True)
    (folder / CONFIG).write_text(renderer.render(model.spec.template, spec=model.spec), encoding="utf-8")
    for source, name in model.files:
        if model.quantize and name == ONNX_FILE:
            _quantize(source, version_dir / name, model.spec.name, plan.export, calibration)
        elif model.fp16 and name == ONNX_FILE:
            log.info("Converting %s to FP16 (FP32 inputs and outputs kept) for %s", source, model.spec.name)
            float16_onnx(source, version_dir / name)
        else:
            shutil.copy2(source, version_dir / name)
    if model.python_model:
        shutil.copy2(PYTHON_MODELS_DIR / model.python_model, version_dir / "model.py")
        copy_runtime(version_dir)


def _quantize(source: Path, target: Path, model: str, export: ExportInfo, calibration: CalibrationTexts | None) -> None:
    """The repository's INT8 graph: static quantization calibrated on ``calibration``'s texts, else dynamic."""
    if calibration is None:
        log.info("Quantizing %s to INT8 (ONNX Runtime dynamic quantization) for %s", source, model)
        quantize_int8(source, target)
        return
    log.info("Quantizing %s to INT8 (ONNX Runtime static quantization, %d calibration texts from %s) for %s",
             source, len(calibration.texts), calibration.path, model)
    quantize_int8_static(source, target, TextCalibrationReader(calibration.texts, export.directory, export.manifest))


def copy_runtime(folder: Path) -> Path:
    """Copy the runtime package whole into ``folder`` as ``tritoncls_runtime/`` (python models import it)."""
    source = Path(rt.__file__).parent
    return Path(shutil.copytree(source, folder / rt.RUNTIME_PACKAGE, ignore=shutil.ignore_patterns("__pycache__")))


def build_record(plan: RepositoryPlan, calibration: CalibrationTexts | None = None) -> dict[str, Any]:
    """The marker file: the resolved options, how the graph was quantized, and where the model came from."""
    manifest = plan.export.manifest
    config = plan.config.resolved()
    return {
        "format": MARKER_FORMAT,
        "format_version": 1,
        "tritoncls": __version__,
        "build_config": config.to_dict(),
        "models": {"ensemble": plan.names.ensemble, "tokenizer": plan.names.tokenizer,
                   "model": plan.names.model, "postprocess": plan.names.postprocess},
        "buckets": list(plan.buckets),
        "layout": plan.config.layout,
        "build_machine": {"usable_cpus": len(os.sched_getaffinity(0)),
                          "note": "os.sched_getaffinity at build time, recorded only: no option is derived from it "
                                  "(intra_op_threads 0 gives ONNX Runtime one thread per physical core the serving process may run on)"},
        "options_file": provenance(plan.config),
        "metrics": _metrics_record(plan),
        "quantization": int8_record(config.int8_mode, calibration) if config.precision == "int8" else None,
        "export": {"directory": str(plan.export.directory.resolve()), "labels": list(plan.export.labels),
                   "max_seq_length": plan.export.max_seq_length, "versions": manifest.versions},
    }


def _metrics_record(plan: RepositoryPlan) -> dict[str, Any]:
    """What the served metrics are: on or off, the low-confidence threshold, the reference file."""
    config = plan.config.resolved()
    if not config.metrics:
        return {"enabled": False}
    return {"enabled": True, "model": config.name, "low_confidence": low_confidence(config, plan.export),
            "reference_file": REFERENCE if plan.export.reference is not None else None}


def _warn_about(plan: RepositoryPlan) -> None:
    if plan.config.backend == "paddle":
        log.warning(
            "--backend paddle: the model step holds a Paddle 3 (PIR) program as model.json + model.pdiparams. "
            "Triton's paddlepaddle_backend as released loads Paddle 2 programs (model.pdmodel); serve this "
            "repository with a Paddle 3 build of that backend, or use --backend python --runtime paddle_inference.")
    if plan.config.backend != "python":
        log.info("The %s backend is not bundled with nvidia-pytriton's tritonserver; serve this repository "
                 "in NVIDIA's Triton container (see docs/serving.md).", plan.config.backend)
