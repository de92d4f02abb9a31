"""The pure logic of ``tritoncls compress``, without servers: the corpus length bucket, the candidate loop
(resume, failures recorded and skipped, the time budget) over an injected measuring function, the Pareto front
and the choice within the accuracy budget."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tritoncls.compress.config import (
    LENGTH_BUCKETS,
    RESULT_FILE,
    Candidate,
    CandidateResult,
    NoCandidateWithinBudget,
)
from tritoncls.errors import USER_ERRORS

log = logging.getLogger(__name__)

#: measure(candidate, folder) -> the candidate's result; raises on failure (recorded, then the loop goes on).
Measure = Callable[[Candidate, Path], CandidateResult]


def length_bucket(lengths: Sequence[int], quantile: float, trained_length: int) -> int:
    """The ``quantile`` of the token lengths rounded up to a bucket of :data:`LENGTH_BUCKETS`, at most
    ``trained_length`` (a text longer than the bucket is truncated, as at the trained length)."""
    if not lengths:
        return trained_length
    value = math.ceil(float(np.quantile(np.asarray(lengths), quantile)))
    bucket = next((b for b in LENGTH_BUCKETS if b >= value), value)
    return min(bucket, trained_length)


def candidate_dir(root: Path, candidate: Candidate) -> Path:
    return root / "candidates" / candidate.name


def load_finished(folder: Path) -> CandidateResult | None:
    """The result a finished candidate left in ``folder`` (None: none, or a file a crash cut short)."""
    path = folder / RESULT_FILE
    if not path.is_file():
        return None
    try:
        return CandidateResult.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def save_result(folder: Path, result: CandidateResult) -> Path:
    """``result.json`` in the candidate's folder, written whole (a temporary file renamed over it)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / RESULT_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def run_candidates(candidates: Sequence[Candidate], measure: Measure, root: Path, resume: bool = False,
                   deadline: float | None = None, clock: Callable[[], float] = time.monotonic,
                   always: int = 0) -> list[CandidateResult]:
    """Measure every candidate in order, each into its own folder under ``root/candidates``.

    With ``resume`` a candidate whose folder holds a result that measured (no error) is kept as it is; a failed
    one is measured again. A candidate whose measurement raises a tritoncls error is recorded with that error and
    skipped. Past ``deadline`` (a ``clock`` time) no candidate is started but the first ``always`` (the baselines
    every other is compared with); those left are recorded as not measured.
    """
    results = []
    for number, candidate in enumerate(candidates, 1):
        folder = candidate_dir(root, candidate)
        where = f"[{number}/{len(candidates)}] {candidate.name}"
        finished = load_finished(folder) if resume else None
        if finished is not None and finished.error is None:
            log.info("%s: kept from the earlier run (--resume)", where)
            results.append(finished)
            continue
        if deadline is not None and number > always and clock() > deadline:
            result = CandidateResult.for_candidate(candidate)
            result.error = "not measured: --budget_minutes ran out before it started"
            log.warning("%s: %s", where, result.error)
            results.append(result)  # not saved: a --resume measures it
            continue
        log.info("%s: building, serving and measuring", where)
        started = clock()
        try:
            result = measure(candidate, folder)
        except USER_ERRORS as exc:
            result = CandidateResult.for_candidate(candidate)
            result.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.warning("%s failed, skipped: %s", where, result.error)
        result.seconds = clock() - started
        save_result(folder, result)
        if result.error is None:
            log.info("%s: served score %s, %s texts/s at batched requests, %s texts/s single (%.0f s)", where,
                     _pct(result.score), _num(result.batch_texts_per_s), _num(result.single_texts_per_s),
                     result.seconds)
        results.append(result)
    return results


def drop_points(result: CandidateResult, baseline_score: float) -> float:
    """How many points ``result``'s score lies below the baseline's (negative: above)."""
    return 100.0 * (baseline_score - (result.score if result.score is not None else float("-inf")))


def within_budget(result: CandidateResult, baseline_score: float, max_drop: float) -> bool:
    return result.ok and drop_points(result, baseline_score) <= max_drop + 1e-9


def pareto_front(results: Sequence[CandidateResult]) -> list[CandidateResult]:
    """The measured candidates no other beats on both served score and texts/s at batched requests, fastest
    first."""
    measured = [r for r in results if r.ok and not r.peer]
    front = [r for r in measured
             if not any(o is not r and o.score >= r.score and o.batch_texts_per_s >= r.batch_texts_per_s
                        and (o.score > r.score or o.batch_texts_per_s > r.batch_texts_per_s) for o in measured)]
    return sorted(front, key=lambda r: -r.batch_texts_per_s)


def closest(results: Sequence[CandidateResult], count: int = 3) -> list[CandidateResult]:
    """The measured candidates with the best served scores (the fastest first among equal scores)."""
    measured = [r for r in results if r.ok and not r.peer]
    return sorted(measured, key=lambda r: (-r.score, -r.batch_texts_per_s))[:count]


def choose(results: Sequence[CandidateResult], baseline_score: float, max_drop: float) -> CandidateResult:
    """The fastest candidate (texts/s at batched requests) whose served score is within ``max_drop`` points of
    ``baseline_score``; :class:`NoCandidateWithinBudget` listing the closest candidates when none is."""
    fits = [r for r in results if not r.peer and within_budget(r, baseline_score, max_drop)]
    if fits:
        return max(fits, key=lambda r: (r.batch_texts_per_s, r.score))
    near = closest(results)
    lines = [f"{r.name}: score {_pct(r.score)} ({-drop_points(r, baseline_score):+.2f} pts), "
             f"{_num(r.batch_texts_per_s)} texts/s batched, {_num(r.single_texts_per_s)} single c32"
             for r in near]
    failed = sum(1 for r in results if not r.ok and not r.peer)
    raise NoCandidateWithinBudget(
        f"no candidate's served dev score is within --max_drop {max_drop:g} points of the unpruned model's "
        f"{_pct(baseline_score)}" + (f" ({failed} candidate(s) failed or were not measured)" if failed else "")
        + ". Closest: " + ("; ".join(lines) if lines else "none measured")
        + ". Allow a larger --max_drop, or give more --epochs of distillation or wider --widths.")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"
