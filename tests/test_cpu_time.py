"""CPU accounting of a served measurement: /proc parsing, process trees, per-text shares."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tritoncls.benchmarks import cpu_time
from tritoncls.benchmarks.cpu_time import ServerCpu, parse_stat, per_text, server_cpu

TICK = os.sysconf("SC_CLK_TCK")


def stat_line(pid: int, comm: str, ppid: int, utime: int, stime: int) -> str:
    # fields after the command: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
    return f"{pid} ({comm}) S {ppid} 1 1 0 -1 4194560 100 0 0 0 {utime} {stime} 0 0 20 0 1 0\n"


def fake_proc(root: Path, rows: list[tuple[int, str, int, int, int]]) -> Path:
    for pid, comm, ppid, utime, stime in rows:
        (root / str(pid)).mkdir(parents=True)
        (root / str(pid) / "stat").write_text(stat_line(pid, comm, ppid, utime, stime))
    (root / "self").mkdir()  # non-numeric entries are skipped
    return root


def test_parse_stat_counts_fields_after_a_command_name_with_spaces_and_parentheses():
    assert parse_stat(stat_line(7, "triton (python) b", 3, 40, 2)) == (3, 42.0)


def test_server_cpu_splits_the_front_end_from_every_descendant(tmp_path):
    proc = fake_proc(tmp_path, [(10, "tritonserver", 1, 3 * TICK, TICK), (11, "triton_python_b", 10, 5 * TICK, 0),
                                (12, "triton_python_b", 10, 4 * TICK, TICK), (13, "helper", 12, TICK, 0),
                                (20, "perf_analyzer", 1, 9 * TICK, 0)])
    assert server_cpu(10, proc) == ServerCpu(frontend_s=4.0, models_s=11.0)
    assert server_cpu(99, proc) is None


def test_per_text_divides_deltas_by_the_texts_served():
    cpu = per_text(ServerCpu(2.0, 6.0).minus(ServerCpu(1.0, 1.0)), client_s=1.5, texts=500)
    assert (cpu.frontend_ms, cpu.models_ms, cpu.client_ms) == pytest.approx((2.0, 10.0, 3.0))
    assert cpu.server_ms == pytest.approx(12.0) and cpu.client_share == pytest.approx(0.2)
    assert per_text(ServerCpu(1.0, 1.0), 1.0, texts=0) is None


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs Linux /proc")
def test_a_busy_child_process_counts_as_the_servers_models_and_a_reaped_one_as_the_clients():
    spin = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\ntime.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", spin])
    try:
        deadline = time.monotonic() + 20
        while (cpu := server_cpu(os.getpid())) is not None and cpu.models_s < 0.25 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert cpu is not None and cpu.models_s >= 0.25  # the spinning child is this process's descendant
    finally:
        child.kill()
        child.wait()
    before = cpu_time.children_cpu_s()
    subprocess.run([sys.executable, "-c", "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.2: pass"],
                   check=True)
    assert cpu_time.children_cpu_s() - before >= 0.15
