"""``make demo``: the whole product on the shipped sample data set, in about two minutes on 2 cores.

train (from scratch, offline) -> evaluate -> export -> build a Triton repository -> serve it with
the real tritonserver -> classify a few texts over gRPC -> stop the server.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tritoncls.cli_common import set_cpu_threads, setup_logging
from tritoncls.errors import TritonclsError

log = logging.getLogger("tritoncls.demo")

DEMO_DATA = Path(__file__).resolve().parent / "data" / "demo"
#: ERNIE 3.0 nano's width (312 hidden, 12 heads) with 2 layers: trains to ~90% dev accuracy in ~1 minute.
DEMO_ARCH = {"num_hidden_layers": 2}
SAMPLE_TEXTS = (
    "I was charged twice for my subscription this month",
    "where is my package, the tracking number shows nothing",
    "the app crashes every time I open the settings page",
    "how do I reset my password",
    "I want to send back these shoes, they are too small",
)


def run_demo(output: Path, epochs: int = 10, serve: bool = True) -> dict:
    from tritoncls.modeling.export import ExportConfig, export
    from tritoncls.training.evaluate import EvaluateConfig, evaluate
    from tritoncls.training.train import TrainConfig, train

    output.mkdir(parents=True, exist_ok=True)
    log.info("== 1/4 train (ernie-3.0-nano-zh shape, 2 layers, from scratch) on %s", DEMO_DATA)
    result = train(TrainConfig(
        dataset_dir=str(DEMO_DATA), output=str(output / "checkpoint"), model_name="ernie-3.0-nano-zh",
        from_scratch=True, arch_overrides=dict(DEMO_ARCH), epochs=epochs, learning_rate=5e-4, batch_size=16,
        warmup=True, warmup_steps=20, max_seq_length=32, logging_steps=25, early_stop=True,
    ))
    log.info("== 2/4 evaluate")
    report = evaluate(EvaluateConfig(
        dataset_dir=str(DEMO_DATA), checkpoint=str(result.save_dir), max_seq_length=32,
        bad_case_path=str(output / "bad_case.txt"), confusion_matrix_path=str(output / "confusion_matrix.png"),
        report=str(output / "evaluation.json"),
    ))
    log.info("== 3/4 export")
    export_dir = export(ExportConfig(checkpoint=str(result.save_dir), output=str(output / "export")))
    summary = {"dev_accuracy": report["splits"]["dev"]["accuracy"], "export": str(export_dir)}
    if serve:
        log.info("== 4/4 build the Triton repository, serve it, classify")
        summary["predictions"] = _serve_and_classify(export_dir, output / "model_repository")
    return summary


def _serve_and_classify(export_dir: Path, repo_dir: Path) -> list[tuple[str, str, float]]:
    from tritoncls.builder import BuildConfig, build_repository
    from tritoncls.clients import GrpcClient
    from tritoncls.server import TritonServer

    build_repository(BuildConfig(model=str(export_dir), output=str(repo_dir), force=True))
    rows = []
    with TritonServer(repo_dir) as server:
        log.info("tritonserver ready: gRPC %s, HTTP %s", server.grpc_url, server.http_url)
        with GrpcClient(server.grpc_url) as client:
            client.wait_until_ready(60)
            for text, prediction in zip(SAMPLE_TEXTS, client.classify(list(SAMPLE_TEXTS))):
                rows.append((text, prediction.label, prediction.confidence))
                print(f"{prediction.label:>10}  {prediction.confidence:.3f}  {text}")
    log.info("server stopped")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="demo_out", help="where every artifact goes (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=10, help="maximum training epochs (default: %(default)s)")
    parser.add_argument("--no-serve", action="store_true", help="stop after export (no Triton server)")
    args = parser.parse_args(argv)
    set_cpu_threads()
    setup_logging()
    from tritoncls.cli_common import quiet_paddlenlp

    quiet_paddlenlp()
    try:
        summary = run_demo(Path(args.output), args.epochs, serve=not args.no_serve)
    except TritonclsError as exc:
        log.error("%s", exc)
        return 1
    log.info("Demo done: dev accuracy %.1f%%; artifacts in %s", 100 * summary["dev_accuracy"], args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
