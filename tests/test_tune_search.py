"""tritoncls tune's search on recorded measurements: no build, no server, seconds.

The recorded table is the nano shape's thread/instance sweep of docs/benchmarks.md (single texts at
concurrency 32), with a fused layout and latencies added so the budget matters.
"""

from __future__ import annotations

import pytest

from tritoncls.tune.search import (
    DEFAULTS,
    Candidate,
    Measured,
    Point,
    Space,
    corpus_buckets,
    pareto_front,
    search,
    threading_options,
)

BUDGET_MS = 400.0

#: (layout, instances, threads) -> [(concurrency, texts/s, p99 ms)] single-text points
RECORDED = {
    ("ensemble", 1, 0): [(1, 40.0, 30.0), (8, 70.0, 150.0), (32, 80.6, 500.0)],
    ("ensemble", 1, 1): [(1, 35.0, 35.0), (8, 95.0, 120.0), (32, 108.5, 380.0)],
    ("ensemble", 2, 1): [(1, 45.0, 28.0), (8, 180.0, 70.0), (32, 235.6, 240.0)],
    ("fused", 1, 0): [(1, 60.0, 20.0), (8, 100.0, 100.0), (32, 120.0, 300.0)],
    ("fused", 1, 1): [(1, 55.0, 22.0), (8, 110.0, 90.0), (32, 130.0, 290.0)],
    ("fused", 2, 1): [(1, 70.0, 16.0), (8, 240.0, 45.0), (32, 300.0, 160.0)],
}


class Clock:
    """A fake clock: each measurement takes ``step_s``."""

    def __init__(self, step_s: float = 30.0) -> None:
        self.now, self.step_s = 0.0, step_s

    def __call__(self) -> float:
        return self.now


def recorded(clock: Clock, gains: dict[str, float] | None = None):
    """A measure() over RECORDED; ``gains`` scales the throughput of candidates with an option set
    (e.g. {"max_queue_delay_us": 1.1} makes every candidate with a changed delay 10% faster)."""
    calls: list[Candidate] = []

    def measure(candidate: Candidate) -> Measured:
        calls.append(candidate)
        clock.now += clock.step_s
        key = (candidate.get("layout"), candidate.get("instances"), candidate.get("intra_op_threads"))
        scale = 1.0
        for option, gain in (gains or {}).items():
            if option in dict(candidate.options):
                scale *= gain
        points = [Point(1, c, rate * scale, p99 / 2, p99) for c, rate, p99 in RECORDED[key]]
        return Measured(candidate, points)

    measure.calls = calls
    return measure


def test_search_picks_the_fastest_configuration_within_the_budget_not_the_fastest_overall():
    clock = Clock()
    result = search(recorded(clock), Space(cores=2), BUDGET_MS, time_budget_s=3600, clock=clock)
    assert result.default.candidate == Candidate() and result.default.score(BUDGET_MS) == 70.0  # c32 is over budget
    assert result.best.candidate.name == "fused-i2t1"
    assert result.best.score(BUDGET_MS) == 300.0 and not result.stopped_early


def test_search_keeps_a_later_stages_value_only_when_it_beats_the_best_by_min_gain():
    clock = Clock()
    gains = {"max_queue_delay_us": 1.02, "max_batch_size": 1.10}
    result = search(recorded(clock, gains), Space(cores=2), BUDGET_MS, 3600, clock, min_gain=0.03)
    assert "max_queue_delay_us" not in dict(result.best.candidate.options)  # +2%: noise
    assert result.best.candidate.get("max_batch_size") in (32, 128)  # +10%: kept
    assert result.best.candidate.get("layout") == "fused"


def test_each_stage_compares_its_candidates_with_a_fresh_reading_of_the_best_so_far():
    """The default read 500 texts/s once (a quiet moment), 300 when measured again: Y's 400 must win."""
    x, y = Candidate.of(instances=2), Candidate.of(instances=3)
    stages = (("a", lambda best, space: [x]), ("b", lambda best, space: [y]))

    def run(remeasure: bool) -> tuple[Candidate, list[str]]:
        readings = {Candidate(): [500.0, 300.0, 300.0], x: [200.0], y: [400.0]}
        clock = Clock()

        def measure(candidate):
            clock.now += clock.step_s
            return Measured(candidate, [Point(1, 8, readings[candidate].pop(0), 10.0, 20.0)])

        result = search(measure, Space(cores=2), BUDGET_MS, 3600, clock, stages=stages, remeasure_incumbent=remeasure)
        return result.best.candidate, [m.stage for m in result.measured]

    assert run(remeasure=False) == (Candidate(), ["default", "a", "b"])
    assert run(remeasure=True) == (y, ["default", "a", "b (the best so far, again)", "b"])


