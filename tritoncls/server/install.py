"""Finding a usable ``tritonserver`` and checking what its python-backend stub needs.

The binary is ``tritonserver`` from PATH when there is one (NVIDIA's container), else the one bundled
in the ``nvidia-pytriton`` wheel. The bundled server needs three things (see docs/serving.md):
its python-backend stub for this Python placed in ``backends/python/`` (we link it into a cache
folder rather than writing into site-packages), the wheel's ``nvidia_pytriton.libs`` on
LD_LIBRARY_PATH followed by this Python's own libpython folder (so the stub runs this interpreter's
library, not the system's), and this Python's ``bin`` first on PATH so the python models import numpy,
tokenizers and onnxruntime from the same environment. The checks here name what is missing and the fix.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tritoncls.errors import ServeError
from tritoncls.runtime.contract import REPOSITORY_MARKER

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class ServerInstall:
    """A tritonserver binary and what it needs to run."""

    binary: Path
    backend_directory: Path | None  # None: the binary's own default (/opt/tritonserver/backends)
    library_path: Path | None  # prepended to LD_LIBRARY_PATH
    bundled: bool

    @property
    def stub(self) -> Path | None:
        """The python-backend stub tritoncls prepared for this Python (bundled server only)."""
        if not self.bundled or self.backend_directory is None:
            return None
        return self.backend_directory / "python" / "triton_python_backend_stub"

    def environment(self) -> dict[str, str]:
        """The server's environment: this Python's ``bin`` first on PATH; for the bundled binary, the wheel's
        libraries and this Python's libpython first on LD_LIBRARY_PATH."""
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        first = [str(p) for p in (self.library_path, python_library_dir() if self.bundled else None) if p]
        current = [p for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p and p not in first]
        if first:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(first + current)
        return env


def tritonserver_on_path() -> str | None:
    """A ``tritonserver`` on PATH (NVIDIA's container), which wins over the bundled one."""
    return shutil.which("tritonserver")


def find_tritonserver(backend_directory: str | Path | None = None) -> ServerInstall:
    """``tritonserver`` on PATH, else the nvidia-pytriton one (prepared for this Python)."""
    on_path = tritonserver_on_path()
    if on_path:
        return ServerInstall(Path(on_path), Path(backend_directory) if backend_directory else None, None, False)
    spec = importlib.util.find_spec("pytriton")  # locate it without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ServeError("no tritonserver on PATH and nvidia-pytriton is not installed; run inside NVIDIA's "
                         "Triton container or `pip install nvidia-pytriton`.")
    dist = Path(list(spec.submodule_search_locations)[0]).resolve() / "tritonserver"
    binary = dist / "bin" / "tritonserver"
    if not binary.is_file():
        raise ServeError(f"{binary}: not found; the nvidia-pytriton install looks incomplete. Reinstall it.")
    problem = stub_numpy_problem(importlib.metadata.version("numpy"))
    if problem:
        raise ServeError(problem)
    backends = Path(backend_directory) if backend_directory else bundled_backend_directory(dist)
    return ServerInstall(binary, backends, dist.parent.parent / "nvidia_pytriton.libs", True)


def stub_numpy_problem(numpy_version: str) -> str | None:
    """Why the bundled python-backend stub cannot run under this NumPy, or None.

    The stub of the bundled Triton (2.51) reads text (BYTES) inputs wrongly under NumPy 2 and dies on the
    first request ("unpack_from requires a buffer ..."; the client sees "Stub process ... is not healthy").
    The stub imports from this Python's environment, so this environment's NumPy is the one that counts.
    """
    if int(numpy_version.split(".")[0]) < 2:
        return None
    return (f"the bundled tritonserver (nvidia-pytriton, Triton 2.51) cannot serve text models under NumPy "
            f"{numpy_version}: its python-backend stub misreads string inputs and dies on the first request. "
            f"Install NumPy 1.x in this environment (pip install 'numpy<2', as the constraints file pins), or run "
            f"NVIDIA's Triton container, whose tritonserver on PATH is used instead.")


