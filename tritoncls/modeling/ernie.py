"""Build, load and save ERNIE classifiers and their tokenizers.

Three ways to get a model, chosen by ``model_name`` and ``from_scratch``:

* a name from :data:`NAMED_MODELS` -> PaddleNLP downloads the pretrained weights (needs the model hub);
* a local directory (a PaddleNLP checkpoint, or one of ours) -> weights and tokenizer load from it;
* ``from_scratch`` -> the named (or local ``config.json``) architecture with random weights and a
  WordPiece vocabulary built from the training texts. This works offline.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tritoncls.errors import ModelError

log = logging.getLogger(__name__)

#: The pretrained models the reference application offers.
NAMED_MODELS: tuple[str, ...] = (
    "ernie-3.0-xbase-zh",
    "ernie-3.0-base-zh",
    "ernie-3.0-medium-zh",
    "ernie-3.0-mini-zh",
    "ernie-3.0-micro-zh",
    "ernie-3.0-nano-zh",
    "ernie-2.0-base-en",
    "ernie-2.0-large-en",
    "ernie-1.0-large-zh-cw",
)

SPECIAL_TOKENS: dict[str, str] = {
    "pad_token": "[PAD]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
    "unk_token": "[UNK]",
}

#: Vocabulary cap for ``from_scratch``; characters seen in training always get in.
MAX_SCRATCH_VOCAB = 30000


def named_architecture(model_name: str) -> dict[str, Any]:
    """The architecture (PaddleNLP init configuration) of a named model, without downloading."""
    from paddlenlp.transformers.ernie.configuration import ERNIE_PRETRAINED_INIT_CONFIGURATION

    if model_name not in ERNIE_PRETRAINED_INIT_CONFIGURATION:
        names = ", ".join(NAMED_MODELS)
        raise ModelError(
            f"unknown model name {model_name!r}. Use one of: {names}, or a local checkpoint directory."
        )
    return dict(ERNIE_PRETRAINED_INIT_CONFIGURATION[model_name])


def _local_architecture(model_dir: Path) -> dict[str, Any]:
    for name in ("config.json", "model_config.json"):
        path = model_dir / name
        if path.is_file():
            data = json.loads(path.read_text(encoding="utf-8"))
            return dict(data.get("init_args", [data])[0]) if "init_args" in data else data
    raise ModelError(
        f"{model_dir}: no config.json or model_config.json. A local model directory must hold the "
        f"model configuration (as written by `tritoncls train` or PaddleNLP's save_pretrained)."
    )


def architecture(model_name: str) -> dict[str, Any]:
    """The architecture of ``model_name``: a named model or a local directory's config."""
    path = Path(model_name)
    if path.is_dir():
        return _local_architecture(path)
    return named_architecture(model_name)


# ---------------------------------------------------------------------------------------------
# Vocabulary and tokenizer
# ---------------------------------------------------------------------------------------------


def _pre_tokenize(texts: Iterable[str], lowercase: bool) -> Counter[str]:
    """Count words exactly as PaddleNLP's basic tokenizer splits them (CJK, punctuation and
    symbols stand alone), so that every character of the training data gets into the vocabulary."""
    from paddlenlp.transformers.bert.tokenizer import BasicTokenizer

    splitter = BasicTokenizer(do_lower_case=lowercase)
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(splitter.tokenize(text))
    return counts


def build_vocab(texts: Iterable[str], lowercase: bool = True, max_size: int = MAX_SCRATCH_VOCAB) -> list[str]:
    """A WordPiece vocabulary from training texts: special tokens, every character (as a word
    start and as a ``##`` continuation), then the most frequent whole words up to ``max_size``."""
    counts = _pre_tokenize(texts, lowercase)
    chars = sorted({ch for word in counts for ch in word})
    vocab = list(SPECIAL_TOKENS.values())
    vocab += chars
    vocab += ["##" + ch for ch in chars]
    seen = set(vocab)
    for word, _ in counts.most_common():
        if len(vocab) >= max_size:
            break
        if word not in seen:
            vocab.append(word)
            seen.add(word)
    return vocab


def write_vocab(vocab: list[str], directory: Path) -> Path:
    path = directory / "vocab.txt"
    path.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return path


