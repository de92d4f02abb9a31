"""The machine under test: its matrix-product limits, its description, and a server's memory.

The limits (:func:`gemm_limits`) are what served useful FLOP/s is compared against: per precision, every
GEMM kernel measured here (numpy's BLAS with its kernel named, ONNX Runtime's MLAS), the best of them, and
the theoretical peak from the CPU's flags, cores and clock, with its assumptions spelled out.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tritoncls.common.versions import versions as common_versions

SGEMM_SIZE = 2048
VERSIONED_PACKAGES = ("tritoncls", "numpy", "onnxruntime", "onnx", "paddlepaddle", "paddlenlp", "paddle2onnx",
                      "tokenizers", "tritonclient", "nvidia-pytriton", "psutil")
CPUINFO = Path("/proc/cpuinfo")
SYS_CPU = Path("/sys/devices/system/cpu")
UNITS = {"fp32": "GFLOP/s", "int8": "GOP/s"}

#: Operations per cycle per core of the widest multiply-add the flags show, best first: (flags needed, ops,
#: why). One multiply-add counts 2. Flags cannot say how many FMA units a core has (some AVX-512 Xeons have
#: one 512-bit unit, most two): the counts below assume two and say so.
PEAK_OPS_PER_CYCLE: dict[str, tuple[tuple[tuple[str, ...], int, str], ...]] = {
    "fp32": (
        (("avx512f",), 64, "AVX-512F: 2 FMA units x 16 FP32 lanes x 2 (assumed 2 units; 32 with one)"),
        (("avx2", "fma"), 32, "AVX2+FMA: 2 FMA units x 8 FP32 lanes x 2 (assumed 2 units)"),
        (("avx",), 16, "AVX without FMA: 1 add + 1 multiply unit x 8 FP32 lanes (assumed)"),
        (("sse2",), 8, "SSE2: 1 add + 1 multiply unit x 4 FP32 lanes (assumed)"),
    ),
    "int8": (
        (("amx_int8",), 2048, "AMX-INT8: 1024 u8/s8 multiply-adds a cycle per core (Intel's figure for the tile "
                              "unit; kernels without AMX top out at the AVX-512 VNNI row: 256)"),
        (("avx512_vnni",), 256, "AVX-512 VNNI: VPDPBUSD, 64 u8 x s8 multiply-adds x 2 units (assumed 2 units)"),
        (("avx_vnni",), 128, "AVX-VNNI: 256-bit VPDPBUSD, 32 u8 x s8 multiply-adds x 2 units (assumed 2 units)"),
        (("avx2",), 64, "AVX2: VPMADDUBSW with its widening adds, about 32 u8 x s8 multiply-adds a cycle (assumed)"),
    ),
}
#: The OpenBLAS kernel for the widest SIMD the flags show, and the detected kernels that already use it.
#: OpenBLAS picks its kernel from the CPU model; one it does not know gets a generic kernel (Prescott: SSE3).
OPENBLAS_KERNELS = (
    (("avx512f",), "SkylakeX", frozenset({"skylakex", "cooperlake", "sapphirerapids"})),
    (("avx2", "fma"), "Haswell", frozenset({"haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"})),
)


@dataclass(frozen=True)
class GemmRate:
    """One ``size``³ matrix product, best of the repeats after a warm-up; a multiply-add counts 2 operations.

    ``gops_per_s`` is GFLOP/s for an FP32 kernel and GOP/s (integer operations) for an INT8 one."""

    kernel: str
    precision: str  # "fp32" or "int8"
    size: int
    seconds: float
    threads: int
    gops_per_s: float

    @classmethod
    def timed(cls, kernel: str, precision: str, size: int, seconds: float, threads: int) -> GemmRate:
        return cls(kernel, precision, size, seconds, threads, 2.0 * size ** 3 / seconds / 1e9)


@dataclass(frozen=True)
class Peak:
    """The theoretical peak: cores x clock x operations per cycle per core; None where a factor is unknown."""

    precision: str
    gops_per_s: float | None
    cores: int
    clock_ghz: float | None
    clock_source: str
    ops_per_cycle_per_core: int | None
    assumption: str


@dataclass(frozen=True)
class PrecisionLimit:
    """Every kernel measured at one precision, the best of them, and the peak."""

    precision: str
    measured: tuple[GemmRate, ...]
    peak: Peak
    failures: tuple[str, ...] = ()

    @property
    def best(self) -> GemmRate | None:
        return max(self.measured, key=lambda r: r.gops_per_s) if self.measured else None

    def to_dict(self) -> dict[str, Any]:
        best = self.best
        return {"precision": self.precision, "unit": UNITS[self.precision],
                "measured": [asdict(r) for r in self.measured], "best": asdict(best) if best else None,
                "peak": asdict(self.peak), "failures": list(self.failures)}


@dataclass(frozen=True)
class GemmLimits:
    """The machine's FP32 and INT8 limits (``report.json``'s ``gemm_limits``)."""

    fp32: PrecisionLimit
    int8: PrecisionLimit
    load_average_1m: float | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"fp32": self.fp32.to_dict(), "int8": self.int8.to_dict(), "load_average_1m": self.load_average_1m,
                "notes": list(self.notes)}


# ---------------------------------------------------------------------------------------------
# Measured GEMMs
# ---------------------------------------------------------------------------------------------


def _best_seconds(run: Callable[[], Any], repeats: int) -> float:
    """Best of ``repeats`` timed calls after one warm-up: other processes on a shared machine only ever slow a
    product down, and a limit is what the machine can do."""
    run()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def sgemm_rate(size: int = SGEMM_SIZE, repeats: int = 5) -> GemmRate:
    """FP32 ``size``³ matrix product with numpy, its BLAS and kernel named (``threadpoolctl``)."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    seconds = _best_seconds(lambda: a @ b, repeats)
    info = blas_info()
    kernel = (f"numpy {np.__version__} {info.get('internal_api', 'BLAS')} {info.get('version', '?')}, "
              f"{info.get('architecture', 'unknown')} kernel")
    if os.environ.get("OPENBLAS_CORETYPE"):
        kernel += f" (OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']})"
    return GemmRate.timed(kernel, "fp32", size, seconds, int(info.get("num_threads") or _usable_cpus()))


