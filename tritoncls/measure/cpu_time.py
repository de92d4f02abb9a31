"""Where a served text's CPU time goes: the server front end, its python models, and the load generator.

On a machine where perf_analyzer runs beside tritonserver, the CPU the client and Triton's gRPC front
end use is CPU the model cannot. Comparing CPU time per text, rather than only texts per second, shows
how much of a served-vs-in-process gap is the served path's own cost and how much is the client's.

Counters come from psutil (user + system time, every thread of the process): tritonserver's own process
is the front end (gRPC, scheduling, the ensemble), its descendants are the python-backend stubs. The
load generator's CPU is what this process's reaped children used (``os.times``), so measure it around a
``perf_analyzer`` run with no other child exiting meanwhile.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ServerCpu:
    """Cumulative CPU seconds of a tritonserver process and of its descendants (the python stubs)."""

    frontend_s: float
    models_s: float

    def minus(self, before: ServerCpu) -> ServerCpu:
        return ServerCpu(self.frontend_s - before.frontend_s, self.models_s - before.models_s)


@dataclass(frozen=True)
class CpuPerText:
    """CPU milliseconds per served text, by where they were spent."""

    texts: int
    frontend_ms: float
    models_ms: float
    client_ms: float

    @property
    def server_ms(self) -> float:
        """What the server side costs a text: front end and python models."""
        return self.frontend_ms + self.models_ms

    @property
    def total_ms(self) -> float:
        return self.server_ms + self.client_ms

    @property
    def client_share(self) -> float:
        """The load generator's share of all the CPU the measurement used."""
        return self.client_ms / self.total_ms if self.total_ms > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"texts": self.texts, "frontend_ms": self.frontend_ms, "models_ms": self.models_ms,
                "client_ms": self.client_ms, "server_ms": self.server_ms, "client_share": self.client_share}


def per_text(server: ServerCpu, client_s: float, texts: int) -> CpuPerText | None:
    """CPU deltas over a measurement -> milliseconds per text (``None`` when nothing was served)."""
    if texts <= 0:
        return None
    scale = 1e3 / texts
    return CpuPerText(texts, server.frontend_s * scale, server.models_s * scale, client_s * scale)


def server_cpu(pid: int) -> ServerCpu | None:
    """Cumulative CPU of process ``pid`` (front end) and of all its live descendants (python models); the
    process tree as ``server.memory.server_memory`` walks it. ``None`` when ``pid`` is gone."""
    import psutil

    try:
        root = psutil.Process(pid)
        frontend, children = _cpu_s(root), root.children(recursive=True)
    except psutil.NoSuchProcess:
        return None
    models = 0.0
    for child in children:
        try:
            models += _cpu_s(child)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue  # exited meanwhile
    return ServerCpu(frontend, models)


def cpu_by_role(pid: int) -> dict[str, float]:
    """Cumulative CPU seconds of tritonserver (``pid``, the front end) and of each python model's stubs, by the
    model they serve (its instances summed); empty when ``pid`` is gone."""
    import psutil

    from tritoncls.server.memory import role_of

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return {}
    out: dict[str, float] = {}
    for process in processes:
        try:
            role = "tritonserver" if process.pid == pid else role_of(process.cmdline())
            out[role] = out.get(role, 0.0) + _cpu_s(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue  # exited meanwhile
    return out


def cpu_shares(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Each process role's share of the server's CPU time between two :func:`cpu_by_role` snapshots."""
    spent = {role: after[role] - before.get(role, 0.0) for role in after}
    total = sum(max(0.0, v) for v in spent.values())
    return {role: max(0.0, v) / total for role, v in spent.items()} if total > 0 else {}


def _cpu_s(process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def children_cpu_s() -> float:
    """CPU seconds this process's reaped children used so far (perf_analyzer runs are such children)."""
    times = os.times()
    return times.children_user + times.children_system
