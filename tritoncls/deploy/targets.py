"""Deploy targets: one :class:`Target` object per target, in :data:`TARGETS`.

A target is its files (templates under ``deploy_templates/``), how they are validated, the typed spec its
templates read, and what is particular to it (a requirements file, a copy of the repository in the build
context, a storage URI, a note). Adding a target is one object here, its spec builder and its templates;
nothing else looks a target up by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from tritoncls import __version__
from tritoncls.deploy.dashboard import DASHBOARD_FILE, dashboard_json
from tritoncls.deploy.monitoring import monitoring_notes, monitoring_spec
from tritoncls.deploy.packages import Requirement, extra_constraints, extra_index
from tritoncls.deploy.repository import RepositoryInfo
from tritoncls.deploy.rules import RULE_FILE, RULES_DIR, TEST_FILE, RuleSet, dump_yaml, prometheus_rule
from tritoncls.deploy.specs import DockerSpec, KServeSpec, KubeSpec, Ports, Server, Sizing
from tritoncls.runtime.contract import ADMIN_KEY_ENV, LATENCY_SUMMARIES_ARG


class DeployOptions(Protocol):
    """What a target reads of the deploy options (:class:`tritoncls.deploy.config.DeployConfig` has it; the
    config module reads :data:`TARGETS`, so this module does not import it)."""

    image: str | None
    replicas: int
    storage_uri: str | None


Spec = DockerSpec | KubeSpec | KServeSpec

#: NVIDIA's Triton image, pinned in this one place: Triton 2.51.0 (the server nvidia-pytriton 0.7.0
#: bundles, which the tests here run), Ubuntu 22.04, whose python3 (3.10) the python backend uses.
TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:24.10-py3"
TRITON_VERSION = "2.51.0"
IMAGE_PYTHON = "3.10"
#: the Kubernetes version whose OpenAPI schemas (kubernetes-validate) every core manifest is checked against
KUBERNETES_VERSION = "1.33"
CONTAINER_UID = 10001
IMAGE_REPOSITORY = "/models"  # where the Dockerfile copies the repository
KSERVE_REPOSITORY = "/mnt/models"  # where KServe's storage initializer puts storageUri
KSERVE_PORTS = Ports(http=8080, grpc=9000, metrics=8002)  # the ports KServe's Triton runtime uses
SHM_REGION_BYTES = 16 * 2**20
QUEUE_METRIC = "triton_queue_time_per_request_us"
QUEUE_TARGET_US = 50_000  # scale out when requests wait 50 ms on average in Triton's queues
MAX_REPLICAS_FACTOR = 4
REPOSITORY_DIR = "model_repository"  # the copy in the docker build context


@dataclass(frozen=True)
class OutputFile:
    """One rendered file: a template filled with the plan's values, or (``generate``) text built from the spec
    as data (the Prometheus rules and the Grafana dashboard, dumped as YAML or JSON rather than templated so
    that any label name is escaped)."""

    template: str
    name: str  # path inside the output folder
    generate: Callable[[Any], str] | None = None  # spec -> the file's text



SpecBuilder = Callable[[DeployOptions, RepositoryInfo, str, tuple[Requirement, ...], Sizing], Spec]
Note = Callable[[DeployOptions, RepositoryInfo, str, tuple[Requirement, ...]], "str | None"]


def _no_note(config: DeployOptions, repo: RepositoryInfo, name: str, requirements: tuple[Requirement, ...]) -> None:
    return None


@dataclass(frozen=True)
class Target:
    """One deploy target."""

    name: str
    files: tuple[OutputFile, ...]  # rendered for every repository
    validation: str  # how its files were validated (said in the rendered README)
    usage: str  # the template of the README's how-to-use part
    spec: SpecBuilder  # (config, repository, object name, requirements, sizing) -> what the templates read
    requirements_file: bool = False  # also render requirements.txt when the python steps need packages
    copies_repository: bool = False  # the output holds a copy of the repository (a docker build context)
    needs_storage_uri: bool = False  # --storage_uri: where the repository is stored
    note: Note = _no_note  # a target-specific note for the user, or None

    def output_files(self, requirements: tuple[Requirement, ...]) -> tuple[OutputFile, ...]:
        extra = (OutputFile("docker/requirements.txt.j2", "requirements.txt"),) if (
            self.requirements_file and requirements) else ()
        return (*self.files, *extra, OutputFile("README.md.j2", "README.md"))


def default_image(name: str) -> str:
    """The tag of the image the docker target's Dockerfile builds."""
    return f"tritoncls-{name}:{__version__}"


def labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "tritoncls", "app.kubernetes.io/instance": name,
            "app.kubernetes.io/component": "triton-server"}


def docker_server() -> Server:
    """The Dockerfile's server: the admin key from the environment (``docker run -e``), refused when unset."""
    key = f"${{{ADMIN_KEY_ENV}:?run the image with -e {ADMIN_KEY_ENV}=KEY: the key that unlocks Triton's administrative APIs}}"
    return Server(IMAGE_REPOSITORY, Ports(), SHM_REGION_BYTES, key_reference=key)


def _docker(config: DeployOptions, repo: RepositoryInfo, name: str, requirements: tuple[Requirement, ...],
            sizing: Sizing) -> DockerSpec:
    return DockerSpec(
        base_image=TRITON_IMAGE, triton_version=TRITON_VERSION, python_version=IMAGE_PYTHON,
        requirements=requirements, constraints=extra_constraints(requirements), extra_index=extra_index(requirements),
        uid=CONTAINER_UID, repository_dir=REPOSITORY_DIR,
        server=docker_server(), image=config.image or default_image(name), start_period_s=sizing.startup_budget_s)


