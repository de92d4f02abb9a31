"""Benchmarks: ``tritoncls bench`` (:mod:`.bench`, its report in :mod:`.report`): perf_analyzer against served
ensembles, in-process baselines, the reference-style deployment as a peer, against the speed targets in
docs/benchmarks.md; and ``tritoncls bench-gpu`` (:mod:`.gpu_served`). Built from :mod:`tritoncls.measure`."""
