"""The options of ``tritoncls monitor``, its thresholds and exit statuses, and its error.

The thresholds and why (docs/monitoring.md says the same for users):

- PSI (population stability index) per distribution, by the usual conventions: below 0.1 stable, 0.1 to 0.25
  moderate (reported, not drift), 0.25 and above drift. With ``n`` live and ``m`` reference texts, a sample of
  the reference's own distribution has PSI of about ``chi2(k-1) * (1/n + 1/m)`` for ``k`` bins: simulated with
  the default ``min_texts`` (500) against 2000 reference texts, 12 bins, its 99.9th percentile is about 0.1 (0.17
  against 500 reference texts), so noise alone is never drift; at 100 texts it reaches 0.5, hence ``min_texts``.
- The chi-square test of label shares (live counts against the reference's, expected counts below 5 merged)
  must also reject at ``alpha`` before labels count as drift: PSI says how large the shift is, the test
  that it is not noise. The test alone is never the verdict: with a day's traffic it rejects any shift.
- Below ``min_texts`` texts there is no verdict: "not enough traffic", its own exit status.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tritoncls.errors import TritonclsError, UsageError

DEFAULT_METRICS_URL = "http://127.0.0.1:8002/metrics"
PSI_MODERATE = 0.1
PSI_DRIFT = 0.25
PSI_EPSILON = 1e-4  # the share an empty bin counts as (log of zero otherwise)
CHI2_ALPHA = 0.01
MIN_EXPECTED = 5.0  # chi-square cells expected below this are merged
DEFAULT_MIN_TEXTS = 500

EXIT_OK = 0
EXIT_ERROR = 1  # every tritoncls error (run_command's)
EXIT_DRIFT = 3
EXIT_NOT_ENOUGH = 4

OK, DRIFT, NOT_ENOUGH = "ok", "drift", "not enough traffic"  # the overall verdicts
EXIT_STATUS = {OK: EXIT_OK, DRIFT: EXIT_DRIFT, NOT_ENOUGH: EXIT_NOT_ENOUGH}

_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")  # a PromQL range duration


class MonitorError(TritonclsError):
    """The live counters or the reference cannot be read, or they do not belong together."""


@dataclass(frozen=True)
class MonitorConfig:
    """Options of ``tritoncls monitor``: a reference, and a metrics port (``metrics_url``) or a Prometheus
    server (``prometheus``, counts over the last ``window``)."""

    reference: str  # reference.json, an export folder holding it, or a repository holding tritoncls_reference.json
    metrics_url: str = DEFAULT_METRICS_URL
    prometheus: str | None = None
    window: str = "1h"
    name: str | None = None  # the served model (the series' ``model`` label); None: the only one present
    baseline: str | None = None  # a snapshot: compare the counts since it was taken
    save_snapshot: str | None = None
    min_texts: int = DEFAULT_MIN_TEXTS
    psi_threshold: float = PSI_DRIFT
    alpha: float = CHI2_ALPHA
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.prometheus is not None and self.baseline is not None:
            raise UsageError("--baseline compares a metrics port's counters with an earlier snapshot; with "
                             "--prometheus the counts are already those of --window. Drop one of them.")
        if self.prometheus is not None and self.save_snapshot is not None:
            raise UsageError("--save_snapshot keeps a metrics port's counters for a later --baseline; with "
                             "--prometheus use --window instead.")
        if not _DURATION.match(self.window):
            raise UsageError(f"--window {self.window!r}: expected a Prometheus duration such as 30m, 1h or 1d12h.")
        if self.min_texts < 1:
            raise UsageError(f"--min_texts must be >= 1, got {self.min_texts}.")
        if self.psi_threshold <= 0:
            raise UsageError(f"--psi_threshold must be > 0, got {self.psi_threshold:g}.")
        if not 0 < self.alpha < 1:
            raise UsageError(f"--alpha must lie in (0, 1), got {self.alpha:g}.")
        if self.timeout_s <= 0:
            raise UsageError(f"--timeout_s must be > 0, got {self.timeout_s:g}.")

    @property
    def source(self) -> str:
        """Where the counts come from, as the report names it."""
        return f"{self.prometheus} (increase over {self.window})" if self.prometheus else self.metrics_url
