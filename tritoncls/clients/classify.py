"""Classify many texts over one or more Triton servers, concurrently, in input order."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from tritoncls.clients.base import Prediction, ServerUnavailable, TritonClient, chunks
from tritoncls.clients.grpc_client import GrpcClient
from tritoncls.clients.http_client import HttpClient
from tritoncls.errors import ClientError

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

    def get(self, url: str) -> TritonClient:
        clients = self._local.__dict__.setdefault("clients", {})
        if url not in clients:
            clients[url] = make_client(url, self.protocol, **self.options)
            with self._lock:
                self._all.append(clients[url])
        return clients[url]

    def close(self) -> None:
        for client in self._all:
            client.close()


class BatchSender:
    """Send a batch to one of several servers from any thread; a batch whose server is unavailable
    (after that client's retries) moves on to the next URL. Batch ``index`` picks the first URL, so
    consecutive batches go round-robin."""

    def __init__(self, urls: Sequence[str], protocol: str = "grpc", **options) -> None:
        if not urls:
            raise ClientError("no server URL given; pass --url HOST:PORT (repeat it to spread over several servers).")
        if protocol not in CLIENTS:
            raise ClientError(f"protocol {protocol!r} is not one of {sorted(CLIENTS)}.")
        self.urls = list(urls)
        self._pool = _ClientPool(protocol, options)

    def __call__(self, index: int, texts: Sequence[str | bytes]) -> list[Prediction]:
        failure: ServerUnavailable | None = None
        for k in range(len(self.urls)):
            try:
                return self._pool.get(self.urls[(index + k) % len(self.urls)]).classify(texts)
            except ServerUnavailable as exc:
                failure = exc
        raise failure  # type: ignore[misc]

    def close(self) -> None:
        self._pool.close()


def check_sizes(concurrency: int, batch_size: int) -> None:
    if concurrency < 1 or batch_size < 1:
        raise ClientError(f"--concurrency ({concurrency}) and --batch_size ({batch_size}) must be >= 1.")


def classify_texts(texts: Sequence[str], urls: Sequence[str], protocol: str = "grpc", model_name: str = "seqcls",
                   concurrency: int = 4, batch_size: int = 32, timeout_s: float = 60.0, retries: int = 3,
                   progress: bool = False) -> list[Prediction]:
    """Predictions for ``texts`` in input order.

    Texts are sent sorted by length, ``batch_size`` to a request, so each request pads little;
    requests go round-robin over ``urls`` from ``concurrency`` threads, and a request whose server is
    unavailable moves on to the next URL. (For files, ``chunked.classify_file`` adds incremental,
    resumable output.)
    """
    from tqdm import tqdm

    check_sizes(concurrency, batch_size)
    sender = BatchSender(urls, protocol, model_name=model_name, timeout_s=timeout_s, retries=retries)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    batches = list(chunks(order, batch_size))
    results: list[Prediction | None] = [None] * len(texts)

    def run(job: tuple[int, Sequence[int]]) -> tuple[Sequence[int], list[Prediction]]:
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
