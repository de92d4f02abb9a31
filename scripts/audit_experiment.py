"""The reference's data-audit protocol on KUAKE-QIC, with the classifier that runs here in seconds
(character n-gram TF-IDF + logistic regression, tritoncls.training.audit.features), averaged over seeds.

    python scripts/audit_experiment.py [--dataset_dir ../shared/data/kuake_qic] [--seeds 1 2 3] [--output DIR]

- dirty: a random training subset (2,000 texts) with 10% of its labels changed at random to another label;
  label issues by 5-fold out-of-fold probabilities + cleanlab on the corrupted subset; detection precision and
  recall of the changed labels; dev accuracy trained on the clean, corrupted and cleaned (flagged dropped, or
  relabelled to the suggestion) subset.
- sparse: a small labelled subset (500 texts); the rest of train.txt plays the unlabeled pool (data.txt has no
  labels; the pool's true labels are taken when a text is "annotated"). The selection ranks a random half of dev
  ("dev-select") by support and picks 100 pool texts covering the 100 least supported; against 100 random pool
  texts. Accuracy on the other half ("dev-held", never seen by the selection) and on the whole dev set (what the
  reference reports; optimistic, since the selection looked at half of it).
- augment: the same 500 texts plus 2 augmented copies (swap/delete/insert) of the training texts nearest the
  100 least supported dev-select texts, or of every text; accuracy with and without.

Prints a markdown table per protocol and writes the figures as JSON to --output (default /tmp/audit_experiment).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from tritoncls.common import data
from tritoncls.training.audit import augment as aug
from tritoncls.training.audit import features, sparse
from tritoncls.training.audit.label_issues import rank_issues

log = logging.getLogger("audit_experiment")


def accuracy(texts: list[str], y: np.ndarray, dev_texts: list[str], dev_y: np.ndarray, seed: int) -> float:
    vectorizer, model = features.tfidf_classifier(texts, y, seed)
    return 100.0 * float((model.predict(vectorizer.transform(dev_texts)) == dev_y).mean())


def dirty(train, dev, num_labels: int, seed: int, size: int, noise: float) -> dict:
    rng = np.random.default_rng(seed)
    rows = rng.permutation(len(train))[:size]
    texts = [train[r].text for r in rows]
    clean_y = np.array([train[r].label_id for r in rows])
    noisy_y = clean_y.copy()
    corrupted = rng.permutation(size)[:int(round(noise * size))]
    for r in corrupted:
        noisy_y[r] = rng.choice([c for c in range(num_labels) if c != clean_y[r]])
    dev_texts, dev_y = [e.text for e in dev], np.array([e.label_id for e in dev])
    started = time.perf_counter()
    probs = features.tfidf_folds(texts, noisy_y, num_labels, 5, seed).oof_probs
    flagged = rank_issues(noisy_y, probs)
    seconds = time.perf_counter() - started
    out = {"clean": accuracy(texts, clean_y, dev_texts, dev_y, seed),
           "corrupted": accuracy(texts, noisy_y, dev_texts, dev_y, seed),
           "corrupted_count": int(len(corrupted)), "detect_seconds": seconds}
    # cleanlab's own count, and the reference's budget: the 1.5 x (number corrupted) least self-confident texts
    for suffix, rows in (("", flagged), ("_top", flagged[:int(round(1.5 * len(corrupted)))])):
        out |= {f"{k}{suffix}": v for k, v in cleaned(texts, noisy_y, probs, rows, corrupted, dev_texts, dev_y,
                                                      seed).items()}
    lost = out["clean"] - out["corrupted"]
    for name in ("dropped", "relabelled", "dropped_top", "relabelled_top"):
        out[f"recovered_{name}"] = 100.0 * (out[name] - out["corrupted"]) / lost if lost > 0 else float("nan")
    return out


def cleaned(texts, noisy_y, probs, flagged, corrupted, dev_texts, dev_y, seed) -> dict:
    hits = len(set(flagged.tolist()) & set(corrupted.tolist()))
    keep = np.setdiff1d(np.arange(len(texts)), flagged)
    relabelled = noisy_y.copy()
    relabelled[flagged] = probs[flagged].argmax(1)
    return {"dropped": accuracy([texts[i] for i in keep], noisy_y[keep], dev_texts, dev_y, seed),
            "relabelled": accuracy(texts, relabelled, dev_texts, dev_y, seed), "flagged": int(len(flagged)),
            "precision": 100.0 * hits / max(1, len(flagged)), "recall": 100.0 * hits / len(corrupted)}


def split_dev(dev, seed: int):
    rng = np.random.default_rng(seed + 1000)
    order = rng.permutation(len(dev))
    half = len(dev) // 2
    return [dev[i] for i in order[:half]], [dev[i] for i in order[half:]]


def sparse_and_augment(train, dev, num_labels: int, seed: int, size: int, added: int) -> dict:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train))
    labelled, pool = [train[r] for r in order[:size]], [train[r] for r in order[size:]]
    dev_select, dev_held = split_dev(dev, seed)
    l_texts, l_y = [e.text for e in labelled], np.array([e.label_id for e in labelled])
    p_texts, p_y = [e.text for e in pool], np.array([e.label_id for e in pool])
    q_texts = [e.text for e in dev_select]
    evals = {"held": ([e.text for e in dev_held], np.array([e.label_id for e in dev_held])),
             "all": ([e.text for e in dev], np.array([e.label_id for e in dev]))}

    def score(texts, y):
        return {name: accuracy(texts, y, t, ty, seed) for name, (t, ty) in evals.items()}

    folds = features.tfidf_folds(l_texts, l_y, num_labels, 5, seed, others=q_texts)
    space = sparse.tfidf_space(l_texts + q_texts + p_texts)
    l_vecs, q_vecs, p_vecs = space.transform(l_texts), space.transform(q_texts), space.transform(p_texts)
    sup = sparse.support_of(l_vecs, q_vecs, folds.other_probs, 5)
    worst = sup.least_supported(100)
    allowed = np.array([t not in set(l_texts) | set(q_texts) for t in p_texts])
    chosen = [row for row, _, _ in sparse.select_covering(q_vecs[worst], p_vecs, allowed, added, 0.9)]
    random_rows = rng.choice(np.flatnonzero(allowed), size=added, replace=False)
    out = {"base": score(l_texts, l_y),
           "selected": score(l_texts + [p_texts[r] for r in chosen], np.concatenate([l_y, p_y[chosen]])),
           "random": score(l_texts + [p_texts[r] for r in random_rows], np.concatenate([l_y, p_y[random_rows]]))}
    targets = np.unique(sup.nearest[worst].ravel())
    for name, rows in (("augment_sparse", targets), ("augment_all", np.arange(size))):
        new = aug.augment_texts(aug.Augmenter(l_texts, 0.1, seed), [l_texts[r] for r in rows], list(aug.METHODS), 2)
        out[name] = score(l_texts + [t for _, _, t in new], np.concatenate([l_y, [l_y[rows[s]] for s, _, _ in new]]))
        out[f"{name}_count"] = len(new)
    return out


def mean(runs: list[dict], *path: str) -> tuple[float, float]:
    values = []
    for run in runs:
        value = run
        for key in path:
            value = value[key]
        values.append(value)
    return float(np.mean(values)), float(np.std(values))


def fmt(runs: list[dict], *path: str) -> str:
    average, spread = mean(runs, *path)
    return f"{average:.2f} ± {spread:.2f}"


def print_dirty(name: str, runs: list[dict], seeds: list[int]) -> None:
    print(f"\n## Dirty data, {name} (seeds {seeds})\n")
    print(f"clean {fmt(runs, 'clean')}, corrupted {fmt(runs, 'corrupted')}\n")
    print("| flagged | how many | precision | recall | dropped | relabelled | recovered (dropped) | "
          "recovered (relabelled) |")
    print("|---|---|---|---|---|---|---|---|")
    for label, s in (("cleanlab's count", ""), ("1.5 x corrupted, least self-confident", "_top")):
        keys = (f"flagged{s}", f"precision{s}", f"recall{s}", f"dropped{s}", f"relabelled{s}",
                f"recovered_dropped{s}", f"recovered_relabelled{s}")
        print(f"| {label} | " + " | ".join(fmt(runs, k) for k in keys) + " |")


def print_tables(dirty_runs: dict[str, list[dict]], sparse_runs: list[dict], seeds: list[int]) -> None:
    for name, runs in dirty_runs.items():
        print_dirty(name, runs, seeds)
    print(f"\n## Sparse data and augmentation (seeds {seeds})\n")
    print("| training set | dev-held | dev (all) |")
    print("|---|---|---|")
    for name in ("base", "selected", "random", "augment_sparse", "augment_all"):
        print(f"| {name} | {fmt(sparse_runs, name, 'held')} | {fmt(sparse_runs, name, 'all')} |")
    gain = [r["selected"]["held"] - r["random"]["held"] for r in sparse_runs]
    gain_all = [r["selected"]["all"] - r["random"]["all"] for r in sparse_runs]
    print(f"\nselected - random: dev-held {np.mean(gain):+.2f} (per seed {np.round(gain, 2).tolist()}), "
          f"dev (all) {np.mean(gain_all):+.2f} (per seed {np.round(gain_all, 2).tolist()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset_dir", default=str(Path(__file__).resolve().parents[2] / "shared/data/kuake_qic"))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--dirty", nargs="+", default=["2000:0.1", "500:0.2"], metavar="SIZE:NOISE",
                        help="dirty-data settings: subset size and share of labels corrupted")
    parser.add_argument("--sparse_size", type=int, default=500)
    parser.add_argument("--added", type=int, default=100)
    parser.add_argument("--output", default="/tmp/audit_experiment")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    root = Path(args.dataset_dir)
    labels = data.read_labels(root / "label.txt")
    train, dev = data.read_examples(root / "train.txt", labels), data.read_examples(root / "dev.txt", labels)
    dirty_runs: dict[str, list[dict]] = {f"{s.split(':')[0]} texts, {float(s.split(':')[1]):.0%} corrupted": []
                                         for s in args.dirty}
    sparse_runs = []
    for seed in args.seeds:
        for setting, name in zip(args.dirty, dirty_runs):
            size, noise = setting.split(":")
            dirty_runs[name].append(dirty(train, dev, len(labels), seed, int(size), float(noise)))
            print(f"seed {seed}: dirty {name} {json.dumps(dirty_runs[name][-1])}", flush=True)
        sparse_runs.append(sparse_and_augment(train, dev, len(labels), seed, args.sparse_size, args.added))
        print(f"seed {seed}: sparse {json.dumps(sparse_runs[-1])}", flush=True)
    print_tables(dirty_runs, sparse_runs, args.seeds)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "audit_experiment.json").write_text(json.dumps({"args": vars(args), "dirty": dirty_runs,
                                                           "sparse": sparse_runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
