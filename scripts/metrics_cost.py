"""The served metrics' cost, measured in interleaved rounds (docs/monitoring.md, "Measured").

    .venv/bin/python scripts/metrics_cost.py --model EXPORT --input TEXTS --output OUT [--rounds 8] [--seconds 8]

Builds the same export twice (metrics on, and ``--no_metrics``), serves both at once, and in each round sends
32-text requests (concurrency 2) to one server, then the other, for ``--seconds`` each, alternating which goes
first. A round's ratio is its on rate over its off rate; on a shared machine a load change between rounds
moves both sides of a round alike, so the median ratio says more than the rates. Writes ``OUT/metrics_cost.json``
and prints it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from tritoncls.builder import BuildConfig, build_repository
from tritoncls.cli_common import setup_logging
from tritoncls.clients import make_client
from tritoncls.common.data import read_text_column
from tritoncls.server import TritonServer


def rate(url: str, texts: list[str], seconds: float, batch: int = 32, concurrency: int = 2) -> float:
    """Texts per second of ``batch``-text requests from ``concurrency`` threads for about ``seconds``."""
    from concurrent.futures import ThreadPoolExecutor

    requests = [texts[i:i + batch] for i in range(0, len(texts) - batch + 1, batch)]
    deadline = time.perf_counter() + seconds

    def worker(offset: int) -> int:
        done = 0
        with make_client(url, "grpc") as client:
            i = offset
            while time.perf_counter() < deadline:
                done += len(client.classify(requests[i % len(requests)]))
                i += concurrency
        return done

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        total = sum(pool.map(worker, range(concurrency)))
    return total / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    setup_logging(False)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    texts = read_text_column(args.input)[0]
    repos = {name: build_repository(BuildConfig(model=args.model, output=str(out / name), force=True, metrics=on))
             for name, on in (("on", True), ("off", False))}
    with TritonServer(repos["on"], log_file=out / "on.log") as on, TritonServer(repos["off"], log_file=out / "off.log") as off:
        urls = {"on": on.grpc_url, "off": off.grpc_url}
        for url in urls.values():
            rate(url, texts, 2.0)  # warm-up
        rounds = []
        for r in range(args.rounds):
            order = ("on", "off") if r % 2 == 0 else ("off", "on")
            rates = {name: rate(urls[name], texts, args.seconds) for name in order}
            rounds.append({"order": list(order), **rates, "ratio": rates["on"] / rates["off"]})
            print(f"round {r + 1}: on {rates['on']:.1f}, off {rates['off']:.1f} texts/s, ratio {rounds[-1]['ratio']:.3f}",
                  flush=True)
    import os

    summary = {"model": args.model, "texts": len(texts), "request_texts": 32, "concurrency": 2,
               "seconds_per_side": args.seconds, "rounds": rounds,
               "median_ratio": statistics.median(r["ratio"] for r in rounds),
               "on_median": statistics.median(r["on"] for r in rounds),
               "off_median": statistics.median(r["off"] for r in rounds),
               "load_average_after": os.getloadavg()[0]}
    (out / "metrics_cost.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in summary.items() if k != "rounds"}, indent=2))


if __name__ == "__main__":
    main()
