"""``make demo``: the whole product on the shipped sample data set, in about two minutes on 2 cores.

train (from scratch, offline) -> evaluate -> export -> build a Triton repository -> serve it with
the real tritonserver -> classify a few texts over gRPC -> stop the server. ``--task multi_label`` and
``--task hierarchical`` (``make demo DEMO_TASK=...``) run the same chain on the shipped multi-label and
hierarchical sets.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tritoncls.cli_common import set_cpu_threads, setup_logging
from tritoncls.errors import USER_ERRORS

log = logging.getLogger("tritoncls.demo")

DATA = Path(__file__).resolve().parent / "data"
#: --task -> the shipped data set it runs on
DEMO_SETS = {"multi_class": DATA / "demo", "multi_label": DATA / "demo_multilabel",
             "hierarchical": DATA / "demo_hierarchical"}
DEMO_DATA = DEMO_SETS["multi_class"]
#: ERNIE 3.0 nano's width (312 hidden, 12 heads) with 2 layers: trains to ~90% dev accuracy in ~1 minute.
DEMO_ARCH = {"num_hidden_layers": 2}
#: Joined two-intent messages are longer than single ones.
DEMO_MAX_LENGTH = {"multi_class": 32, "multi_label": 64, "hierarchical": 64}
#: Maximum epochs (early stopping ends sooner): a sigmoid per label learns the joined messages more slowly.
DEMO_EPOCHS = {"multi_class": 10, "multi_label": 25, "hierarchical": 25}
SAMPLE_TEXTS = (
    "I was charged twice for my subscription this month",
    "where is my package, the tracking number shows nothing",
    "the app crashes every time I open the settings page",
    "how do I reset my password",
    "I want to send back these shoes, they are too small",
    "my card was charged twice and the app keeps crashing on login",
    "thanks, that is all for today",
)


def run_demo(output: Path, epochs: int | None = None, serve: bool = True, task: str = "multi_class") -> dict:
    from tritoncls.modeling.export import ExportConfig, export
    from tritoncls.training.evaluate import EvaluateConfig, evaluate
    from tritoncls.training.train import TrainConfig, train

    output.mkdir(parents=True, exist_ok=True)
    data = DEMO_SETS[task]
    log.info("== 1/4 train (ernie-3.0-nano-zh shape, 2 layers, from scratch, %s) on %s", task, data)
    result = train(TrainConfig(
        dataset_dir=str(data), output=str(output / "checkpoint"), model_name="ernie-3.0-nano-zh",
        from_scratch=True, arch_overrides=dict(DEMO_ARCH), epochs=epochs or DEMO_EPOCHS[task], learning_rate=5e-4,
        batch_size=16,
        warmup=True, warmup_steps=20, max_seq_length=DEMO_MAX_LENGTH[task], logging_steps=25, early_stop=True,
        task=task,
    ))
    log.info("== 2/4 evaluate")
    report = evaluate(EvaluateConfig(
        dataset_dir=str(data), checkpoint=str(result.save_dir), max_seq_length=DEMO_MAX_LENGTH[task],
        bad_case_path=str(output / "bad_case.txt"), confusion_matrix_path=str(output / "confusion_matrix.png"),
        report=str(output / "evaluation.json"),
    ))
    log.info("== 3/4 export")
    export_dir = export(ExportConfig(checkpoint=str(result.save_dir), output=str(output / "export")))
    dev = report["splits"]["dev"]
    summary = {"metric": result.metric, "dev_score": dev["accuracy"] if task == "multi_class" else dev["macro_f1"] / 100,
               "export": str(export_dir)}
    if serve:
        log.info("== 4/4 build the Triton repository, serve it, classify")
        summary["predictions"] = _serve_and_classify(export_dir, output / "model_repository")
    return summary


def _serve_and_classify(export_dir: Path, repo_dir: Path) -> list[tuple[str, str]]:
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
                answer = _answer(prediction)
                rows.append((text, answer))
                print(f"{answer:>40}  {text}")
    log.info("server stopped")
    return rows


def _answer(prediction) -> str:
    """``label 0.973`` (multi-class) or ``a 0.91, b 0.62`` (label sets; ``(none)`` for an empty one)."""
    if hasattr(prediction, "labels"):
        return ", ".join(f"{label} {p:.2f}" for label, p in prediction.labels) or "(none)"
    return f"{prediction.label} {prediction.confidence:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="demo_out", help="where every artifact goes (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="maximum training epochs (default: 10, or 25 for multi_label and hierarchical)")
    parser.add_argument("--no-serve", action="store_true", help="stop after export (no Triton server)")
    parser.add_argument("--task", default="multi_class", choices=tuple(DEMO_SETS),
                        help="which shipped data set and task (default: %(default)s)")
    args = parser.parse_args(argv)
    set_cpu_threads()
    setup_logging()
    from tritoncls.cli_common import quiet_paddlenlp

    quiet_paddlenlp()
    try:
        summary = run_demo(Path(args.output), args.epochs, serve=not args.no_serve, task=args.task)
    except USER_ERRORS as exc:
        log.error("%s", exc)
        return 1
    log.info("Demo done: dev %s %.1f%%; artifacts in %s", summary["metric"], 100 * summary["dev_score"], args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
