"""CPU accounting of a served measurement: process trees, reaped children, per-text shares."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tritoncls.measure import cpu_time
from tritoncls.measure.cpu_time import ServerCpu, per_text, server_cpu


def test_server_cpu_splits_the_front_end_from_every_descendant_and_is_none_for_a_gone_process():
    spin = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\ntime.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", spin])
    try:
        deadline = time.monotonic() + 20
        while (cpu := server_cpu(os.getpid())) is not None and cpu.models_s < 0.25 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert cpu is not None and cpu.models_s >= 0.25  # the spinning child is this process's descendant
        assert 0 < cpu.frontend_s == pytest.approx(sum(os.times()[:2]), abs=0.5)  # this process's own time
    finally:
        child.kill()
        child.wait()
    assert server_cpu(child.pid) is None


def test_per_text_divides_deltas_by_the_texts_served():
    cpu = per_text(ServerCpu(2.0, 6.0).minus(ServerCpu(1.0, 1.0)), client_s=1.5, texts=500)
    assert (cpu.frontend_ms, cpu.models_ms, cpu.client_ms) == pytest.approx((2.0, 10.0, 3.0))
    assert cpu.server_ms == pytest.approx(12.0) and cpu.client_share == pytest.approx(0.2)
    assert per_text(ServerCpu(1.0, 1.0), 1.0, texts=0) is None


def test_a_reaped_child_counts_as_the_clients_cpu():
    before = cpu_time.children_cpu_s()
    subprocess.run([sys.executable, "-c", "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.2: pass"],
                   check=True)
    assert cpu_time.children_cpu_s() - before >= 0.15
