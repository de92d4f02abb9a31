"""Classify a text file in chunks that are each written atomically, so a run that stops can resume.

While it runs, ``classify`` keeps its results beside the output, in ``<output>.parts/``::

    results.tsv.parts/
      journal.json          what is being classified: input path, its SHA-256 and text count, chunk size, model,
                            and once the first chunk is in, the header of the model's rows
      chunk-000000.tsv      rows of texts 0..999 in input order (text<TAB>label<TAB>confidence, or for a
                            multi-label model text<TAB>labels<TAB>probabilities; no header)
      chunk-000001.tsv      ...

A chunk file is written to a temporary name, fsynced and renamed into place: it is whole or absent.
When every chunk is there they are joined into ``<output>`` (again written aside and renamed) and
the folder is removed. A run that stops (server gone, Ctrl+C, SIGKILL) loses at most the chunks in
flight; ``--resume`` checks the journal against the input, re-checks every chunk file and classifies
only what is missing, so no text is missing or duplicated.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from tritoncls.clients.base import LabelSetPrediction, Prediction, chunks
from tritoncls.clients.classify import BatchSender, check_sizes
from tritoncls.common import files
from tritoncls.errors import USER_ERRORS, ClientError

log = logging.getLogger(__name__)

JOURNAL_FORMAT = "tritoncls-classify-journal"
JOURNAL_VERSION = 1


@dataclass(frozen=True)
class ClassifyFileConfig:
    """What ``tritoncls classify`` needs; field names match its flags."""

    input: str
    output: str
    urls: tuple[str, ...]
    protocol: str = "grpc"
    name: str = "seqcls"
    concurrency: int = 4
    batch_size: int = 32
    chunk_size: int = 1000
    timeout_s: float = 60.0
    retries: int = 3
    resume: bool = False
    force: bool = False
    progress: bool = False

    def __post_init__(self) -> None:
        check_sizes(self.concurrency, self.batch_size)
        if self.chunk_size < 1:
            raise ClientError(f"--chunk_size ({self.chunk_size}) must be >= 1.")


@dataclass(frozen=True)
class ClassifyFileResult:
    output: Path
    texts: int
    resumed_texts: int  # already done by an earlier run
    seconds: float


class ClassifyStopped(ClientError):
    """The run stopped before every text was classified; finished chunks are kept for ``--resume``."""

    def __init__(self, message: str, done: int, total: int) -> None:
        super().__init__(message)
        self.done = done
        self.total = total


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ChunkJournal:
    """The ``<output>.parts`` folder: the journal, one file per finished chunk, and the final join."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.folder = output.with_name(output.name + ".parts")
        self.journal = self.folder / "journal.json"

    def exists(self) -> bool:
        return self.folder.exists()

    def chunk_path(self, chunk: int) -> Path:
        return self.folder / f"chunk-{chunk:06d}.tsv"

    def start(self, record: dict) -> None:
        self.folder.mkdir(parents=True)
        files.write_json(self.journal, record)

    def record(self) -> dict:
        try:
            return json.loads(self.journal.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ClientError(f"{self.journal}: cannot read the journal of the earlier run ({exc}); "
                              f"pass --force to start over.") from None

    def finished_chunks(self, texts: Sequence[str], chunk_size: int) -> set[int]:
        """Chunks whose file is present and holds exactly the rows of their texts; others are deleted."""
        finished = set()
        for path in sorted(self.folder.glob("chunk-*.tsv")):
            chunk = int(path.stem.split("-")[1])
            expected = texts[chunk * chunk_size:(chunk + 1) * chunk_size]
            if expected and _rows_match(path, expected):
                finished.add(chunk)
            else:
                log.warning("%s: does not hold the rows of its texts; classifying that chunk again", path)
                path.unlink()
        for stale in self.folder.glob(".*.tmp-*"):  # a writer killed between write and rename
            stale.unlink()
        return finished

    def set_header(self, header: str) -> None:
        """Record the rows' header (multi-class or label sets) for the join, also of a resumed run."""
        record = self.record()
        if record.get("header") != header:
            files.write_json(self.journal, record | {"header": header})

    def write_chunk(self, chunk: int, rows: Sequence[str]) -> None:
        files.write_text(self.chunk_path(chunk), "".join(row + "\n" for row in rows))

    def join(self, n_chunks: int, header: str) -> None:
        """Write the output from every chunk, in order, then remove the folder."""
        files.concatenate(self.output, header, (self.chunk_path(chunk) for chunk in range(n_chunks)))
        shutil.rmtree(self.folder)


def _lines(path: Path) -> list[str] | None:
    try:
        return path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError):
        return None


