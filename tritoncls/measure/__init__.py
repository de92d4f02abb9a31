"""The measuring primitives every benchmark uses: perf_analyzer (:mod:`.perf_analyzer`), Triton's statistics
(:mod:`.triton_stats`), CPU time (:mod:`.cpu_time`), the machine and its GEMM rates (:mod:`.machine`), FLOPs
(:mod:`.flops`), in-process runs (:mod:`.inprocess`), served runs (:mod:`.served`), derived exports
(:mod:`.variants`), the texts (:mod:`.texts`) and the answers compared across them (:mod:`.answers`).

``bench`` (:mod:`tritoncls.benchmarks`), ``tune`` (:mod:`tritoncls.tune`), ``soak`` (:mod:`tritoncls.soak`) and
``doctor`` (:mod:`tritoncls.doctor`) are built from these; none of them imports another.
"""
