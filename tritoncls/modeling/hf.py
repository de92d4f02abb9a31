"""Hugging Face model folders -> ordinary tritoncls checkpoints (``tritoncls import-hf``).

A folder holds ``config.json``, the weights (``model.safetensors``, shards listed in
``model.safetensors.index.json``, or ``pytorch_model.bin`` when torch is importable) and the
tokenizer (``tokenizer.json`` and/or ``vocab.txt`` + ``tokenizer_config.json``). Every tensor is
mapped by name onto PaddleNLP's ``ErnieForSequenceClassification``; Linear weights are transposed
(PyTorch stores ``[out, in]``, Paddle ``[in, out]``). Shapes are checked against ``config.json``.

Architectures (``model_type``):

* ``bert`` (BERT, MiniLM, Chinese RoBERTa-wwm), ``ernie`` (ERNIE 3.0 ports): same layout as ERNIE.
  ERNIE's task-type embeddings are kept (``use_task_id``) and the model always adds row 0, which is
  what Hugging Face does when no ``task_type_ids`` are passed.
* ``roberta``, ``xlm-roberta``: position ids start after the padding index (``padding_idx + 1``), so
  the first ``pad_token_id + 1`` rows of the position table are dropped and ERNIE's 0-based
  positions read the same rows. Their classification head (``classifier.dense`` + ``out_proj`` on
  the first token) is ERNIE's pooler + classifier.

Only WordPiece tokenizers are taken (the serving runtime reproduces BERT's WordPiece); a BPE or
SentencePiece tokenizer is refused with the reason.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tritoncls.errors import ConfigError, ModelError
from tritoncls.runtime import DEFAULT_THRESHOLD, MULTI_CLASS, MULTI_LABEL, TaskSpec

log = logging.getLogger(__name__)

SUPPORTED_MODEL_TYPES = ("bert", "ernie", "roberta", "xlm-roberta")
_OFFSET_POSITIONS = ("roberta", "xlm-roberta")
_ACTIVATIONS = {"gelu": "gelu", "gelu_python": "gelu", "relu": "relu"}
REPORT_FILE = "import_report.json"
SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
TORCH_BIN = "pytorch_model.bin"

#: Hugging Face tensor (without the model prefix, LayerNorm gamma/beta renamed) -> Paddle name.
_EMBEDDINGS = {
    "embeddings.word_embeddings.weight": "ernie.embeddings.word_embeddings.weight",
    "embeddings.position_embeddings.weight": "ernie.embeddings.position_embeddings.weight",
    "embeddings.token_type_embeddings.weight": "ernie.embeddings.token_type_embeddings.weight",
    "embeddings.task_type_embeddings.weight": "ernie.embeddings.task_type_embeddings.weight",
    "embeddings.LayerNorm.weight": "ernie.embeddings.layer_norm.weight",
    "embeddings.LayerNorm.bias": "ernie.embeddings.layer_norm.bias",
    "pooler.dense.weight": "ernie.pooler.dense.weight",
    "pooler.dense.bias": "ernie.pooler.dense.bias",
}
_LAYER = {
    "attention.self.query": "self_attn.q_proj",
    "attention.self.key": "self_attn.k_proj",
    "attention.self.value": "self_attn.v_proj",
    "attention.output.dense": "self_attn.out_proj",
    "attention.output.LayerNorm": "norm1",
    "intermediate.dense": "linear1",
    "output.dense": "linear2",
    "output.LayerNorm": "norm2",
}
_HEADS = {  # sequence-classification heads: BERT/ERNIE (on the pooler), RoBERTa (its own dense + out_proj)
    "classifier.weight": "classifier.weight",
    "classifier.bias": "classifier.bias",
    "classifier.dense.weight": "ernie.pooler.dense.weight",
    "classifier.dense.bias": "ernie.pooler.dense.bias",
    "classifier.out_proj.weight": "classifier.weight",
    "classifier.out_proj.bias": "classifier.bias",
}
_LAYER_KEY = re.compile(r"^encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$")
#: Tensors with no place in a classifier: MLM / NSP heads, buffers.
_IGNORED = re.compile(r"^(cls\.|lm_head\.|embeddings\.position_ids$|embeddings\.token_type_ids$|.*\.masked_bias$)")
_LINEAR = re.compile(r"(q_proj|k_proj|v_proj|out_proj|linear1|linear2|pooler\.dense|classifier)\.weight$")


@dataclass
class TensorRecord:
    """One line of the import report."""

    status: str  # "mapped", "new" or "ignored"
    target: str | None
    shape: list[int]
    source: str | None = None
    note: str = ""


@dataclass
class ImportReport:
    """What ``import_hf`` did with every tensor, and the model it wrote."""

    folder: str
    model_type: str
    labels: list[str] | None
    num_labels: int
    kept_classifier: bool
    tokenizer: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    tensors: list[TensorRecord] = field(default_factory=list)
    task: str = "multi_class"  # multi_label for a kept classifier of problem_type multi_label_classification

    def count(self, status: str) -> int:
        return sum(1 for t in self.tensors if t.status == status)

    def summary(self) -> str:
        lines = [f"{self.folder}: {self.model_type}, {self.count('mapped')} tensors mapped, "
                 f"{self.count('new')} new, {self.count('ignored')} ignored; {self.num_labels} labels "
                 f"({'classifier kept' if self.kept_classifier else 'new classifier'}"
                 f"{'' if self.task == MULTI_CLASS else ', ' + self.task})"]
        lines += [f"  new      {t.target} {t.shape} {t.note}".rstrip() for t in self.tensors if t.status == "new"]
        lines += [f"  ignored  {t.source} {t.shape} {t.note}".rstrip() for t in self.tensors if t.status == "ignored"]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# Reading the folder
# ---------------------------------------------------------------------------------------------


def is_hf_folder(path: str | Path) -> bool:
    """A Hugging Face model folder: ``config.json`` and HF weights, no Paddle ``model_state.pdparams``
    (a PaddleNLP / tritoncls checkpoint's ``config.json`` names a ``model_type`` too)."""
    folder = Path(path)
    if not (folder / "config.json").is_file() or (folder / "model_state.pdparams").is_file():
        return False
    return any((folder / name).is_file() for name in (SAFETENSORS, SAFETENSORS_INDEX, TORCH_BIN))


def read_config(folder: Path) -> dict[str, Any]:
    """``config.json`` of a supported architecture; refuses anything else, saying what is supported."""
    path = folder / "config.json"
    if not path.is_file():
        raise ModelError(f"{folder}: no config.json. A Hugging Face model folder holds config.json, the weights "
                         f"({SAFETENSORS}) and the tokenizer files.")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ModelError(f"{path}: not valid JSON ({exc}).") from exc
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ModelError(f"{path}: model_type {model_type!r} is not supported. Supported model_types: "
                         f"{', '.join(SUPPORTED_MODEL_TYPES)} (BERT-family encoders).")
    _check_config(path, config)
    return config


def _check_config(path: Path, config: dict[str, Any]) -> None:
    kind = config.get("position_embedding_type", "absolute")
    if kind != "absolute":
        raise ModelError(f"{path}: position_embedding_type {kind!r}; only 'absolute' maps onto ERNIE.")
    act = config.get("hidden_act", "gelu")
    if act not in _ACTIVATIONS:
        raise ModelError(f"{path}: hidden_act {act!r} has no exact Paddle equivalent; supported: "
                         f"{', '.join(_ACTIVATIONS)}.")
    for name in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size",
                 "max_position_embeddings"):
        if not isinstance(config.get(name), int):
            raise ModelError(f"{path}: {name} is missing or not an integer.")


