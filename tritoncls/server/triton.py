"""Start, watch and stop a real ``tritonserver`` process (:class:`TritonServer`).

The binary and what the bundled one needs to run come from :mod:`.install`; the admin key and the
loopback policy from :mod:`.auth`; reaping the process group and its shared memory from :mod:`.process`.
"""

from __future__ import annotations

import collections
import logging
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from tritoncls.errors import ServeError
from tritoncls.server.auth import AdminKey, open_admin_warning
from tritoncls.server.install import (
    ServerInstall,
    find_tritonserver,
    gpu_step_without_cuda,
    missing_library_fix,
    stub_missing_libraries,
)
from tritoncls.server.process import _die_with_parent, group_members, reap_process_group, shm_regions_of

log = logging.getLogger(__name__)

DEFAULT_SHM_BYTES = 16 * 1024 * 1024
#: tritonserver error lines that a CPU-only machine always prints; they explain nothing.
BENIGN_ERRORS = ("CudaDriverHelper has not been initialized", "Failed to initialize NVML", "unable to create stream",
                 "failed to enable peer access", "Unable to get CUDA device count")
#: the loader's message when a python-backend stub lacks a library; the server then waits for the stub forever.
STUB_CANNOT_START = "error while loading shared libraries"
_ERROR_LINE = re.compile(rf"^E\d{{4}} |^error:|Error:|Traceback|Exception|{STUB_CANNOT_START}", re.IGNORECASE)
_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)i?b?\s*$", re.IGNORECASE)


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


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` different free TCP ports: each socket stays bound until all are picked, so the OS cannot hand
    out one port twice (separate :func:`free_port` calls can, and the server then refuses to start)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


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
        grpc, http, metrics = free_ports(3, self.client_host)
        self.grpc_port, self.http_port, self.metrics_port = (self.grpc_port or grpc, self.http_port or http,
                                                             self.metrics_port or metrics)
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
