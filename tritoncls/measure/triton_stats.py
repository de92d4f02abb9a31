"""Where served time goes, from Triton's own inference statistics.

Statistics are cumulative, so a measurement takes a snapshot before and after and works on the
difference. Per composing model Triton reports queue time and compute time (input, infer, output);
the ensemble's steps map to the stages tokenizer, model and postprocess, and the queue times of all
steps together form the ``queue`` stage.

Two views:

- ``shares``: of the mean request time inside the server (queue included), from the per-request
  statistics. A request that runs in a dynamic batch of n is charged the whole batch's duration, so this
  says where a request's latency goes, not what a step costs.
- ``compute_shares`` and ``us_per_text``: of the server's compute time, from the per-execution statistics
  (``batch_stats``: one entry per batch size, counted once per execution), so a batch of n requests counts
  once. This says what each step costs the server (the multi-label postprocess, with its sigmoid, thresholds
  and variable-length outputs, shows there). Where a model reports no batch statistics, its per-request
  compute time stands in.

The fused layout is one Triton model: its time is the model stage's, and the steps' own shares are not
visible to Triton.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import astuple, dataclass, field
from typing import Any

STAGES = ("tokenizer", "model", "postprocess", "queue")
STEPS = ("tokenizer", "model", "postprocess")  # the stages that compute
_DURATIONS = ("queue", "compute_input", "compute_infer", "compute_output")


@dataclass(frozen=True)
class ModelStats:
    """Cumulative counters of one model (nanoseconds)."""

    inference_count: int
    execution_count: int
    queue_ns: int
    compute_input_ns: int
    compute_infer_ns: int
    compute_output_ns: int
    execution_compute_ns: int = 0  # input + infer + output summed over executions (batch_stats), not requests

    @property
    def compute_ns(self) -> int:
        return self.compute_input_ns + self.compute_infer_ns + self.compute_output_ns

    @property
    def server_compute_ns(self) -> int:
        """What the model's executions took; the per-request sum where Triton kept no batch statistics."""
        return self.execution_compute_ns or self.compute_ns

    def minus(self, before: ModelStats) -> ModelStats:
        return ModelStats(*(a - b for a, b in zip(astuple(self), astuple(before))))


_ZERO = ModelStats(0, 0, 0, 0, 0, 0)


def parse_statistics(stats: Mapping[str, Any]) -> dict[str, ModelStats]:
    """``get_inference_statistics(as_json=True)`` (gRPC or HTTP shape) -> name -> ModelStats.

    Versions of one model are summed. Counters arrive as strings in gRPC's JSON.
    """
    out: dict[str, ModelStats] = {}
    for entry in stats.get("model_stats", []):
        inference = entry.get("inference_stats", {})
        values = [int(entry.get("inference_count", 0) or 0), int(entry.get("execution_count", 0) or 0)]
        values += [int(inference.get(name, {}).get("ns", 0) or 0) for name in _DURATIONS]
        values.append(sum(int(batch.get(name, {}).get("ns", 0) or 0) for batch in entry.get("batch_stats", [])
                          for name in _DURATIONS[1:]))
        current = ModelStats(*values)
        name = entry["name"]
        if name in out:
            current = ModelStats(*(a + b for a, b in zip(astuple(out[name]), astuple(current))))
        out[name] = current
    return out


def delta(after: Mapping[str, ModelStats], before: Mapping[str, ModelStats]) -> dict[str, ModelStats]:
    return {name: stats.minus(before.get(name, _ZERO)) for name, stats in after.items()}


@dataclass(frozen=True)
class StageShare:
    """Seconds and shares of the served time per stage, plus batching facts of the model step."""

    seconds: dict[str, float]  # per-request sums: a request in a batch of n is charged the batch's duration
    model_executions: int
    model_inferences: int
    step_inferences: dict[str, int] = field(default_factory=dict)  # texts each step computed
    compute_seconds: dict[str, float] = field(default_factory=dict)  # per step, what its executions took

    @property
    def total_s(self) -> float:
        return sum(self.seconds.values())

    @property
    def shares(self) -> dict[str, float]:
        total = self.total_s
        return {stage: (value / total if total > 0 else 0.0) for stage, value in self.seconds.items()}

    @property
    def compute_shares(self) -> dict[str, float]:
        """Each step's share of the server's compute time over the three steps (executions; queue excluded)."""
        total = sum(self.compute_seconds.get(step, 0.0) for step in STEPS)
        return {step: (self.compute_seconds.get(step, 0.0) / total if total > 0 else 0.0) for step in STEPS}

    @property
    def us_per_text(self) -> dict[str, float]:
        """Each step's compute time (executions) per text it computed, in microseconds."""
        return {step: (1e6 * self.compute_seconds.get(step, 0.0) / self.step_inferences[step]
                       if self.step_inferences.get(step) else 0.0) for step in STEPS}

    @property
    def texts_per_model_execution(self) -> float:
        return self.model_inferences / self.model_executions if self.model_executions else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "shares": self.shares, "compute_seconds": self.compute_seconds,
                "compute_shares": self.compute_shares, "us_per_text": self.us_per_text,
                "model_executions": self.model_executions,
                "model_inferences": self.model_inferences,
                "texts_per_model_execution": self.texts_per_model_execution}


def stage_share(stats: Mapping[str, ModelStats], steps: Mapping[str, str]) -> StageShare:
    """Stage shares from a statistics delta; ``steps`` maps stage -> model name (tokenizer, model, postprocess).

    A model named by several stages (the fused layout: one model does all three) is counted once, as the
    model stage."""
    seconds = {stage: 0.0 for stage in STAGES}
    inferences: dict[str, int] = {}
    compute: dict[str, float] = {}
    counted: set[str] = set()
    for stage in ("model", "tokenizer", "postprocess"):
        name = steps.get(stage, "")
        if name in counted:
            continue
        counted.add(name)
        model = stats.get(name, _ZERO)
        seconds[stage] = model.compute_ns / 1e9
        seconds["queue"] += model.queue_ns / 1e9
        inferences[stage] = model.inference_count
        compute[stage] = model.server_compute_ns / 1e9
    model = stats.get(steps.get("model", ""), _ZERO)
    return StageShare(seconds, model.execution_count, model.inference_count, inferences, compute)


def fetch_statistics(grpc_url: str) -> dict[str, ModelStats]:
    """Current cumulative statistics of every model on the server at ``grpc_url``."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(grpc_url)
    try:
        return parse_statistics(client.get_inference_statistics(as_json=True))
    finally:
        client.close()