def read_tensors(folder: Path) -> dict[str, np.ndarray]:
    """Every tensor of the folder's weights, as float32 (or integer) numpy arrays, without torch."""
    if (folder / SAFETENSORS_INDEX).is_file():
        tensors = _read_shards(folder)
    elif (folder / SAFETENSORS).is_file():
        tensors = _read_safetensors(folder / SAFETENSORS)
    elif (folder / TORCH_BIN).is_file():
        tensors = _read_torch_bin(folder / TORCH_BIN)
    else:
        raise ModelError(f"{folder}: no weights found (looked for {SAFETENSORS}, {SAFETENSORS_INDEX}, {TORCH_BIN}). "
                         f"Copy the model's weight files into the folder.")
    return {name: (a.astype(np.float32) if a.dtype == np.float16 else a) for name, a in tensors.items()}


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for bad files
        raise ModelError(f"{path}: cannot read ({type(exc).__name__}: {exc}). bfloat16 weights need converting to "
                         f"float32 first (numpy has no bfloat16).") from exc


def _read_shards(folder: Path) -> dict[str, np.ndarray]:
    index_path = folder / SAFETENSORS_INDEX
    weight_map = json.loads(index_path.read_text(encoding="utf-8")).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise ModelError(f"{index_path}: no weight_map. The index must map every tensor to its shard file.")
    tensors: dict[str, np.ndarray] = {}
    for shard in sorted(set(weight_map.values())):
        if not (folder / shard).is_file():
            raise ModelError(f"{index_path}: shard {shard} is missing from {folder}. Copy every shard it lists.")
        tensors.update(_read_safetensors(folder / shard))
    missing = sorted(set(weight_map) - set(tensors))
    if missing:
        raise ModelError(f"{index_path}: tensors listed but absent from their shards: {missing[:5]}.")
    return tensors


