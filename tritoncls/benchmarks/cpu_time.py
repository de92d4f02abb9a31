"""Where a served text's CPU time goes: the server front end, its python models, and the load generator.

On a machine where perf_analyzer runs beside tritonserver, the CPU the client and Triton's gRPC front
end use is CPU the model cannot. Comparing CPU time per text, rather than only texts per second, shows
how much of a served-vs-in-process gap is the served path's own cost and how much is the client's.

Counters come from ``/proc/PID/stat`` (utime + stime, every thread of the process): tritonserver's own
process is the front end (gRPC, scheduling, the ensemble), its descendants are the python-backend stubs.
The load generator's CPU is what this process's reaped children used (``os.times``), so measure it
around a ``perf_analyzer`` run with no other child exiting meanwhile. Linux only; elsewhere the
counters read as unavailable (``None``) and reports leave them out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROC = Path("/proc")


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


def parse_stat(text: str) -> tuple[int, float]:
    """``/proc/PID/stat`` -> (parent pid, utime + stime in clock ticks). The command name, in parentheses,
    may itself hold spaces and parentheses, so fields are counted after its last ')'."""
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[1]), float(int(fields[11]) + int(fields[12]))


def _processes(proc: Path) -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU ticks) of every readable process."""
    out: dict[int, tuple[int, float]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            out[int(entry.name)] = parse_stat((entry / "stat").read_text())
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile, or unreadable
    return out


def server_cpu(pid: int, proc: Path = PROC) -> ServerCpu | None:
    """Cumulative CPU of process ``pid`` (front end) and of all its live descendants (python models)."""
    if not (proc / str(pid) / "stat").is_file():
        return None
    table = _processes(proc)
    if pid not in table:
        return None
    children: dict[int, list[int]] = {}
    for child, (parent, _) in table.items():
        children.setdefault(parent, []).append(child)
    descendants, todo = 0.0, list(children.get(pid, []))
    while todo:
        child = todo.pop()
        descendants += table[child][1]
        todo += children.get(child, [])
    tick = float(os.sysconf("SC_CLK_TCK"))
    return ServerCpu(table[pid][1] / tick, descendants / tick)


def children_cpu_s() -> float:
    """CPU seconds this process's reaped children used so far (perf_analyzer runs are such children)."""
    times = os.times()
    return times.children_user + times.children_system
