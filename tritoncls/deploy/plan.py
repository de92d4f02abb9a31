"""Decisions: the image, the sizes, the files of each target. Templates only substitute and loop.

Sizing rules (rules of thumb, stated in the rendered files; nothing was measured in a container here):

- ``/dev/shm``: every python-backend model instance maps one shared-memory region of
  ``SHM_REGION_BYTES`` (16 MiB, as ``tritoncls serve``) that may grow; the emptyDir holds twice that
  per instance plus 64 MiB of headroom, rounded up to 64 MiB.
- memory request: 512 MiB for tritonserver, 256 MiB per python-backend instance (a Python stub with
  numpy and the runtime), and three times the model step's files per model-step instance (weights and the
  runtime's arena), rounded up to 64 MiB; the limit is twice the request.
- CPU request: one core per model-step instance.
- startup probe: 120 s, plus 30 s per 100 MiB of the model step's files per instance, plus 600 s when
  TensorRT builds its engines on first load.

For scale (measured here with the bundled CPU tritonserver 2.51 and the tiny test repository):
tritonserver 39 MiB RSS, python stubs 38-67 MiB, one 16 MiB shm region per stub (docs/deploy.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tritoncls import __version__
from tritoncls.deploy.config import DeployConfig, kubernetes_name
from tritoncls.deploy.packages import Requirement, extra_constraints, extra_index, required_packages
from tritoncls.deploy.repository import RepositoryInfo
from tritoncls.deploy.specs import DockerSpec, KServeSpec, KubeSpec, Ports, Server, Sizing
from tritoncls.runtime.contract import ADMIN_KEY_ENV

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
    template: str
    name: str  # path inside the output folder


@dataclass(frozen=True)
class DeployPlan:
    config: DeployConfig
    repository: RepositoryInfo
    device: str
    name: str
    spec: DockerSpec | KubeSpec | KServeSpec
    sizing: Sizing
    files: tuple[OutputFile, ...]
    notes: tuple[str, ...]  # what the user should know, printed and written in README.md

    def values(self) -> dict[str, Any]:
        """What every template gets."""
        return {"spec": self.spec, "plan": self, "notes": self.notes, "validation": VALIDATION[self.config.target],
                "shm_mib": self.sizing.shm_mib, "sizing_rules": self.sizing.rules}


#: target -> how its files were validated (said in the README)
VALIDATION = {
    "docker": "The Dockerfile was checked structurally (pinned base image, non-root USER, HEALTHCHECK, exec-form CMD, "
              "COPY sources present) and every requirement is pinned.",
    "k8s": f"Every YAML file was parsed back; Deployment, Service, HorizontalPodAutoscaler and PodDisruptionBudget "
           f"were validated against the strict OpenAPI schemas of Kubernetes {KUBERNETES_VERSION} (kubernetes-validate), "
           f"the PodMonitor and the prometheus-adapter rules against tritoncls's own structural schemas (not the "
           f"projects' published ones).",
    "kserve": f"Every YAML file was parsed back; the ServingRuntime's containers and volumes were validated against "
              f"Kubernetes {KUBERNETES_VERSION}'s Container and Volume schemas (kubernetes-validate), the ServingRuntime "
              f"and InferenceService themselves against tritoncls's own structural schemas (not KServe's CRDs).",
}


FILES = {
    "docker": (OutputFile("docker/Dockerfile.j2", "Dockerfile"), OutputFile("docker/dockerignore.j2", ".dockerignore")),
    "k8s": tuple(OutputFile(f"k8s/{n}.yaml.j2", f"{n}.yaml") for n in
                 ("deployment", "service", "hpa", "pdb", "podmonitor", "prometheus-adapter-rules")),
    "kserve": tuple(OutputFile(f"kserve/{n}.yaml.j2", f"{n}.yaml") for n in ("servingruntime", "inferenceservice")),
}


def plan_deployment(config: DeployConfig, repo: RepositoryInfo) -> DeployPlan:
    device = config.device or repo.device
    name = config.name or kubernetes_name(repo.ensemble)
    requirements = required_packages(repo, device, config.pinned())
    spec = _SPECS[config.target](config, repo, device, name, requirements)
    files = FILES[config.target]
    if config.target == "docker" and requirements:
        files += (OutputFile("docker/requirements.txt.j2", "requirements.txt"),)
    files += (OutputFile("README.md.j2", "README.md"),)
    return DeployPlan(config, repo, device, name, spec, sizing(repo, device), files,
                      _notes(config, repo, device, requirements))


def sizing(repo: RepositoryInfo, device: str) -> Sizing:
    model_steps, model_mib = repo.model_step.instances, repo.model_step.file_bytes / 2**20
    memory = _round_up(512 + 256 * repo.python_instances + 3 * model_mib * model_steps, 64)
    startup = 120 + 30 * math.ceil(model_mib * model_steps / 100) + (600 if repo.accelerator == "tensorrt" else 0)
    shm = _round_up(64 + 2 * repo.python_instances * SHM_REGION_BYTES / 2**20, 64)
    rules = (f"/dev/shm {shm} MiB: 2 x {SHM_REGION_BYTES // 2**20} MiB x {repo.python_instances} python-backend "
             f"instances + 64 MiB, rounded up to 64 MiB",
             f"memory request {memory} MiB: 512 (tritonserver) + 256 x {repo.python_instances} python instances + "
             f"3 x {model_mib:.1f} MiB model-step files x {model_steps} model-step instances; limit twice that",
             f"cpu request {max(1, model_steps)}: one core per model-step instance",
             f"startup budget {startup} s: 120 s + 30 s per 100 MiB of model-step files per model-step instance"
             + (" + 600 s for TensorRT engine builds" if repo.accelerator == "tensorrt" else ""))
    return Sizing(shm_mib=shm, memory_request_mib=memory, memory_limit_mib=2 * memory, cpu_request=max(1, model_steps),
                  gpus=1 if device == "gpu" else 0, startup_budget_s=startup, rules=rules)


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


def _docker(config: DeployConfig, repo: RepositoryInfo, device: str, name: str,
            requirements: tuple[Requirement, ...]) -> DockerSpec:
    return DockerSpec(
        base_image=TRITON_IMAGE, triton_version=TRITON_VERSION, python_version=IMAGE_PYTHON,
        requirements=requirements, constraints=extra_constraints(requirements), extra_index=extra_index(requirements),
        uid=CONTAINER_UID, repository_dir=REPOSITORY_DIR,
        server=docker_server(), image=config.image or default_image(name), start_period_s=sizing(repo, device).startup_budget_s)


def _kube(config: DeployConfig, repo: RepositoryInfo, device: str, name: str,
          requirements: tuple[Requirement, ...]) -> KubeSpec:
    return KubeSpec(
        name=name, labels=labels(name), image=config.image or default_image(name), replicas=config.replicas,
        max_replicas=MAX_REPLICAS_FACTOR * config.replicas, uid=CONTAINER_UID, sizing=sizing(repo, device),
        server=Server(IMAGE_REPOSITORY, Ports(), SHM_REGION_BYTES), ensemble=repo.ensemble,
        queue_metric=QUEUE_METRIC, queue_target_us=QUEUE_TARGET_US, requirements=requirements)


def _kserve(config: DeployConfig, repo: RepositoryInfo, device: str, name: str,
            requirements: tuple[Requirement, ...]) -> KServeSpec:
    # The python steps' packages are not in NVIDIA's image: then the runtime uses the docker target's image.
    image = config.image or (default_image(name) if requirements else TRITON_IMAGE)
    return KServeSpec(
        name=name, labels=labels(name), image=image, replicas=config.replicas,
        max_replicas=MAX_REPLICAS_FACTOR * config.replicas, uid=CONTAINER_UID, storage_uri=str(config.storage_uri),
        sizing=sizing(repo, device), server=Server(KSERVE_REPOSITORY, KSERVE_PORTS, SHM_REGION_BYTES),
        ensemble=repo.ensemble, triton_version=TRITON_VERSION)


_SPECS = {"docker": _docker, "k8s": _kube, "kserve": _kserve}


def _notes(config: DeployConfig, repo: RepositoryInfo, device: str,
           requirements: tuple[Requirement, ...]) -> tuple[str, ...]:
    notes = []
    if not requirements:
        notes.append(f"The python steps (tokenizer {repo.tokenizer}, model step backend {repo.backend}) import "
                     f"nothing beyond numpy, which {TRITON_IMAGE}'s python backend brings: no extra packages.")
    else:
        notes.append("Extra packages for the python steps: " + ", ".join(f"{r} ({r.why})" for r in requirements) + ".")
    notes += [f"{r.name} pinned to {r.version}: {r.note}." for r in requirements if r.note]
    if device != repo.device:
        notes.append(f"The repository was built for --device {repo.device} and is deployed with --device {device}: "
                     f"its model step still runs on {repo.device}. Rebuild it with build-repo --device {device}.")
    if repo.backend == "paddle":
        notes.append(f"--backend paddle: {TRITON_IMAGE} has no Paddle backend; add one built for Paddle 3 to the "
                     f"image, or rebuild with --backend python --runtime paddle_inference.")
    if config.target == "kserve" and requirements and not config.image:
        notes.append(f"The runtime image is the docker target's ({default_image(config.name or kubernetes_name(repo.ensemble))}):"
                     f" NVIDIA's image lacks the python steps' packages. Build and push it, or pass --image.")
    return tuple(notes)


def _round_up(value: float, step: int) -> int:
    return int(math.ceil(value / step) * step)
