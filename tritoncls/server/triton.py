"""Start, watch and stop a real ``tritonserver`` process.

The binary is ``tritonserver`` from PATH when there is one (NVIDIA's container), else the one bundled
in the ``nvidia-pytriton`` wheel. The bundled server needs three things (see docs/serving.md):
its python-backend stub for this Python placed in ``backends/python/`` (we link it into a cache
folder rather than writing into site-packages), the wheel's ``nvidia_pytriton.libs`` on
LD_LIBRARY_PATH followed by this Python's own libpython folder (so the stub runs this interpreter's
library, not the system's), and this Python's ``bin`` first on PATH so the python models import numpy,
tokenizers and onnxruntime from the same environment.
"""

from __future__ import annotations

import collections
import ctypes
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tritoncls.errors import ServeError
from tritoncls.runtime.contract import ADMIN_KEY_HEADER, REPOSITORY_MARKER, RESTRICTED_APIS

log = logging.getLogger(__name__)

DEFAULT_SHM_BYTES = 16 * 1024 * 1024
#: tritonserver error lines that a CPU-only machine always prints; they explain nothing.
BENIGN_ERRORS = ("CudaDriverHelper has not been initialized", "Failed to initialize NVML", "unable to create stream",
                 "failed to enable peer access", "Unable to get CUDA device count")
#: the loader's message when a python-backend stub lacks a library; the server then waits for the stub forever.
STUB_CANNOT_START = "error while loading shared libraries"
_ERROR_LINE = re.compile(rf"^E\d{{4}} |^error:|Error:|Traceback|Exception|{STUB_CANNOT_START}", re.IGNORECASE)
_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)i?b?\s*$", re.IGNORECASE)

#: Triton's administrative APIs (HTTP) and protocols (gRPC) that a key locks; inference, metadata,
#: model-config and health stay open. Names as Triton 2.51's ``--http-restricted-api`` accepts them.
DEFAULT_KEY_HEADER = ADMIN_KEY_HEADER
#: Triton 2.51 checks a gRPC restricted protocol's key under this prefix plus the header name.
GRPC_HEADER_PREFIX = "triton-grpc-protocol-"
API_KEY_ENV = "TRITONCLS_API_KEY"
MIN_KEY_CHARS = 16
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_HEADER_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_KEY_VALUE = re.compile(r"^[\x21-\x7e]+$")  # visible ASCII: valid in an HTTP header and in gRPC metadata