def python_library_dir() -> Path | None:
    """This Python's ``libpython`` folder, when it has a shared libpython there.

    The bundled python-backend stub links ``libpython3.X.so.1.0`` by name. Without this folder first
    on LD_LIBRARY_PATH the system's copy (Debian: 3.11.2) can load while the stub imports this
    Python's (e.g. pyenv 3.11.7) extension modules; ``_ssl`` then fails with ``undefined symbol``, and
    any model that imports ssl (paddlenlp, requests) fails to load.
    """
    libdir = sysconfig.get_config_var("LIBDIR")
    soname = sysconfig.get_config_var("INSTSONAME") or ""
    if not libdir or not soname or not (Path(libdir) / soname).is_file():
        return None
    return Path(libdir)


def stub_missing_libraries(stub: Path, env: dict[str, str]) -> list[str]:
    """Shared libraries the python-backend stub would not find under ``env`` (``ldd``); [] when all are
    found, or when ``ldd`` is not there to ask."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return []
    try:
        listing = subprocess.run([ldd, str(stub)], env=env, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.split("=>")[0].strip() for line in listing.splitlines() if "not found" in line]


def missing_library_fix(missing: list[str]) -> str:
    """What to do about the stub's missing libraries (libpython gets its own advice)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    if any(name.startswith("libpython") for name in missing):
        return (f"this Python ({sys.executable}) has no shared libpython{version}.so.1.0 and the system has none "
                f"either. Install your distribution's libpython{version} package (Debian/Ubuntu: apt-get install "
                f"libpython{version}), or use a Python built with --enable-shared (pyenv: PYTHON_CONFIGURE_OPTS="
                f"--enable-shared pyenv install {version}), or run NVIDIA's Triton container.")
    return "reinstall nvidia-pytriton (its nvidia_pytriton.libs folder holds the others)."


def gpu_step_without_cuda(model_repository: Path) -> str | None:
    """Why a repository built for the GPU would run its python model step on the CPU here, or None.

    The bundled server's python models import this environment's onnxruntime; a CPU build of it makes the
    model step fall back to the CPU with only a warning in the server log (the stub ignores PYTHONPATH, so
    an onnxruntime-gpu outside this environment does not count either).
    """
    import json

    try:
        build = json.loads((model_repository / REPOSITORY_MARKER).read_text(encoding="utf-8"))["build_config"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # not built by tritoncls: nothing recorded to check
    if build.get("device") != "gpu" or build.get("backend") != "python" or build.get("runtime") == "paddle_inference":
        return None
    try:
        import onnxruntime as ort
    except ImportError:
        return None  # the model step will say so itself, at load
    providers = ort.get_available_providers()
    if "CUDAExecutionProvider" in providers:
        return None
    return (f"{model_repository} runs its model step on the GPU, but this environment's onnxruntime "
            f"({ort.__version__}, providers {providers}) has no CUDA provider: the python model step will run on "
            f"the CPU. Install onnxruntime-gpu in this environment ({sys.prefix}).")


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tritoncls"


def _links_to(link: Path, source: Path) -> bool:
    return link.is_symlink() and link.resolve() == source.resolve()


def bundled_backend_directory(dist: Path) -> Path:
    """A backends folder whose python/ links the wheel's python backend and this Python's stub.

    Built once per pytriton install and Python version, in a temporary folder renamed into place, so
    concurrent starts are safe and the installed package is never modified.
    """
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = dist / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise ServeError(f"{stub}: nvidia-pytriton has no python-backend stub for Python {version}; use Python 3.8-3.13.")
    key = hashlib.sha1(f"{dist}|{version}".encode()).hexdigest()[:12]
    target = _cache_root() / f"backends-{key}"
    links = {"libtriton_python.so": dist / "backends" / "python" / "libtriton_python.so",
             "triton_python_backend_utils.py": dist / "backends" / "python" / "triton_python_backend_utils.py",
             "triton_python_backend_stub": stub}
    def complete() -> bool:
        return all(_links_to(target / "python" / name, source) for name, source in links.items())

    if complete():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".backends-", dir=target.parent))
    (staging / "python").mkdir()
    for name, source in links.items():
        (staging / "python" / name).symlink_to(source)
    if target.exists() and not complete():  # stale links from an older install; a fresh one is left alone
        shutil.rmtree(target, ignore_errors=True)
    try:
        staging.rename(target)
    except OSError:  # another process created it meanwhile; use theirs
        shutil.rmtree(staging, ignore_errors=True)
    return target