def _kube(config: DeployOptions, repo: RepositoryInfo, name: str, requirements: tuple[Requirement, ...],
          sizing: Sizing) -> KubeSpec:
    # The latency summaries (p50 to p999 per model) feed the p99 alert; the counters the autoscaler reads stay on.
    server = Server(IMAGE_REPOSITORY, Ports(), SHM_REGION_BYTES, extra_args=(LATENCY_SUMMARIES_ARG,))  # p99 per model, checked on tritonserver 2.51
    return KubeSpec(
        name=name, labels=labels(name), image=config.image or default_image(name), replicas=config.replicas,
        max_replicas=MAX_REPLICAS_FACTOR * config.replicas, uid=CONTAINER_UID, sizing=sizing,
        server=server, ensemble=repo.ensemble, queue_metric=QUEUE_METRIC, queue_target_us=QUEUE_TARGET_US,
        monitoring=monitoring_spec(repo, name, QUEUE_TARGET_US), requirements=requirements)


def _kube_note(config: DeployOptions, repo: RepositoryInfo, name: str,
               requirements: tuple[Requirement, ...]) -> str | None:
    return " ".join(monitoring_notes(repo)) or None


def _prometheus_rule(spec: KubeSpec) -> str:
    return (f"# The Prometheus rules of {RULES_DIR}/{RULE_FILE} as a Prometheus Operator PrometheusRule; its labels "
            f"must match your Prometheus's ruleSelector.\n" + dump_yaml(prometheus_rule(spec.monitoring, spec.labels)))


#: the k8s target's generated files: the rules as a PrometheusRule and as a plain rule file with its promtool
#: tests, and the Grafana dashboard
MONITORING_FILES = (
    OutputFile("", "prometheus-rules.yaml", _prometheus_rule),
    OutputFile("", f"{RULES_DIR}/{RULE_FILE}", lambda spec: RuleSet(spec.monitoring).rule_file()),
    OutputFile("", f"{RULES_DIR}/{TEST_FILE}", lambda spec: RuleSet(spec.monitoring).test_file()),
    OutputFile("", DASHBOARD_FILE, lambda spec: dashboard_json(spec.monitoring)),
)


def _kserve(config: DeployOptions, repo: RepositoryInfo, name: str, requirements: tuple[Requirement, ...],
            sizing: Sizing) -> KServeSpec:
    # The python steps' packages are not in NVIDIA's image: then the runtime uses the docker target's image.
    image = config.image or (default_image(name) if requirements else TRITON_IMAGE)
    return KServeSpec(
        name=name, labels=labels(name), image=image, replicas=config.replicas,
        max_replicas=MAX_REPLICAS_FACTOR * config.replicas, uid=CONTAINER_UID, storage_uri=str(config.storage_uri),
        sizing=sizing, server=Server(KSERVE_REPOSITORY, KSERVE_PORTS, SHM_REGION_BYTES),
        ensemble=repo.ensemble, triton_version=TRITON_VERSION)


def _kserve_note(config: DeployOptions, repo: RepositoryInfo, name: str,
                 requirements: tuple[Requirement, ...]) -> str | None:
    if requirements and not config.image:
        return (f"The runtime image is the docker target's ({default_image(name)}): NVIDIA's image lacks the python "
                f"steps' packages. Build and push it, or pass --image.")
    return None


#: target -> how its files were validated (said in the README)
_VALIDATION = {
    "docker": "The Dockerfile was checked structurally (pinned base image, non-root USER, HEALTHCHECK, exec-form CMD, "
              "COPY sources present) and every requirement is pinned.",
    "k8s": f"Every YAML file was parsed back; Deployment, Service, HorizontalPodAutoscaler and PodDisruptionBudget "
           f"were validated against the strict OpenAPI schemas of Kubernetes {KUBERNETES_VERSION} (kubernetes-validate), "
           f"the PodMonitor, the PrometheusRule, the prometheus-adapter rules and the Grafana dashboard against "
           f"tritoncls's own structural schemas (not the projects' published ones). The rule file was checked with "
           f"`promtool check rules` and its unit tests run with `promtool test rules` where promtool was found (the "
           f"deploy log says).",
    "kserve": f"Every YAML file was parsed back; the ServingRuntime's containers and volumes were validated against "
              f"Kubernetes {KUBERNETES_VERSION}'s Container and Volume schemas (kubernetes-validate), the ServingRuntime "
              f"and InferenceService themselves against tritoncls's own structural schemas (not KServe's CRDs).",
}



DOCKER = Target("docker", (OutputFile("docker/Dockerfile.j2", "Dockerfile"), OutputFile("docker/dockerignore.j2", ".dockerignore")),
                _VALIDATION["docker"], "docker/usage.md.j2", _docker, requirements_file=True, copies_repository=True)
K8S = Target("k8s", (*(OutputFile(f"k8s/{n}.yaml.j2", f"{n}.yaml") for n in
                          ("deployment", "service", "hpa", "pdb", "podmonitor", "prometheus-adapter-rules")),
                      *MONITORING_FILES),
             _VALIDATION["k8s"], "k8s/usage.md.j2", _kube, note=_kube_note)
KSERVE = Target("kserve", tuple(OutputFile(f"kserve/{n}.yaml.j2", f"{n}.yaml") for n in ("servingruntime", "inferenceservice")),
                _VALIDATION["kserve"], "kserve/usage.md.j2", _kserve, needs_storage_uri=True, note=_kserve_note)

#: every target, by name (``--target``'s choices, in this order)
TARGETS: dict[str, Target] = {t.name: t for t in (DOCKER, K8S, KSERVE)}