def _read_torch_bin(path: Path) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError as exc:
        raise ModelError(
            f"{path}: PyTorch weights need torch, which is not installed. Convert them once where torch is, with "
            f"`python -c \"import torch; from safetensors.torch import save_file; "
            f"save_file({{k: v.contiguous() for k, v in torch.load('{path}', map_location='cpu').items()}}, "
            f"'{path.with_name(SAFETENSORS)}')\"`, or install torch.") from exc
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    return {name: t.float().numpy() if t.is_floating_point() else t.numpy() for name, t in state.items()}


# ---------------------------------------------------------------------------------------------
# Architecture and tensor mapping
# ---------------------------------------------------------------------------------------------


def position_offset(config: dict[str, Any]) -> int:
    """Rows of the position table before position 0: ``pad_token_id + 1`` for RoBERTa / XLM-R, else 0."""
    return int(config.get("pad_token_id", 1)) + 1 if config["model_type"] in _OFFSET_POSITIONS else 0


def paddle_architecture(config: dict[str, Any], use_task_id: bool) -> dict[str, Any]:
    """The ErnieConfig fields of the converted model."""
    return {
        "vocab_size": config["vocab_size"],
        "hidden_size": config["hidden_size"],
        "num_hidden_layers": config["num_hidden_layers"],
        "num_attention_heads": config["num_attention_heads"],
        "intermediate_size": config["intermediate_size"],
        "hidden_act": _ACTIVATIONS[config.get("hidden_act", "gelu")],
        "hidden_dropout_prob": float(config.get("hidden_dropout_prob", 0.1)),
        "attention_probs_dropout_prob": float(config.get("attention_probs_dropout_prob", 0.1)),
        "max_position_embeddings": config["max_position_embeddings"] - position_offset(config),
        "type_vocab_size": int(config.get("type_vocab_size", 2)),
        "initializer_range": float(config.get("initializer_range", 0.02)),
        "pad_token_id": int(config.get("pad_token_id", 0)),
        "layer_norm_eps": float(config.get("layer_norm_eps", 1e-12)),
        "use_task_id": use_task_id,
        "task_type_vocab_size": int(config.get("task_type_vocab_size", 3)),
        "task_id": 0,
        "pool_act": "tanh",
    }


def _canonical(name: str, model_type: str) -> str:
    """``name`` without its model prefix (``bert.``, ``roberta.``, ``ernie.``), LayerNorm gamma/beta renamed."""
    for prefix in {"bert.", "ernie.", "roberta.", model_type.replace("-", "_") + "."}:
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    return name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")


