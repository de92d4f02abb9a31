"""Typed deployment specs: what the templates render. Each checks itself on construction."""

from __future__ import annotations

from dataclasses import dataclass, field

from tritoncls.deploy.packages import Constraint, Requirement
from tritoncls.errors import DeployError
from tritoncls.runtime.contract import ADMIN_KEY_ENV, ADMIN_KEY_HEADER, RESTRICTED_APIS


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise DeployError(message)


@dataclass(frozen=True)
class Ports:
    http: int = 8000
    grpc: int = 8001
    metrics: int = 8002

    def __post_init__(self) -> None:
        values = (self.http, self.grpc, self.metrics)
        _require(all(1 <= p <= 65535 for p in values) and len(set(values)) == 3,
                 f"ports {values} must be three different numbers in 1..65535")


@dataclass(frozen=True)
class Sizing:
    """Resources of one server pod, and how each figure was derived (said in the rendered files)."""

    shm_mib: int
    memory_request_mib: int
    memory_limit_mib: int
    cpu_request: int  # cores
    gpus: int
    startup_budget_s: int
    probe_period_s: int = 10
    rules: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _require(self.shm_mib >= 64, f"/dev/shm size {self.shm_mib} MiB must be >= 64")
        _require(0 < self.memory_request_mib <= self.memory_limit_mib,
                 f"memory request {self.memory_request_mib} MiB must be > 0 and <= the limit {self.memory_limit_mib} MiB")
        _require(self.cpu_request >= 1 and self.gpus in (0, 1), f"cpu {self.cpu_request} / gpus {self.gpus}")
        _require(self.startup_budget_s >= self.probe_period_s > 0, f"startup budget {self.startup_budget_s} s")

    @property
    def startup_failure_threshold(self) -> int:
        return -(-self.startup_budget_s // self.probe_period_s)


@dataclass(frozen=True)
class Server:
    """The tritonserver command line inside the container."""

    model_repository: str
    ports: Ports
    shm_region_bytes: int
    key_reference: str = f"$({ADMIN_KEY_ENV})"  # how the container's command line reads the admin key
    extra_args: tuple[str, ...] = ()

    @property
    def args(self) -> tuple[str, ...]:
        """Model control off, and the administrative APIs behind the key (inference and health stay open)."""
        restricted = f"{','.join(RESTRICTED_APIS)}:{ADMIN_KEY_HEADER}={self.key_reference}"
        return ("tritonserver", f"--model-repository={self.model_repository}",
                f"--http-port={self.ports.http}", f"--grpc-port={self.ports.grpc}",
                f"--metrics-port={self.ports.metrics}", "--model-control-mode=none",
                f"--http-restricted-api={restricted}", f"--grpc-restricted-protocol={restricted}",
                f"--backend-config=python,shm-default-byte-size={self.shm_region_bytes}",
                f"--backend-config=python,shm-growth-byte-size={min(self.shm_region_bytes, 4 * 2**20)}",
                *self.extra_args)

    @property
    def shell_command(self) -> tuple[str, ...]:
        """``args`` run by ``sh -c`` so that ``${TRITON_ADMIN_KEY}`` expands (Docker's exec form does not)."""
        return ("sh", "-c", "exec " + " ".join(f'"{arg}"' for arg in self.args))


@dataclass(frozen=True)
class DockerSpec:
    base_image: str
    triton_version: str
    python_version: str
    requirements: tuple[Requirement, ...]
    constraints: tuple[Constraint, ...]
    extra_index: str | None
    uid: int
    repository_dir: str  # in the build context (the output folder)
    server: Server
    image: str  # the tag the README suggests
    start_period_s: int

    def __post_init__(self) -> None:
        _require(":" in self.base_image and not self.base_image.endswith(":latest"),
                 f"base image {self.base_image!r} must be pinned to a tag")
        _require(self.uid > 0, "the container user must not be root (uid 0)")


@dataclass(frozen=True)
class Drift:
    """The label-drift rules: the reference's share of each label and when the live shares are too far off."""

    shares: tuple[tuple[str, float], ...]  # (label, share of predicted labels on the reference data), label.txt order
    reference_texts: int
    tvd_threshold: float  # total variation distance between live and reference shares that alerts
    min_texts: int  # texts in the window before the alert may fire

    def __post_init__(self) -> None:
        _require(len(self.shares) >= 2, f"label drift needs at least two labels, got {len(self.shares)}")
        _require(len({label for label, _ in self.shares}) == len(self.shares), "label drift: a label is repeated")
        _require(all(0.0 <= share <= 1.0 for _, share in self.shares)
                 and abs(sum(share for _, share in self.shares) - 1.0) < 1e-6,
                 f"label drift: reference shares must lie in [0, 1] and sum to 1 ({self.shares})")
        reachable = 1.0 - min(share for _, share in self.shares)  # all traffic on the rarest label
        _require(0.0 < self.tvd_threshold < reachable,
                 f"label drift threshold {self.tvd_threshold} must lie in (0, {reachable:g}): the distance all "
                 f"traffic on the rarest label would reach")
        _require(self.min_texts >= 1, f"label drift: min_texts {self.min_texts} must be >= 1")


@dataclass(frozen=True)
class LowConfidence:
    """The low-confidence alert: the share of texts below the served threshold that the reference leads us to
    expect, and the share that alerts."""

    expected_ratio: float
    threshold_ratio: float
    min_texts: int

    def __post_init__(self) -> None:
        _require(0.0 <= self.expected_ratio < self.threshold_ratio < 1.0,
                 f"low-confidence threshold {self.threshold_ratio} must lie above the expected share "
                 f"{self.expected_ratio} and below 1")
        _require(self.min_texts >= 1, f"low confidence: min_texts {self.min_texts} must be >= 1")


@dataclass(frozen=True)
class MonitoringSpec:
    """What the Prometheus rules and the Grafana dashboard watch, with their thresholds (decided in
    :mod:`tritoncls.deploy.monitoring`, written by :mod:`tritoncls.deploy.rules` and
    :mod:`tritoncls.deploy.dashboard`)."""

    name: str  # the Kubernetes objects' name: the rule group's and the dashboard's
    model: str  # the served model (the ensemble): every series' ``model`` label
    models: tuple[str, ...]  # every model of the repository, the ensemble first (queue time sums over them)
    metrics: bool  # the python steps export the tritoncls_* series (False: the rules on Triton's own only)
    multi_label: bool | None  # None: unknown (no reference to say)
    drift: Drift | None  # None without a reference distribution
    low_confidence: LowConfidence | None  # None without a reference distribution
    refused_ratio: float
    refused_min_requests: int
    latency_quantile: str
    latency_threshold_us: int
    queue_threshold_us: int
    reasons: tuple[str, ...]  # why each threshold, one line each (README.md)

    def __post_init__(self) -> None:
        _require(bool(self.model) and self.models[:1] == (self.model,), "the served model must come first in models")
        _require(0.0 < self.refused_ratio < 1.0 and self.refused_min_requests >= 1,
                 f"refused-input threshold {self.refused_ratio} must lie in (0, 1)")
        _require(self.latency_threshold_us > 0 and self.queue_threshold_us > 0, "latency thresholds must be > 0")
        _require(self.metrics or (self.drift is None and self.low_confidence is None),
                 "drift and low-confidence rules read the tritoncls_* series, which this repository does not export")


@dataclass(frozen=True)
class KubeSpec:
    """Deployment, Service, HPA, PodDisruptionBudget and PodMonitor of one Triton server, and the Prometheus
    rules and Grafana dashboard that watch it."""

    name: str
    labels: dict[str, str]
    image: str
    replicas: int
    max_replicas: int
    uid: int
    sizing: Sizing
    server: Server
    ensemble: str
    queue_metric: str
    queue_target_us: int
    monitoring: MonitoringSpec
    requirements: tuple[Requirement, ...] = field(default=())

    def __post_init__(self) -> None:
        _require(1 <= self.replicas <= self.max_replicas, f"replicas {self.replicas} must lie in 1..{self.max_replicas}")
        _require(self.uid > 0, "the container user must not be root (uid 0)")


@dataclass(frozen=True)
class KServeSpec:
    """ServingRuntime + InferenceService."""

    name: str
    labels: dict[str, str]
    image: str
    replicas: int
    max_replicas: int
    uid: int
    storage_uri: str
    sizing: Sizing
    server: Server
    ensemble: str
    triton_version: str

    def __post_init__(self) -> None:
        _require(1 <= self.replicas <= self.max_replicas, f"replicas {self.replicas} must lie in 1..{self.max_replicas}")
