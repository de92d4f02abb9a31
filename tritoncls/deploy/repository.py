"""What ``deploy`` needs to know about a built repository, read from its files.

The builder's marker (``tritoncls_build.json``: the resolved build options and the export's package
versions) says which tokenizer and runtime the python steps use; each model's ``config.pbtxt``
(parsed with Triton's own protobuf) says its backend and instance count; the version folders give
the sizes of the model files. The reference distribution (``tritoncls_reference.json``, present when the
export recorded one) feeds the drift and low-confidence rules. Nothing here imports the builder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tritoncls.errors import DeployError
from tritoncls.runtime.contract import REPOSITORY_FORMAT, REPOSITORY_MARKER, RUNTIME_PACKAGE
from tritoncls.runtime.metrics import REPOSITORY_REFERENCE_FILE, Reference

CONFIG_FILE = "config.pbtxt"
VERSION_DIR = "1"
STEPS = ("tokenizer", "model", "postprocess")


@dataclass(frozen=True)
class ModelInfo:
    """One model of the repository, as its config.pbtxt and version folder describe it."""

    name: str
    backend: str  # "python", "onnxruntime", "paddle" or "" for the ensemble (platform "ensemble")
    instances: int  # 0 for the ensemble
    file_bytes: int  # the version folder's files, the copied runtime and model.py excluded


@dataclass(frozen=True)
class RepositoryInfo:
    path: Path
    ensemble: str
    build_config: dict[str, Any]
    versions: dict[str, str]
    models: tuple[ModelInfo, ...]  # tokenizer, model, postprocess
    labels: tuple[str, ...] = ()  # the export's labels (the build record's export.labels), label.txt order
    metrics: dict[str, Any] | None = None  # the build record's "metrics"; None: built before it was recorded
    reference: Reference | None = None  # tritoncls_reference.json, where the export recorded one
    model_names: tuple[str, ...] = field(default=())  # every model folder the record names, the ensemble first

    @property
    def tokenizer(self) -> str:
        return str(self.build_config["tokenizer"])

    @property
    def backend(self) -> str:
        return str(self.build_config["backend"])

    @property
    def runtime(self) -> str | None:
        return self.build_config.get("runtime")

    @property
    def device(self) -> str:
        return str(self.build_config["device"])

    @property
    def accelerator(self) -> str:
        return str(self.build_config.get("accelerator", "none"))

    @property
    def metrics_enabled(self) -> bool | None:
        """Whether the python steps export the tritoncls_* series: None when the record does not say (a
        repository built before tritoncls recorded metrics, whose python steps export none)."""
        return None if self.metrics is None else bool(self.metrics.get("enabled", False))

    @property
    def low_confidence_threshold(self) -> float | None:
        """The top probability below which the served model counts a text as low-confidence, as built."""
        value = (self.metrics or {}).get("low_confidence")
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def model_step(self) -> ModelInfo:
        return self.models[1]

    @property
    def python_instances(self) -> int:
        """Python-backend model instances: one stub process and one shared-memory region each. A fused
        repository names its one model for all three steps; it counts once."""
        distinct = {m.name: m for m in self.models}.values()
        return sum(m.instances for m in distinct if m.backend == "python")


def load_repository(path: str | Path) -> RepositoryInfo:
    """Read the repository at ``path``; a folder without the builder's marker is refused."""
    root = Path(path)
    record = read_record(root)
    names = _field(record, "models", dict, root)
    build_config = _field(record, "build_config", dict, root)
    for key in ("backend", "tokenizer", "device"):
        _field(build_config, key, str, root, prefix="build_config.")
    export = _field(record, "export", dict, root)
    versions = {str(k).lower(): str(v) for k, v in _field(export, "versions", dict, root, prefix="export.").items()}
    models = tuple(read_model(root, str(_field(names, step, str, root, prefix="models."))) for step in STEPS)
    ensemble = str(_field(names, "ensemble", str, root, prefix="models."))
    read_model(root, ensemble)  # present and parseable
    labels = tuple(str(label) for label in export.get("labels") or ())
    metrics = record.get("metrics") if isinstance(record.get("metrics"), dict) else None
    model_names = tuple(dict.fromkeys([ensemble, *(model.name for model in models)]))
    return RepositoryInfo(root, ensemble, build_config, versions, models, labels, metrics,
                          read_reference(root, labels), model_names)


def read_reference(root: Path, labels: tuple[str, ...]) -> Reference | None:
    """The repository's reference distribution, or None where it has none; one whose labels are not the
    repository's is refused."""
    path = root / REPOSITORY_REFERENCE_FILE
    if not path.is_file():
        return None
    reference = Reference.load(path)
    if labels and set(reference.labels) != set(labels):
        only_reference = sorted(set(reference.labels) - set(labels))
        only_repository = sorted(set(labels) - set(reference.labels))
        raise DeployError(f"{path}: its labels are not the repository's ({root / REPOSITORY_MARKER} field "
                          f"export.labels): only in the reference {only_reference}, only in the repository "
                          f"{only_repository}. Rebuild the repository from the export the reference was recorded "
                          f"with.")
    return reference


def read_record(root: Path) -> dict[str, Any]:
    marker = root / REPOSITORY_MARKER
    if not marker.is_file():
        raise DeployError(f"{root}: not a tritoncls model repository (no {REPOSITORY_MARKER}); build one with "
                          f"`tritoncls build-repo --model EXPORT --output {root}`.")
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DeployError(f"{marker}: cannot be read as JSON ({exc}); rebuild the repository with build-repo.") from None
    if not isinstance(record, dict) or record.get("format") != REPOSITORY_FORMAT:
        raise DeployError(f"{marker}: field 'format' is not {REPOSITORY_FORMAT!r}; rebuild the repository with build-repo.")
    return record


def _field(record: dict[str, Any], key: str, kind: type, root: Path, prefix: str = "") -> Any:
    value = record.get(key)
    if not isinstance(value, kind):
        raise DeployError(f"{root / REPOSITORY_MARKER}: field '{prefix}{key}' is missing or not a {kind.__name__}; "
                          f"rebuild the repository with this tritoncls's build-repo.")
    return value


def read_model(root: Path, name: str) -> ModelInfo:
    """Backend, instance count and file size of model ``name``, from its config.pbtxt (Triton's protobuf)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    path = root / name / CONFIG_FILE
    if not path.is_file():
        raise DeployError(f"{path}: missing; the repository is incomplete. Rebuild it with build-repo.")
    config = model_config_pb2.ModelConfig()
    try:
        text_format.Parse(path.read_text(encoding="utf-8"), config)
    except (text_format.ParseError, UnicodeDecodeError) as exc:
        raise DeployError(f"{path}: not a valid Triton model config ({exc}); rebuild the repository.") from None
    instances = sum(group.count or 1 for group in config.instance_group) or (0 if config.platform == "ensemble" else 1)
    return ModelInfo(name, config.backend, instances, _model_bytes(root / name / VERSION_DIR))


def _model_bytes(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*")
               if p.is_file() and RUNTIME_PACKAGE not in p.relative_to(folder).parts and p.name != "model.py")