def _target(name: str, has_roberta_head: bool) -> str | None:
    """The Paddle name of canonical HF tensor ``name``; None when it has no place (unknown names raise later)."""
    if name in _HEADS:
        return _HEADS[name]
    if name.startswith("pooler.") and has_roberta_head:
        return None  # RoBERTa's classification head has its own dense layer; the bare pooler is unused
    if name in _EMBEDDINGS:
        return _EMBEDDINGS[name]
    match = _LAYER_KEY.match(name)
    if match and match[2] in _LAYER:
        return f"ernie.encoder.layers.{match[1]}.{_LAYER[match[2]]}.{match[3]}"
    return None


def expected_shapes(arch: dict[str, Any], num_labels: int) -> dict[str, tuple[int, ...]]:
    """Every Paddle tensor's shape, in the Hugging Face (``[out, in]``) orientation."""
    h, i, n = arch["hidden_size"], arch["intermediate_size"], num_labels
    shapes: dict[str, tuple[int, ...]] = {
        "ernie.embeddings.word_embeddings.weight": (arch["vocab_size"], h),
        "ernie.embeddings.position_embeddings.weight": (arch["max_position_embeddings"], h),
        "ernie.embeddings.token_type_embeddings.weight": (arch["type_vocab_size"], h),
        "ernie.embeddings.layer_norm.weight": (h,), "ernie.embeddings.layer_norm.bias": (h,),
        "ernie.pooler.dense.weight": (h, h), "ernie.pooler.dense.bias": (h,),
        "classifier.weight": (n, h), "classifier.bias": (n,),
    }
    if arch["use_task_id"]:
        shapes["ernie.embeddings.task_type_embeddings.weight"] = (arch["task_type_vocab_size"], h)
    per_layer = {"self_attn.q_proj": (h, h), "self_attn.k_proj": (h, h), "self_attn.v_proj": (h, h),
                 "self_attn.out_proj": (h, h), "linear1": (i, h), "linear2": (h, i), "norm1": (h,), "norm2": (h,)}
    for layer in range(arch["num_hidden_layers"]):
        for module, shape in per_layer.items():
            shapes[f"ernie.encoder.layers.{layer}.{module}.weight"] = shape
            shapes[f"ernie.encoder.layers.{layer}.{module}.bias"] = (shape[0],)
    return shapes


@dataclass
class Mapped:
    """Paddle tensors (numpy, Paddle orientation) and the report lines of every tensor."""

    state: dict[str, np.ndarray]
    records: list[TensorRecord]


def map_tensors(tensors: dict[str, np.ndarray], config: dict[str, Any], arch: dict[str, Any],
                num_labels: int) -> Mapped:
    """Map every HF tensor onto its Paddle name; the Paddle tensors absent from the folder are reported new."""
    model_type = config["model_type"]
    canonical = {name: _canonical(name, model_type) for name in tensors}
    has_roberta_head = "classifier.out_proj.weight" in canonical.values()
    shapes = expected_shapes(arch, num_labels)
    state: dict[str, np.ndarray] = {}
    records: list[TensorRecord] = []
    for name, array in tensors.items():
        record, converted = _map_one(name, canonical[name], array, config, shapes, has_roberta_head)
        records.append(record)
        if converted is not None:
            state[record.target] = converted  # type: ignore[index]
    _check_complete(shapes.keys() - state.keys(), config)
    for target in sorted(shapes.keys() - state.keys()):
        paddle_shape = list(_paddle_orientation(target, np.empty(shapes[target], np.float32)).shape)
        records.append(TensorRecord("new", target, paddle_shape, note="random init (not in the folder)"))
    return Mapped(state, records)


#: Paddle tensors a folder may lack: they start random (a bare encoder has no classifier, some no pooler).
_MAY_BE_NEW = ("classifier.weight", "classifier.bias", "ernie.pooler.dense.weight", "ernie.pooler.dense.bias")


def _check_complete(missing: set[str], config: dict[str, Any]) -> None:
    absent = sorted(name for name in missing if name not in _MAY_BE_NEW)
    if absent:
        raise ModelError(f"the folder's weights lack {len(absent)} tensor(s) that config.json implies "
                         f"({config['num_hidden_layers']} layers), e.g. Paddle's {absent[:3]}. The weights are "
                         f"incomplete or belong to another config.json.")


