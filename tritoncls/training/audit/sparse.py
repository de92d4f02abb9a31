"""Sparse data: dev (or production) texts the training data hardly supports, and unlabeled texts to annotate
that cover them.

A text's support combines two signals, both in [0, 1]:

- ``similarity``: the mean cosine similarity of its ``neighbours`` nearest training texts, in the TF-IDF space
  or the checkpoint's [CLS] space;
- ``stability``: the share of the k cross-validation models (TF-IDF, each trained on k-1 folds of train)
  that predict its majority label: a text far from the data flips between models trained on slightly
  different data.

Texts are ranked by ``support``: ``similarity`` by default, or ``similarity * stability`` with
``rank_by="similarity_x_stability"``. On KUAKE-QIC (docs/analysis.md) choosing pool texts for the least similar
dev texts beat random choice by +0.92 points on held-out dev, and multiplying in stability only by +0.44 (seeds
1-3; over seeds 1-5 they are level, +0.39 and +0.53), so stability is reported but does not rank by default.

Selection (``strategy``) chooses ``select`` pool texts (from ``data.txt``) that are neither in train nor in the
queries and are not near-copies (cosine >= ``max_similarity``) of a text already chosen:

- ``uncertainty`` (default): the smallest top-2 margins of the k cross-validation models' averaged
  probabilities;
- ``coverage``: round-robin over the least supported texts, least supported first, each taking its nearest pool
  text;
- ``hybrid``: the smallest margins among the HYBRID_CANDIDATES nearest pool texts of each least supported text;
- ``diverse`` (Zhdanov 2019, diverse mini-batch active learning): k-means (``select`` clusters, seeded) of the
  ``prefilter`` x ``select`` smallest margins, weighted by 1 - margin; the text nearest each centroid.

Measured over 5 seeds (docs/analysis.md), uncertainty beat random by +0.53 (KUAKE-QIC) and +1.36 (TREC-6) points
on held-out dev, coverage by +0.39 and -0.64, hybrid by +0.92 and -0.56, diverse by +1.08 and +1.04; the default
was chosen on the first three. On confirmation runs (seeds 6-10, and TREC-50) diverse was not better than
uncertainty (+0.33, -0.96, +0.08 points), so uncertainty stays the default.
The chosen texts are written one a line as ``text<TAB>`` (the label left empty for the annotator), ready to be
filled in and appended to train.txt.

Multi-class data only: stability (fold models agreeing on one label) and the margins (top-2 of a softmax) assume
one label a text, so ``task`` multi_label or hierarchical is refused with what to use instead.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tritoncls.common import data, files
from tritoncls.errors import ConfigError
from tritoncls.runtime import MULTI_CLASS
from tritoncls.training.audit import dataset, features, report

log = logging.getLogger(__name__)

SPACES = ("tfidf", "checkpoint")
RANKINGS = ("similarity", "similarity_x_stability")
STRATEGIES = ("coverage", "uncertainty", "hybrid", "diverse")
HYBRID_CANDIDATES = 10  # hybrid: nearest pool texts per least supported text, among which the least certain win
PREFILTER = 10  # diverse: the prefilter x select least certain pool texts are clustered into select clusters


@dataclass
class SparseConfig:
    dataset_dir: str
    train_file: str = "train.txt"
    dev_file: str = "dev.txt"
    label_file: str = "label.txt"
    data_file: str = "data.txt"
    task: str = MULTI_CLASS  # only multi_class: label sets are refused (see the module docstring)
    input: str | None = None  # production texts (text or text<TAB>label lines) instead of dev
    space: str = "tfidf"
    rank_by: str = "similarity"
    strategy: str = "uncertainty"  # diverse was ahead on the development seeds, not on the confirmation runs
    checkpoint: str = "./checkpoint"
    neighbours: int = 5
    folds: int = 5
    seed: int = 3
    top: int = 100  # least supported texts reported and covered
    select: int = 100  # unlabeled texts chosen to annotate (0: none)
    max_similarity: float = 0.9
    prefilter: int = PREFILTER  # diverse: candidates per text to choose (the least certain prefilter x select)
    output: str = "./audit"
    max_seq_length: int = 128
    batch_size: int = 32
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.task != MULTI_CLASS:
            raise ConfigError(
                f"analyze sparse --task {self.task}: not available for label sets. Its stability (fold models agreeing "
                f"on one label) and its selection (the margin between the two most probable labels) assume one label a "
                f"text. For {self.task} data, `tritoncls analyze augment --task {self.task}` augments the neighbours of "
                f"the least supported dev texts (by similarity alone), and `tritoncls analyze label-issues --task "
                f"{self.task}` finds wrong label sets.")
        if self.space not in SPACES:
            raise ConfigError(f"--space {self.space!r}: choose one of {', '.join(SPACES)}.")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"--strategy {self.strategy!r}: choose one of {', '.join(STRATEGIES)}.")
        if self.rank_by not in RANKINGS:
            raise ConfigError(f"--rank_by {self.rank_by!r}: choose one of {', '.join(RANKINGS)}.")
        for name in ("neighbours", "top"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be at least 1, got {getattr(self, name)}.")
        if self.select < 0:
            raise ConfigError(f"--select must not be negative, got {self.select}.")
        if not 0 < self.max_similarity <= 1:
            raise ConfigError(f"--max_similarity must be in (0, 1], got {self.max_similarity}.")
        check_prefilter(self.prefilter)


def check_prefilter(prefilter: int) -> None:
    if isinstance(prefilter, bool) or not isinstance(prefilter, int) or prefilter < 1:
        raise ConfigError(f"--prefilter must be a whole number of at least 1 (candidates per text chosen), "
                          f"got {prefilter!r}.")


@dataclass
class Support:
    """Per query text: support, its two parts, and the nearest training rows."""

    support: np.ndarray
    similarity: np.ndarray
    stability: np.ndarray
    predicted: np.ndarray  # majority label id of the fold models
    nearest: np.ndarray  # (queries, neighbours) training rows, most similar first

    def least_supported(self, count: int) -> np.ndarray:
        return np.argsort(self.support, kind="stable")[:count]


def cosine(a, b) -> np.ndarray:
    """Dense (rows of a, rows of b) cosine similarities of L2-normalised rows (sparse or dense)."""
    product = a @ b.T
    return np.asarray(product.toarray() if hasattr(product, "toarray") else product, dtype=np.float32)


def tfidf_space(texts: Sequence[str]):
    """A TF-IDF vectorizer fitted on every text involved (train, queries and pool share one vocabulary)."""
    return features.tfidf_vectorizer(texts).fit(texts)


def knn(train_vecs, query_vecs, neighbours: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean similarity of the ``neighbours`` nearest training rows, and those rows."""
    sims = cosine(query_vecs, train_vecs)
    k = min(neighbours, sims.shape[1])
    nearest = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, nearest, axis=1).mean(axis=1), nearest


