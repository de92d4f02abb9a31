"""Classify many texts over one or more Triton servers, concurrently, in input order."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from tritoncls.clients.base import (
    LabelSetPrediction,
    Prediction,
    RequestTimedOut,
    ServerUnavailable,
    TritonClient,
    chunks,
)
from tritoncls.clients.grpc_client import GrpcClient
from tritoncls.clients.http_client import HttpClient
from tritoncls.errors import ClientError

log = logging.getLogger(__name__)

#: --protocol -> client class
CLIENTS: dict[str, type[TritonClient]] = {"grpc": GrpcClient, "http": HttpClient}


def make_client(url: str, protocol: str = "grpc", **options) -> TritonClient:
    if protocol not in CLIENTS:
        raise ClientError(f"protocol {protocol!r} is not one of {sorted(CLIENTS)}.")
    return CLIENTS[protocol](url, **options)


class _ClientPool:
    """One client per (thread, URL): HTTP clients are not thread-safe, and this keeps gRPC simple too."""

    def __init__(self, protocol: str, options: dict) -> None:
        self.protocol = protocol
        self.options = options
        self._local = threading.local()
        self._all: list[TritonClient] = []
        self._lock = threading.Lock()

    def _mine(self) -> dict[str, TritonClient]:
        return self._local.__dict__.setdefault("clients", {})

    def get(self, url: str) -> TritonClient:
        clients = self._mine()
        if url not in clients:
            clients[url] = make_client(url, self.protocol, **self.options)
            with self._lock:
                self._all.append(clients[url])
        return clients[url]

    def drop(self, url: str) -> None:
        """Close this thread's client for ``url``; the next ``get`` connects afresh.

        (A gRPC channel to a server that went away keeps failing for its reconnect backoff, which
        grows to minutes, even once the server is back; a new channel connects at once.)
        """
        client = self._mine().pop(url, None)
        if client is None:
            return
        with self._lock:
            self._all.remove(client)
        try:
            client.close()
        except Exception:  # noqa: BLE001 - closing a broken client may fail too
            log.debug("closing the client of %s failed", url, exc_info=True)

    def close(self) -> None:
        with self._lock:
            clients, self._all = self._all, []
        for client in clients:
            client.close()


@dataclass
class SenderStats:
    """What a BatchSender did: batches answered, tries that found a server unavailable or timed out,
    batches answered by another server than the first one tried, and backoff rounds (every server failed)."""

    batches: int = 0
    unavailable: int = 0
    failed_over: int = 0
    backoffs: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class _Health:
    """A server that failed: consecutive failures, until when it is avoided, whether a batch is probing it."""

    failures: int = 0
    until: float = 0.0
    probing: bool = False


class BatchSender:
    """Send a batch to one of several servers from any thread, round-robin by batch ``index``.

    A server that is unavailable (refused, reset, UNAVAILABLE, model not loaded) or, when there are
    several, that times out is not retried in place: the batch moves on at once to the next server.
    The failed server is avoided for ``cooldown_s``, doubling with each further failure up to
    ``max_cooldown_s``; then one batch probes it while the others keep avoiding it, so a hung server
    holds up one batch per probe, not every thread. Its client is dropped, so it is reached afresh once
    it is back. Only when every server fails does the batch wait (``backoff_s`` doubling, capped at
    ``max_backoff_s``) and go round again, ``retries`` times, before ServerUnavailable. With one URL
    this is the client's own retry schedule, and a timeout is an error.
    """

    def __init__(self, urls: Sequence[str], protocol: str = "grpc", *, retries: int = 3, backoff_s: float = 0.5,
                 max_backoff_s: float = 5.0, cooldown_s: float = 1.0, max_cooldown_s: float = 30.0,
                 **options) -> None:
        if not urls:
            raise ClientError("no server URL given; pass --url HOST:PORT (repeat it to spread over several servers).")
        if protocol not in CLIENTS:
            raise ClientError(f"protocol {protocol!r} is not one of {sorted(CLIENTS)}.")
        self.urls = list(urls)
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.cooldown_s = cooldown_s
        self.max_cooldown_s = max_cooldown_s
        self.stats = SenderStats()
        self._pool = _ClientPool(protocol, {**options, "retries": 0})
        self._health: dict[str, _Health] = {}
        self._lock = threading.Lock()

    def __call__(self, index: int, texts: Sequence[str | bytes]) -> list[Prediction | LabelSetPrediction]:
        failure: ClientError | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self._count("backoffs")
                time.sleep(min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s))
            for k, url in enumerate(self._order(index)):
                try:
                    predictions = self._send(url, texts)
                except ClientError as exc:
                    if not self._moves_on(exc):
                        raise
                    failure = exc
                    continue
                self._mark_up(url, moved=k > 0 or attempt > 0)
                return predictions
        raise self._unavailable(len(texts), failure)

    def _send(self, url: str, texts: Sequence[str | bytes]) -> list[Prediction | LabelSetPrediction]:
        """One try on ``url``; a failure worth moving on from marks it down, anything else ends its probe."""
        try:
            return self._pool.get(url).classify(texts)
        except BaseException as exc:
            if self._moves_on(exc):
                self._mark_down(url, exc)  # type: ignore[arg-type]
            else:
                self._end_probe(url)
            raise

    def _moves_on(self, exc: BaseException) -> bool:
        """Unavailable: try the next server. Timed out: so too, when there is another server to try."""
        return isinstance(exc, ServerUnavailable) or (isinstance(exc, RequestTimedOut) and len(self.urls) > 1)

    def _order(self, index: int) -> list[str]:
        """The URLs from ``index`` round-robin, those that failed last; a failed one whose time is up is
        put first for this caller alone (it probes it)."""
        now = time.monotonic()
        turn = [self.urls[(index + k) % len(self.urls)] for k in range(len(self.urls))]
        probe, usable, avoided = [], [], []
        with self._lock:
            for url in turn:
                health = self._health.get(url)
                if health is None:
                    usable.append(url)
                elif not probe and not health.probing and health.until <= now:
                    health.probing = True
                    probe.append(url)
                else:
                    avoided.append(url)
        return probe + usable + avoided

    def _mark_down(self, url: str, exc: ClientError) -> None:
        self._pool.drop(url)
        with self._lock:
            self.stats.unavailable += 1
            health = self._health.setdefault(url, _Health())
            first = health.failures == 0
            health.failures += 1
            health.probing = False
            health.until = time.monotonic() + min(self.cooldown_s * 2 ** (health.failures - 1), self.max_cooldown_s)
        if first and len(self.urls) > 1:
            log.warning("%s failed; sending its requests to the other servers until it answers again (%s)", url, exc)

    def _mark_up(self, url: str, moved: bool) -> None:
        with self._lock:
            self.stats.batches += 1
            self.stats.failed_over += moved
            came_back = self._health.pop(url, None) is not None
        if came_back and len(self.urls) > 1:
            log.warning("%s is answering again", url)

    def _end_probe(self, url: str) -> None:
        with self._lock:
            if url in self._health:
                self._health[url].probing = False

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)

    def _unavailable(self, n_texts: int, last: ClientError | None) -> ServerUnavailable:
        tries = self.retries + 1
        if len(self.urls) == 1:
            return ServerUnavailable(f"{self.urls[0]}: could not classify {n_texts} texts: server unavailable after "
                                     f"{tries} tries. Is the server running and reachable? (last: {last})")
        return ServerUnavailable(f"could not classify {n_texts} texts: every server ({', '.join(self.urls)}) "
                                 f"unavailable after {tries} tries each. Are they running and reachable? (last: {last})")

    def close(self) -> None:
        self._pool.close()


def check_sizes(concurrency: int, batch_size: int) -> None:
    if concurrency < 1 or batch_size < 1:
        raise ClientError(f"--concurrency ({concurrency}) and --batch_size ({batch_size}) must be >= 1.")


def classify_texts(texts: Sequence[str], urls: Sequence[str], protocol: str = "grpc", model_name: str = "seqcls",
                   concurrency: int = 4, batch_size: int = 32, timeout_s: float = 60.0, retries: int = 3,
                   progress: bool = False, all_probs: bool = False) -> list[Prediction | LabelSetPrediction]:
    """Predictions for ``texts`` in input order.

    Texts are sent sorted by length, ``batch_size`` to a request, so each request pads little;
    requests go round-robin over ``urls`` from ``concurrency`` threads, and a request whose server is
    unavailable moves on to the next URL. (For files, ``chunked.classify_file`` adds incremental,
    resumable output.)
    """
    from tqdm import tqdm

    check_sizes(concurrency, batch_size)
    sender = BatchSender(urls, protocol, model_name=model_name, timeout_s=timeout_s, retries=retries,
                         all_probs=all_probs)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    batches = list(chunks(order, batch_size))
    results: list[Prediction | LabelSetPrediction | None] = [None] * len(texts)

    def run(job: tuple[int, Sequence[int]]) -> tuple[Sequence[int], list[Prediction | LabelSetPrediction]]:
        index, rows = job
        return rows, sender(index, [texts[i] for i in rows])

    try:
        with ThreadPoolExecutor(max_workers=concurrency) as executor, \
                tqdm(total=len(texts), unit="text", desc="classify", disable=not progress) as bar:
            for rows, predictions in executor.map(run, enumerate(batches)):
                for row, prediction in zip(rows, predictions):
                    results[row] = prediction
                bar.update(len(rows))
    finally:
        sender.close()
    return results  # type: ignore[return-value]