def _lines_match(lines: Sequence[str], texts: Sequence[str]) -> bool:
    """One ``text<TAB>label<TAB>confidence`` line per text, in order, and a final newline."""
    if lines[-1] != "" or len(lines) - 1 != len(texts):
        return False
    return all(line.rsplit("\t", 2)[0] == text and line.count("\t") >= 2 for line, text in zip(lines, texts))


def _rows_match(path: Path, texts: Sequence[str]) -> bool:
    lines = _lines(path)
    return lines is not None and _lines_match(lines, texts)


def _output_is_complete(output: Path, texts: Sequence[str], headers: Sequence[str]) -> bool:
    lines = _lines(output)
    return lines is not None and lines[0] in headers and _lines_match(lines[1:], texts)


def _check_paths(config: ClassifyFileConfig, journal: ChunkJournal) -> None:
    source, output = Path(config.input), Path(config.output)
    if output.exists() and output.resolve() == source.resolve():
        raise ClientError(f"--output {output} is the input file; write the results somewhere else.")
    if output.is_dir():
        raise ClientError(f"--output {output} is a directory; name a file, e.g. {output / 'results.tsv'}.")
    if journal.folder.exists() and not journal.folder.is_dir():
        raise ClientError(f"{journal.folder} exists and is not a folder; move it away (classify keeps its chunks there).")


