"""Server faults: ``tritoncls classify`` on a large input while tritonserver is SIGKILLed and restarted.

The client either rides out the restart (retries) or stops with a message naming how many texts
are done; ``classify --resume`` then completes the output with no text missing or duplicated. The
output is kept chunk by chunk, each chunk written atomically, so killing the client itself loses
nothing either. After every kill the server's orphaned python-backend stubs and their shared memory
must be gone.

One tiny model (no training), 12000 texts, ports fixed for the module so a restart comes back where
the client is pointed. Every wait is bounded.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support import Faults, kill_server, wait_for
from tritoncls.clients.chunked import ChunkJournal
from tritoncls.common.predictions import OUTPUT_HEADER

pytestmark = [pytest.mark.triton]

TEXTS = Faults.TEXTS
CHUNK = 400
RUN_TIMEOUT_S = 240


def start_classify(faults: Faults, output: Path, *extra: str, retries: int = 1) -> subprocess.Popen:
    command = [sys.executable, "-m", "tritoncls.cli", "classify", "--url", faults.server.grpc_url, "--input",
               str(faults.input), "--output", str(output), "--chunk_size", str(CHUNK), "--batch_size", "8",
               "--concurrency", "2", "--timeout_s", "20", "--retries", str(retries), *extra]
    log = output.with_name(output.name + f".log{len(list(output.parent.glob(output.name + '.log*')))}")
    with log.open("w") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    process.log_path = log  # type: ignore[attr-defined]
    return process


def log_of(process: subprocess.Popen) -> str:
    return process.log_path.read_text(encoding="utf-8")  # type: ignore[attr-defined]


def chunk_files(output: Path) -> list[Path]:
    return sorted(ChunkJournal(output).folder.glob("chunk-*.tsv"))


def finish(process: subprocess.Popen) -> int:
    try:
        return process.wait(timeout=RUN_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def assert_complete(faults: Faults, output: Path) -> None:
    """Every input text once, in input order, with the reference's label and confidence; nothing left over."""
    lines = output.read_text(encoding="utf-8").split("\n")
    assert lines[0] == OUTPUT_HEADER and lines[-1] == ""
    rows = [line.split("\t") for line in lines[1:-1]]
    texts = [row[0] for row in rows]
    assert len(texts) == len(faults.texts), f"{len(texts)} rows for {len(faults.texts)} texts"
    assert texts == faults.texts, "a text is missing, duplicated or out of order"
    wrong = [i for i, row in enumerate(rows) if row[1] != faults.labels[i]]
    assert not wrong, f"{len(wrong)} labels differ from the in-process reference, e.g. rows {wrong[:5]}"
    diff = np.abs(np.array([float(row[2]) for row in rows]) - np.array(faults.confidences)).max()
    assert diff <= 2e-6, diff
    assert not ChunkJournal(output).folder.exists(), "the chunk folder must be removed once the output is whole"


def test_classify_rides_out_two_server_kills_and_restarts_by_retrying(faults, faults_server, tmp_path):
    output = tmp_path / "results.tsv"
    process = start_classify(faults, output, retries=10)
    kills = []
    try:
        for _ in range(2):
            before = len(chunk_files(output))
            wait_for(lambda n=before: len(chunk_files(output)) >= n + 2 or process.poll() is not None, 120, "chunks")
            assert process.poll() is None, "classify finished before the server could be killed; raise TEXTS"
            kills.append(kill_server(faults_server))
            assert process.poll() is None, "classify must keep retrying while the server is down"
            faults_server.start()
    finally:
        code = finish(process)
    assert code == 0, log_of(process)
    assert len(kills) == 2
    assert_complete(faults, output)
    print(f"\nserver SIGKILLed {len(kills)} times during classify; client retried through both restarts; "
          f"{len(faults.texts)} texts, 0 lost")


def test_classify_stops_naming_the_texts_done_and_resume_completes_the_output(faults, faults_server, tmp_path):
    output = tmp_path / "results.tsv"
    process = start_classify(faults, output, retries=1)
    try:
        wait_for(lambda: len(chunk_files(output)) >= 3 or process.poll() is not None, 120, "three chunks")
        assert process.poll() is None, "classify finished before the server could be killed; raise TEXTS"
        kill_server(faults_server)
    finally:
        code = finish(process)
    message = log_of(process)
    assert code == 1, message
    match = re.search(rf"classify stopped: (\d+) of {TEXTS} texts done \(kept in (.+?)\); (\d+) left", message)
    assert match, message
    done = int(match[1])
    on_disk = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in chunk_files(output))
    assert done == on_disk and done >= 3 * CHUNK and int(match[3]) == TEXTS - done
    assert "rerun the same command with --resume" in message and "server unavailable" in message
    assert not output.exists(), "the output appears only when it is whole"

    faults_server.start()
    resumed = start_classify(faults, output, "--resume")
    assert finish(resumed) == 0, log_of(resumed)
    assert f"Resuming: {done} of {TEXTS} texts were done by an earlier run" in log_of(resumed)
    assert_complete(faults, output)
    print(f"\nserver SIGKILLed: classify stopped at {done} of {TEXTS} texts; --resume classified the other "
          f"{TEXTS - done}; 0 lost, 0 duplicated")


def test_classify_killed_itself_loses_no_finished_chunk_and_resume_completes(faults, faults_server, tmp_path):
    output = tmp_path / "results.tsv"
    process = start_classify(faults, output)
    try:
        wait_for(lambda: len(chunk_files(output)) >= 3 or process.poll() is not None, 120, "three chunks")
        assert process.poll() is None, "classify finished before it could be killed; raise TEXTS"
        process.kill()
    finally:
        finish(process)
    files = chunk_files(output)
    whole = ChunkJournal(output).finished_chunks(faults.texts, CHUNK)
    assert len(whole) == len(files) >= 3, "every chunk file on disk must be whole"
    resumed = start_classify(faults, output, "--resume")
    assert finish(resumed) == 0, log_of(resumed)
    assert_complete(faults, output)


def test_resume_redoes_a_damaged_chunk_and_keeps_the_good_ones(faults, faults_server, tmp_path):
    output = tmp_path / "results.tsv"
    process = start_classify(faults, output)
    try:
        wait_for(lambda: len(chunk_files(output)) >= 2 or process.poll() is not None, 120, "two chunks")
        process.kill()
    finally:
        finish(process)
    damaged = chunk_files(output)[0]
    damaged.write_text(damaged.read_text(encoding="utf-8")[:-500], encoding="utf-8")  # cut mid-row
    resumed = start_classify(faults, output, "--resume")
    assert finish(resumed) == 0, log_of(resumed)
    assert "does not hold the rows of its texts; classifying that chunk again" in log_of(resumed)
    assert_complete(faults, output)