def stability(fold_probs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Share of fold models agreeing with the majority prediction, and that majority label."""
    votes = np.stack([p.argmax(1) for p in fold_probs], axis=1)  # (queries, folds)
    counts = np.apply_along_axis(np.bincount, 1, votes, minlength=fold_probs[0].shape[1])
    return counts.max(1) / votes.shape[1], counts.argmax(1)


def support_of(train_vecs, query_vecs, fold_probs: list[np.ndarray], neighbours: int,
               rank_by: str = "similarity") -> Support:
    similarity, nearest = knn(train_vecs, query_vecs, neighbours)
    stable, predicted = stability(fold_probs)
    support = similarity * stable if rank_by == "similarity_x_stability" else similarity
    return Support(support, similarity, stable, predicted, nearest)


def select_covering(sparse_vecs, pool_vecs, allowed: np.ndarray, count: int, max_similarity: float) -> list[tuple[int, int, float]]:
    """Pool rows to annotate: round-robin over the sparse texts (in the given order), each taking its nearest
    allowed pool text not a near-copy of one already chosen. Returns (pool row, sparse index, similarity)."""
    sims = cosine(sparse_vecs, pool_vecs)
    sims[:, ~allowed] = -np.inf
    order = np.argsort(-sims, axis=1, kind="stable")
    cursor = np.zeros(len(order), dtype=np.int64)
    chosen: list[tuple[int, int, float]] = []
    taken = np.zeros(pool_vecs.shape[0], dtype=bool)
    chosen_vecs: list[Any] = []
    while len(chosen) < count and (cursor < order.shape[1]).any():
        for s in range(len(order)):
            row = _next_pick(order[s], cursor, s, sims[s], taken, pool_vecs, chosen_vecs, max_similarity)
            if row is not None:
                taken[row] = True
                chosen_vecs.append(pool_vecs[row])
                chosen.append((int(row), s, float(sims[s, row])))
                if len(chosen) == count:
                    break
    return chosen


@dataclass(frozen=True)
class Pick:
    """A pool row chosen to annotate: the least supported text it is nearest (index into the sparse texts, None
    for ``uncertainty``) with that similarity, and the fold models' top-2 margin on it (None for ``coverage``)."""

    row: int
    covers: int | None
    similarity: float | None
    margin: float | None


def margins(fold_probs: list[np.ndarray]) -> np.ndarray:
    """Top-2 margin of the fold models' averaged probabilities per text: 0 a tie, 1 certain."""
    probs = np.sort(np.mean(fold_probs, axis=0), axis=1)
    return probs[:, -1] - probs[:, -2]


def select_uncertain(pool_vecs, margin: np.ndarray, allowed: np.ndarray, count: int, max_similarity: float,
                     candidates: np.ndarray | None = None) -> list[int]:
    """Allowed pool rows (only ``candidates``, if given) by margin, smallest first, skipping near-copies
    (cosine >= ``max_similarity``) of rows already chosen."""
    eligible = allowed.copy()
    if candidates is not None:
        eligible &= np.isin(np.arange(len(allowed)), candidates)
    chosen: list[int] = []
    for row in np.argsort(np.where(eligible, margin, np.inf), kind="stable")[:int(eligible.sum())]:
        if not _near_copy(pool_vecs, int(row), chosen, max_similarity):
            chosen.append(int(row))
        if len(chosen) == count:
            break
    return chosen


def select_diverse(pool_vecs, margin: np.ndarray, allowed: np.ndarray, count: int, max_similarity: float,
                   prefilter: int = PREFILTER, seed: int = 0) -> list[int]:
    """Diverse mini-batch active learning (Zhdanov 2019): the ``prefilter`` x ``count`` allowed pool rows with the
    smallest margins are clustered by k-means (``count`` clusters, each row weighted by its uncertainty 1 - margin,
    seeded); each cluster gives the row nearest its centroid that is not a near-copy of one already chosen,
    clusters with the least certain members first. Too few rows that way: the least certain of the rest."""
    check_prefilter(prefilter)
    if count <= 0:
        return []
    candidates = np.argsort(np.where(allowed, margin, np.inf), kind="stable")[:min(prefilter * count, int(allowed.sum()))]
    if len(candidates) <= count:
        return select_uncertain(pool_vecs, margin, allowed, count, max_similarity, candidates)
    members, distances = _clusters(pool_vecs[candidates], 1.0 - margin[candidates], count, seed)
    chosen: list[int] = []
    for cluster in sorted(members, key=lambda c: float(margin[candidates[members[c]]].min())):
        for i in members[cluster][np.argsort(distances[members[cluster]], kind="stable")]:
            row = int(candidates[i])
            if not _near_copy(pool_vecs, row, chosen, max_similarity):
                chosen.append(row)
                break
    if len(chosen) < count:  # clusters whose every member copied a chosen row
        rest = allowed.copy()
        rest[chosen] = False
        chosen += [row for row in select_uncertain(pool_vecs, margin, rest, count, max_similarity)
                   if not _near_copy(pool_vecs, row, chosen, max_similarity)][:count - len(chosen)]
    return chosen


def _clusters(vecs, weights: np.ndarray, count: int, seed: int) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """k-means of ``vecs`` into ``count`` clusters (sample weights, seeded): members of each non-empty cluster,
    and each row's distance to its own centroid."""
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    if hasattr(vecs, "tocsc"):  # only the columns these rows use: the same distances, much smaller centroids
        vecs = vecs.tocsc()[:, np.unique(vecs.nonzero()[1])].tocsr()
    kmeans = KMeans(n_clusters=count, n_init=1, random_state=seed)
    with warnings.catch_warnings():  # duplicate texts: fewer distinct clusters than asked, handled by the caller
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = kmeans.fit_predict(vecs, sample_weight=np.maximum(weights, 1e-6))
    distances = kmeans.transform(vecs)[np.arange(len(labels)), labels]
    return {int(c): np.flatnonzero(labels == c) for c in np.unique(labels)}, distances


def _near_copy(pool_vecs, row: int, chosen: list[int], max_similarity: float) -> bool:
    return bool(chosen) and cosine(pool_vecs[row], _stack([pool_vecs[r] for r in chosen])).max() >= max_similarity


def near_sparse(sparse_vecs, pool_vecs, allowed: np.ndarray, per_text: int) -> np.ndarray:
    """Allowed pool rows among the ``per_text`` nearest (allowed) of any sparse text."""
    sims = cosine(sparse_vecs, pool_vecs)
    sims[:, ~allowed] = -np.inf
    nearest = np.argsort(-sims, axis=1, kind="stable")[:, :per_text]
    return np.unique(nearest[np.isfinite(np.take_along_axis(sims, nearest, axis=1))])


def choose(strategy: str, sparse_vecs, pool_vecs, allowed: np.ndarray, count: int, max_similarity: float,
           pool_margin: np.ndarray | None = None, prefilter: int = PREFILTER, seed: int = 0) -> list[Pick]:
    """``count`` pool rows to annotate by ``strategy``: ``coverage`` (the nearest of each sparse text in turn),
    ``uncertainty`` (the fold models' smallest top-2 margins), ``hybrid`` (the smallest margins among the
    HYBRID_CANDIDATES nearest of each sparse text, then the smallest of the rest if too few), ``diverse`` (one
    text per k-means cluster of the ``prefilter`` x ``count`` least certain; ``seed`` seeds k-means)."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}.")
    if strategy == "coverage":
        return [Pick(row, s, sim, None) for row, s, sim in
                select_covering(sparse_vecs, pool_vecs, allowed, count, max_similarity)]
    if pool_margin is None:
        raise ValueError(f"strategy {strategy!r} needs the fold models' margins on the pool")
    if strategy == "uncertainty":
        rows = select_uncertain(pool_vecs, pool_margin, allowed, count, max_similarity)
        return [Pick(row, None, None, float(pool_margin[row])) for row in rows]
    if strategy == "diverse":
        rows = select_diverse(pool_vecs, pool_margin, allowed, count, max_similarity, prefilter, seed)
        return [Pick(row, None, None, float(pool_margin[row])) for row in rows]
    near = near_sparse(sparse_vecs, pool_vecs, allowed, HYBRID_CANDIDATES)
    rows = select_uncertain(pool_vecs, pool_margin, allowed, count, max_similarity, near)
    sims = cosine(pool_vecs[rows], sparse_vecs) if rows else np.zeros((0, sparse_vecs.shape[0]))
    picks = [Pick(row, int(sims[i].argmax()), float(sims[i].max()), float(pool_margin[row]))
             for i, row in enumerate(rows)]
    if len(picks) < count:  # too few candidates: the least certain of the rest, near no sparse text
        rest = allowed.copy()
        rest[near] = False
        picks += [Pick(row, None, None, float(pool_margin[row]))
                  for row in select_uncertain(pool_vecs, pool_margin, rest, count - len(picks), max_similarity)]
    return picks


def _next_pick(order, cursor, s, sims, taken, pool_vecs, chosen_vecs, max_similarity) -> int | None:
    while cursor[s] < len(order):
        row = order[cursor[s]]
        cursor[s] += 1
        if not np.isfinite(sims[row]):
            cursor[s] = len(order)  # the rest are excluded too
            return None
        if taken[row]:
            continue
        if chosen_vecs and cosine(pool_vecs[row], _stack(chosen_vecs)).max() >= max_similarity:
            continue
        return int(row)
    return None


def _stack(rows: list[Any]):
    if hasattr(rows[0], "toarray"):
        import scipy.sparse

        return scipy.sparse.vstack(rows)
    return np.stack(rows)


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------


def _queries(config: SparseConfig, labels: list[str]) -> tuple[list[str], list[str]]:
    """The texts to judge and where each is (file:line)."""
    if config.input:
        texts, _ = data.read_text_column(config.input)
        return texts, [f"{config.input}#{i}" for i in range(1, len(texts) + 1)]  # the i-th text (blank lines skipped)
    dev = dataset.read_labelled(config.dataset_dir, config.dev_file, config.label_file)
    return dev.texts, [dev.where(i) for i in range(len(dev.examples))]


def _pool(config: SparseConfig) -> list[str]:
    path = Path(config.dataset_dir) / config.data_file
    if config.select == 0:
        return []
    if not path.is_file():
        raise ConfigError(f"{path}: no unlabeled texts to select from. Put them there (one text a line), point "
                          f"--data_file at them, or pass --select 0 to report the sparse texts only.")
    return data.read_texts(path)


def _vectors(config: SparseConfig, train: list[str], queries: list[str], pool: list[str]):
    if config.space == "tfidf":
        space = tfidf_space(train + queries + pool)
        return space.transform(train), space.transform(queries), space.transform(pool) if pool else None
    from tritoncls.training.audit.finetune import cls_embeddings

    vecs = cls_embeddings(config.checkpoint, train + queries + pool, config.max_seq_length, config.batch_size)
    a, b = len(train), len(train) + len(queries)
    return vecs[:a], vecs[a:b], vecs[b:] if pool else None


def sparse(config: SparseConfig) -> dict[str, Any]:
    """Rank queries by support; choose pool texts covering the least supported; write the reports."""
    train = dataset.read_labelled(config.dataset_dir, config.train_file, config.label_file, min_classes=2)
    queries, where = _queries(config, train.labels)
    pool = _pool(config)
    if config.space == "checkpoint":
        from tritoncls.modeling import checkpoint as ckpt
        from tritoncls.modeling.loop import set_device

        set_device(config.device)
        dataset.check_checkpoint_labels(ckpt.resolve_checkpoint(config.checkpoint), train.labels,
                                        Path(config.dataset_dir) / config.label_file)
    # the margins need the fold models' view of the pool; coverage keeps the queries-only vocabulary it always had
    scored = pool if config.strategy != "coverage" else []
    folds = features.tfidf_folds(train.texts, train.y, len(train.labels),
                                 dataset.fold_count(train.y, config.folds), config.seed, others=queries + scored)
    query_probs = [p[:len(queries)] for p in folds.other_probs]
    train_vecs, query_vecs, pool_vecs = _vectors(config, train.texts, queries, pool)
    sup = support_of(train_vecs, query_vecs, query_probs, config.neighbours, config.rank_by)
    worst = sup.least_supported(min(config.top, len(queries)))
    rows = _sparse_rows(worst, sup, queries, where, train)
    chosen: list[Pick] = []
    if pool:
        seen = set(train.texts) | set(queries)
        allowed = np.array([text not in seen for text in pool])
        pool_margin = margins([p[len(queries):] for p in folds.other_probs]) if scored else None
        chosen = choose(config.strategy, query_vecs[worst], pool_vecs, allowed, config.select, config.max_similarity,
                        pool_margin, config.prefilter, config.seed)
    return _write(config, rows, chosen, pool, queries, worst, sup)


def _sparse_rows(worst, sup: Support, queries, where, train: dataset.Labelled) -> list[dict[str, Any]]:
    return [{"rank": rank, "where": where[q], "support": float(sup.support[q]), "similarity": float(sup.similarity[q]),
             "stability": float(sup.stability[q]), "predicted": train.labels[sup.predicted[q]], "text": queries[q],
             "nearest_train": train.where(int(sup.nearest[q, 0])), "nearest_text": train.texts[int(sup.nearest[q, 0])]}
            for rank, q in enumerate(worst, start=1)]


def _write(config: SparseConfig, rows, chosen, pool, queries, worst, sup: Support) -> dict[str, Any]:
    summary = [f"queries: {config.input or Path(config.dataset_dir) / config.dev_file} ({len(queries)} texts); "
               f"space: {config.space}; {config.neighbours} neighbours; stability over {config.folds} TF-IDF fold models",
               f"ranked by {config.rank_by.replace('_x_', ' x ')}, lowest first; similarity: mean cosine of the "
               "nearest training texts; stability: share of fold models agreeing on the label",
               f"median support of all queries: {float(np.median(sup.support)):.3f}",
               f"selection strategy: {config.strategy}"
               + (f" (k-means of the {config.prefilter} x {config.select} least certain)"
                  if config.strategy == "diverse" else "")]
    selected = [{"text": pool[p.row], "covers": None if p.covers is None else queries[worst[p.covers]],
                 "similarity": p.similarity, "margin": p.margin} for p in chosen]
    table = report.Table("Sparse data", summary, ["rank", "where", "support", "similarity", "stability",
                                                   "predicted", "text", "nearest_text"], rows,
                         {"space": config.space, "queries": len(queries), "strategy": config.strategy,
                          "selected": selected})
    paths = report.write_reports(config.output, "sparse", table)
    if chosen:
        target = Path(config.output) / "to_annotate.txt"
        files.write_text(target, "".join(f"{item['text']}\t\n" for item in selected))
        paths["to_annotate"] = target
        log.info("Wrote %d texts to annotate to %s (text<TAB>, the label left empty: fill it in, then append the "
                 "lines to the training file)", len(selected), target)
    log.info("%d least supported of %d queries reported (median support %.3f)", len(rows), len(queries),
             float(np.median(sup.support)))
    return table.data | {"rows": rows, "paths": {k: str(v) for k, v in paths.items()}}
