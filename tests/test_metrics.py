"""The served metrics' arithmetic and wiring, without a server: bins, the per-batch tally, the reference
distribution, and what each python step records (runtime/metrics.py, runtime/steps.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.support import write_tiny_export
from tritoncls import runtime as rt
from tritoncls.runtime import metrics as m


def test_bins_split_values_like_prometheus_le_buckets():
    counts = m.bin_counts(np.array([0.1, 0.10001, 0.5, 0.99, 1.0]), (0.1, 0.5, 0.99))
    assert counts.tolist() == [1, 2, 1, 1]  # <= 0.1, (0.1, 0.5], (0.5, 0.99], above
    assert m.cumulative(counts) == [1, 3, 4, 5]
    assert m.token_bounds(64) == (8.0, 16.0, 24.0, 32.0, 48.0, 64.0)
    assert m.token_bounds(10)[-1] == 10.0 and m.bound_text(0.5) == "0.5" and m.bound_text(16.0) == "16"


def _tally(**settings) -> m.Tally:
    return m.Tally(m.MetricsSettings("clf", **settings))


def test_a_batch_of_predictions_becomes_one_increment_per_changed_series():
    tally = _tally(labels=("a", "b", "c"), low_confidence=0.5)
    probs = np.array([[0.9, 0.05, 0.05], [0.4, 0.35, 0.25], [0.1, 0.8, 0.1]], dtype=np.float32)
    mask = np.eye(3, dtype=bool)[probs.argmax(1)]
    tally.predictions(probs, mask)
    out = tally.drain()
    assert out[(m.PREDICTED, (("label", "a"),))] == 2 and out[(m.PREDICTED, (("label", "b"),))] == 1
    assert (m.PREDICTED, (("label", "c"),)) not in out  # nothing sent for a series that did not change
    assert out[(m.LOW_CONFIDENCE, ())] == 1
    assert out[(f"{m.TOP_CONFIDENCE}_count", ())] == 3
    assert out[(f"{m.TOP_CONFIDENCE}_sum", ())] == pytest.approx(0.9 + 0.4 + 0.8)
    assert out[(f"{m.TOP_CONFIDENCE}_bucket", (("le", "0.5"),))] == 1  # 0.4 (float32: just above 0.4) <= 0.5
    assert out[(f"{m.TOP_CONFIDENCE}_bucket", (("le", "+Inf"),))] == 3
    assert (f"{m.TOP_CONFIDENCE}_bucket", (("le", "0.1"),)) not in out
    assert not any(name.startswith(m.LABELS_PER_TEXT) for name, _ in out), "multi-class has no label-set sizes"
    assert tally.drain() == {}


def test_label_sets_count_every_label_of_every_set_and_the_set_sizes():
    tally = _tally(labels=("a", "b"), low_confidence=0.3, multi_label=True)
    probs = np.array([[0.9, 0.8], [0.1, 0.2]], dtype=np.float32)
    tally.predictions(probs, probs >= 0.5)
    out = tally.drain()
    assert out[(m.PREDICTED, (("label", "a"),))] == 1 and out[(m.PREDICTED, (("label", "b"),))] == 1
    assert out[(f"{m.LABELS_PER_TEXT}_bucket", (("le", "0"),))] == 1
    assert out[(f"{m.LABELS_PER_TEXT}_bucket", (("le", "2"),))] == 2
    assert out[(m.LOW_CONFIDENCE, ())] == 1  # 0.2 < 0.3


def test_tokens_and_refusals_are_tallied_by_reason():
    tally = _tally(max_seq_length=16)
    tally.tokens([3, 16, 16], [False, True, False])
    tally.refused("empty")
    tally.refused("something new")
    out = tally.drain()
    assert out[(m.TRUNCATED, ())] == 1 and out[(f"{m.TEXT_TOKENS}_count", ())] == 3
    assert out[(f"{m.TEXT_TOKENS}_bucket", (("le", "8"),))] == 1 and out[(f"{m.TEXT_TOKENS}_bucket", (("le", "16"),))] == 3
    assert out[(m.REFUSED, (("reason", "empty"),))] == 1 and out[(m.REFUSED, (("reason", "malformed"),))] == 1


class FakeFamily:
    COUNTER = "counter"
    made: list[FakeFamily] = []

    def __init__(self, name: str, description: str, kind: str) -> None:
        assert kind == self.COUNTER and description
        self.name, self.series = name, {}
        FakeFamily.made.append(self)

    def Metric(self, labels: dict[str, str]):  # noqa: N802 - Triton's spelling
        family = self

        class Series:
            def increment(self, value: float) -> None:
                key = tuple(sorted(labels.items()))
                family.series[key] = family.series.get(key, 0.0) + value

        Series().increment(0.0)
        return Series()


class FakePb:
    MetricFamily = FakeFamily


def _exported() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(f.name, key): value for f in FakeFamily.made for key, value in f.series.items()}


def test_the_triton_recorder_creates_every_series_at_zero_and_labels_them_with_the_model():
    FakeFamily.made = []
    recorder = m.TritonRecorder(FakePb, m.MetricsSettings("clf", labels=('say "hi"', "中文"), max_seq_length=16,
                                                          low_confidence=0.5), flush_interval_s=0)
    before = _exported()
    assert all(value == 0 for value in before.values())
    assert {n for n, _ in before} == set(m.counter_names(multi_label=False))
    assert (m.PREDICTED, (("label", 'say "hi"'), ("model", "clf"))) in before
    assert (m.REFUSED, (("model", "clf"), ("reason", "too_long"))) in before
    recorder.predictions(np.array([[0.2, 0.8]]), np.array([[False, True]]))
    after = _exported()
    assert after[(m.PREDICTED, (("label", "中文"), ("model", "clf")))] == 1
    assert after[(f"{m.TOP_CONFIDENCE}_count", (("model", "clf"),))] == 1


def test_the_reference_distribution_round_trips_and_refuses_a_wrong_file(tmp_path):
    probs = np.array([[0.9, 0.1], [0.45, 0.55], [0.2, 0.8]], dtype=np.float32)
    mask = np.eye(2, dtype=bool)[probs.argmax(1)]
    reference = m.reference_of(source="dev.txt", task="multi_class", labels=("x", "y"), probs=probs, mask=mask,
                               lengths=np.array([5, 9, 16]), truncated=np.array([False, False, True]),
                               max_seq_length=16, given=[["x"], ["x"], ["y"]])
    assert reference.labels == {"x": 1, "y": 2} and reference.given_labels == {"x": 2, "y": 1}
    assert reference.top_confidence.total == 3 and reference.truncated == 1
    assert reference.low_confidence_threshold == pytest.approx(np.quantile([0.9, 0.55, 0.8], 0.05), abs=1e-4)
    path = tmp_path / m.REFERENCE_FILE
    path.write_text(reference.to_json(), encoding="utf-8")
    assert m.Reference.load(path) == reference
    path.write_text(json.dumps({"format": "other"}), encoding="utf-8")
    with pytest.raises(rt.ManifestError, match="not a tritoncls reference distribution"):
        m.Reference.load(path)
    with pytest.raises(rt.ManifestError, match="--reference_data"):
        m.Reference.load(tmp_path / "absent.json")


def _tokenize_step(export, **overrides) -> rt.TokenizeStep:
    manifest = rt.Manifest.load(export)
    tok = manifest.tokenizer
    params = rt.TokenizerParameters(vocab_file=tok.vocab_file, special_tokens=tok.special_tokens,
                                    max_seq_length=manifest.max_seq_length, buckets=(manifest.max_seq_length,),
                                    pad_token_id=tok.pad_token_id, metrics_model="clf", **overrides)
    return rt.TokenizeStep.from_typed(params, export)


def test_the_tokenizer_step_records_lengths_cuts_and_each_refused_request(tmp_path):
    export = write_tiny_export(tmp_path / "export")
    step = _tokenize_step(export)
    assert step.metrics == m.MetricsSettings("clf", max_seq_length=rt.Manifest.load(export).max_seq_length)
    step.recorder = tally = m.Tally(step.metrics)
    long_text = "good movie " * 200
    column = np.array([[b"good movie"], [long_text.encode()]], dtype=object)
    out = step([column, np.array([[b""]], dtype=object), np.array([[b"\xff"]], dtype=object), ValueError("no tensor")])
    assert not isinstance(out[0], Exception) and all(isinstance(r, Exception) for r in out[1:])
    counts = tally.drain()
    assert counts[(f"{m.TEXT_TOKENS}_count", ())] == 2 and counts[(m.TRUNCATED, ())] == 1
    assert {labels[0][1]: v for name, labels, v in ((k[0], k[1], v) for k, v in counts.items()) if name == m.REFUSED} \
        == {"empty": 1, "invalid_utf8": 1, "malformed": 1}


def test_a_repository_built_without_metrics_records_nothing(tmp_path):
    export = write_tiny_export(tmp_path / "export")
    assert _tokenize_step(export, metrics=False).metrics is None
    labels = rt.read_labels(export / "label.txt")
    step = rt.PostprocessStep.from_typed(rt.PostprocessParameters(num_labels=len(labels), metrics=False), export)
    assert step.metrics is None and not step.recorder.enabled


def test_the_postprocess_step_records_what_it_returns(tmp_path):
    export = write_tiny_export(tmp_path / "export")
    labels = rt.read_labels(export / "label.txt")
    step = rt.PostprocessStep.from_typed(rt.PostprocessParameters(num_labels=len(labels), metrics_model="clf",
                                                                  low_confidence=0.9), export)
    step.recorder = tally = m.Tally(step.metrics)
    logits = np.random.default_rng(0).normal(size=(5, len(labels))).astype(np.float32)
    results = step([logits[:2], rt.RequestError("bad"), logits[2:]])
    returned = [r.label[i, 0].decode() for r in (results[0], results[2]) for i in range(len(r.label))]
    counts = tally.drain()
    per_label = {k[1][0][1]: v for k, v in counts.items() if k[0] == m.PREDICTED}
    assert per_label == {label: returned.count(label) for label in set(returned)}
    assert counts[(f"{m.TOP_CONFIDENCE}_count", ())] == 5


def test_the_background_thread_sends_the_tally_and_close_sends_the_rest():
    import time

    FakeFamily.made = []
    recorder = m.TritonRecorder(FakePb, m.MetricsSettings("clf", labels=("a", "b"), low_confidence=0.5),
                                flush_interval_s=0.05)
    key = (m.PREDICTED, (("label", "b"), ("model", "clf")))
    recorder.predictions(np.array([[0.2, 0.8]]), np.array([[False, True]]))
    assert _exported()[key] == 0, "a request only tallies; the thread sends"
    deadline = time.monotonic() + 5
    while _exported()[key] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _exported()[key] == 1
    recorder.flush_interval_s = 60.0  # the next tally waits for close
    time.sleep(0.1)
    recorder.predictions(np.array([[0.9, 0.1]]), np.array([[True, False]]))
    recorder.close()
    assert _exported()[(m.PREDICTED, (("label", "a"), ("model", "clf")))] == 1
    assert not recorder._thread.is_alive()
