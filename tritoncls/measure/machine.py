"""The machine under test: its matrix-product rate, its description, and a server's memory."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tritoncls.common.versions import versions as common_versions

SGEMM_SIZE = 2048
VERSIONED_PACKAGES = ("tritoncls", "numpy", "onnxruntime", "onnx", "paddlepaddle", "paddlenlp", "paddle2onnx",
                      "tokenizers", "tritonclient", "nvidia-pytriton", "psutil")


@dataclass(frozen=True)
class SgemmRate:
    size: int
    seconds: float  # best of the repeats
    gflops: float
    threads: int
    blas: str


def sgemm_rate(size: int = SGEMM_SIZE, repeats: int = 5) -> SgemmRate:
    """FP32 ``size``³ matrix product with numpy: best of ``repeats`` after one warm-up.

    Best, not mean: other processes on a shared machine only ever slow it down, and the target is
    measured against what the machine can do.
    """
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    threads, blas = _blas()
    return SgemmRate(size, best, 2.0 * size ** 3 / best / 1e9, threads, blas)


def onnxruntime_sgemm_rate(size: int = SGEMM_SIZE, repeats: int = 5) -> SgemmRate:
    """The same product through ONNX Runtime's MatMul (MLAS), the kernels the served model runs.

    Informative: on these AVX2 machines MLAS runs large FP32 products faster than numpy's OpenBLAS,
    so served useful FLOP/s can exceed the numpy SGEMM rate the targets are measured against.
    """
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "sgemm",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, [size, size]) for n in ("a", "b")],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [size, size])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {n: rng.standard_normal((size, size), dtype=np.float32) for n in ("a", "b")}
    session.run(None, feeds)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        session.run(None, feeds)
        best = min(best, time.perf_counter() - started)
    return SgemmRate(size, best, 2.0 * size ** 3 / best / 1e9, options.intra_op_num_threads,
                     f"onnxruntime {ort.__version__} MatMul (MLAS)")


def _blas() -> tuple[int, str]:
    try:
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            if pool.get("user_api") == "blas":
                return int(pool["num_threads"]), f"{pool['internal_api']} {pool.get('version')} ({pool.get('architecture')})"
    except ImportError:
        pass
    return os.cpu_count() or 1, "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    """The SIMD extensions that matter for these kernels (AVX2, FMA, AVX-512, VNNI)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile")
    return [f for f in wanted if f in flags]


def versions() -> dict[str, str]:
    return common_versions(VERSIONED_PACKAGES)


def machine_info() -> dict[str, Any]:
    import psutil

    return {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "logical_cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "versions": versions(),
    }


def driver_info() -> dict[str, str]:
    """The first GPU's name, driver and memory from ``nvidia-smi``; empty where there is none.

    scripts/gpu_check.py has its own copy: it runs on GPU machines without tritoncls installed."""
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
