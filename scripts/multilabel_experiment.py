"""Measure a multi-label or hierarchical checkpoint on a data set's test split, served and offline.

    .venv/bin/python scripts/multilabel_experiment.py --checkpoint CKPT --dataset_dir DATA --task multi_label \
        --output OUT [--max_seq_length 64] [--thresholds_file FILE]

It exports the checkpoint, builds a repository (ensemble layout, and with ``--fused`` the fused one too),
serves it with the bundled tritonserver, classifies every test text over gRPC (every label's probability
requested) and compares, text by text, with the offline predictor (ONNX Runtime, FP32): identical label
sets, the largest probability difference. It also scores the served predictions against the test labels
(micro/macro precision/recall/F1, subset accuracy; per level for hierarchies), counts served paths without
their parent, and reports INT8's (ONNX Runtime dynamic quantization) label-set agreement with FP32 and its
scores. It also scores other decision rules on the same test probabilities: one threshold for every label
(0.5, and the one best on dev), and for hierarchies no rule (orphans allowed) and the bottom-up rule (a
predicted path adds its parents) against the top-down one that is served. Everything lands in
``OUT/summary.json`` and is printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from tritoncls.builder import BuildConfig, build_repository
from tritoncls.cli_common import set_cpu_threads, setup_logging
from tritoncls.clients import classify_texts
from tritoncls.common import data, metrics
from tritoncls.common.offline import OfflineConfig, open_predictor
from tritoncls.modeling.export import ExportConfig, export
from tritoncls.runtime import Manifest
from tritoncls.server import TritonServer

log = logging.getLogger("multilabel_experiment")


def scores(truth: np.ndarray, predicted: np.ndarray, manifest: Manifest) -> dict:
    """Set scores (percent) over all labels, and per level for a hierarchy."""
    out = {k: v for k, v in metrics.set_scores(truth, predicted).items() if k != "per_label"}
    if manifest.task.hierarchical:
        out["levels"] = [{k: v for k, v in level.items() if k not in ("per_label", "labels")}
                         for level in metrics.level_scores(truth, predicted, manifest.labels,
                                                           manifest.task.hierarchy_separator)]
    return out


def orphans(mask: np.ndarray, manifest: Manifest) -> int:
    """Predicted paths whose parent is not predicted (0 for a consistent hierarchy)."""
    parents = manifest.head().parents
    if parents is None:
        return 0
    children = np.flatnonzero(parents >= 0)
    return int((mask[:, children] & ~mask[:, parents[children]]).sum())


def closure(mask: np.ndarray, manifest: Manifest) -> np.ndarray:
    """Bottom-up: every predicted path adds its parents (the other way to make a hierarchy consistent)."""
    parents, mask = manifest.head().parents, mask.copy()
    for _ in range(len(manifest.labels)):
        children = np.flatnonzero(parents >= 0)
        before = mask.sum()
        mask[:, parents[children]] |= mask[:, children]
        if mask.sum() == before:
            return mask
    return mask


def decision_rules(probs: np.ndarray, truth: np.ndarray, dev_probs: np.ndarray, dev_truth: np.ndarray,
                   manifest: Manifest) -> dict:
    """Test scores of the served rule and of the alternatives, from the same probabilities."""
    head = manifest.head()
    n = manifest.num_labels
    # every label below min_positives: they all take the one threshold best on dev
    shared = metrics.tune_thresholds(dev_probs, dev_truth, "macro_f1", min_positives=10 ** 9).values[0]
    rules = {"per_label_thresholds (served)": head.decide(probs),
             "one_threshold_0.5": head.decide(probs, np.full(n, 0.5, dtype=np.float32)),
             f"one_threshold_{shared:.2f}_best_on_dev": head.decide(probs, np.full(n, shared, dtype=np.float32))}
    if manifest.task.hierarchical:
        raw = probs >= head.thresholds
        rules["no_hierarchy_rule"] = raw
        rules["bottom_up_rule"] = closure(raw, manifest)
    return {name: {**{k: v for k, v in scores(truth, mask, manifest).items() if k != "levels"},
                   "paths_without_their_parent": orphans(mask, manifest)} for name, mask in rules.items()}


def served_run(export_dir: Path, out: Path, layout: str, texts: list[str], manifest: Manifest) -> tuple[np.ndarray, ...]:
    """(mask, probs, seconds) of every text served by a repository of ``layout``."""
    repo = build_repository(BuildConfig(model=str(export_dir), output=str(out / f"repo_{layout}"), layout=layout,
                                        force=True))
    with TritonServer(repo, log_file=out / f"tritonserver_{layout}.log") as server:
        started = time.perf_counter()
        predictions = classify_texts(texts, [server.grpc_url], concurrency=4, batch_size=32, all_probs=True,
                                     progress=True)
        seconds = time.perf_counter() - started
    index = {label: i for i, label in enumerate(manifest.labels)}
    mask = np.zeros((len(texts), manifest.num_labels), dtype=bool)
    for row, prediction in enumerate(predictions):
        mask[row, [index[name] for name in prediction.names]] = True
    return mask, np.array([p.probs for p in predictions], dtype=np.float32), seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--dataset_dir", required=True)
    parser.add_argument("--task", required=True, choices=("multi_label", "hierarchical"))
    parser.add_argument("--output", required=True)
    parser.add_argument("--test_file", default="test.txt")
    parser.add_argument("--max_seq_length", type=int, default=None)
    parser.add_argument("--fused", action="store_true", help="also serve the fused layout")
    parser.add_argument("--thresholds_file", default=None,
                        help="serve these thresholds instead of the checkpoint's (tritoncls evaluate --tune_thresholds)")
    args = parser.parse_args()
    set_cpu_threads()
    setup_logging()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    export_dir = export(ExportConfig(checkpoint=args.checkpoint, output=str(out / "export"),
                                     max_seq_length=args.max_seq_length, thresholds_file=args.thresholds_file))
    manifest = Manifest.load(export_dir)
    labels = data.read_labels(Path(args.dataset_dir) / "label.txt", args.task)
    examples = data.read_examples(Path(args.dataset_dir) / args.test_file, labels, args.task)
    texts, truth = [e.text for e in examples], data.multi_hot(examples, len(labels)).astype(bool)
    summary: dict = {"checkpoint": args.checkpoint, "thresholds_file": args.thresholds_file, "test_texts": len(texts),
                     "task": manifest.task.to_dict()}

    predictor = open_predictor(OfflineConfig(model=str(export_dir)))
    offline = predictor.predict_probs(texts)
    summary["offline_fp32"] = {"scores": scores(truth, offline.mask, manifest), "seconds": offline.seconds}
    dev = data.read_examples(Path(args.dataset_dir) / "dev.txt", labels, args.task)
    dev_probs = predictor.predict_probs([e.text for e in dev]).probs
    summary["decision_rules"] = decision_rules(offline.probs, truth, dev_probs,
                                               data.multi_hot(dev, len(labels)).astype(bool), manifest)
    int8 = open_predictor(OfflineConfig(model=str(export_dir), precision="int8")).predict_probs(texts)
    summary["offline_int8"] = {"scores": scores(truth, int8.mask, manifest),
                               "label_sets_equal_to_fp32": float((int8.mask == offline.mask).all(axis=1).mean()),
                               "seconds": int8.seconds}
    for layout in ("ensemble", "fused") if args.fused else ("ensemble",):
        mask, probs, seconds = served_run(export_dir, out, layout, texts, manifest)
        summary[f"served_{layout}"] = {
            "scores": scores(truth, mask, manifest), "seconds": seconds,
            "label_sets_equal_to_offline": int((mask == offline.mask).all(axis=1).sum()),
            "max_abs_prob_diff_vs_offline": float(np.abs(probs - offline.probs).max()),
            "paths_without_their_parent": orphans(mask, manifest),
        }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
