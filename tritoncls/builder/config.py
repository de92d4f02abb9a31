"""Build options: one dataclass, checked on construction; profiles fill the options left unset."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from tritoncls.builder.specs import check_name
from tritoncls.common.onnx import DEFAULT_CALIBRATION_TEXTS, INT8_MODES
from tritoncls.errors import ConfigError
from tritoncls.runtime import DEFAULT_GROUP_PADDING, LAYOUTS, PADDINGS

BACKENDS = ("python", "onnxruntime", "paddle")
RUNTIMES = ("onnxruntime", "paddle_inference")  # inside --backend python
DEVICES = ("cpu", "gpu")
PRECISIONS = ("fp32", "fp16", "int8")
TOKENIZERS = ("wordpiece", "python", "paddlenlp")
INSTANCE_KINDS = {"auto": None, "cpu": "KIND_CPU", "gpu": "KIND_GPU", "model": "KIND_MODEL"}
DEFAULT_BUCKETS = (16, 32, 64, 128)
#: The low-confidence threshold of an export without a reference distribution (which records its own)
DEFAULT_LOW_CONFIDENCE = 0.5

#: (backend, device) -> accelerators that backend offers there
ACCELERATORS: dict[tuple[str, str], tuple[str, ...]] = {
    ("python", "cpu"): ("none",),
    ("python", "gpu"): ("none",),
    ("onnxruntime", "cpu"): ("none", "openvino"),
    ("onnxruntime", "gpu"): ("none", "cuda", "tensorrt"),
    ("paddle", "cpu"): ("none", "mkldnn"),
    ("paddle", "gpu"): ("none", "tensorrt"),
}

#: Options a profile sets when the user leaves them unset (None).
PROFILES: dict[str, dict[str, Any]] = {
    # Length buckets + dynamic batching at every step + the fast tokenizer.
    "default": {"padding": "buckets", "tokenizer": "wordpiece", "dynamic_batching": True, "trim_padding": True},
    # What the PaddleNLP/FastDeploy deployments do, for benchmarking as a peer: PaddleNLP's Python
    # tokenizer algorithm, each request padded to its own longest text, no dynamic batching, and the
    # model computes every position it is given.
    "reference": {"padding": "longest", "tokenizer": "python", "dynamic_batching": False, "trim_padding": False},
}


@dataclass(frozen=True)
class BuildConfig:
    """Everything ``build-repo`` needs; field names match the CLI flags."""

    model: str
    output: str
    name: str = "seqcls"
    profile: str = "default"
    layout: str = "ensemble"
    backend: str = "python"
    runtime: str | None = None  # python backend only; default onnxruntime
    device: str = "cpu"
    accelerator: str = "none"
    precision: str = "fp32"
    int8_mode: str | None = None  # --precision int8: dynamic (the default) or static, calibrated on calibration_data
    calibration_data: str | None = None  # texts file (text or text<TAB>label lines) static INT8 calibrates on
    calibration_texts: int = DEFAULT_CALIBRATION_TEXTS  # how many of its texts (a seeded sample where it holds more)
    trt_cache_dir: str = "/tmp/tritoncls_trt_cache"
    instances: int = 1
    tokenizer_instances: int = 1
    instance_kind: str = "auto"
    max_batch_size: int = 64
    dynamic_batching: bool | None = None
    max_queue_delay_us: int = 2000
    preferred_batch_sizes: tuple[int, ...] = ()
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    buckets: tuple[int, ...] = DEFAULT_BUCKETS
    padding: str | None = None
    tokenizer: str | None = None
    merge_requests: bool = True
    trim_padding: bool | None = None
    group_padding: float = DEFAULT_GROUP_PADDING
    top_k: int = 0
    metrics: bool = True  # the python steps export label, confidence and length metrics (runtime/metrics.py)
    low_confidence: float | None = None  # default: the export's reference threshold, else DEFAULT_LOW_CONFIDENCE
    force: bool = False
    options_file: str | None = None  # the tune.json whose options this config took (tritoncls_build.json says)

    def __post_init__(self) -> None:
        check = _Checker()
        check.choice("profile", self.profile, tuple(PROFILES))
        check.choice("layout", self.layout, LAYOUTS)
        check.choice("backend", self.backend, BACKENDS)
        check.require(self.layout == "ensemble" or self.backend == "python", "layout",
                      "fused runs the model inside a python model: use it with --backend python")
        check.choice("device", self.device, DEVICES)
        check.choice("accelerator", self.accelerator, ACCELERATORS.get((self.backend, self.device), ()),
                     f"with --backend {self.backend} --device {self.device}")
        check.choice("precision", self.precision, PRECISIONS)
        check.choice("instance_kind", self.instance_kind, tuple(INSTANCE_KINDS))
        if self.runtime is not None:
            check.choice("runtime", self.runtime, RUNTIMES)
            check.require(self.backend == "python", "runtime", "applies to --backend python only; drop it")
        if self.padding is not None:
            check.choice("padding", self.padding, PADDINGS)
        if self.tokenizer is not None:
            check.choice("tokenizer", self.tokenizer, TOKENIZERS)
        check.require(self.precision != "fp16" or self.accelerator == "tensorrt"
                      or (self.device == "gpu" and self.onnx_model_step), "precision",
                      "fp16 needs --device gpu, with --accelerator tensorrt (FP16 engines) or an ONNX model step "
                      "(--backend python or onnxruntime: the graph is converted to FP16 at build time)")
        check.require(self.precision != "int8" or (self.onnx_model_step and self.device == "cpu"
                                                   and self.accelerator == "none"), "precision",
                      "int8 is ONNX Runtime dynamic quantization on CPU (or static, with --int8_mode static): use it "
                      "with --device cpu, no --accelerator, and --backend onnxruntime or --backend python with the "
                      "onnxruntime runtime")
        self._check_int8(check)
        check.require(self.instance_kind != "gpu" or self.device == "gpu", "instance_kind",
                      "gpu needs --device gpu")
        check.at_least("instances", self.instances, 1)
        check.at_least("tokenizer_instances", self.tokenizer_instances, 1)
        check.require(self.layout == "ensemble" or self.tokenizer_instances == 1, "tokenizer_instances",
                      "the fused layout has no tokenizer model of its own; set --instances instead")
        check.require(self.group_padding >= 1.0, "group_padding",
                      f"{self.group_padding} must be >= 1.0 (padded tokens / real tokens of a length group)")
        check.require(self.layout == "fused" or self.group_padding == DEFAULT_GROUP_PADDING, "group_padding",
                      f"applies to --layout fused only (the ensemble's model step uses {DEFAULT_GROUP_PADDING})")
        check.at_least("max_batch_size", self.max_batch_size, 1)
        check.at_least("max_queue_delay_us", self.max_queue_delay_us, 0)
        check.at_least("intra_op_threads", self.intra_op_threads, 0)
        check.at_least("inter_op_threads", self.inter_op_threads, 0)
        check.at_least("top_k", self.top_k, 0)
        check.require(self.low_confidence is None or 0.0 <= self.low_confidence <= 1.0, "low_confidence",
                      f"{self.low_confidence} must be a probability in [0, 1]")
        check.require(self.low_confidence is None or self.metrics, "low_confidence",
                      "sets a metric's threshold, and --no_metrics turns the metrics off; drop one")
        check.require(bool(self.buckets) and all(b > 2 for b in self.buckets)
                      and list(self.buckets) == sorted(set(self.buckets)), "buckets",
                      f"{list(self.buckets)} must be increasing token counts above 2, e.g. 16 32 64 128")
        check.require(all(1 <= s <= self.max_batch_size for s in self.preferred_batch_sizes),
                      "preferred_batch_sizes", f"{list(self.preferred_batch_sizes)} must lie in 1..--max_batch_size")
        check_name(self.name, "--name")
        check.raise_if_any()

    def _check_int8(self, check: _Checker) -> None:
        """--int8_mode and the calibration options: each only where it does something."""
        if self.int8_mode is None:
            check.require(self.calibration_data is None, "calibration_data",
                          "is read by static INT8 quantization only: add --precision int8 --int8_mode static, or drop it")
        else:
            check.choice("int8_mode", self.int8_mode, INT8_MODES)
            check.require(self.precision == "int8", "int8_mode",
                          f"applies to --precision int8 only (this build is {self.precision}); add --precision int8 "
                          f"or drop it")
            check.require(self.int8_mode != "static" or bool(self.calibration_data), "int8_mode",
                          "static calibrates activation ranges on texts: add --calibration_data FILE (text or "
                          "text<TAB>label lines, e.g. the train.txt the model was trained on)")
            check.require(self.int8_mode == "static" or self.calibration_data is None, "calibration_data",
                          f"is read by static INT8 quantization only, and --int8_mode is {self.int8_mode}: add "
                          f"--int8_mode static, or drop it")
        check.at_least("calibration_texts", self.calibration_texts, 1)
        check.require(self.calibration_data is not None or self.calibration_texts == DEFAULT_CALIBRATION_TEXTS,
                      "calibration_texts", "applies to --calibration_data only; drop it or add --int8_mode static "
                      "--calibration_data FILE")

    @property
    def onnx_model_step(self) -> bool:
        """The model step runs the export's ONNX graph (not its Paddle graph)."""
        return self.backend == "onnxruntime" or (self.backend == "python" and self.runtime in (None, "onnxruntime"))

    @property
    def fp16_graph(self) -> bool:
        """The repository's ONNX graph is converted to FP16 (TensorRT makes its FP16 engines itself)."""
        return self.precision == "fp16" and self.accelerator != "tensorrt" and self.onnx_model_step

    def resolved(self) -> BuildConfig:
        """This config with the profile's choices filled in where the user set nothing."""
        fills = {key: value for key, value in PROFILES[self.profile].items() if getattr(self, key) is None}
        if self.runtime is None and self.backend == "python":
            fills["runtime"] = "onnxruntime"
        if self.int8_mode is None and self.precision == "int8":
            fills["int8_mode"] = "dynamic"
        return dataclasses.replace(self, **fills)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class _Checker:
    """Collects every bad option, so one run reports them all."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def require(self, ok: bool, option: str, message: str) -> None:
        if not ok:
            self.problems.append(f"--{option}: {message}")

    def choice(self, option: str, value: Any, allowed: tuple[str, ...], context: str = "") -> None:
        where = f" {context}" if context else ""
        self.require(value in allowed, option, f"{value!r} is not allowed{where}; choose one of {', '.join(allowed)}")

    def at_least(self, option: str, value: int, minimum: int) -> None:
        self.require(value >= minimum, option, f"{value} must be >= {minimum}")

    def raise_if_any(self) -> None:
        if self.problems:
            raise ConfigError("invalid build-repo options:\n  " + "\n  ".join(self.problems))