def parse_size(text: str | int) -> int:
    """``"16M"``, ``"64MiB"``, ``"1048576"`` -> bytes."""
    if isinstance(text, int):
        return text
    match = _SIZE.match(text)
    if not match:
        raise ServeError(f"size {text!r} is not understood; write bytes or a number with K, M or G (e.g. 16M).")
    return int(match.group(1)) * 1024 ** " KMG".index((match.group(2) or " ").upper())


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# Locked-down serving
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class AdminKey:
    """The header and key that unlock Triton's administrative APIs (:data:`RESTRICTED_APIS`).

    Inference, metadata and health need no key. The key is never shown by ``repr``.
    """

    key: str
    header: str = DEFAULT_KEY_HEADER

    def __post_init__(self) -> None:
        if not _HEADER_NAME.match(self.header) or self.header.startswith("grpc-"):
            raise ServeError(f"API key header {self.header!r} is not usable: write lowercase letters, digits and "
                             f"dashes (gRPC metadata keys are lowercase; 'grpc-' is reserved), e.g. {DEFAULT_KEY_HEADER}.")
        if not _KEY_VALUE.match(self.key) or len(self.key) < MIN_KEY_CHARS:
            raise ServeError(f"the API key must be at least {MIN_KEY_CHARS} visible ASCII characters without spaces "
                             "(make one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`).")

    def __repr__(self) -> str:
        return f"AdminKey(header={self.header!r}, key=<{len(self.key)} characters>)"

    def server_args(self) -> list[str]:
        """tritonserver 2.51's ``<apis>:<header>=<key>`` flags for HTTP and gRPC."""
        setting = f"{','.join(RESTRICTED_APIS)}:{self.header}={self.key}"
        return [f"--http-restricted-api={setting}", f"--grpc-restricted-protocol={setting}"]

    def headers(self, protocol: str = "http") -> dict[str, str]:
        """What a client sends to call a restricted API (``tritonclient``'s ``headers=``).

        Triton reads the gRPC key from the metadata key ``triton-grpc-protocol-<header>``.
        """
        if protocol not in ("http", "grpc"):
            raise ServeError(f"protocol {protocol!r}: use 'http' or 'grpc'.")
        return {(GRPC_HEADER_PREFIX if protocol == "grpc" else "") + self.header: self.key}

    @classmethod
    def from_file(cls, path: str | Path, header: str = DEFAULT_KEY_HEADER) -> AdminKey:
        """The key in ``path`` (its first line); warns when other users may read the file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ServeError(f"{path}: cannot read the API key file ({exc.strerror}).") from exc
        if path.stat().st_mode & 0o077:
            log.warning("%s: the API key file can be read by other users; `chmod 600 %s`", path, path)
        lines = text.strip().splitlines()
        if not lines:
            raise ServeError(f"{path}: the API key file is empty.")
        return cls(lines[0].strip(), header)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine."""
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def open_admin_warning(host: str, admin_key: AdminKey | None) -> str | None:
    """The warning for a server bound beyond loopback with its administrative APIs open; None if neither."""
    if admin_key is not None or is_loopback(host):
        return None
    return (f"tritonserver binds {host} without an API key: anyone who reaches it can register shared memory, "
            f"read statistics, change trace and log settings and list the repository ({', '.join(RESTRICTED_APIS)}). "
            f"Set a key ({API_KEY_ENV} or --api_key_file) to lock them; inference and health stay open.")


# ---------------------------------------------------------------------------------------------
# Finding the server
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# The server process
# ---------------------------------------------------------------------------------------------


_SHM_REGION = re.compile(r"^triton_python_backend_shm_region_[0-9A-Za-z-]+$")
SHM_DIR = Path("/dev/shm")


def group_members(pgid: int, exclude: int | None = None) -> list[int]:
    """Live processes of process group ``pgid`` (Linux /proc), zombies left out."""
    members = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit() or int(entry.name) == exclude:
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def shm_regions_of(pids: list[int]) -> set[str]:
    """Names of the python-backend shared-memory regions these processes (stubs) were started with."""
    regions = set()
    for pid in pids:
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        regions.update(a.decode() for a in args if _SHM_REGION.match(a.decode(errors="replace")))
    return regions


