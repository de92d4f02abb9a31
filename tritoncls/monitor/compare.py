"""The comparison: each distribution's PSI against the reference, the chi-square test of label shares, the
low-confidence and truncated rates, and the verdict (config.py says why these thresholds)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tritoncls.monitor.config import (
    DRIFT,
    EXIT_STATUS,
    MIN_EXPECTED,
    NOT_ENOUGH,
    OK,
    PSI_EPSILON,
    PSI_MODERATE,
    MonitorConfig,
)
from tritoncls.monitor.counts import Bins, Counts
from tritoncls.runtime.metrics import Histogram, Reference, bound_text

STABLE, MODERATE, SHIFTED, TOO_FEW, NO_DATA = "stable", "moderate", "drift", "too few texts", "no data"
LABELS, TOP_CONFIDENCE, TEXT_TOKENS, LABELS_PER_TEXT = "labels", "top_confidence", "text_tokens", "labels_per_text"


@dataclass(frozen=True)
class ChiSquare:
    """Pearson's chi-square test of homogeneity: reference counts against live counts."""

    statistic: float
    dof: int
    p_value: float
    merged: tuple[str, ...] = ()  # the bins pooled into one cell (expected count below MIN_EXPECTED)


@dataclass(frozen=True)
class Distribution:
    """One distribution's bins, reference and live counts, PSI and verdict."""

    name: str
    bins: tuple[str, ...]
    reference: tuple[float, ...]
    live: tuple[float, ...]
    psi: float | None
    verdict: str
    chi_square: ChiSquare | None = None

    @property
    def live_total(self) -> float:
        return float(sum(self.live))

    def shares(self) -> tuple[np.ndarray, np.ndarray]:
        """Reference and live shares per bin (zeros where a total is zero)."""
        return _shares(self.reference), _shares(self.live)

    def most_shifted(self, n: int = 3) -> list[tuple[str, float, float]]:
        """The ``n`` bins whose share moved most: (bin, reference share, live share)."""
        before, after = self.shares()
        order = np.argsort(-np.abs(after - before), kind="stable")[:n]
        return [(self.bins[i], float(before[i]), float(after[i])) for i in order if after[i] != before[i]]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "most_shifted": [list(t) for t in self.most_shifted()]}


@dataclass(frozen=True)
class Rate:
    """A share of texts, live against the reference (``None``: no texts to take it of)."""

    name: str
    live: float | None
    reference: float | None
    count: float
    total: float
    note: str = ""


@dataclass
class MonitorReport:
    """Everything ``tritoncls monitor`` found; :attr:`verdict` decides :attr:`exit_status`."""

    model: str
    source: str
    since: str
    reference: str
    reference_texts: int
    texts: float
    min_texts: int
    psi_threshold: float
    alpha: float
    distributions: list[Distribution]
    rates: list[Rate]
    refused: dict[str, float]
    verdict: str
    notes: list[str] = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        return EXIT_STATUS[self.verdict]

    @property
    def drifted(self) -> list[str]:
        return [d.name for d in self.distributions if d.verdict == SHIFTED]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(distributions=[d.to_dict() for d in self.distributions], exit_status=self.exit_status,
                   drifted=self.drifted)
        return out


# --- the statistics -------------------------------------------------------------------------------------


def _shares(counts: Sequence[float]) -> np.ndarray:
    values = np.asarray(counts, dtype=np.float64)
    total = values.sum()
    return values / total if total > 0 else np.zeros_like(values)


def psi(reference: Sequence[float], live: Sequence[float], epsilon: float = PSI_EPSILON) -> float:
    """Population stability index, sum((live - ref) * ln(live / ref)) over the bins' shares, an empty bin's share
    taken as ``epsilon``."""
    before = np.maximum(_shares(reference), epsilon)
    after = np.maximum(_shares(live), epsilon)
    return float(np.sum((after - before) * np.log(after / before)))