def classify_file(config: ClassifyFileConfig) -> ClassifyFileResult:
    """Classify ``config.input`` into ``config.output`` (the TSV ``tritoncls predict`` writes),
    chunk by chunk; raises :class:`ClassifyStopped` naming how many texts are done when it stops."""
    from tritoncls.common.data import read_texts
    from tritoncls.common.predictions import LABEL_SETS_HEADER, OUTPUT_HEADER

    started = time.perf_counter()
    output = Path(config.output)
    journal = ChunkJournal(output)
    _check_paths(config, journal)
    texts = read_texts(config.input)
    record = {"format": JOURNAL_FORMAT, "format_version": JOURNAL_VERSION, "input": str(Path(config.input).resolve()),
              "input_sha256": sha256_of(Path(config.input)), "texts": len(texts), "chunk_size": config.chunk_size,
              "model_name": config.name}
    chunk_size, finished = _prepare(config, journal, record, texts, (OUTPUT_HEADER, LABEL_SETS_HEADER))
    if chunk_size is None:
        log.info("%s already holds all %d results; nothing to do.", output, len(texts))
        return ClassifyFileResult(output, len(texts), len(texts), time.perf_counter() - started)
    n_chunks = -(-len(texts) // chunk_size)
    resumed = sum(len(texts[c * chunk_size:(c + 1) * chunk_size]) for c in finished)
    if finished:
        log.info("Resuming: %d of %d texts were done by an earlier run (%d of %d chunks in %s).",
                 resumed, len(texts), len(finished), n_chunks, journal.folder)
    _Run(config, journal, texts, chunk_size, finished, resumed).classify()
    journal.join(n_chunks, journal.record().get("header", OUTPUT_HEADER))
    return ClassifyFileResult(output, len(texts), resumed, time.perf_counter() - started)


def _prepare(config: ClassifyFileConfig, journal: ChunkJournal, record: dict, texts: Sequence[str],
             headers: Sequence[str]) -> tuple[int | None, set[int]]:
    """Start, resume or refuse; returns (chunk size, finished chunks), or (None, ...) when the output is complete."""
    output = Path(config.output)
    if config.force:
        if journal.exists():
            shutil.rmtree(journal.folder)
        journal.start(record)
        return config.chunk_size, set()
    if journal.exists():
        if not config.resume:
            raise ClientError(f"{journal.folder} holds partial results of an earlier run; pass --resume to finish "
                              f"it, or --force to start over.")
        earlier = journal.record()
        for key in ("format", "input_sha256", "texts", "model_name"):
            if earlier.get(key) != record[key]:
                what = "the input file has changed" if key in ("input_sha256", "texts") else f"its {key} differs"
                raise ClientError(f"{journal.folder}: cannot resume: {what} since the earlier run "
                                  f"({key} {earlier.get(key)!r}, now {record[key]!r}). Pass --force to start over.")
        chunk_size = int(earlier["chunk_size"])
        if chunk_size != config.chunk_size:
            log.info("Resuming with the earlier run's --chunk_size %d", chunk_size)
        return chunk_size, journal.finished_chunks(texts, chunk_size)
    if output.exists():
        if config.resume and _output_is_complete(output, texts, headers):
            return None, set()
        raise ClientError(f"--output {output} already exists; pass --force to overwrite it"
                          + (" (it does not hold this input's results, so there is nothing to resume)."
                             if config.resume else "."))
    journal.start(record)
    return config.chunk_size, set()


class _Run:
    """The pending chunks' batches sent from a thread pool; each chunk written as soon as it is complete."""

    def __init__(self, config: ClassifyFileConfig, journal: ChunkJournal, texts: Sequence[str], chunk_size: int,
                 finished: set[int], resumed: int) -> None:
        self.config = config
        self.journal = journal
        self.texts = texts
        self.chunk_size = chunk_size
        self.pending = [c for c in range(-(-len(texts) // chunk_size)) if c not in finished]
        self.done = resumed
        self.results: dict[int, dict[int, Prediction | LabelSetPrediction]] = {}
        self.header: str | None = None
        self.remaining: dict[int, int] = {}

    def batches(self) -> Iterator[tuple[int, list[int]]]:
        """(chunk, rows) for every pending chunk in order; rows sorted by text length so requests pad little."""
        size = self.config.batch_size
        for chunk in self.pending:
            rows = list(range(chunk * self.chunk_size, min((chunk + 1) * self.chunk_size, len(self.texts))))
            self.remaining[chunk] = len(rows)
            self.results[chunk] = {}
            rows.sort(key=lambda i: len(self.texts[i]))
            for batch in chunks(rows, size):
                yield chunk, list(batch)

    def classify(self) -> None:
        from tqdm import tqdm

        config = self.config
        sender = BatchSender(config.urls, config.protocol, model_name=config.name, timeout_s=config.timeout_s,
                             retries=config.retries)
        jobs = enumerate(self.batches())
        in_flight: dict[Future, tuple[int, list[int]]] = {}
        failure: BaseException | None = None
        executor = ThreadPoolExecutor(max_workers=config.concurrency)
        bar = tqdm(total=len(self.texts), initial=self.done, unit="text", desc="classify", disable=not config.progress)
        try:
            while True:
                while failure is None and len(in_flight) < 2 * config.concurrency:
                    job = next(jobs, None)
                    if job is None:
                        break
                    index, (chunk, rows) = job
                    in_flight[executor.submit(sender, index, [self.texts[i] for i in rows])] = (chunk, rows)
                if not in_flight:
                    break
                finished, _ = wait(in_flight, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in finished:
                    chunk, rows = in_flight.pop(future)
                    try:
                        self._collect(chunk, rows, future.result())
                    except USER_ERRORS as exc:
                        failure = failure or exc
                        continue
                    except Exception as exc:  # noqa: BLE001 - whatever it was, keep what is done and say so
                        failure = failure or ClientError(f"{type(exc).__name__}: {exc}")
                        continue
                    bar.update(len(rows))
        except KeyboardInterrupt:
            failure = KeyboardInterrupt()
            for future in in_flight:
                future.cancel()
        finally:
            # After Ctrl+C, do not wait for requests in flight (each ends by its own timeout).
            executor.shutdown(wait=not isinstance(failure, KeyboardInterrupt), cancel_futures=True)
            bar.close()
            sender.close()
        if failure is not None:
            raise self._stopped(failure)

    def _collect(self, chunk: int, rows: list[int], predictions: list[Prediction | LabelSetPrediction]) -> None:
        if len(predictions) != len(rows):
            raise ClientError(f"the server answered {len(predictions)} results for {len(rows)} texts.")
        mine = self.results[chunk]
        for row, prediction in zip(rows, predictions):
            mine[row] = prediction
        self.remaining[chunk] -= len(rows)
        if self.header is None and predictions:
            self.header = predictions[0].header
            self.journal.set_header(self.header)
        if self.remaining[chunk] == 0:
            ordered = sorted(mine)
            self.journal.write_chunk(chunk, [mine[i].row(self.texts[i]) for i in ordered])
            self.done += len(ordered)
            del self.results[chunk]

    def _stopped(self, cause: BaseException) -> ClassifyStopped:
        total = len(self.texts)
        reason = "interrupted" if isinstance(cause, KeyboardInterrupt) else str(cause)
        return ClassifyStopped(
            f"classify stopped: {self.done} of {total} texts done (kept in {self.journal.folder}); "
            f"{total - self.done} left. Cause: {reason}\nFix the cause, then rerun the same command with --resume "
            f"to classify only the remaining texts.", self.done, total)