def _map_one(name: str, canonical: str, array: np.ndarray, config: dict[str, Any],
             shapes: dict[str, tuple[int, ...]], has_roberta_head: bool) -> tuple[TensorRecord, np.ndarray | None]:
    target = _target(canonical, has_roberta_head)
    if target is None:
        if _IGNORED.match(canonical) or canonical.startswith("pooler."):
            note = "unused by a sequence classifier" if not canonical.startswith("pooler.") else \
                "the RoBERTa classification head has its own dense layer"
            return TensorRecord("ignored", None, list(array.shape), source=name, note=note), None
        raise ModelError(f"{config['model_type']} tensor {name!r} {list(array.shape)} has no counterpart in ERNIE. "
                         f"Only plain BERT-family encoders (with their pooler and classifier) can be imported.")
    note = ""
    if target == "ernie.embeddings.position_embeddings.weight" and position_offset(config):
        offset = position_offset(config)
        array = array[offset:]
        note = f"first {offset} rows dropped (positions start after padding_idx {offset - 1})"
    if target not in shapes:
        raise ModelError(f"tensor {name!r} maps to {target}, which config.json does not imply (num_hidden_layers "
                         f"{config['num_hidden_layers']}). Use the config.json saved with these weights.")
    if tuple(array.shape) != shapes[target]:
        raise ModelError(f"tensor {name!r} has shape {list(array.shape)} but config.json implies {list(shapes[target])} "
                         f"(hidden_size, intermediate_size, vocab_size, num_hidden_layers...). The weights and "
                         f"config.json come from different models: use the config.json saved with these weights.")
    converted = _paddle_orientation(target, array.astype(np.float32))
    if _LINEAR.search(target):
        note = "transposed"
    return TensorRecord("mapped", target, list(converted.shape), source=name, note=note), converted


def _paddle_orientation(target: str, array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array.T) if _LINEAR.search(target) else array


# ---------------------------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------------------------


def model_labels(config: dict[str, Any], tensors: dict[str, np.ndarray]) -> list[str] | None:
    """The labels of an already fine-tuned classifier (``id2label`` + classifier weights), else None."""
    heads = [a for n, a in tensors.items() if n.endswith(("classifier.weight", "classifier.out_proj.weight"))]
    if not heads:
        return None
    rows = heads[0].shape[0]
    id2label = config.get("id2label") or {}
    labels = [str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(rows)]
    return labels


def choose_labels(own: list[str] | None, given: list[str] | None, num_labels: int | None,
                  fresh_head: bool) -> tuple[list[str] | None, int, bool]:
    """(labels, count, keep the folder's classifier) from the model's own labels and the user's options."""
    if own is not None and not fresh_head:
        if given is not None and given != own:
            raise ConfigError(f"the model is already a classifier of {len(own)} labels {own}, but the label file "
                              f"lists {given}. Leave out --labels to keep its classifier and labels (they become "
                              f"label.txt), or add --fresh_head to replace the classifier for your labels.")
        if num_labels is not None and num_labels != len(own):
            raise ConfigError(f"the model is already a classifier of {len(own)} labels {own}; --num_labels "
                              f"{num_labels} disagrees. Leave it out, or add --fresh_head.")
        return own, len(own), True
    if given is not None:
        return given, len(given), False
    if num_labels is not None and num_labels >= 1:
        return None, num_labels, False
    raise ConfigError("the folder holds no fine-tuned classifier: pass --num_labels N or --labels FILE for "
                      "the new classification head.")


def _drop_head(tensors: dict[str, np.ndarray], model_type: str) -> dict[str, np.ndarray]:
    """Tensors without the classification head, for ``fresh_head`` (RoBERTa's dense goes too)."""
    return {n: a for n, a in tensors.items() if not _canonical(n, model_type).startswith("classifier.")}


# ---------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------


