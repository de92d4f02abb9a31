"""Memory of a running Triton server: tritonserver and each python-backend stub under it (one per
model instance). The benchmarks report it per process; the soak test samples its total."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ProcessMemory:
    pid: int
    role: str  # "tritonserver" or the model instance a python-backend stub serves
    rss_mib: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"rss_mib": round(self.rss_mib, 1)}


def server_memory(pid: int, model_repository: Path | None = None) -> list[ProcessMemory]:
    """RSS of tritonserver and of each python-backend stub (one per model instance) under it."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    out = []
    for proc in processes:
        try:
            rss = proc.memory_info().rss / 2**20
            role = role_of(proc.cmdline(), model_repository) if proc.pid != pid else "tritonserver"
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        out.append(ProcessMemory(proc.pid, role, rss))
    return out


def role_of(cmdline: list[str], repo: Path | None = None) -> str:
    """``<model>`` (instance name when given) for a python-backend stub; else the program name.

    The stub is started as ``triton_python_backend_stub <repo>/<model>/<version>/model.py <shm region> ...
    <instance name> ...``; the region name ends with the instance name, e.g. ``..._seqcls_model_0_0``.
    """
    if not cmdline:
        return "unknown"
    for arg in cmdline[1:]:
        if arg.endswith("model.py"):
            model = Path(arg).parent.parent.name
            return model
    return Path(cmdline[0]).name




def find_listener(port: int) -> int | None:
    """The pid listening on TCP ``port`` on this machine, where the OS lets us see it."""
    import psutil

    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return conn.pid
    except (psutil.AccessDenied, PermissionError):
        return None
    return None


class ServerMemory:
    """RSS of a server process and all its descendants (tritonserver and its python-backend stubs)."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._root = psutil.Process(pid)

    def processes(self) -> list:
        return [self._root, *self._root.children(recursive=True)]

    def rss_mib(self) -> float:
        return sum(p.rss_mib for p in server_memory(self._root.pid))
