"""Decisions: the sizes, the object name, the notes; a target's own files and spec come from
:mod:`.targets`. Templates only substitute and loop.

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

from tritoncls.deploy.config import DeployConfig, kubernetes_name
from tritoncls.deploy.packages import Requirement, required_packages
from tritoncls.deploy.repository import RepositoryInfo
from tritoncls.deploy.specs import Sizing
from tritoncls.deploy.targets import (  # noqa: F401 - the pinned versions, re-exported for the validators and tests
    KUBERNETES_VERSION,
    SHM_REGION_BYTES,
    TARGETS,
    TRITON_IMAGE,
    OutputFile,
    Spec,
    Target,
    docker_server,
)


@dataclass(frozen=True)
class DeployPlan:
    config: DeployConfig
    repository: RepositoryInfo
    device: str
    name: str
    spec: Spec
    sizing: Sizing
    files: tuple[OutputFile, ...]
    notes: tuple[str, ...]  # what the user should know, printed and written in README.md

    @property
    def target(self) -> Target:
        return TARGETS[self.config.target]

    def values(self) -> dict[str, Any]:
        """What every template gets."""
        return {"spec": self.spec, "plan": self, "notes": self.notes, "validation": self.target.validation,
                "shm_mib": self.sizing.shm_mib, "sizing_rules": self.sizing.rules}


def plan_deployment(config: DeployConfig, repo: RepositoryInfo) -> DeployPlan:
    device = config.device or repo.device
    name = config.name or kubernetes_name(repo.ensemble)
    requirements = required_packages(repo, device, config.pinned())
    target = TARGETS[config.target]
    sized = sizing(repo, device)
    return DeployPlan(config, repo, device, name, target.spec(config, repo, name, requirements, sized), sized,
                      target.output_files(requirements), _notes(config, repo, device, name, requirements))


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


def _notes(config: DeployConfig, repo: RepositoryInfo, device: str, name: str,
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
    target_note = TARGETS[config.target].note(config, repo, name, requirements)
    return tuple(notes + ([target_note] if target_note else []))


def _round_up(value: float, step: int) -> int:
    return int(math.ceil(value / step) * step)
