#!/usr/bin/env python3
"""GPU check: ONNX Runtime CUDA FP32/FP16 and TensorRT-EP variants of an export, on real texts.

Self-contained: it needs an export directory (``model.onnx``, ``manifest.json``, ``vocab.txt``) and a
text file, plus ``numpy``, ``onnx``, ``tokenizers`` and ``onnxruntime-gpu``. It tokenizes, pads
and runs with the tritoncls runtime (the serving tokenizer and the one inference loop), imported as
``tritoncls_runtime`` from beside it or from an installed tritoncls. To carry it to a GPU machine::

    python scripts/gpu_check.py --bundle gpu_bundle        # the script + tritoncls_runtime/
    python gpu_bundle/gpu_check.py --model EXPORT_DIR --input dev.txt --output gpu_check.json

Every variant classifies the same texts in batches of 32 (dynamic padding, file order and sorted by
length); labels are compared with ONNX Runtime FP32 on the CPU. A variant that cannot run (no
TensorRT libraries, say) is reported with its error and the others go on. Without a GPU it exits
with code 2 and says so; with a CPU-only onnxruntime, code 3.

Options for boxes without onnxruntime-gpu: ``--install_venv DIR`` makes a venv (system site packages
visible), pip-installs ``onnxruntime-gpu`` (or ``--wheel FILE``) into it and re-runs itself there.

Large exports can travel as a skeleton: ``--strip_to DIR`` (run anywhere) copies an export with the
big weight matrices removed; the check refills them with seeded random values (speed does not depend
on weight values; labels of such a model are compared like any other).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

STRIPPED_KEY = "tritoncls_stripped_initializers"
STRIP_MIN_ELEMENTS = 4096
VARIANTS = ("cpu_fp32", "cuda_fp32", "cuda_fp16", "cuda_fp16_fused", "tensorrt_fp32", "tensorrt_fp16")
TENSORRT_LIBRARY = "libnvinfer.so.10"
EXIT_NO_GPU = 2
EXIT_NO_CUDA_EP = 3


class CheckError(Exception):
    """A reason this check cannot run at all (as opposed to one variant failing)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------------------------


def gpu_devices() -> list[str]:
    """Names of the NVIDIA GPUs ``nvidia-smi -L`` lists; [] when there is none (or no driver)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.startswith("GPU ")] if out.returncode == 0 else []


def driver_info() -> dict[str, str]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return {}
    try:
        out = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30).stdout.strip().splitlines()
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if not out:
        return {}
    name, driver, memory = (part.strip() for part in (out[0].split(",") + ["", "", ""])[:3])
    return {"name": name, "driver": driver, "memory": memory}


def preload_cuda_libraries(ort) -> list[str]:
    """Load CUDA/cuDNN libraries from pip's nvidia-* packages (or torch) so the CUDA EP finds them."""
    done = []
    if hasattr(ort, "preload_dlls"):
        try:
            ort.preload_dlls()
            done.append("onnxruntime.preload_dlls")
        except Exception as exc:  # noqa: BLE001 - best effort
            done.append(f"onnxruntime.preload_dlls failed: {exc}")
    try:
        import torch  # noqa: F401 - importing it loads its CUDA libraries into the process

        done.append("torch")
    except ImportError:
        pass
    return done


def install_venv(directory: Path, wheel: str | None) -> Path:
    """A venv at ``directory`` that sees the system packages, with onnxruntime-gpu installed; its python."""
    python = directory / "bin" / "python"
    if not python.is_file():
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(directory)], check=True)
    package = wheel or "onnxruntime-gpu"
    subprocess.run([str(python), "-m", "pip", "install", "-q", package, "tokenizers", "onnx"], check=True)
    return python


# ---------------------------------------------------------------------------------------------
# The export and its texts
# ---------------------------------------------------------------------------------------------


def read_texts(path: Path, limit: int | None) -> list[str]:
    texts = []
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        text = line.split("\t", 1)[0]
        if text.strip():
            texts.append(text)
    if not texts:
        raise CheckError(f"{path}: no texts found")
    return texts[:limit] if limit else texts


def runtime():
    """The tritoncls runtime: the copy beside this script (``--bundle``), else the installed package.

    No fallback to another tokenizer: that would give other ids and make the check measure another thing.
    """
    try:
        import tritoncls_runtime as rt  # copied beside this script by --bundle
    except ImportError:
        try:
            from tritoncls import runtime as rt
        except ImportError:
            raise CheckError("the tritoncls runtime is not importable: run this check from a folder made by "
                             "`gpu_check.py --bundle DIR` (it holds tritoncls_runtime/), or with tritoncls "
                             "installed.") from None
    return rt


