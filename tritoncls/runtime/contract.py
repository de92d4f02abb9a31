"""The names every stage agrees on: files of an export and of a repository, tensor names, and the
string ``parameters`` of the python models' Triton configs.

The parameters are typed objects with one default per key, applied on the writing side
(``build-repo``); the reading side (the python models) requires every key, so a repository always
serves with the settings it was built with.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar

from .errors import ParameterError
from .task import HIERARCHY_SEPARATOR

# Files of an export (written by `tritoncls export`).
MANIFEST_FILE = "manifest.json"
LABEL_FILE = "label.txt"
ONNX_FILE = "model.onnx"
PADDLE_PREFIX = "float32"  # Paddle 3 (PIR) static graph: float32.json + float32.pdiparams
PADDLE_MODEL_FILE = f"{PADDLE_PREFIX}.json"
PADDLE_PARAMS_FILE = f"{PADDLE_PREFIX}.pdiparams"
INT8_ONNX_FILE = "model.int8.onnx"  # cached beside an export by the offline predictor
TOKENIZER_FILES = ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json")

# Files inside a model repository's version folders (written by `build-repo`).
REPO_ONNX_FILE = ONNX_FILE
REPO_PADDLE_MODEL_FILE = "model.json"
REPO_PADDLE_PARAMS_FILE = "model.pdiparams"
RUNTIME_PACKAGE = "tritoncls_runtime"  # this package, copied beside each python model's model.py
REPOSITORY_MARKER = "tritoncls_build.json"  # at a repository's root: what was built, from what, how
REPOSITORY_FORMAT = "tritoncls-model-repository"  # its "format" field

# Tensor names of an export's graphs and of the ensemble.
TEXT = "text"
INPUT_IDS = "input_ids"
TOKEN_TYPE_IDS = "token_type_ids"
INPUT_NAMES = (INPUT_IDS, TOKEN_TYPE_IDS)
LOGITS = "logits"
LABEL = "label"
CONFIDENCE = "confidence"
TOP_K_LABELS = "top_k_labels"
TOP_K_PROBS = "top_k_probs"
# ... and of a multi-label or hierarchical task's ensemble (see docs/multilabel.md, "Tensor contract").
LABELS = "labels"  # BYTES [batch, -1]: each text's predicted labels, in label order, padded with b""
LABEL_PROBS = "label_probs"  # FP32 [batch, -1]: their probabilities, padded with 0
LABEL_COUNT = "label_count"  # INT32 [batch, 1]: how many of a row's labels are real
PROBS = "probs"  # FP32 [batch, num_labels]: every label's probability, in label.txt order

# Triton's administrative APIs that a served repository keeps behind a key (serve and deploy).
RESTRICTED_APIS = ("shared-memory", "model-repository", "statistics", "trace", "logging")
ADMIN_KEY_HEADER = "admin-key"
ADMIN_KEY_ENV = "TRITON_ADMIN_KEY"  # inside a deployed container: the key, from a Secret
# Triton's latency summaries (p50 ... p99 per model on the metrics port), which `serve` and deploy turn on
LATENCY_SUMMARIES_ARG = "--metrics-config=summary_latencies=true"

PADDINGS = ("buckets", "longest", "max_length")
LAYOUTS = ("ensemble", "fused")  # three python steps in an ensemble, or one python model doing all three
DEFAULT_GROUP_PADDING = 1.2  # the model step's length groups: padded tokens / real tokens at most
TOKENIZER_IMPLEMENTATIONS = ("wordpiece", "python", "paddlenlp")
# How text becomes words (runtime/wordpiece.py): PaddleNLP's BasicTokenizer, or HF's BertNormalizer +
# BertPreTokenizer (models imported from the Hugging Face format).
TOKENIZER_RULES = ("paddlenlp", "hf-bert")
MODEL_RUNTIMES = ("onnxruntime", "paddle_inference")
DEVICES = ("cpu", "gpu")


def string_parameters(model_config: Mapping[str, Any]) -> dict[str, str]:
    """The ``parameters`` of a Triton model config (as the python backend passes it) as a str dict."""
    return {key: value["string_value"] for key, value in model_config.get("parameters", {}).items()}


def parse_ints(value: str) -> tuple[int, ...]:
    """``"16,32,64"`` -> (16, 32, 64); an empty string gives ()."""
    return tuple(int(v) for v in value.replace(" ", "").split(",") if v)


def _to_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _from_text(text: str, kind: str, key: str) -> Any:
    try:
        if kind == "bool":
            if text not in ("true", "false"):
                raise ValueError("expected 'true' or 'false'")
            return text == "true"
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "tuple[int, ...]":
            return parse_ints(text)
        if kind == "tuple[float, ...]":
            return tuple(float(v) for v in text.replace(" ", "").split(",") if v)
        if kind == "dict[str, str]":
            return dict(json.loads(text))
        return text
    except ValueError as exc:
        raise ParameterError(f"parameter {key!r}: {text!r} is not a valid {kind} ({exc})") from None


P = TypeVar("P", bound="_Parameters")


@dataclass(frozen=True)
class _Parameters:
    """Typed <-> the string map of a Triton config; field order is the order written (golden configs pin it)."""

    step: ClassVar[str] = ""

    def to_strings(self) -> dict[str, str]:
        return {f.name: _to_text(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_strings(cls: type[P], values: Mapping[str, str]) -> P:
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in values]
        unknown = sorted(set(values) - set(names))
        if missing or unknown:
            raise ParameterError(f"{cls.step} step parameters: missing {missing}, unknown {unknown}; the repository "
                                 f"was built by another tritoncls version: rebuild it with `tritoncls build-repo`.")
        return cls(**{f.name: _from_text(values[f.name], str(f.type), f.name) for f in fields(cls)})


@dataclass(frozen=True, kw_only=True)
class TokenizerParameters(_Parameters):
    """The tokenizer step: texts -> ids padded per request (see :class:`~.steps.TokenizeStep`)."""

    step: ClassVar[str] = "tokenizer"

    implementation: str = "wordpiece"
    rules: str = "paddlenlp"
    vocab_file: str
    do_lower_case: bool = True
    special_tokens: dict[str, str]
    max_seq_length: int
    padding: str = "buckets"
    buckets: tuple[int, ...]
    pad_token_id: int
    pad_token_type_id: int = 0
    metrics: bool = True  # export token lengths, truncations and refusals (runtime/metrics.py)
    metrics_model: str = ""  # the served model's name, the ``model`` label of every metric


@dataclass(frozen=True, kw_only=True)
class ModelParameters(_Parameters):
    """The python-backend model step (see :class:`~.steps.ModelStep`)."""

    step: ClassVar[str] = "model"

    runtime: str = "onnxruntime"
    model_file: str = REPO_ONNX_FILE
    params_file: str = ""
    device: str = "cpu"
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    pad_token_id: int
    merge_requests: bool = True
    trim_padding: bool = True


@dataclass(frozen=True, kw_only=True)
class PostprocessParameters(_Parameters):
    """The postprocess step (see :class:`~.steps.PostprocessStep`)."""

    step: ClassVar[str] = "postprocess"

    label_file: str = LABEL_FILE
    num_labels: int
    top_k: int = 0
    metrics: bool = True  # export per-label counts and confidences (runtime/metrics.py)
    metrics_model: str = ""
    low_confidence: float = 0.0  # a text whose top probability is below this counts as low-confidence


@dataclass(frozen=True, kw_only=True)
class LabelSetParameters(_Parameters):
    """The postprocess step of a multi-label or hierarchical task (see :class:`~.steps.PostprocessStep`):
    a sigmoid per label, its threshold, and for a hierarchy the separator of the label paths."""

    step: ClassVar[str] = "postprocess"

    task: str
    label_file: str = LABEL_FILE
    num_labels: int
    thresholds: tuple[float, ...]
    hierarchy_separator: str = HIERARCHY_SEPARATOR
    metrics: bool = True
    metrics_model: str = ""
    low_confidence: float = 0.0


def postprocess_parameters(values: Mapping[str, str]) -> PostprocessParameters | LabelSetParameters:
    """The postprocess parameters in ``values``: a ``task`` key marks a multi-label or hierarchical task's."""
    kind = LabelSetParameters if "task" in values else PostprocessParameters
    return kind.from_strings(values)