def load_tokenizer(directory: str | Path):
    """The tokenizer saved in ``directory`` (``vocab.txt`` + ``tokenizer_config.json``): PaddleNLP's, or
    for a model imported from the Hugging Face format the runtime's under HF BERT rules."""
    from paddlenlp.transformers import AutoTokenizer, ErnieTokenizer

    from tritoncls.modeling.hf_tokenizer import RULES_KEY, HfBertTokenizer, saved_rules

    directory = Path(directory)
    if not (directory / "vocab.txt").is_file():
        raise ModelError(f"{directory}: no vocab.txt. A checkpoint must hold its tokenizer files.")
    try:
        rules, config = saved_rules(directory)
    except ValueError as exc:
        raise ModelError(f"{directory / 'tokenizer_config.json'}: not valid JSON ({exc}).") from exc
    if rules == HfBertTokenizer.rules:
        try:
            return HfBertTokenizer.from_config(directory, config)
        except KeyError as exc:
            raise ModelError(f"{directory / 'tokenizer_config.json'}: special token {exc} is missing; re-import the "
                             f"model with `tritoncls import-hf`.") from None
    if rules is not None:
        raise ModelError(f"{directory / 'tokenizer_config.json'}: {RULES_KEY} {rules!r} is not known to this tritoncls "
                         f"(it knows {HfBertTokenizer.rules!r}); use the tritoncls that wrote the checkpoint.")
    if (directory / "tokenizer_config.json").is_file():
        return AutoTokenizer.from_pretrained(str(directory))
    return ErnieTokenizer(str(directory / "vocab.txt"), **SPECIAL_TOKENS)


def scratch_tokenizer(texts: Iterable[str], workdir: Path, lowercase: bool = True):
    """Build a vocabulary from ``texts`` into ``workdir`` and return an ErnieTokenizer over it."""
    from paddlenlp.transformers import ErnieTokenizer

    workdir.mkdir(parents=True, exist_ok=True)
    vocab_path = write_vocab(build_vocab(texts, lowercase=lowercase), workdir)
    return ErnieTokenizer(str(vocab_path), do_lower_case=lowercase, **SPECIAL_TOKENS)


def hub_tokenizer(model_name: str):
    from paddlenlp.transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model_name)
    except Exception as exc:  # noqa: BLE001 - any hub failure gets the same advice
        raise _hub_error(model_name, exc) from exc


def _hub_error(model_name: str, exc: Exception) -> ModelError:
    return ModelError(
        f"could not download {model_name!r} from the model hub ({type(exc).__name__}: {exc}). "
        f"This machine may be offline. Either pass --model_name /path/to/local/checkpoint (a "
        f"directory with config.json, model_state.pdparams and vocab.txt), or add --from_scratch to "
        f"train the same architecture from random weights with a vocabulary built from your data."
    )


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------


def scratch_model(arch: dict[str, Any], num_labels: int, vocab_size: int, pad_token_id: int = 0):
    """The architecture ``arch`` with random weights, sized for ``vocab_size`` and ``num_labels``."""
    from paddlenlp.transformers import ErnieConfig, ErnieForSequenceClassification

    keep = {k: v for k, v in arch.items() if not k.startswith("_") and k not in ("architectures", "num_labels", "num_classes", "id2label", "label2id")}
    keep.update(vocab_size=vocab_size, pad_token_id=pad_token_id, num_labels=num_labels)
    config = ErnieConfig(**keep)
    return ErnieForSequenceClassification(config)


def pretrained_model(model_name: str, num_labels: int):
    """Pretrained weights from a local directory or the hub, with a fresh ``num_labels`` head."""
    from paddlenlp.transformers import ErnieForSequenceClassification

    local = Path(model_name).is_dir()
    try:
        model = ErnieForSequenceClassification.from_pretrained(model_name, num_labels=num_labels)
    except Exception as exc:  # noqa: BLE001
        if local:
            raise ModelError(f"{model_name}: cannot load the model ({type(exc).__name__}: {exc}).") from exc
        raise _hub_error(model_name, exc) from exc
    apply_layer_norm_eps(model)
    return model


def load_checkpoint_model(checkpoint_dir: str | Path):
    """A trained classifier from one of our checkpoints (or any PaddleNLP one), in eval mode."""
    from paddlenlp.transformers import ErnieForSequenceClassification

    directory = Path(checkpoint_dir)
    if not directory.is_dir():
        raise ModelError(f"{directory}: checkpoint directory not found. Pass --checkpoint with a directory written by `tritoncls train`.")
    weights = directory / "model_state.pdparams"
    if not weights.is_file():
        raise ModelError(f"{directory}: no model_state.pdparams. Is this a checkpoint written by `tritoncls train`?")
    if HEAD_DIM_FIELD in _local_architecture(directory):
        model = _load_narrow_attention_model(directory, weights)
    else:
        model = ErnieForSequenceClassification.from_pretrained(str(directory))
    apply_layer_norm_eps(model)
    model.eval()
    return model