def chi_square(reference: Sequence[float], live: Sequence[float], bins: Sequence[str],
               min_expected: float = MIN_EXPECTED) -> ChiSquare | None:
    """The 2 x k test of the reference's and the live counts (None: fewer than two cells to compare).

    Cells whose expected count is below ``min_expected`` in either row are pooled into one; a pool still below it
    joins the smallest kept cell.
    """
    from scipy.stats import chi2_contingency

    table = np.asarray([reference, live], dtype=np.float64)
    rows = table.sum(axis=1)
    if rows.min() <= 0:
        return None
    expected = rows.min() * table.sum(axis=0) / rows.sum()  # the smaller row's expected count, per cell
    small = expected < min_expected
    columns = [table[:, j] for j in np.flatnonzero(~small)]
    merged = [bins[j] for j in np.flatnonzero(small) if table[:, j].sum() > 0]
    if merged:
        pool = table[:, small].sum(axis=1)
        if rows.min() * pool.sum() / rows.sum() >= min_expected or not columns:
            columns.append(pool)
        else:
            smallest = int(np.argmin([c.sum() for c in columns]))
            merged.append(bins[int(np.flatnonzero(~small)[smallest])])
            columns[smallest] = columns[smallest] + pool
    if len(columns) < 2:
        return None
    statistic, p_value, dof, _ = chi2_contingency(np.stack(columns, axis=1), correction=False)
    return ChiSquare(float(statistic), int(dof), float(p_value), tuple(merged))


def bin_names(bounds: Sequence[float]) -> tuple[str, ...]:
    """"<=0.1", "0.1-0.2", ..., ">0.99": the bins of a histogram with these upper bounds."""
    inner = [f"{bound_text(a)}-{bound_text(b)}" for a, b in zip(bounds, bounds[1:])]
    return (f"<={bound_text(bounds[0])}", *inner, f">{bound_text(bounds[-1])}")


# --- the comparison -------------------------------------------------------------------------------------


def compare(reference: Reference, counts: Counts, config: MonitorConfig, *, reference_path: str, since: str,
            notes: Sequence[str] = ()) -> MonitorReport:
    """Compare ``counts`` with ``reference`` under ``config``'s thresholds."""
    distributions = [_labels(reference, counts, config),
                     _histogram(TOP_CONFIDENCE, reference.top_confidence, counts.top_confidence, config),
                     _histogram(TEXT_TOKENS, reference.text_tokens, counts.text_tokens, config)]
    if reference.labels_per_text is not None and counts.labels_per_text is not None:
        distributions.append(_histogram(LABELS_PER_TEXT, reference.labels_per_text, counts.labels_per_text, config))
    if counts.texts < config.min_texts:
        verdict = NOT_ENOUGH
    else:
        verdict = DRIFT if any(d.verdict == SHIFTED for d in distributions) else OK
    return MonitorReport(
        model=counts.model, source=config.source, since=since, reference=reference_path,
        reference_texts=reference.texts, texts=counts.texts, min_texts=config.min_texts,
        psi_threshold=config.psi_threshold, alpha=config.alpha, distributions=distributions,
        rates=_rates(reference, counts), refused=dict(sorted(counts.refused.items())), verdict=verdict,
        notes=list(notes))


def _labels(reference: Reference, counts: Counts, config: MonitorConfig) -> Distribution:
    names = tuple(reference.labels)
    before = tuple(float(reference.labels[n]) for n in names)
    after = tuple(float(counts.labels.get(n, 0.0)) for n in names)
    test = chi_square(before, after, names) if sum(before) and sum(after) else None
    return _distribution(LABELS, names, before, after, config, test)


def _histogram(name: str, reference: Histogram, live: Bins, config: MonitorConfig) -> Distribution:
    return _distribution(name, bin_names(reference.bounds), tuple(float(c) for c in reference.counts), live.counts,
                         config)


def _distribution(name: str, bins: tuple[str, ...], before: tuple[float, ...], after: tuple[float, ...],
                  config: MonitorConfig, test: ChiSquare | None = None) -> Distribution:
    live_total = sum(after)
    index = psi(before, after) if sum(before) > 0 and live_total > 0 else None
    if sum(before) <= 0:
        verdict = NO_DATA
    elif live_total < config.min_texts or index is None:
        verdict = TOO_FEW
    elif index >= config.psi_threshold and (test is None or test.p_value < config.alpha):
        verdict = SHIFTED
    elif index >= min(PSI_MODERATE, config.psi_threshold):
        verdict = MODERATE
    else:
        verdict = STABLE
    return Distribution(name, bins, before, tuple(after), index, verdict, test)


def _rates(reference: Reference, counts: Counts) -> list[Rate]:
    def share(count: float, total: float) -> float | None:
        return count / total if total > 0 else None

    return [
        Rate("low_confidence", share(counts.low_confidence, counts.texts),
             share(reference.low_confidence, reference.texts), counts.low_confidence, counts.texts,
             f"top probability below {reference.low_confidence_threshold:g}"),
        Rate("truncated", share(counts.truncated, counts.text_tokens.total),
             share(reference.truncated, reference.texts), counts.truncated, counts.text_tokens.total,
             f"cut at max_seq_length {bound_text(reference.text_tokens.bounds[-1])}"),
    ]