def numpy_forced_kernel_rate(coretype: str, size: int = SGEMM_SIZE, repeats: int = 5,
                             timeout_s: float = 300) -> GemmRate:
    """:func:`sgemm_rate` in a child process whose OpenBLAS is told its kernel (``OPENBLAS_CORETYPE``): the
    kernel is chosen when the library loads, so this process cannot switch it."""
    code = ("import json, dataclasses\nfrom tritoncls.measure.machine import sgemm_rate\n"
            f"print(json.dumps(dataclasses.asdict(sgemm_rate({int(size)}, {int(repeats)}))))")
    done = subprocess.run([sys.executable, "-c", code], env=os.environ | {"OPENBLAS_CORETYPE": coretype},
                          capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the child measuring OPENBLAS_CORETYPE={coretype} exited {done.returncode}: {last}")
    return GemmRate(**json.loads(done.stdout.strip().splitlines()[-1]))


def openblas_kernel_to_force(detected: str | None, flags: Collection[str]) -> str | None:
    """The OpenBLAS kernel to measure as well: the one for the widest SIMD in ``flags``, where the kernel
    OpenBLAS ``detected`` does not use it (None: nothing better to try)."""
    for needs, kernel, covered in OPENBLAS_KERNELS:
        if set(needs) <= set(flags):
            return None if (detected or "").lower() in covered else kernel
    return None


def _ort_session(graph, threads: int):
    import onnxruntime as ort
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def onnxruntime_sgemm_rate(size: int = SGEMM_SIZE, repeats: int = 5) -> GemmRate:
    """The FP32 product through ONNX Runtime's MatMul (MLAS), the kernels the served model runs: the right-hand
    matrix is a constant, as a layer's weights are, so MLAS packs it once at load as it does for the model."""
    import onnxruntime as ort

    threads = _usable_cpus()
    seconds = onnxruntime_matmul_seconds(size, size, size, repeats, threads)
    return GemmRate.timed(f"onnxruntime {ort.__version__} MatMul (MLAS), constant weights", "fp32", size, seconds,
                          threads)


def onnxruntime_matmul_seconds(rows: int, inner: int, columns: int, repeats: int = 5, threads: int | None = None
                               ) -> float:
    """Best time of an FP32 ``[rows, inner] x [inner, columns]`` product through ONNX Runtime's MatMul with a
    constant right-hand matrix (packed once at load, as a layer's weights are)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    a = rng.standard_normal((rows, inner), dtype=np.float32)
    weights = numpy_helper.from_array(rng.standard_normal((inner, columns), dtype=np.float32), "b")
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "sgemm",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [rows, inner])],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [rows, columns])], [weights])
    session = _ort_session(graph, threads or _usable_cpus())
    return _best_seconds(lambda: session.run(None, {"a": a}), repeats)


def onnxruntime_int8_gemm_rate(size: int = SGEMM_SIZE, repeats: int = 5, dynamic: bool = False) -> GemmRate:
    """An INT8 product through ONNX Runtime (MLAS), the way ``quantize_dynamic`` graphs (our INT8 exports) run.

    ``dynamic=False``: ``MatMulInteger``, uint8 activations x int8 constant weights -> int32, the integer
    product itself. ``dynamic=True``: the layer ``quantize_dynamic`` writes, FP32 in and out
    (``DynamicQuantizeLinear`` -> ``MatMulInteger`` -> ``Cast`` -> ``Mul`` by the scales), which ONNX Runtime
    fuses into ``DynamicQuantizeMatMul`` at load: the product plus quantizing its input at run time."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.integers(-127, 128, (size, size), dtype=np.int8), "b")]
    out = helper.make_tensor_value_info("c", TensorProto.FLOAT if dynamic else TensorProto.INT32, [size, size])
    if dynamic:
        nodes = [helper.make_node("DynamicQuantizeLinear", ["a"], ["a_q", "a_scale", "a_zero_point"]),
                 helper.make_node("MatMulInteger", ["a_q", "b", "a_zero_point", "b_zero_point"], ["c_int"]),
                 helper.make_node("Cast", ["c_int"], ["c_float"], to=TensorProto.FLOAT),
                 helper.make_node("Mul", ["a_scale", "b_scale"], ["scale"]),
                 helper.make_node("Mul", ["c_float", "scale"], ["c"])]
        weights += [numpy_helper.from_array(np.array(0, dtype=np.int8), "b_zero_point"),
                    numpy_helper.from_array(np.array(0.01, dtype=np.float32), "b_scale")]
        feed = rng.standard_normal((size, size), dtype=np.float32)
        kernel = (f"onnxruntime {ort.__version__} quantize_dynamic layer (DynamicQuantizeLinear + MatMulInteger, "
                  "fused to DynamicQuantizeMatMul), FP32 in and out")
    else:
        nodes = [helper.make_node("MatMulInteger", ["a", "b"], ["c"])]
        feed = rng.integers(0, 256, (size, size), dtype=np.uint8)
        kernel = f"onnxruntime {ort.__version__} MatMulInteger u8 x s8 -> s32 (MLAS), constant weights"
    source = TensorProto.FLOAT if dynamic else TensorProto.UINT8
    graph = helper.make_graph(nodes, "int8_gemm", [helper.make_tensor_value_info("a", source, [size, size])], [out],
                              weights)
    threads = _usable_cpus()
    session = _ort_session(graph, threads)
    seconds = _best_seconds(lambda: session.run(None, {"a": feed}), repeats)
    return GemmRate.timed(kernel, "int8", size, seconds, threads)


# ---------------------------------------------------------------------------------------------
# The peak
# ---------------------------------------------------------------------------------------------


def peak_rate(precision: str, flags: Collection[str], cores: int, clock_ghz: float | None,
              clock_source: str = "") -> Peak:
    """cores x clock (GHz) x operations per cycle per core of the widest multiply-add in ``flags``
    (:data:`PEAK_OPS_PER_CYCLE`); ``gops_per_s`` is None where the clock or the instructions are unknown."""
    row = next(((ops, why) for needs, ops, why in PEAK_OPS_PER_CYCLE[precision] if set(needs) <= set(flags)), None)
    ops, why = row if row else (None, f"no {precision.upper()} multiply-add instructions known from the flags")
    rate = cores * clock_ghz * ops if clock_ghz and ops else None
    assumption = (f"{why}; {cores} cores (CPUs this process may run on, hyperthread siblings counted once; a VM's "
                  f"vCPUs may share physical cores unseen); clock {clock_source or 'not readable'}")
    return Peak(precision, rate, cores, clock_ghz, clock_source or "not readable", ops, assumption)


def cpu_clock_ghz(sys_cpu: Path = SYS_CPU, cpuinfo: Path = CPUINFO) -> tuple[float | None, str]:
    """The clock for the peak and where it came from: cpufreq's ``cpuinfo_max_freq`` (the highest clock the
    kernel knows), else ``/proc/cpuinfo``'s ``cpu MHz`` (the clock when read; in a VM the host's nominal
    clock), else ``(None, "not readable")``."""
    try:
        khz = int((sys_cpu / "cpu0" / "cpufreq" / "cpuinfo_max_freq").read_text().strip())
        if khz > 0:
            return khz / 1e6, "cpufreq cpuinfo_max_freq (the highest clock; all cores under AVX load may run lower)"
    except (OSError, ValueError):
        pass
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("cpu MHz"):
                mhz = float(line.split(":", 1)[1])
                if mhz > 0:
                    return mhz / 1e3, "/proc/cpuinfo 'cpu MHz' (the clock when read; a VM shows the host's nominal clock)"
    except (OSError, ValueError):
        pass
    return None, "not readable"


def physical_cores(cpus: Iterable[int], sys_cpu: Path = SYS_CPU) -> int:
    """``cpus`` with hyperthread siblings counted once (siblings share one core's multiply-add units)."""
    cores = set()
    for cpu in cpus:
        try:
            cores.add((sys_cpu / f"cpu{cpu}" / "topology" / "thread_siblings_list").read_text().strip())
        except OSError:
            cores.add(f"cpu{cpu}")
    return len(cores)


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# ---------------------------------------------------------------------------------------------
# The limits
# ---------------------------------------------------------------------------------------------


def _measure(steps: Iterable[tuple[str, Callable[[], GemmRate]]]) -> tuple[tuple[GemmRate, ...], tuple[str, ...]]:
    """Run each measurement; one that fails is named in the failures and the others go on."""
    rates, failures = [], []
    for what, measure in steps:
        try:
            rates.append(measure())
        except Exception as exc:  # noqa: BLE001 - a kernel that cannot run must not lose the others
            failures.append(f"{what}: {type(exc).__name__}: {exc}".splitlines()[0])
    return tuple(rates), tuple(failures)


def gemm_limits(size: int = SGEMM_SIZE, repeats: int = 5) -> GemmLimits:
    """The machine's FP32 and INT8 limits: every kernel measured at ``size``³ (best of ``repeats``), and the
    peak. FP32: numpy (and numpy with the OpenBLAS kernel for the CPU's widest SIMD, where OpenBLAS picked a
    narrower one), ONNX Runtime's MatMul; INT8: ONNX Runtime's MatMulInteger and the quantize_dynamic layer."""
    flags = set(all_cpu_flags())
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else range(_usable_cpus())
    clock, source = cpu_clock_ghz()
    blas = blas_info()
    force = openblas_kernel_to_force(blas.get("architecture"), flags) if blas.get("internal_api") == "openblas" else None
    notes = ([f"numpy's OpenBLAS picked its {blas.get('architecture')} kernel on this CPU; measured again with "
              f"OPENBLAS_CORETYPE={force}, the kernel for the CPU's widest SIMD"] if force else [])
    fp32, fp32_failed = _measure([
        ("numpy", lambda: sgemm_rate(size, repeats)),
        *([(f"numpy with OPENBLAS_CORETYPE={force}", lambda: numpy_forced_kernel_rate(force, size, repeats))]
          if force else []),
        ("onnxruntime MatMul", lambda: onnxruntime_sgemm_rate(size, repeats))])
    int8, int8_failed = _measure([
        ("onnxruntime MatMulInteger", lambda: onnxruntime_int8_gemm_rate(size, repeats)),
        ("onnxruntime quantize_dynamic layer", lambda: onnxruntime_int8_gemm_rate(size, repeats, dynamic=True))])
    cores = physical_cores(cpus)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return GemmLimits(PrecisionLimit("fp32", fp32, peak_rate("fp32", flags, cores, clock, source), fp32_failed),
                      PrecisionLimit("int8", int8, peak_rate("int8", flags, cores, clock, source), int8_failed),
                      load, tuple(notes))


# ---------------------------------------------------------------------------------------------
# The machine's description
# ---------------------------------------------------------------------------------------------


def blas_info() -> dict[str, Any]:
    """numpy's BLAS as ``threadpoolctl`` sees it (``internal_api``, ``version``, ``architecture``: the kernel,
    ``num_threads``); empty where threadpoolctl is missing. Imports numpy, which loads the BLAS.

    Other packages load BLAS libraries of their own (scipy's OpenBLAS may pick another kernel than numpy's):
    the one in numpy's folder (``numpy.libs`` for a wheel) is numpy's; otherwise the first one loaded."""
    try:
        import numpy
        from threadpoolctl import threadpool_info
    except ImportError:
        return {}
    pools = [pool for pool in threadpool_info() if pool.get("user_api") == "blas"]
    numpy_dir = Path(numpy.__file__).resolve().parent
    own = [pool for pool in pools if Path(pool.get("filepath", "")).resolve().parent in
           (numpy_dir.parent / "numpy.libs", numpy_dir / ".libs")]
    return (own or pools or [{}])[0]


def cpu_model() -> str:
    try:
        for line in CPUINFO.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def all_cpu_flags(cpuinfo: Path = CPUINFO) -> list[str]:
    try:
        text = cpuinfo.read_text()
    except OSError:
        return []
    return next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])


def cpu_flags() -> list[str]:
    """The SIMD extensions that matter for these kernels (AVX2, FMA, AVX-512, VNNI, AMX)."""
    flags = all_cpu_flags()
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8")
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
