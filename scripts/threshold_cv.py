"""Compare threshold rules of a multi-label export by cross-validation on its dev set alone (never test).

    .venv/bin/python scripts/threshold_cv.py --model EXPORT --dataset_dir DATA [--splits 20] [--output OUT.json]

The export's runtime (ONNX Runtime, as served) scores every dev text once. Then, ``--splits`` times, dev is cut
in two random halves: each rule chooses its thresholds on one half and is scored (micro- and macro-F1) on the
other. The rules are the ones `tritoncls train` can save: per label for macro-F1 (`--metric macro_f1`, each
label's own F1), per label for micro-F1 (`--metric micro_f1`, the micro-F1 of the whole set), and one threshold
for every label, best for either metric. Hierarchies are decided with their top-down rule, as served. The mean
and spread of each rule over the held-out halves are printed and, with ``--output``, written as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from tritoncls.cli_common import set_cpu_threads, setup_logging
from tritoncls.common import data, metrics
from tritoncls.runtime import Manifest, Predictor

RULES = {  # name -> (metric the thresholds are tuned for, min_positives: 10**9 puts every label on one threshold)
    "per label, macro-F1 (--metric macro_f1)": ("macro_f1", metrics.MIN_POSITIVES),
    "per label, micro-F1 (--metric micro_f1)": ("micro_f1", metrics.MIN_POSITIVES),
    "one threshold, best macro-F1": ("macro_f1", 10 ** 9),
    "one threshold, best micro-F1": ("micro_f1", 10 ** 9),
}


def dev_probabilities(model: Path, manifest: Manifest, dataset_dir: Path, dev_file: str) -> tuple[np.ndarray, ...]:
    examples = data.read_examples(dataset_dir / dev_file, list(manifest.labels), manifest.task.task)
    probs = Predictor.from_export(model, manifest).predict_probs([e.text for e in examples]).probs
    return probs, data.multi_hot(examples, manifest.num_labels).astype(bool)


def cross_validate(manifest: Manifest, probs: np.ndarray, truth: np.ndarray, splits: int, seed: int) -> dict:
    head, rng = manifest.head(), np.random.default_rng(seed)
    held_out: dict[str, list[tuple[float, float]]] = {name: [] for name in RULES}
    for _ in range(splits):
        order = rng.permutation(len(probs))
        tune, score = order[: len(order) // 2], order[len(order) // 2:]
        for name, (metric, min_positives) in RULES.items():
            chosen = metrics.tune_thresholds(probs[tune], truth[tune], metric, min_positives=min_positives)
            mask = head.decide(probs[score], np.asarray(chosen.values, dtype=np.float32))
            scores = metrics.set_scores(truth[score], mask)
            held_out[name].append((scores["micro_f1"], scores["macro_f1"]))
    return {name: {"micro_f1": _summary(np.array(v)[:, 0]), "macro_f1": _summary(np.array(v)[:, 1])}
            for name, v in held_out.items()}


def _summary(values: np.ndarray) -> dict[str, float]:
    return {"mean": round(float(values.mean()), 2), "std": round(float(values.std()), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="an export directory (tritoncls export)")
    parser.add_argument("--dataset_dir", required=True)
    parser.add_argument("--dev_file", default="dev.txt")
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="write the table as JSON here")
    args = parser.parse_args()
    set_cpu_threads()
    setup_logging()
    manifest = Manifest.load(args.model)
    if not manifest.task.multi_label:
        parser.error(f"{args.model} is a {manifest.task.task} model: thresholds belong to label-set tasks")
    probs, truth = dev_probabilities(Path(args.model), manifest, Path(args.dataset_dir), args.dev_file)
    table = cross_validate(manifest, probs, truth, args.splits, args.seed)
    print(f"{len(probs)} dev texts, {args.splits} random halves (tune on one, score the other), percent:")
    for name, row in table.items():
        micro, macro = row["micro_f1"], row["macro_f1"]
        print(f"  {name:42s} micro-F1 {micro['mean']:6.2f} +- {micro['std']:.2f}   "
              f"macro-F1 {macro['mean']:6.2f} +- {macro['std']:.2f}")
    if args.output:
        Path(args.output).write_text(json.dumps({"model": args.model, "dev_texts": len(probs), "splits": args.splits,
                                                 "rules": table}, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