@dataclass
class TokenizerSpec:
    """A WordPiece tokenizer the runtime reproduces: vocabulary, lower-casing, special tokens."""

    vocab: list[str]
    do_lower_case: bool
    special_tokens: dict[str, str]
    source: str


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ModelError(f"{path}: not valid JSON ({exc}).") from exc
    return data if isinstance(data, dict) else {}


def _special_tokens(folder: Path) -> dict[str, str]:
    from tritoncls.modeling.ernie import SPECIAL_TOKENS

    found = _json(folder / "special_tokens_map.json") | _json(folder / "tokenizer_config.json")
    out = {}
    for key, default in SPECIAL_TOKENS.items():
        value = found.get(key, default)
        out[key] = value.get("content", default) if isinstance(value, dict) else str(value)
    return out


def _refuse_tokenizer(where: Path, what: str) -> ModelError:
    return ModelError(f"{where}: {what}. The serving runtime reproduces BERT's WordPiece tokenizer only "
                      f"(lower-casing with accent stripping, or neither; Chinese characters split), so this model's "
                      f"tokenizer cannot be served with the same ids.")


def read_tokenizer(folder: Path) -> TokenizerSpec:
    """The folder's WordPiece tokenizer (``tokenizer.json`` first, else ``vocab.txt`` + its config)."""
    path = folder / "tokenizer.json"
    spec = _from_tokenizer_json(path) if path.is_file() else _from_vocab_txt(folder)
    missing = [t for t in spec.special_tokens.values() if t not in set(spec.vocab)]
    if missing:
        raise _refuse_tokenizer(folder, f"special tokens {missing} are not in the vocabulary")
    return spec


def _from_tokenizer_json(path: Path) -> TokenizerSpec:
    data = _json(path)
    model = data.get("model") or {}
    if model.get("type") != "WordPiece":
        raise _refuse_tokenizer(path, f"the tokenizer model is {model.get('type')!r} (BPE / Unigram / SentencePiece)")
    if model.get("continuing_subword_prefix", "##") != "##":
        raise _refuse_tokenizer(path, "the WordPiece continuation prefix is not '##'")
    if model.get("max_input_chars_per_word", 100) != 100:
        raise _refuse_tokenizer(path, f"max_input_chars_per_word is {model['max_input_chars_per_word']}, not BERT's 100")
    normalizer = data.get("normalizer") or {}
    pre = data.get("pre_tokenizer") or {}
    if normalizer.get("type") != "BertNormalizer" or pre.get("type") != "BertPreTokenizer":
        raise _refuse_tokenizer(path, f"normalizer {normalizer.get('type')!r} / pre-tokenizer {pre.get('type')!r} "
                                      f"(BertNormalizer and BertPreTokenizer are needed)")
    lower = bool(normalizer.get("lowercase", True))
    _check_normalization(path, lower, normalizer.get("strip_accents"), normalizer.get("handle_chinese_chars", True))
    ids = model.get("vocab") or {}
    vocab = [token for token, _ in sorted(ids.items(), key=lambda kv: kv[1])]
    if [ids[t] for t in vocab] != list(range(len(vocab))):
        raise _refuse_tokenizer(path, "the vocabulary ids are not 0..N-1 without gaps")
    specials = _special_tokens(path.parent)
    extra = [t.get("content") for t in data.get("added_tokens") or [] if t.get("content") not in specials.values()]
    if extra:
        raise _refuse_tokenizer(path, f"added tokens {extra[:5]} besides the special tokens {sorted(specials.values())} "
                                      f"(the runtime keeps only the special tokens whole)")
    return TokenizerSpec(vocab, lower, specials, "tokenizer.json")


def _from_vocab_txt(folder: Path) -> TokenizerSpec:
    path = folder / "vocab.txt"
    if not path.is_file():
        raise ModelError(f"{folder}: no tokenizer.json and no vocab.txt. Copy the model's tokenizer files into it.")
    config = _json(folder / "tokenizer_config.json")
    lower = bool(config.get("do_lower_case", True))
    _check_normalization(folder / "tokenizer_config.json", lower, config.get("strip_accents"),
                         config.get("tokenize_chinese_chars", True))
    vocab = path.read_text(encoding="utf-8").splitlines()
    return TokenizerSpec(vocab, lower, _special_tokens(folder), "vocab.txt + tokenizer_config.json")


