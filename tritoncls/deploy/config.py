"""Deploy options: one dataclass, checked on construction (every bad option reported at once)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from tritoncls.deploy.targets import TARGETS
from tritoncls.errors import ConfigError

DEVICES = ("cpu", "gpu")
#: a Kubernetes object name (RFC 1123 label): lowercase letters, digits and '-', at most 63
_K8S_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9][A-Za-z0-9.+!_-]*$")
_STORAGE = re.compile(r"^(s3|gs|pvc|https?|hdfs|webhdfs|oci)://\S+$")


@dataclass(frozen=True)
class DeployConfig:
    """Everything ``tritoncls deploy`` needs; field names match the CLI flags."""

    model_repository: str
    output: str
    target: str = "docker"
    device: str | None = None  # None: the device the repository was built for
    replicas: int = 1
    name: str | None = None  # None: the ensemble's name, made a Kubernetes name
    image: str | None = None  # None: see plan.default_image
    storage_uri: str | None = None  # kserve only: where the repository is stored
    pins: tuple[str, ...] = ()  # NAME==VERSION, overriding or completing the build record's versions
    force: bool = False

    def __post_init__(self) -> None:
        problems = [p for p in self._problems() if p]
        if problems:
            raise ConfigError("invalid deploy options:\n  " + "\n  ".join(problems))

    def _problems(self) -> list[str | None]:
        return [
            None if self.target in TARGETS else f"--target: {self.target!r}; choose one of {', '.join(TARGETS)}",
            None if self.device in (None, *DEVICES) else f"--device: {self.device!r}; choose one of {', '.join(DEVICES)}",
            None if self.replicas >= 1 else f"--replicas: {self.replicas} must be >= 1",
            None if self.name is None or _K8S_NAME.match(self.name) else
            f"--object_name: {self.name!r} is not a Kubernetes name (lowercase letters, digits and '-', at most 63, "
            f"starting and ending with a letter or digit)",
            None if self.image is None or (self.image.strip() and " " not in self.image) else
            f"--image: {self.image!r} is not an image reference",
            *(None if _PIN.match(pin) else f"--pin: {pin!r} must be NAME==VERSION, e.g. onnxruntime==1.20.1"
              for pin in self.pins),
            self._storage_problem(),
        ]

    def _storage_problem(self) -> str | None:
        target = TARGETS.get(self.target)
        if target is None or not target.needs_storage_uri:
            takers = " or ".join(name for name, t in TARGETS.items() if t.needs_storage_uri)
            return None if self.storage_uri is None else f"--storage_uri: applies to --target {takers} only; drop it"
        if self.storage_uri is None:
            return (f"--storage_uri: --target {self.target} needs where the repository is stored, "
                    f"e.g. s3://bucket/seqcls")
        return None if _STORAGE.match(self.storage_uri) else (
            f"--storage_uri: {self.storage_uri!r} is not a KServe storage URI (s3://, gs://, pvc://, https://, ...)")

    def pinned(self) -> dict[str, str]:
        """``--pin`` as ``{name: version}`` (names lowercased, '_' as '-', as pip compares them)."""
        return dict(_split_pin(pin) for pin in self.pins)

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def _split_pin(pin: str) -> tuple[str, str]:
    name, version = pin.split("==", 1)
    return name.lower().replace("_", "-"), version


def kubernetes_name(name: str) -> str:
    """A Triton model name made a Kubernetes object name (``seqcls_v2`` -> ``seqcls-v2``)."""
    out = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-")
    return out or "tritoncls"