def test_search_stops_at_the_time_budget_and_says_so():
    clock = Clock(step_s=30.0)
    measure = recorded(clock)
    result = search(measure, Space(cores=2), BUDGET_MS, time_budget_s=100, clock=clock)
    assert len(measure.calls) == 3 and result.stopped_early  # default + 2, then a 4th would pass 100 s
    assert measure.calls[0] == Candidate()
    assert measure.calls[1].name == "fused-i2t1"  # the most promising first


def test_search_keeps_time_for_what_runs_after_it():
    clock = Clock(step_s=30.0)
    measure = recorded(clock)
    search(measure, Space(cores=2), BUDGET_MS, time_budget_s=300, clock=clock, reserve_candidates=4)
    assert len(measure.calls) == 6  # at 180 s, one more (30 s) plus 4 x 30 s reserved would pass 300 s


def test_no_candidate_within_the_budget_gives_no_best_and_the_closest_by_p99():
    clock = Clock()
    result = search(recorded(clock), Space(cores=2), budget_ms=10.0, time_budget_s=3600, clock=clock)
    assert result.best is None
    closest = result.closest(2)
    assert [m.candidate.name for m in closest] == ["fused-i2t1", "fused-i1t0"]
    assert closest[0].lowest_p99_ms() == 16.0


def test_a_failed_candidate_scores_zero_and_the_search_goes_on():
    clock = Clock()
    inner = recorded(clock)

    def measure(candidate):
        if candidate.get("layout") == "fused":
            return Measured(candidate, error="server did not start")
        return inner(candidate)

    result = search(measure, Space(cores=2), BUDGET_MS, 3600, clock)
    assert result.best.candidate.name == "ensemble-i2t1"
    assert any(m.error for m in result.measured)


def test_stages_try_group_padding_only_for_fused_int8_only_when_allowed_and_corpus_buckets_when_given():
    clock = Clock()
    measure = recorded(clock)
    search(measure, Space(cores=2, corpus_buckets=(16, 24, 128), int8=True), BUDGET_MS, 3600, clock)
    tried = [dict(c.options) for c in measure.calls]
    assert any(o.get("precision") == "int8" for o in tried)
    assert any(o.get("buckets") == (16, 24, 128) for o in tried)
    assert all(o.get("layout") == "fused" for o in tried if "group_padding" in o)
    clock2 = Clock()
    measure2 = recorded(clock2)
    search(measure2, Space(cores=2), BUDGET_MS, 3600, clock2)
    assert not any("precision" in dict(c.options) or "buckets" in dict(c.options) for c in measure2.calls)


def test_threading_options_never_oversubscribe_the_cores():
    for cores in (1, 2, 4, 8):
        assert all(i * (t or cores) <= cores for i, t in threading_options(cores))
    assert threading_options(2)[0] == (2, 1)


def test_candidate_drops_default_values_and_names_what_differs():
    assert Candidate.of(**DEFAULTS) == Candidate() and Candidate().name == "default"
    c = Candidate.of(layout="fused", instances=2, intra_op_threads=1, buckets=[16, 24, 128])
    assert c.build_options() == {"layout": "fused", "instances": 2, "intra_op_threads": 1, "buckets": (16, 24, 128)}
    assert c.name == "fused-i2t1-b16.24.128"
    assert c.with_(instances=1, intra_op_threads=0).name == "fused-i1t0-b16.24.128"


def test_pareto_front_keeps_points_no_other_point_beats_on_latency_and_throughput():
    points = [(10.0, 50.0), (20.0, 40.0), (30.0, 90.0), (40.0, 80.0), (50.0, 120.0)]
    assert pareto_front(points) == [(10.0, 50.0), (30.0, 90.0), (50.0, 120.0)]


@pytest.mark.parametrize("lengths, expected", [
    ([10] * 50 + [18] * 30 + [30] * 15 + [60] * 5, (16, 24, 32, 64, 128)),
    ([5] * 100, (8, 128)),
    ([], ()),
])
def test_corpus_buckets_sit_at_length_quantiles_rounded_up_to_8_then_max_seq_length(lengths, expected):
    assert corpus_buckets(lengths, 128) == expected


def test_a_batched_workload_is_scored_on_its_own_requests_only():
    points = [Point(1, 32, 900.0, 40.0, 80.0), Point(8, 4, 500.0, 60.0, 120.0), Point(8, 8, 650.0, 150.0, 260.0)]
    single, batched = Measured(Candidate(), points), Measured(Candidate(), points, request_texts=8)
    assert single.score(200.0) == 900.0 and [p.batch_size for p in single.workload()] == [1]
    assert batched.score(200.0) == 500.0 and batched.score(300.0) == 650.0 and batched.lowest_p99_ms() == 120.0


def test_max_batch_sizes_below_the_workloads_request_size_are_not_tried():
    from tritoncls.tune.search import STAGES

    propose = dict(STAGES)["max_batch_size"]
    assert [c.get("max_batch_size") for c in propose(Candidate(), Space(cores=2, request_texts=48))] == [128]
    assert [c.get("max_batch_size") for c in propose(Candidate(), Space(cores=2))] == [32, 128]