def _check_normalization(where: Path, lower: bool, strip_accents: Any, chinese: Any) -> None:
    if strip_accents is not None and bool(strip_accents) != lower:
        raise _refuse_tokenizer(where, f"strip_accents={strip_accents} with lowercase={lower}")
    if not chinese:
        raise _refuse_tokenizer(where, "Chinese characters are not split (handle_chinese_chars false)")


def compare_tokenizers(folder: str | Path, checkpoint: str | Path,
                       texts: Iterable[str]) -> list[tuple[str, list[int], list[int]]]:
    """(text, HF ids, checkpoint ids) for every text where the checkpoint's tokenizer and the Hugging Face
    ``tokenizers`` library loading the folder's ``tokenizer.json`` give different ids (no truncation)."""
    from tokenizers import Tokenizer

    from tritoncls.modeling.ernie import load_tokenizer

    reference = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
    reference.no_truncation()
    reference.no_padding()
    texts = list(texts)
    expected = [e.ids for e in reference.encode_batch(texts)]
    got = load_tokenizer(checkpoint)(texts, max_length=1_000_000, truncation=True, padding=False)["input_ids"]
    return [(text, e, g) for text, e, g in zip(texts, expected, got) if e != g]


# ---------------------------------------------------------------------------------------------
# Writing the checkpoint
# ---------------------------------------------------------------------------------------------


def import_hf(folder: str | Path, output: str | Path, *, num_labels: int | None = None,
              labels: list[str] | None = None, fresh_head: bool = False, replace_other_head: bool = False,
              seed: int = 0) -> ImportReport:
    """Convert the Hugging Face folder into a tritoncls checkpoint at ``output`` (atomically); the report.

    ``replace_other_head``: a classifier of labels other than ``labels`` gets a new head (logged) instead
    of an error (what ``train`` wants; ``import-hf`` asks for ``fresh_head`` explicitly)."""
    from tritoncls.modeling.checkpoint import write_checkpoint

    folder = Path(folder)
    config = read_config(folder)
    tokenizer = read_tokenizer(folder)
    tensors = read_tensors(folder)
    own = model_labels(config, tensors)
    if replace_other_head and not fresh_head and own is not None and labels is not None and own != labels:
        log.warning("%s classifies %s; training a new classification head for the label file's %s", folder, own, labels)
        fresh_head = True
    if fresh_head:
        tensors = _drop_head(tensors, config["model_type"])
    chosen, count, kept = choose_labels(own, labels, num_labels, fresh_head)
    use_task_id = any(_canonical(n, config["model_type"]) == "embeddings.task_type_embeddings.weight" for n in tensors)
    arch = paddle_architecture(config, use_task_id)
    _check_vocab(folder, tokenizer, arch)
    mapped = map_tensors(tensors, config, arch, count)
    task = kept_task(config, kept, count)
    report = ImportReport(str(folder), config["model_type"], chosen, count, kept,
                          {"source": tokenizer.source, "kind": "WordPiece", "rules": "hf-bert",
                           "do_lower_case": tokenizer.do_lower_case,
                           "vocab_size": len(tokenizer.vocab), "special_tokens": tokenizer.special_tokens},
                          _notes(config, arch, task), sorted(mapped.records, key=_record_order), task.task)
    write_checkpoint(output, lambda staging: _fill(staging, arch, count, mapped.state, tokenizer, chosen, report, seed,
                                                   task))
    return report


#: Hugging Face's ``problem_type`` of a classifier trained with a sigmoid per label and binary cross-entropy.
HF_MULTI_LABEL = "multi_label_classification"


def kept_task(config: dict[str, Any], kept: bool, count: int) -> TaskSpec:
    """The task of the imported checkpoint: a kept classifier of ``problem_type: multi_label_classification``
    stays multi-label (sigmoid, threshold 0.5 for every label, as Hugging Face's pipelines use); anything else
    is multi-class until ``train --task`` says otherwise."""
    if kept and config.get("problem_type") == HF_MULTI_LABEL:
        return TaskSpec(MULTI_LABEL, (DEFAULT_THRESHOLD,) * count)
    return TaskSpec()