@dataclass(frozen=True, kw_only=True)
class FusedGraphParameters(_Parameters):
    """The fused model's own keys: the graph's tensor names (its own inputs and outputs are the ensemble's)
    and the length groups' padding tolerance."""

    step: ClassVar[str] = "fused"

    group_padding: float = DEFAULT_GROUP_PADDING
    graph_inputs: str  # the graph's input names, comma-separated (input_ids, token_type_ids order)
    graph_output: str


@dataclass(frozen=True)
class FusedParameters:
    """The fused layout's one python model: tokenize, model and postprocess in one execution (see
    :class:`~.steps.FusedStep`). Its keys are the three steps' keys (``pad_token_id`` is the tokenizer's and
    the model's, once) and the graph's, in that order."""

    tokenizer: TokenizerParameters
    model: ModelParameters
    graph: FusedGraphParameters
    postprocess: PostprocessParameters | LabelSetParameters

    def __post_init__(self) -> None:
        if self.tokenizer.pad_token_id != self.model.pad_token_id:
            raise ParameterError(f"fused parameters: the tokenizer pads with id {self.tokenizer.pad_token_id} but "
                                 f"the model trims id {self.model.pad_token_id}")
        if (self.tokenizer.metrics, self.tokenizer.metrics_model) != (self.postprocess.metrics,
                                                                      self.postprocess.metrics_model):
            raise ParameterError("fused parameters: the tokenizer's and the postprocess step's metrics settings differ")

    def to_strings(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for part in (self.tokenizer, self.model, self.graph, self.postprocess):
            out.update(part.to_strings())
        return out

    @classmethod
    def from_strings(cls, values: Mapping[str, str]) -> FusedParameters:
        post = LabelSetParameters if "task" in values else PostprocessParameters
        parts = (TokenizerParameters, ModelParameters, FusedGraphParameters, post)
        known = {f.name for part in parts for f in fields(part)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ParameterError(f"fused step parameters: unknown {unknown}; the repository was built by another "
                                 f"tritoncls version: rebuild it with `tritoncls build-repo`.")
        tokenizer, model, graph, postprocess = (
            part.from_strings({f.name: values[f.name] for f in fields(part) if f.name in values}) for part in parts)
        return cls(tokenizer, model, graph, postprocess)