def apply_layer_norm_eps(model) -> None:
    """Give every LayerNorm the config's ``layer_norm_eps``: PaddleNLP's ERNIE always builds them with 1e-12,
    while an imported RoBERTa was trained with 1e-5 (the default 1e-12 leaves other models unchanged)."""
    import paddle

    eps = float(getattr(model.config, "layer_norm_eps", 1e-12) or 1e-12)
    for layer in model.sublayers():
        if isinstance(layer, paddle.nn.LayerNorm):
            layer._epsilon = eps


# ---------------------------------------------------------------------------------------------
# Attention narrower than hidden_size (models written by ``tritoncls prune``)
# ---------------------------------------------------------------------------------------------

#: ``config.json`` field that ``tritoncls prune`` writes: the width of one attention head. Paddle's
#: ``MultiHeadAttention`` derives it as ``hidden_size / num_attention_heads``, which no longer holds
#: once heads are removed and the hidden size is kept (12 heads of 32 on hidden 384 -> 6 heads of 32).
HEAD_DIM_FIELD = "attention_head_dim"


def attention_head_dim(config) -> int:
    """The width of one attention head: the recorded one, else ``hidden_size / num_attention_heads``."""
    recorded = getattr(config, HEAD_DIM_FIELD, None)
    return int(recorded) if recorded else int(config.hidden_size) // int(config.num_attention_heads)


def set_attention_width(model, num_heads: int, head_dim: int) -> None:
    """Give every attention layer ``num_heads`` heads of ``head_dim`` each, with new (untrained)
    projections, and record both in ``model.config``.

    ``MultiHeadAttention.forward`` reshapes with its ``num_heads``/``head_dim`` attributes and the
    projections' shapes only, so the layer stays an ordinary paddle layer that ``paddle.jit.save``
    and paddle2onnx export as usual.
    """
    import paddle

    inner = num_heads * head_dim
    for layer in model.ernie.encoder.layers:
        attn = layer.self_attn
        hidden = attn.embed_dim
        attn.q_proj = paddle.nn.Linear(hidden, inner)
        attn.k_proj = paddle.nn.Linear(attn.kdim, inner)
        attn.v_proj = paddle.nn.Linear(attn.vdim, inner)
        attn.out_proj = paddle.nn.Linear(inner, hidden)
        attn.num_heads, attn.head_dim = num_heads, head_dim
    model.config.num_attention_heads = num_heads
    setattr(model.config, HEAD_DIM_FIELD, head_dim)


def _load_narrow_attention_model(directory: Path, weights: Path):
    import paddle
    from paddlenlp.transformers import ErnieConfig, ErnieForSequenceClassification

    config = ErnieConfig.from_pretrained(str(directory))
    num_heads, head_dim = int(config.num_attention_heads), int(getattr(config, HEAD_DIM_FIELD))
    config.num_attention_heads = 1  # builds for any hidden_size; the attention is resized next
    model = ErnieForSequenceClassification(config)
    set_attention_width(model, num_heads, head_dim)
    state = paddle.load(str(weights))
    expected = {name: list(t.shape) for name, t in model.state_dict().items()}
    found = {name: list(t.shape) for name, t in state.items()}
    if expected != found:
        wrong = sorted(k for k in expected.keys() | found.keys() if expected.get(k) != found.get(k))
        raise ModelError(
            f"{weights}: weights do not match {directory / 'config.json'} ({num_heads} heads of {head_dim}, "
            f"intermediate_size {config.intermediate_size}); first mismatches: {wrong[:3]}. "
            f"Re-run `tritoncls prune`, which writes both together."
        )
    model.set_state_dict(state)
    return model


def check_label_count(model, labels: list[str], checkpoint: Path, label_file: Path) -> None:
    """Refuse a label file whose size differs from the classifier head's."""
    from tritoncls.errors import ConfigError

    if int(model.config.num_labels) != len(labels):
        raise ConfigError(
            f"{checkpoint} predicts {model.config.num_labels} labels but {label_file} lists {len(labels)}. "
            f"Use the label file the model was trained with (a copy is in {checkpoint / 'label.txt'})."
        )


def model_architecture_summary(model) -> dict[str, Any]:
    """The few architecture numbers downstream tools need (manifest, benchmarks, pruning)."""
    config = model.config
    return {
        "family": "ernie",
        "num_hidden_layers": int(config.num_hidden_layers),
        "hidden_size": int(config.hidden_size),
        "num_attention_heads": int(config.num_attention_heads),
        "attention_head_dim": attention_head_dim(config),
        "intermediate_size": int(config.intermediate_size),
        "vocab_size": int(config.vocab_size),
        "max_position_embeddings": int(config.max_position_embeddings),
        "num_labels": int(config.num_labels),
        "hidden_act": str(config.hidden_act),
    }
