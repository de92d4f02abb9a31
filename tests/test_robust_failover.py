"""Replicas and failover: ``classify`` over two tritonservers while one is SIGKILLed and brought back.

One run without faults, then the same run while server 0 is SIGKILLed (after a quarter of the texts)
and restarted on its ports, then server 1 is SIGKILLed (so the run must go back to the restarted
server 0) and restarted. The output must hold every text once, in input order, with the in-process
reference's labels; the run must not stall longer than the request timeout and must take at most
about one request timeout longer than the run without faults. The figures are printed (also under
pytest's capture) and recorded as properties for the JUnit report.

Tiny model, 4000 texts, loopback only; every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from tests.support import Replicas, kill_replica, wait_for
from tritoncls.clients import chunked
from tritoncls.clients.chunked import ChunkJournal, ClassifyFileConfig, classify_file
from tritoncls.common.predictions import OUTPUT_HEADER

pytestmark = [pytest.mark.triton]

CHUNK = 100
TIMEOUT_S = 5.0
RUN_TIMEOUT_S = 60
HUNG_TEXTS = 10000
HUNG_TIMEOUT_S = 2.0


@dataclass
class Run:
    """classify_file in a thread; the times its chunk files appeared, seen by polling the journal folder."""

    config: ClassifyFileConfig
    started: float = 0.0
    ended: float = 0.0
    seen: dict[str, float] = field(default_factory=dict)
    error: BaseException | None = None
    senders: list = field(default_factory=list)
    thread: threading.Thread | None = None

    def start(self, monkeypatch: pytest.MonkeyPatch) -> Run:
        """Start classify, and a watcher that notes when each chunk appears (so the test may block meanwhile)."""
        monkeypatch.setattr(chunked, "BatchSender", self._sender_factory(chunked.BatchSender))
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.started = time.monotonic()
        self.thread.start()
        threading.Thread(target=self._watch, daemon=True).start()
        return self

    def _watch(self) -> None:
        deadline = self.started + RUN_TIMEOUT_S
        while self.running() and time.monotonic() < deadline:
            self.poll()
            time.sleep(0.02)

    def _sender_factory(self, cls):
        def make(*args, **kwargs):
            self.senders.append(cls(*args, **kwargs))
            return self.senders[-1]
        return make

    def _main(self) -> None:
        try:
            classify_file(self.config)
        except BaseException as exc:  # noqa: BLE001 - reported by finish()
            self.error = exc
        self.ended = time.monotonic()

    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def poll(self) -> int:
        """Texts done so far (chunks on disk); records when each chunk file first appeared."""
        now = time.monotonic()
        for path in ChunkJournal(Path(self.config.output)).folder.glob("chunk-*.tsv"):
            self.seen.setdefault(path.name, now)
        return len(self.seen) * self.config.chunk_size

    def wait_until(self, condition, timeout_s: float, what: str) -> None:
        """Poll the run until ``condition`` holds; fails if the run ends first."""
        wait_for(lambda: self.poll() < 0 or condition() or not self.running(), timeout_s, what, every_s=0.02)
        assert self.running(), f"classify ended ({self.error!r}) before {what}; raise Replicas.TEXTS"

    def wait_done(self, texts: int, timeout_s: float) -> None:
        self.wait_until(lambda: self.poll() >= texts, timeout_s, f"{texts} texts done")

    def finish(self) -> float:
        """Wall seconds of the whole run."""
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while self.running() and time.monotonic() < deadline:
            self.poll()
            time.sleep(0.02)
        assert not self.running(), f"classify did not finish within {RUN_TIMEOUT_S} s; done {self.poll()}"
        if self.error is not None:
            raise self.error
        return self.ended - self.started

    def longest_gap(self) -> float:
        """The longest time with no chunk finished, from the start to the last chunk."""
        times = sorted([self.started, *self.seen.values()])
        return max(b - a for a, b in zip(times, times[1:]))

    def rate(self, start: float, end: float) -> float:
        """Texts per second finished between two moments of the run."""
        done = sum(1 for t in self.seen.values() if start < t <= end) * self.config.chunk_size
        return done / max(end - start, 1e-9)


def config_for(replicas: Replicas, source: Path, output: Path, timeout_s: float = TIMEOUT_S) -> ClassifyFileConfig:
    return ClassifyFileConfig(input=str(source), output=str(output), urls=replicas.urls, chunk_size=CHUNK,
                              batch_size=8, concurrency=4, timeout_s=timeout_s, retries=3)


def assert_complete(replicas: Replicas, output: Path, count: int | None = None) -> None:
    """The first ``count`` input texts (all by default) once each, in input order, with the reference's
    label and confidence."""
    count = count or len(replicas.texts)
    lines = output.read_text(encoding="utf-8").split("\n")
    assert lines[0] == OUTPUT_HEADER and lines[-1] == ""
    rows = [line.split("\t") for line in lines[1:-1]]
    texts = [row[0] for row in rows]
    assert len(texts) == count, f"{len(texts)} rows for {count} texts"
    assert texts == replicas.texts[:count], "a text is missing, duplicated or out of order"
    wrong = [i for i, row in enumerate(rows) if row[1] != replicas.labels[i]]
    assert not wrong, f"{len(wrong)} labels differ from the in-process reference, e.g. rows {wrong[:5]}"
    diff = np.abs(np.array([float(row[2]) for row in rows]) - np.array(replicas.confidences[:count])).max()
    assert diff <= 2e-6, diff


def report(capsys, record_property, case: str, figures: dict[str, object]) -> None:
    """Print the figures past pytest's capture (so CI's log shows them) and record them for JUnit XML."""
    line = f"failover ({case}): " + ", ".join(f"{k} {v}" for k, v in figures.items())
    for key, value in figures.items():
        record_property(f"failover {case}: {key}", value)
    with capsys.disabled():
        print("\n" + line)


def test_classify_over_two_servers_survives_losing_each_one_in_turn(replicas, replica_servers, tmp_path,
                                                                     monkeypatch, capsys, record_property):
    total = len(replicas.texts)
    baseline = Run(config_for(replicas, replicas.input, tmp_path / "baseline.tsv")).start(monkeypatch)
    base_s = baseline.finish()
    assert_complete(replicas, tmp_path / "baseline.tsv")

    run = Run(config_for(replicas, replicas.input, tmp_path / "failover.tsv")).start(monkeypatch)
    run.wait_done(total // 25, 60)
    first_kill = time.monotonic()
    kill_replica(replica_servers[0])
    replica_servers[0].start()  # (from this thread: a server dies with the thread that started it)
    back = time.monotonic()
    run.wait_done(run.poll() + 3 * CHUNK, 60)
    second_kill = time.monotonic()
    kill_replica(replica_servers[1])
    wall_s = run.finish()
    assert_complete(replicas, tmp_path / "failover.tsv")

    figures = {
        "texts": total, "no-fault run s": round(base_s, 2), "run with 2 kills s": round(wall_s, 2),
        "server 0 down s": round(back - first_kill, 2),
        "texts/s before kill": round(run.rate(run.started, first_kill)),
        "texts/s while server 0 was down": round(run.rate(first_kill, back)),
        "texts/s after server 1 was killed": round(run.rate(second_kill, run.ended)),
        "longest stall s": round(run.longest_gap(), 2), "no-fault longest stall s": round(baseline.longest_gap(), 2),
        "request timeout s": TIMEOUT_S, **run.senders[0].stats.as_dict(),
    }
    report(capsys, record_property, "two kills", figures)
    assert run.longest_gap() <= TIMEOUT_S, figures
    # The restart competes with the run for the CPU (2 cores in CI): allow a quarter more besides the timeout.
    assert wall_s <= 1.25 * base_s + TIMEOUT_S, figures


def test_classify_over_two_servers_rides_out_a_hung_one_within_the_request_timeout(
        replicas, replica_servers, tmp_path, monkeypatch, capsys, record_property):
    """Server 1 is frozen (SIGSTOP: it accepts connections and answers nothing, as a lost machine does)
    for the rest of the run: its requests time out and move to server 0; probes of it stay bounded."""
    count = HUNG_TEXTS
    source = tmp_path / "input.txt"
    source.write_text("\n".join(replicas.texts[:count]) + "\n", encoding="utf-8")
    baseline = Run(config_for(replicas, source, tmp_path / "baseline.tsv", HUNG_TIMEOUT_S)).start(monkeypatch)
    base_s = baseline.finish()

    run = Run(config_for(replicas, source, tmp_path / "hung.tsv", HUNG_TIMEOUT_S)).start(monkeypatch)
    run.wait_done(count // 10, 60)
    frozen = time.monotonic()
    group = replica_servers[1].process.pid
    os.killpg(group, signal.SIGSTOP)
    try:
        wall_s = run.finish()
    finally:
        os.killpg(group, signal.SIGCONT)
    assert_complete(replicas, tmp_path / "hung.tsv", count)

    figures = {
        "texts": count, "no-fault run s": round(base_s, 2), "run with server 1 frozen s": round(wall_s, 2),
        "texts/s before": round(run.rate(run.started, frozen)), "texts/s after": round(run.rate(frozen, run.ended)),
        "longest stall s": round(run.longest_gap(), 2), "no-fault longest stall s": round(baseline.longest_gap(), 2),
        "request timeout s": HUNG_TIMEOUT_S, **run.senders[0].stats.as_dict(),
    }
    report(capsys, record_property, "one hung", figures)
    assert run.longest_gap() <= HUNG_TIMEOUT_S + 1.0, figures
    assert wall_s <= 1.25 * base_s + 2 * HUNG_TIMEOUT_S, figures
