"""The drift experiments of docs/monitoring.md: three streams served to a KUAKE-QIC model, each judged by
``tritoncls monitor`` against the reference distribution its export recorded on KUAKE-QIC dev.

    .venv/bin/python scripts/drift_experiment.py --checkpoint CKPT --output OUT [--data ../shared/data]

1. ``dev``: the 1,955 KUAKE-QIC dev texts (the reference's own texts): no drift expected;
2. ``two_labels``: KUAKE-QIC train texts of two labels only: label drift expected;
3. ``trec``: TREC's English questions (train + dev) sent to the Chinese model: confidence and length
   drift expected.

For each stream: a fresh server (counters start at 0), every text classified over gRPC, then ``tritoncls
monitor --metrics_url`` with ``--output``; its exit status and report land in ``OUT/<stream>/`` and the
summary in ``OUT/summary.json`` (printed).
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

from tritoncls.builder import BuildConfig, build_repository
from tritoncls.cli_common import setup_logging
from tritoncls.clients import classify_texts
from tritoncls.common import data
from tritoncls.modeling.export import ExportConfig, export
from tritoncls.server import TritonServer

log = logging.getLogger("drift_experiment")


def streams(shared: Path) -> dict[str, list[str]]:
    kuake, trec = shared / "kuake_qic", shared / "trec" / "trec6"
    labels = data.read_labels(kuake / "label.txt")
    dev = [e.text for e in data.read_examples(kuake / "dev.txt", labels)]
    train = data.read_examples(kuake / "train.txt", labels)
    counts = collections.Counter(e.label for e in train)
    chosen = [label for label, _ in counts.most_common()[2:4]]  # two mid-frequency labels, not the largest
    english = [text for name in ("train.txt", "dev.txt") for text in data.read_text_column(trec / name)[0]]
    log.info("two-label stream: labels %s", chosen)
    return {"dev": dev, "two_labels": [e.text for e in train if e.label in chosen], "trec": english}


def run_stream(name: str, texts: list[str], repo: Path, out: Path) -> dict:
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    with TritonServer(repo, log_file=folder / "tritonserver.log") as server:
        started = time.perf_counter()
        classify_texts(texts, [server.grpc_url], concurrency=4, batch_size=16)
        seconds = time.perf_counter() - started
        done = subprocess.run([sys.executable, "-m", "tritoncls.cli", "monitor", "--metrics_url", server.metrics_url,
                               "--reference", str(repo), "--output", str(folder / "report")],
                              capture_output=True, text=True, timeout=300)
    (folder / "monitor.out").write_text(done.stdout + done.stderr, encoding="utf-8")
    report = json.loads((folder / "report" / "monitor.json").read_text(encoding="utf-8"))
    log.info("%s: %d texts in %.1f s, monitor exit %d\n%s", name, len(texts), seconds, done.returncode, done.stdout)
    return {"texts": len(texts), "exit_status": done.returncode, "report": report}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    args = parser.parse_args()
    setup_logging(False)
    out, shared = Path(args.output), Path(args.data)
    out.mkdir(parents=True, exist_ok=True)
    export_dir = export(ExportConfig(checkpoint=args.checkpoint, output=str(out / "export"),
                                     reference_data=str(shared / "kuake_qic" / "dev.txt")))
    repo = build_repository(BuildConfig(model=str(export_dir), output=str(out / "repo"), force=True))
    summary = {name: run_stream(name, texts, repo, out) for name, texts in streams(shared).items()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps({name: {"texts": s["texts"], "exit_status": s["exit_status"]} for name, s in summary.items()},
                     indent=2))


if __name__ == "__main__":
    main()
