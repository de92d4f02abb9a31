"""``tritoncls doctor``: can this environment serve and measure? One line per check, with the fix.

Each check answers from the same functions the commands use (find_tritonserver, the stub's library
check, PerfAnalyzer.find), so what doctor says is what ``serve`` and ``bench`` will meet. Written for
the failures seen on these machines: NumPy 2 under Triton 2.51's stub, a Python without a shared
libpython, a stub that imports another onnxruntime than this process (it ignores PYTHONPATH), a
repository built for the GPU on a CPU-only onnxruntime.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

OK, WARN, FAIL, INFO = "ok", "warn", "FAIL", "info"


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # OK, WARN, FAIL or INFO
    detail: str
    fix: str = ""


def run_checks(model_repository: Path | None = None) -> list[Check]:
    """Every check, in the order a user meets them; ``model_repository`` adds the repository's own."""
    checks = [python_check(), numpy_check(), *server_checks(), perf_analyzer_check(), onnxruntime_check(),
              stub_imports_check(), gpu_check()]
    if model_repository is not None:
        checks.append(repository_check(model_repository))
    return checks


def python_check() -> Check:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return Check("python", OK if (3, 10) <= sys.version_info[:2] <= (3, 13) else FAIL, f"{version} ({sys.executable})",
                 "" if (3, 10) <= sys.version_info[:2] <= (3, 13) else "use Python 3.10-3.13 (the bundled stubs')")


def _bundled_server() -> bool:
    """Whether serve would start nvidia-pytriton's tritonserver (none on PATH), whose stub needs NumPy 1.x."""
    from tritoncls.server.install import tritonserver_on_path

    return tritonserver_on_path() is None


def numpy_check() -> Check:
    from tritoncls.server.install import stub_numpy_problem

    version = importlib.metadata.version("numpy")
    problem = stub_numpy_problem(version) if _bundled_server() else None
    return Check("numpy", FAIL if problem else OK, version, problem or "")


def server_checks() -> list[Check]:
    """tritonserver found, and (bundled) its python-backend stub's libraries found."""
    from tritoncls.errors import ServeError
    from tritoncls.server.install import find_tritonserver, missing_library_fix, stub_missing_libraries

    try:
        install = find_tritonserver()
    except ServeError as exc:
        return [Check("tritonserver", FAIL, "not usable", str(exc))]
    where = "bundled in nvidia-pytriton" if install.bundled else "on PATH"
    checks = [Check("tritonserver", OK, f"{install.binary} ({where})")]
    if install.stub is not None:
        missing = stub_missing_libraries(install.stub, install.environment())
        checks.append(Check("python-backend stub", FAIL if missing else OK,
                            f"missing {', '.join(missing)}" if missing else "every library found",
                            missing_library_fix(missing) if missing else ""))
    return checks


def perf_analyzer_check() -> Check:
    from tritoncls.errors import BenchmarkError
    from tritoncls.measure.perf_analyzer import PerfAnalyzer

    try:
        analyzer = PerfAnalyzer.find()
    except BenchmarkError as exc:
        return Check("perf_analyzer", WARN, "not usable (only `bench` and `perf-analyzer` need it)", str(exc))
    return Check("perf_analyzer", OK, str(analyzer.binary))


def onnxruntime_check() -> Check:
    try:
        import onnxruntime as ort
    except ImportError:
        return Check("onnxruntime", FAIL, "not installed", "pip install -c constraints.txt -e .")
    providers = ort.get_available_providers()
    gpu = "CUDAExecutionProvider" in providers
    return Check("onnxruntime", OK, f"{ort.__version__}, providers {', '.join(providers)}"
                 + ("" if gpu else " (no CUDA: --device gpu model steps run on the CPU; pip install onnxruntime-gpu)"))


_IMPORTS = "import onnxruntime, numpy; print(onnxruntime.__file__); print(numpy.__file__); print(numpy.__version__)"


def stub_imports_check() -> Check:
    """The stub ignores PYTHONPATH: does it import the onnxruntime and numpy this process does?"""
    from tritoncls.server.install import stub_numpy_problem

    here = _imports(os.environ)
    stub = _imports({k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    if here is None or stub is None:
        return Check("stub imports", INFO, "onnxruntime or numpy does not import here")
    problem = stub_numpy_problem(stub[2]) if _bundled_server() else None
    if problem:
        return Check("stub imports", FAIL, f"without PYTHONPATH (as the python-backend stub runs) numpy is {stub[2]} "
                     f"from {_site(stub[1])}", problem + " The stub ignores PYTHONPATH: install into this environment.")
    if stub == here:
        return Check("stub imports", OK, "the same onnxruntime and numpy as this process")
    return Check("stub imports", WARN, f"without PYTHONPATH (as the python-backend stub runs) onnxruntime comes from "
                 f"{_site(stub[0])} and numpy from {_site(stub[1])}; here from {_site(here[0])} and {_site(here[1])}",
                 "install them into this environment instead of putting them on PYTHONPATH: the stub ignores it")


def _imports(env: dict[str, str]) -> list[str] | None:
    """onnxruntime's and numpy's files and numpy's version, as a fresh interpreter under ``env`` sees them."""
    try:
        done = subprocess.run([sys.executable, "-c", _IMPORTS], env=env, cwd="/", capture_output=True, text=True,
                              timeout=120)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = done.stdout.split()
    return lines if done.returncode == 0 and len(lines) == 3 else None


def _site(module_file: str) -> str:
    return str(Path(module_file).parent.parent)


def gpu_check() -> Check:
    from tritoncls.measure.machine import driver_info

    gpu = driver_info()
    if not gpu:
        return Check("gpu", INFO, "none visible (nvidia-smi missing or lists none): CPU serving only")
    return Check("gpu", OK, f"{gpu['name']}, driver {gpu['driver']}, {gpu['memory']}")


def repository_check(model_repository: Path) -> Check:
    from tritoncls.server.install import gpu_step_without_cuda

    if not model_repository.is_dir():
        return Check("repository", FAIL, f"{model_repository}: not found", "build one with `tritoncls build-repo`")
    problem = gpu_step_without_cuda(model_repository)
    return Check("repository", WARN if problem else OK, problem or f"{model_repository}: nothing to say against it")


def failed(checks: list[Check]) -> bool:
    return any(c.status == FAIL for c in checks)


def render(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        lines.append(f"{c.status:>4}  {c.name:<{width}}  {c.detail}")
        if c.fix and c.status in (FAIL, WARN):
            lines.append(f"{'':>4}  {'':<{width}}  fix: {c.fix}")
    return "\n".join(lines)
