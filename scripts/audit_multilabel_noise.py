"""Label issues on label sets: how many corrupted label sets `analyze label-issues --task multi_label` finds.

    python scripts/audit_multilabel_noise.py [--dataset_dir ../shared/data/cail2019_divorce] [--size 2000]
        [--noise 0.1] [--seeds 1 2 3] [--output /tmp/audit_multilabel_noise]

For each seed: a random subset of --size training lines; --noise of them get a corrupted label set, one label
dropped or one added (a text with no label always gets one added; otherwise a coin decides); the subset is written
as a dataset directory and the audit runs on it end to end (TF-IDF, 5 folds, cleanlab's multi-label filter).
Reports the flags' precision and recall against the corrupted lines (recall also per kind: dropped, added), how
many flags the clean subset gets (the control), and the seconds. Prints a markdown table; writes JSON to --output.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from pathlib import Path

import numpy as np

from tritoncls.common import data
from tritoncls.training.audit.label_issues import LabelIssuesConfig, label_issues

log = logging.getLogger("audit_multilabel_noise")


def corrupt(examples: list[data.Example], labels: list[str], noise: float, seed: int) -> tuple[list[str], dict[int, str]]:
    """The label fields of ``examples`` with ``noise`` of them corrupted; {row: "dropped" | "added"}."""
    rng = random.Random(seed)
    fields = [e.label for e in examples]
    kinds: dict[int, str] = {}
    for row in rng.sample(range(len(examples)), round(noise * len(examples))):
        given = [labels[i] for i in examples[row].label_ids]
        if given and rng.random() < 0.5:
            given.remove(rng.choice(given))
            kinds[row] = "dropped"
        else:
            given.append(rng.choice([label for label in labels if label not in given]))
            kinds[row] = "added"
        fields[row] = ",".join(given)
    return fields, kinds


def run(root: Path, texts: list[str], fields: list[str], labels: list[str], seed: int) -> tuple[set[int], float]:
    """Write the subset as a dataset; the rows label-issues flags and its seconds."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.txt").write_text("".join(f"{t}\t{f}\n" for t, f in zip(texts, fields)), encoding="utf-8")
    (root / "label.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    started = time.perf_counter()
    result = label_issues(LabelIssuesConfig(dataset_dir=str(root), task="multi_label", seed=seed,
                                            output=str(root / "audit")))
    seconds = time.perf_counter() - started
    return {int(row["where"].rsplit(":", 1)[1]) - 1 for row in result["rows"]}, seconds


def one_seed(train: list[data.Example], labels: list[str], size: int, noise: float, seed: int, out: Path) -> dict:
    subset = [train[i] for i in sorted(random.Random(seed).sample(range(len(train)), size))]
    texts = [e.text for e in subset]
    fields, kinds = corrupt(subset, labels, noise, seed)
    flagged, seconds = run(out / f"seed{seed}" / "noisy", texts, fields, labels, seed)
    control, control_seconds = run(out / f"seed{seed}" / "clean", texts, [e.label for e in subset], labels, seed)
    hits = flagged & set(kinds)
    recall_by_kind = {kind: len([r for r in hits if kinds[r] == kind]) / max(1, list(kinds.values()).count(kind))
                      for kind in ("dropped", "added")}
    return {"seed": seed, "texts": size, "corrupted": len(kinds), "flagged": len(flagged), "true_flags": len(hits),
            "precision": len(hits) / max(1, len(flagged)), "recall": len(hits) / max(1, len(kinds)),
            "recall_by_kind": recall_by_kind, "kinds": {k: list(kinds.values()).count(k) for k in ("dropped", "added")},
            "control_flagged": len(control), "seconds": seconds, "control_seconds": control_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset_dir", default="../shared/data/cail2019_divorce")
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--output", default="/tmp/audit_multilabel_noise")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    root, out = Path(args.dataset_dir), Path(args.output)
    labels = data.read_labels(root / "label.txt", "multi_label")
    train = data.read_examples(root / "train.txt", labels, "multi_label")
    runs = []
    for seed in args.seeds:
        runs.append(one_seed(train, labels, args.size, args.noise, seed, out))
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(runs, indent=2) + "\n", encoding="utf-8")
    print("| seed | corrupted (dropped/added) | flagged | precision | recall | recall dropped / added | "
          "flagged on the clean subset | seconds |\n|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(f"| {r['seed']} | {r['corrupted']} ({r['kinds']['dropped']}/{r['kinds']['added']}) | {r['flagged']} | "
              f"{100 * r['precision']:.1f}% | {100 * r['recall']:.1f}% | {100 * r['recall_by_kind']['dropped']:.0f}% / "
              f"{100 * r['recall_by_kind']['added']:.0f}% | {r['control_flagged']} | {r['seconds']:.1f} |")
    print(f"mean precision {100 * np.mean([r['precision'] for r in runs]):.1f}%, "
          f"recall {100 * np.mean([r['recall'] for r in runs]):.1f}%")


if __name__ == "__main__":
    main()
