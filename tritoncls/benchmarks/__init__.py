"""Benchmarks (``tritoncls bench``): perf_analyzer against served ensembles, in-process baselines, the
reference-style deployment as a peer, and a report against the speed targets in docs/benchmarks.md."""

from tritoncls.errors import TritonclsError


class BenchmarkError(TritonclsError):
    """A benchmark cannot run: a missing tool or library, a failed measurement, a bad option."""