def bundle(target: Path) -> Path:
    """Copy this script and the runtime package (as ``tritoncls_runtime/``) into ``target``: a folder
    that runs the check on a machine without tritoncls."""
    rt = runtime()
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(Path(__file__), target / Path(__file__).name)
    package = target / rt.RUNTIME_PACKAGE
    if package.exists():
        shutil.rmtree(package)
    shutil.copytree(Path(rt.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    return target


class SessionRunner:
    """An ONNX Runtime session of a variant behind the runtime's ``run(ids, types)`` interface."""

    def __init__(self, session, input_names: tuple[str, ...], output_name: str) -> None:
        self.session, self.input_names, self.output_name = session, input_names, output_name

    def run(self, input_ids: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], dict(zip(self.input_names, (input_ids, token_type_ids))))[0]


# ---------------------------------------------------------------------------------------------
# Graph variants
# ---------------------------------------------------------------------------------------------


def strip_export(export: Path, target: Path) -> Path:
    """Copy ``export`` to ``target`` with every large float weight's data removed (names kept in metadata)."""
    import onnx

    target.mkdir(parents=True, exist_ok=True)
    onnx_name = runtime().Manifest.load(export).onnx.file
    for item in export.iterdir():
        if item.is_file() and item.suffix not in (".onnx", ".pdiparams") and not item.name.endswith(".pdmodel"):
            shutil.copy2(item, target / item.name)
    model = onnx.load(str(export / onnx_name))
    stripped = []
    for init in model.graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT and len(init.dims) >= 2 and int(np.prod(init.dims)) >= STRIP_MIN_ELEMENTS:
            init.ClearField("raw_data")
            init.ClearField("float_data")
            stripped.append(init.name)
    entry = model.metadata_props.add()
    entry.key, entry.value = STRIPPED_KEY, json.dumps(stripped)
    onnx.save(model, str(target / onnx_name))
    return target


def refill_export(skeleton: Path, target: Path, seed: int = 0) -> Path:
    """A servable export at ``target`` from a skeleton: its ONNX graph refilled (see :func:`load_model`), the
    other files copied; no Paddle graph (``build-repo`` builds ONNX model steps without one)."""
    import onnx

    target.mkdir(parents=True, exist_ok=True)
    onnx_name = runtime().Manifest.load(skeleton).onnx.file
    for item in skeleton.iterdir():
        if item.is_file() and item.name != onnx_name:
            shutil.copy2(item, target / item.name)
    onnx.save(load_model(skeleton / onnx_name, seed)[0], str(target / onnx_name))
    return target


def load_model(path: Path, seed: int = 0):
    """The ONNX model at ``path``; stripped weights are refilled with N(0, 0.02) values from ``seed``."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    names = set(json.loads(meta.get(STRIPPED_KEY, "[]")))
    if names:
        rng = np.random.default_rng(seed)
        for i, init in enumerate(model.graph.initializer):
            if init.name in names:
                values = (rng.standard_normal(tuple(init.dims), dtype=np.float32) * 0.02).astype(np.float32)
                model.graph.initializer[i].CopyFrom(numpy_helper.from_array(values, init.name))
    return model, bool(names)


def to_fp16(model, fused: bool, arch: dict[str, Any]):
    """FP16 weights and compute with FP32 inputs/outputs kept; optionally ORT's BERT fusions first."""
    if fused:
        from onnxruntime.transformers.optimizer import optimize_model

        optimized = optimize_model(model, model_type="bert", num_heads=int(arch["num_attention_heads"]),
                                   hidden_size=int(arch["hidden_size"]), opt_level=0, use_gpu=True)
        optimized.convert_float_to_float16(keep_io_types=True)
        return optimized.model, {k: int(v) for k, v in optimized.get_fused_operator_statistics().items() if v}
    from onnxruntime.transformers.float16 import convert_float_to_float16

    return convert_float_to_float16(model, keep_io_types=True), {}


def session_for(variant: str, model_bytes: bytes, threads: int, max_len: int, cache_dir: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if variant == "cpu_fp32":
        options.intra_op_num_threads = threads
        providers: list[Any] = ["CPUExecutionProvider"]
    elif variant.startswith("cuda"):
        providers = [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]
    else:
        shapes = {
            "trt_profile_min_shapes": "input_ids:1x1,token_type_ids:1x1",
            "trt_profile_opt_shapes": "input_ids:32x32,token_type_ids:32x32",
            "trt_profile_max_shapes": f"input_ids:32x{max_len},token_type_ids:32x{max_len}",
        }
        trt = {"device_id": 0, "trt_fp16_enable": variant.endswith("fp16"), "trt_engine_cache_enable": True,
               "trt_engine_cache_path": str(cache_dir), **shapes}
        providers = [("TensorrtExecutionProvider", trt), ("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]
    session = ort.InferenceSession(model_bytes, options, providers=providers)
    wanted = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}.get(variant.split("_")[0])
    if wanted and wanted not in session.get_providers():
        hint = _missing_library(TENSORRT_LIBRARY) if wanted == "TensorrtExecutionProvider" else None
        raise RuntimeError(f"{wanted} did not load (session providers: {session.get_providers()}); "
                           + (hint or "see onnxruntime's log above for the missing library"))
    return session


def _missing_library(name: str) -> str | None:
    """Why ``name`` cannot be loaded, or None when it can."""
    import ctypes

    try:
        ctypes.CDLL(name)
    except OSError as exc:
        return f"{name} cannot be loaded ({exc}): install TensorRT 10 (pip tensorrt-cu13 or NVIDIA's container)"
    return None


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------


def check_export(export: Path, texts: list[str], variants: list[str], batch_size: int, repeats: int,
                 deadline: float, cache_dir: Path) -> dict[str, Any]:
    import onnx

    rt = runtime()
    manifest = rt.Manifest.load(export)
    encoded = rt.export_tokenizer(export, manifest).encode(texts)
    pad_id = manifest.tokenizer.pad_token_id
    graph = manifest.onnx
    arch = manifest.architecture
    base_model, refilled = load_model(export / graph.file)
    result: dict[str, Any] = {"export": str(export), "architecture": arch, "texts": len(texts),
                              "mean_tokens": float(np.mean([len(r) for r in encoded])),
                              "tokenizer": "tritoncls runtime WordPieceTokenizer",
                              "random_weights_refilled": refilled, "variants": {}}
    reference: np.ndarray | None = None
    for variant in variants:
        if time.monotonic() > deadline:
            result["variants"][variant] = {"ok": False, "error": "skipped: the time budget (--time_budget_s) ran out"}
            continue
        entry: dict[str, Any] = {"ok": False}
        result["variants"][variant] = entry
        try:
            started = time.perf_counter()
            model, fused = base_model, {}
            if "fp16" in variant and not variant.startswith("tensorrt"):
                model, fused = to_fp16(onnx.load_from_string(base_model.SerializeToString()), "fused" in variant, arch)
            session = session_for(variant, model.SerializeToString(), os.cpu_count() or 1,
                                  manifest.max_seq_length, cache_dir / export.name / variant)
            entry["providers"] = session.get_providers()
            entry["fused_operators"] = fused
            runner = SessionRunner(session, graph.input_names, graph.output_name)
            rt.run_batched(encoded[:batch_size * 2], runner, pad_id, batch_size)
            entry["session_and_warmup_s"] = time.perf_counter() - started
            for order in ("sorted", "file"):
                best, logits = float("inf"), None
                for _ in range(max(1, repeats)):
                    run = rt.run_batched(encoded, runner, pad_id, batch_size, sort=order == "sorted")
                    best, logits = min(best, run.seconds), run.logits
                entry[f"texts_per_s_{order}"] = len(texts) / best
                entry[f"ms_per_batch_{order}"] = 1000 * best / -(-len(texts) // batch_size)
                if order == "sorted":
                    sorted_logits = logits
            if variant == "cpu_fp32":
                reference = sorted_logits
            if reference is not None:
                entry["label_agreement_vs_cpu_fp32"] = float((sorted_logits.argmax(-1) == reference.argmax(-1)).mean())
                entry["max_abs_prob_diff_vs_cpu_fp32"] = float(np.abs(rt.softmax(sorted_logits) - rt.softmax(reference)).max())
            entry["ok"] = True
        except Exception as exc:  # noqa: BLE001 - one variant failing must not stop the others
            entry["error"] = f"{type(exc).__name__}: {str(exc).strip()[:800]}"
        print(f"[gpu_check] {export.name} {variant}: " + (
            f"{entry.get('texts_per_s_sorted', 0):.0f} texts/s sorted, {entry.get('texts_per_s_file', 0):.0f} file order, "
            f"labels {entry.get('label_agreement_vs_cpu_fp32', float('nan')) * 100:.2f}% vs CPU FP32"
            if entry["ok"] else entry["error"]), flush=True)
    return result


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("onnxruntime-gpu", "onnxruntime", "onnx", "numpy", "tokenizers", "tensorrt", "torch"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=[], help="export directory (repeat for several)")
    parser.add_argument("--input", "--data", dest="input", help="text file, one text a line (text<TAB>label is fine)")
    parser.add_argument("--output", default="gpu_check.json", help="JSON result file")
    parser.add_argument("--max_texts", type=int, default=1024, help="use the first N texts")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per order; the best counts")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {','.join(VARIANTS)}")
    parser.add_argument("--time_budget_s", type=float, default=270.0, help="skip variants that would start after this")
    parser.add_argument("--cache_dir", default="/tmp/tritoncls_gpu_check", help="TensorRT engine cache")
    parser.add_argument("--install_venv", default=None, help="make this venv, install onnxruntime-gpu, re-run there")
    parser.add_argument("--wheel", default=None, help="with --install_venv: install this onnxruntime-gpu wheel file")
    parser.add_argument("--strip_to", default=None, help="write a skeleton of the (single) --model here and exit")
    parser.add_argument("--refill_to", default=None,
                        help="write the (single) skeleton --model here with its weights refilled, servable, and exit")
    parser.add_argument("--bundle", default=None,
                        help="copy this script and the tritoncls runtime into this folder (to carry to a GPU machine) and exit")
    args = parser.parse_args(argv)

    if args.bundle:
        print(bundle(Path(args.bundle)))
        return 0
    if args.strip_to:
        print(strip_export(Path(args.model[0]), Path(args.strip_to)))
        return 0
    if args.refill_to:
        print(refill_export(Path(args.model[0]), Path(args.refill_to)))
        return 0
    if not args.model or not args.input:
        parser.error("--model and --input are required")
    output = Path(args.output)
    report: dict[str, Any] = {"ok": False, "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "host": platform.node()}
    try:
        if args.install_venv:
            python = install_venv(Path(args.install_venv), args.wheel)
            rest = [a for a in (argv if argv is not None else sys.argv[1:])]
            for flag in ("--install_venv", "--wheel"):
                while flag in rest:
                    i = rest.index(flag)
                    del rest[i:i + 2]
            os.execv(str(python), [str(python), str(Path(__file__).resolve()), *rest])
        gpus = gpu_devices()
        report["gpus"] = gpus
        if not gpus:
            raise CheckError("no NVIDIA GPU is visible here (nvidia-smi is missing or lists no GPU); run the GPU "
                             "check on a machine with an NVIDIA GPU and its driver.", EXIT_NO_GPU)
        import onnxruntime as ort

        report["preloaded"] = preload_cuda_libraries(ort)
        report["available_providers"] = ort.get_available_providers()
        report["device"] = driver_info()
        report["versions"] = versions()
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise CheckError(f"this onnxruntime ({ort.__version__}, providers {ort.get_available_providers()}) is the "
                             f"CPU build; install onnxruntime-gpu, or pass --install_venv DIR [--wheel FILE].",
                             EXIT_NO_CUDA_EP)
        variants = [v.strip() for v in args.variants.split(",") if v.strip()]
        unknown = [v for v in variants if v not in VARIANTS]
        if unknown:
            raise CheckError(f"--variants {unknown}: choose from {', '.join(VARIANTS)}")
        if variants[0] != "cpu_fp32":
            variants = ["cpu_fp32", *[v for v in variants if v != "cpu_fp32"]]
        texts = read_texts(Path(args.input), args.max_texts)
        deadline = time.monotonic() + args.time_budget_s
        report["exports"] = [check_export(Path(m), texts, variants, args.batch_size, args.repeats, deadline,
                                          Path(args.cache_dir)) for m in args.model]
        report["ok"] = True
        code = 0
    except CheckError as exc:
        report["error"] = str(exc)
        print(f"gpu_check: {exc}", file=sys.stderr)
        code = exc.code
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"[gpu_check] wrote {output}")
    return code


if __name__ == "__main__":
    sys.exit(main())