def reap_process_group(pgid: int, known_regions: set[str] = frozenset(), grace_s: float = 5.0) -> list[int]:
    """After the server has exited: wait ``grace_s`` for its stubs to exit, SIGKILL any left, and
    unlink the shared-memory regions a killed stub could not remove. Returns the pids it killed.

    The group id is the server's pid (it was started in a new session); Linux does not hand out a
    pid that is still in use as a process group id, so this reaches only the server's own stubs.
    """
    regions = set(known_regions) | shm_regions_of(group_members(pgid))
    deadline = time.monotonic() + grace_s
    while (leftovers := group_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    if leftovers:
        log.warning("killing %d orphaned tritonserver stub process(es) %s", len(leftovers), leftovers)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        deadline = time.monotonic() + grace_s
        while group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
    _unlink_regions(regions)
    return leftovers


def _unlink_regions(regions: set[str]) -> None:
    """Remove regions a killed stub could not remove itself (a clean shutdown has removed them already)."""
    for name in regions:
        if _SHM_REGION.match(name):
            try:
                (SHM_DIR / name).unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("could not remove %s: %s", SHM_DIR / name, exc)


try:
    _LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
except OSError:
    _LIBC = None


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the parent dies, so no server outlives its test.

    (Linux PR_SET_PDEATHSIG; it fires when the thread that started the server exits.)
    """
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)


class TritonServer:
    """A tritonserver over one model repository; a context manager that starts it and stops it.

    Ports left as None are picked free at start. Server output goes to ``log_file`` (or a temporary
    file) and, with ``echo``, to this process's stderr too. Model control is always off (models load at
    start; nothing loads or unloads over the network). With ``admin_key`` the administrative APIs
    (:data:`RESTRICTED_APIS`) answer only requests carrying its header; started beyond loopback without
    one, the server logs :func:`open_admin_warning`.
    """

    def __init__(self, model_repository: str | Path, *, host: str = "127.0.0.1", grpc_port: int | None = None,
                 http_port: int | None = None, metrics_port: int | None = None,
                 shm_size: str | int = DEFAULT_SHM_BYTES, backend_directory: str | Path | None = None,
                 log_file: str | Path | None = None, echo: bool = False, exit_timeout_s: int = 10,
                 admin_key: AdminKey | None = None, extra_args: tuple[str, ...] = ()) -> None:
        self.model_repository = Path(model_repository)
        self.admin_key = admin_key
        self.host = host
        self.grpc_port = grpc_port
        self.http_port = http_port
        self.metrics_port = metrics_port
        self.shm_bytes = parse_size(shm_size)
        self.backend_directory = backend_directory
        self.log_file = Path(log_file) if log_file else None
        self.echo = echo
        self.exit_timeout_s = exit_timeout_s
        self.extra_args = tuple(extra_args)
        self.process: subprocess.Popen | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=400)
        self._reader: threading.Thread | None = None
        self._shm_regions: set[str] = set()

    # -- endpoints --------------------------------------------------------------------------

    @property
    def client_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host

    @property
    def grpc_url(self) -> str:
        return f"{self.client_host}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"{self.client_host}:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.client_host}:{self.metrics_port}/metrics"

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def command(self, install: ServerInstall) -> list[str]:
        args = [str(install.binary), f"--model-repository={self.model_repository.resolve()}",
                f"--http-address={self.host}", f"--http-port={self.http_port}",
                f"--grpc-address={self.host}", f"--grpc-port={self.grpc_port}",
                f"--metrics-address={self.host}", f"--metrics-port={self.metrics_port}",
                f"--backend-config=python,shm-default-byte-size={self.shm_bytes}",
                f"--backend-config=python,shm-growth-byte-size={min(self.shm_bytes, 4 * 1024 * 1024)}",
                f"--exit-timeout-secs={self.exit_timeout_s}", "--model-control-mode=none"]
        if self.admin_key is not None:
            args += self.admin_key.server_args()
        if install.backend_directory:
            args.append(f"--backend-directory={install.backend_directory}")
        return args + list(self.extra_args)

    def _redacted(self, command: list[str]) -> list[str]:
        """``command`` with the API key replaced, for logs."""
        if self.admin_key is None:
            return command
        return [arg.replace(self.admin_key.key, "<api key>") for arg in command]

    def environment(self, install: ServerInstall) -> dict[str, str]:
        return install.environment()

    def start(self, timeout_s: float = 180.0) -> TritonServer:
        """Start the server and wait until every model is ready; ServeError with its error lines if not."""
        if self.process is not None:
            raise ServeError("this TritonServer is already started; stop() it first.")
        if not self.model_repository.is_dir():
            raise ServeError(f"{self.model_repository}: model repository not found; build one with `tritoncls build-repo`.")
        warning = open_admin_warning(self.host, self.admin_key)
        if warning:
            log.warning("%s", warning)
        install = find_tritonserver(self.backend_directory)
        self.grpc_port = self.grpc_port or free_port(self.client_host)
        self.http_port = self.http_port or free_port(self.client_host)
        self.metrics_port = self.metrics_port or free_port(self.client_host)
        command, env = self.command(install), install.environment()
        if install.stub is not None:
            missing = stub_missing_libraries(install.stub, env)
            if missing:
                raise ServeError(f"the python-backend stub {install.stub.resolve()} cannot start: {', '.join(missing)} "
                                 f"not found. Fix: {missing_library_fix(missing)}")
            cpu_fallback = gpu_step_without_cuda(self.model_repository)
            if cpu_fallback:
                log.warning("%s", cpu_fallback)
        log.debug("starting %s", " ".join(self._redacted(command)))
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=_die_with_parent)
        self._reader = threading.Thread(target=self._pump, args=(self.process.stdout,), daemon=True)
        self._reader.start()
        try:
            self.wait_until_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        self._shm_regions = shm_regions_of(self.pids())
        return self

    def _pump(self, stream: IO[bytes]) -> None:
        sink = self.log_file.open("a", encoding="utf-8") if self.log_file else None
        try:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", errors="replace")
                self._tail.append(line.rstrip("\n"))
                if sink:
                    sink.write(line)
                    sink.flush()
                if self.echo:
                    sys.stderr.write(line)
        finally:
            if sink:
                sink.close()

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_until_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.is_running():
                self._join_reader()
                raise ServeError(self._failure(f"tritonserver exited with code {self.process.returncode} before it was ready"))
            if self.is_ready():
                return
            missing = [line.split(f"{STUB_CANNOT_START}: ", 1)[1].split(":")[0] for line in list(self._tail)
                       if f"{STUB_CANNOT_START}: " in line]
            if missing:  # the server would wait for the stub for good
                raise ServeError(self._failure("a python-backend stub could not start",
                                               f"Fix: {missing_library_fix(missing)}"))
            time.sleep(0.2)
        raise ServeError(self._failure(f"tritonserver was not ready after {timeout_s:.0f} s"))

    def stop(self, timeout_s: float | None = None) -> int | None:
        """SIGTERM, wait for a clean exit (models unload), SIGKILL as a last resort; returns the exit code.

        Whatever is left of the server's process group afterwards is killed too: when tritonserver dies
        abruptly (SIGKILL, OOM killer), its python-backend stubs are orphaned and one can hang for good,
        holding the log pipe open and its shared-memory region in /dev/shm.
        """
        if self.process is None:
            return None
        process, self.process = self.process, None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s or self.exit_timeout_s + 10)
            except subprocess.TimeoutExpired:
                log.warning("tritonserver did not stop in time; killing it")
                process.kill()
                process.wait()
        reap_process_group(process.pid, self._shm_regions)
        self._join_reader()
        if process.stdout and not (self._reader and self._reader.is_alive()):
            process.stdout.close()  # closing it under a blocked reader would block too
        return process.returncode

    def pids(self) -> list[int]:
        """The server and its python-backend stubs (for memory and fault checks)."""
        if self.process is None:
            return []
        return [self.process.pid, *group_members(self.process.pid, exclude=self.process.pid)]

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=5)

    # -- diagnostics ------------------------------------------------------------------------

    def log_tail(self, lines: int = 40) -> list[str]:
        return list(self._tail)[-lines:]

    def error_lines(self) -> list[str]:
        """The server's own error lines (known CPU-only noise left out)."""
        return [line for line in self._tail if _ERROR_LINE.search(line) and not any(b in line for b in BENIGN_ERRORS)]

    def _failure(self, what: str, fix: str | None = None) -> str:
        errors = self.error_lines() or self.log_tail(15)
        where = f" Full log: {self.log_file}." if self.log_file else ""
        fix = fix or "Fix the model named above (or rebuild the repository with `tritoncls build-repo --force`)."
        return (f"{what} (model repository {self.model_repository}). The server said:\n  " + "\n  ".join(errors)
                + f"\n{fix}{where}")
