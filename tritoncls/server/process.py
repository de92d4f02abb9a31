"""The server's process group: its members, the python backend's shared-memory regions, reaping both when a
server stops or dies, and the child-side hook that ties the server's life to its parent's."""

from __future__ import annotations

import ctypes
import logging
import os
import re
import signal
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

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