def _record_order(record: TensorRecord) -> tuple[int, str]:
    return ({"mapped": 0, "new": 1, "ignored": 2}[record.status], record.target or record.source or "")


def _check_vocab(folder: Path, tokenizer: TokenizerSpec, arch: dict[str, Any]) -> None:
    if len(tokenizer.vocab) > arch["vocab_size"]:
        raise ModelError(f"{folder}: the tokenizer has {len(tokenizer.vocab)} tokens but config.json's vocab_size is "
                         f"{arch['vocab_size']}: ids past the embedding table would crash. Use the tokenizer saved "
                         f"with these weights.")


def _notes(config: dict[str, Any], arch: dict[str, Any], task: TaskSpec) -> list[str]:
    notes = [f"layer_norm_eps {arch['layer_norm_eps']} (config.json) is applied to every LayerNorm when loaded"]
    if task.multi_label:
        notes.append(f"problem_type {HF_MULTI_LABEL}: a multi_label model (a sigmoid per label), every threshold "
                     f"{DEFAULT_THRESHOLD}; tune them on your dev set with `tritoncls evaluate --tune_thresholds FILE` "
                     f"and serve them with `export --thresholds_file FILE`")
    if position_offset(config):
        notes.append(f"{config['model_type']}: position ids started at {position_offset(config)}; the table now starts "
                     f"at position 0 ({arch['max_position_embeddings']} positions)")
    if arch["use_task_id"]:
        notes.append("ernie: task-type embeddings kept; the model adds task type 0 to every token, as Hugging Face "
                     "does when no task_type_ids are given")
    return notes


def _fill(staging: Path, arch: dict[str, Any], count: int, state: dict[str, np.ndarray], tokenizer: TokenizerSpec,
          labels: list[str] | None, report: ImportReport, seed: int, task: TaskSpec) -> None:
    from tritoncls.modeling.checkpoint import write_json, write_labels, write_task

    model = build_model(arch, count, state, seed)
    model.save_pretrained(str(staging))
    _save_tokenizer(staging, tokenizer)
    if labels is not None:
        write_labels(staging, labels)
    if task.multi_label:
        write_task(staging, task, thresholds_from=f"Hugging Face's default {DEFAULT_THRESHOLD} (imported, not tuned)")
    write_json(staging / REPORT_FILE, report.to_json())


def build_model(arch: dict[str, Any], count: int, state: dict[str, np.ndarray], seed: int = 0):
    """An ErnieForSequenceClassification of ``arch`` holding ``state`` (new tensors random from ``seed``), eval mode."""
    import paddle

    from tritoncls.modeling.ernie import apply_layer_norm_eps, scratch_model

    paddle.seed(seed)
    model = scratch_model(arch, count, arch["vocab_size"], arch["pad_token_id"])
    expected = model.state_dict()
    for name, array in state.items():
        if list(expected[name].shape) != list(array.shape):
            raise ModelError(f"{name}: converted shape {list(array.shape)}, Paddle expects {list(expected[name].shape)}.")
    with warnings.catch_warnings():  # Paddle warns for every tensor left out: the new head, by design
        warnings.filterwarnings("ignore", message="Skip loading for", category=UserWarning)
        model.set_state_dict({name: paddle.to_tensor(array) for name, array in state.items()})
    apply_layer_norm_eps(model)
    model.eval()
    return model


def _save_tokenizer(staging: Path, tokenizer: TokenizerSpec) -> None:
    """The folder's vocabulary under HF BERT rules (see :mod:`tritoncls.modeling.hf_tokenizer`)."""
    from tritoncls.modeling.ernie import write_vocab
    from tritoncls.modeling.hf_tokenizer import HfBertTokenizer

    vocab_path = write_vocab(tokenizer.vocab, staging)
    HfBertTokenizer(vocab_path, tokenizer.do_lower_case, tokenizer.special_tokens).save_pretrained(staging)

