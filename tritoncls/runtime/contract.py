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

# Triton's administrative APIs that a served repository keeps behind a key (serve and deploy).
RESTRICTED_APIS = ("shared-memory", "model-repository", "statistics", "trace", "logging")
ADMIN_KEY_HEADER = "admin-key"
ADMIN_KEY_ENV = "TRITON_ADMIN_KEY"  # inside a deployed container: the key, from a Secret

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


@dataclass(frozen=True, kw_only=True)
class FusedParameters(_Parameters):
    """The fused layout's one python model: tokenize, model and postprocess in one execution (see
    :class:`~.steps.FusedStep`). Its keys are the three steps' keys, plus the graph's tensor names
    (its own inputs and outputs are the ensemble's) and the length groups' padding tolerance."""

    step: ClassVar[str] = "fused"

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
    runtime: str = "onnxruntime"
    model_file: str = REPO_ONNX_FILE
    params_file: str = ""
    device: str = "cpu"
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    merge_requests: bool = True
    trim_padding: bool = True
    group_padding: float = DEFAULT_GROUP_PADDING
    graph_inputs: str  # the graph's input names, comma-separated (input_ids, token_type_ids order)
    graph_output: str
    label_file: str = LABEL_FILE
    num_labels: int
    top_k: int = 0

    def tokenizer(self) -> TokenizerParameters:
        return _subset(TokenizerParameters, self)

    def model(self) -> ModelParameters:
        return _subset(ModelParameters, self)

    def postprocess(self) -> PostprocessParameters:
        return _subset(PostprocessParameters, self)


def _subset(cls: type[P], source: _Parameters) -> P:
    """The ``cls`` parameters held in ``source`` (same field names)."""
    return cls(**{f.name: getattr(source, f.name) for f in fields(cls)})


def _check_covers(whole: type[_Parameters], *parts: type[_Parameters]) -> None:
    """Every key of ``parts`` is a key of ``whole`` with the same type and default: a key added to a step
    fails here, at import, rather than in a served fused model."""
    have = {f.name: (f.type, f.default) for f in fields(whole)}
    differ = [f"{p.__name__}.{f.name}" for p in parts for f in fields(p) if have.get(f.name) != (f.type, f.default)]
    if differ:
        raise TypeError(f"{whole.__name__} lacks or differs on {differ}; add them to it")


_check_covers(FusedParameters, TokenizerParameters, ModelParameters, PostprocessParameters)
