"""Typed model configurations: what the templates render. Each checks itself on construction.

These mirror the parts of Triton's ``ModelConfig`` protobuf that a tritoncls repository uses; the
rendered text is parsed back with Triton's own protobuf (see :mod:`tritoncls.builder.validate`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tritoncls.errors import BuildError

#: numpy / manifest dtype name -> Triton config data type
TRITON_DTYPES = {
    "int64": "TYPE_INT64",
    "int32": "TYPE_INT32",
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "bool": "TYPE_BOOL",
    "string": "TYPE_STRING",
}
INSTANCE_KINDS = ("KIND_CPU", "KIND_GPU", "KIND_MODEL", "KIND_AUTO")
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def check_name(name: str, what: str) -> None:
    if not _NAME.match(name or ""):
        raise BuildError(f"{what} {name!r} is not a valid Triton name; use letters, digits, '_', '.' or '-'.")


@dataclass(frozen=True)
class Tensor:
    name: str
    data_type: str
    dims: tuple[int, ...]
    allow_ragged_batch: bool = False

    def __post_init__(self) -> None:
        check_name(self.name, "tensor name")
        if self.data_type not in TRITON_DTYPES.values():
            raise BuildError(f"tensor {self.name!r}: data type {self.data_type!r} is not one of {sorted(TRITON_DTYPES.values())}.")
        if not self.dims or any(d == 0 or d < -1 for d in self.dims):
            raise BuildError(f"tensor {self.name!r}: dims {self.dims} must be positive sizes or -1 (variable).")


@dataclass(frozen=True)
class Parameter:
    key: str
    value: str

    def __post_init__(self) -> None:
        if not isinstance(self.value, str):
            raise BuildError(f"parameter {self.key!r}: value {self.value!r} must be a string (Triton parameters are strings).")


@dataclass(frozen=True)
class Accelerator:
    name: str
    parameters: tuple[Parameter, ...] = ()


@dataclass(frozen=True)
class AcceleratorGroup:
    """``cpu_execution_accelerator`` or ``gpu_execution_accelerator`` and what it lists."""

    kind: str
    accelerators: tuple[Accelerator, ...]

    def __post_init__(self) -> None:
        if self.kind not in ("cpu_execution_accelerator", "gpu_execution_accelerator"):
            raise BuildError(f"execution accelerator group {self.kind!r} is not cpu_/gpu_execution_accelerator.")


@dataclass(frozen=True)
class DynamicBatching:
    max_queue_delay_us: int
    preferred_batch_sizes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.max_queue_delay_us < 0:
            raise BuildError(f"max_queue_delay_us is {self.max_queue_delay_us}; it must be >= 0.")


@dataclass(frozen=True)
class InstanceGroup:
    count: int
    kind: str

    def __post_init__(self) -> None:
        if self.count < 1:
            raise BuildError(f"instance count is {self.count}; it must be >= 1.")
        if self.kind not in INSTANCE_KINDS:
            raise BuildError(f"instance kind {self.kind!r} is not one of {INSTANCE_KINDS}.")


def _check_tensors(model: str, inputs: tuple[Tensor, ...], outputs: tuple[Tensor, ...]) -> None:
    if not inputs or not outputs:
        raise BuildError(f"model {model!r}: needs at least one input and one output.")
    names = [t.name for t in inputs + outputs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise BuildError(f"model {model!r}: tensor names {duplicates} are used twice; inputs and outputs need unique names.")


@dataclass(frozen=True)
class ModelSpec:
    """A non-ensemble model: python, onnxruntime or paddle backend."""

    name: str
    backend: str
    max_batch_size: int
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    instance_group: InstanceGroup
    dynamic_batching: DynamicBatching | None = None
    parameters: tuple[Parameter, ...] = ()
    execution_accelerators: tuple[AcceleratorGroup, ...] = ()
    default_model_filename: str = ""
    template: str = field(default="model.pbtxt.j2", repr=False)

    def __post_init__(self) -> None:
        check_name(self.name, "model name")
        _check_tensors(self.name, self.inputs, self.outputs)
        if self.max_batch_size < 1:
            raise BuildError(f"model {self.name!r}: max_batch_size is {self.max_batch_size}; it must be >= 1.")
        batching = self.dynamic_batching
        if batching and any(not 1 <= size <= self.max_batch_size for size in batching.preferred_batch_sizes):
            raise BuildError(
                f"model {self.name!r}: preferred batch sizes {batching.preferred_batch_sizes} must lie in "
                f"1..max_batch_size ({self.max_batch_size}); fix --preferred_batch_sizes or --max_batch_size.")


@dataclass(frozen=True)
class Mapping:
    key: str  # the step model's tensor name
    value: str  # the ensemble's tensor name


@dataclass(frozen=True)
class Step:
    model_name: str
    input_map: tuple[Mapping, ...]
    output_map: tuple[Mapping, ...]


@dataclass(frozen=True)
class EnsembleSpec:
    name: str
    max_batch_size: int
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    steps: tuple[Step, ...]
    template: str = field(default="ensemble.pbtxt.j2", repr=False)

    def __post_init__(self) -> None:
        check_name(self.name, "ensemble name")
        _check_tensors(self.name, self.inputs, self.outputs)
        if self.max_batch_size < 1:
            raise BuildError(f"ensemble {self.name!r}: max_batch_size is {self.max_batch_size}; it must be >= 1.")
        if not self.steps:
            raise BuildError(f"ensemble {self.name!r}: has no steps.")
