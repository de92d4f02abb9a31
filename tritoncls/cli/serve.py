"""``tritoncls serve``: start tritonserver on a model repository, print the endpoints, stop on a signal."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from tritoncls.cli._args import flag, shared

if TYPE_CHECKING:
    from tritoncls.server.auth import AdminKey

log = logging.getLogger(__name__)

NAME = "serve"
STAGE = "tritoncls.server"
HELP = "run Triton Inference Server on a model repository"
DESCRIPTION = (
    "Start tritonserver (from PATH, else the one bundled in nvidia-pytriton) on a repository written by "
    "`tritoncls build-repo`, wait until every model is ready, print the endpoints and serve until Ctrl+C or "
    "SIGTERM, then stop the server cleanly. Model control is off (nothing loads or unloads over the network). "
    "With an API key (the TRITONCLS_API_KEY environment variable or --api_key_file) Triton's administrative APIs "
    "(shared-memory, model-repository, statistics, trace, logging) answer only requests that carry it in the "
    "--api_key_header header; inference, metadata and health stay open. Binding beyond loopback without a key "
    "logs a warning."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """serve's options."""
    shared(parser, "model_repository", required=True)
    flag(parser, "host", default="127.0.0.1", help="address to bind; 0.0.0.0 exposes the server to the network")
    flag(parser, "grpc_port", type=int, default=8001, help="gRPC port (0: pick a free one)")
    flag(parser, "http_port", type=int, default=8000, help="HTTP port (0: pick a free one)")
    flag(parser, "metrics_port", type=int, default=8002, help="Prometheus metrics port (0: pick a free one)")
    flag(parser, "shm_size", default="16M", help="python backend shared memory per model instance (bytes, or K/M/G)")
    flag(parser, "backend_directory", default=None, help="Triton backends folder (default: the server's own)")
    flag(parser, "log_file", default=None, help="write the server's log here instead of to stderr")
    flag(parser, "ready_timeout_s", type=float, default=300.0, help="how long to wait for every model to load")
    flag(parser, "api_key_file", default=None,
         help="file whose first line is the key that unlocks the administrative APIs (else the TRITONCLS_API_KEY "
              "environment variable; neither: they stay open). Kept off tritoncls' command line, but tritonserver "
              "2.51 takes it on its own")
    flag(parser, "api_key_header", default="admin-key",
         help="header that carries the key (over gRPC Triton reads it as triton-grpc-protocol-<header>)")


def admin_key(args: argparse.Namespace) -> AdminKey | None:
    """The key from --api_key_file, else from $TRITONCLS_API_KEY; None when neither is set."""
    from tritoncls.server.auth import configured_admin_key

    return configured_admin_key(args.api_key_file, args.api_key_header)


def run(args: argparse.Namespace) -> int:
    """Serve until a signal; 1 if the server exits on its own."""
    import signal
    import threading

    from tritoncls.runtime.contract import LATENCY_SUMMARIES_ARG
    from tritoncls.server.auth import RESTRICTED_APIS
    from tritoncls.server.triton import TritonServer

    server = TritonServer(
        args.model_repository, host=args.host, grpc_port=args.grpc_port or None, http_port=args.http_port or None,
        metrics_port=args.metrics_port or None, shm_size=args.shm_size, backend_directory=args.backend_directory,
        log_file=args.log_file, echo=args.log_file is None, admin_key=admin_key(args),
        extra_args=(LATENCY_SUMMARIES_ARG,))  # p99 per model on the metrics port, as deployed (docs/deploy.md)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start(timeout_s=args.ready_timeout_s)
        locked = (f"  administrative APIs ({', '.join(RESTRICTED_APIS)}) need the '{server.admin_key.header}' header\n"
                  if server.admin_key else "")
        print(f"Triton is ready: gRPC {server.grpc_url}  HTTP {server.http_url}  metrics {server.metrics_url}\n{locked}"
              f"  try: tritoncls classify --url {server.grpc_url} --input data.txt --output results.tsv\n"
              f"Ctrl+C stops it.", flush=True)
        while not stop.wait(0.5):
            if not server.is_running():
                log.error("tritonserver exited on its own (code %s)", server.process.returncode)
                return 1
        log.info("stopping tritonserver")
        code = server.stop()
        return 0 if code in (0, None) else 1
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
