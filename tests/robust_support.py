"""Helpers shared by the robustness suites (tests/test_robust_*.py): inputs, a reference, process checks.

Every loop here is bounded in count and time; every server is on 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tests.serving_fixtures import TINY_WORDS

#: Label names that templating, quoting, escaping or encoding could damage (no line breaks: label.txt
#: holds one label a line, and build-repo refuses those with a clear error).
HOSTILE_LABELS = ('say "hi"', "it's", "{{ label }}", "{% raw %}x{% endraw %}", "{brace}", "back\\slash",
                  "中文标签", "émoji 🙂", "tab-less\u200bzero-width", "$(echo pwned)", "<b>html</b>", "עברית")


def mixed_texts(count: int, seed: int = 0) -> list[str]:
    """``count`` texts of 1 to 60 words from the tiny vocabulary (plus letters), so lengths mix."""
    rng = np.random.default_rng(seed)
    words = [*TINY_WORDS, *"abcdefghij"]
    return [" ".join(rng.choice(words, size=int(rng.integers(1, 61)))) + f" {i}" for i in range(count)]


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(every_s)


def alive(pids: Sequence[int]) -> list[int]:
    """Those of ``pids`` that are still running (zombies count as gone)."""
    out = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            out.append(pid)
    return out


def kill_server(server) -> dict:
    """SIGKILL tritonserver (not its stubs: a crash does not kill them), then ``stop()``, which must reap
    the orphaned stubs and their shared memory. Returns what was checked, for the suite's figures."""
    pids = server.pids()
    regions = set(server._shm_regions)
    os.kill(server.process.pid, signal.SIGKILL)
    started = time.monotonic()
    code = server.stop()
    left = alive(pids)
    leaked = [r for r in regions if (Path("/dev/shm") / r).exists()]
    assert code == -signal.SIGKILL, code
    assert not left, f"processes {left} of the killed server are still running"
    assert not leaked, f"shared memory {leaked} of the killed server was not removed"
    return {"processes": len(pids), "stop_s": time.monotonic() - started}


def raise_open_files_limit(wanted: int) -> None:
    """Let this process (and servers it starts) hold ``wanted`` descriptors, within the hard limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
