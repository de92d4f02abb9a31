"""The serving runtime: everything that runs inside Triton's python models and in every
in-process prediction path.

It imports numpy, and tokenizers / onnxruntime / paddle / paddlenlp only where a class needs them,
never the rest of tritoncls: ``build-repo`` copies this package whole into each python model's
version folder as ``tritoncls_runtime/``, so a repository serves the same predictions on a machine
without tritoncls. Modules import each other relatively for the same reason.

- :mod:`.contract`: file names, tensor names, the python models' typed Triton parameters
- :mod:`.manifest`: :class:`Manifest`, the typed ``manifest.json`` of an export
- :mod:`.text`, :mod:`.wordpiece`: text decoding and the tokenizers
- :mod:`.batching`: padding, buckets, merged dynamic batches, length groups
- :mod:`.runners`: ONNX Runtime and Paddle Inference behind one ``run(ids, types)`` interface
- :mod:`.task`: the task (multi-class, multi-label, hierarchical) and its head: softmax or sigmoid, argmax or
  per-label thresholds, a child only with its parent
- :mod:`.postprocess`: the postprocess outputs (label and top-k, or label sets)
- :mod:`.steps`: the three python models' work (tokenize, model, postprocess), and the fused layout's one
- :mod:`.predictor`: the one in-process loop (tokenize -> sort -> pad -> run -> scatter back)
- :mod:`.metrics`: the served metrics (names, bins, recorders) and the reference distribution they are
  compared with
"""

from . import metrics, triton
from .batching import (
    bucket_width,
    length_groups,
    merge_requests,
    pad_rows,
    padded_width,
    split_rows,
    trim_padding,
)
from .contract import (
    CONFIDENCE,
    DEFAULT_GROUP_PADDING,
    INPUT_IDS,
    INPUT_NAMES,
    LABEL,
    LABEL_COUNT,
    LABEL_FILE,
    LABEL_PROBS,
    LABELS,
    LAYOUTS,
    LOGITS,
    MANIFEST_FILE,
    ONNX_FILE,
    PADDINGS,
    PROBS,
    RUNTIME_PACKAGE,
    TEXT,
    TOKEN_TYPE_IDS,
    TOP_K_LABELS,
    TOP_K_PROBS,
    FusedGraphParameters,
    FusedParameters,
    LabelSetParameters,
    ModelParameters,
    PostprocessParameters,
    TokenizerParameters,
    parse_ints,
    postprocess_parameters,
    string_parameters,
)
from .errors import (
    ManifestError,
    ModelLoadError,
    OptionError,
    ParameterError,
    RequestError,
    TaskError,
    TritonclsRuntimeError,
)
from .manifest import Manifest, OnnxGraph, PaddleGraph, TensorSpec, TokenizerSpec
from .postprocess import Classified, LabelSets, classify, classify_probs, label_bytes, label_sets_of, top_k
from .predictor import (
    BatchedRun,
    Predictor,
    Probabilities,
    export_runner,
    export_tokenizer,
    length_batches,
    run_batched,
)
from .runners import OnnxRunner, PaddleRunner, Runner
from .steps import FusedStep, ModelStep, PostprocessStep, TokenizeStep
from .task import (
    DEFAULT_THRESHOLD,
    HIERARCHICAL,
    HIERARCHY_SEPARATOR,
    LABEL_SEPARATOR,
    MULTI_CLASS,
    MULTI_LABEL,
    TASKS,
    Head,
    TaskSpec,
    depth,
    label_parents,
    label_sets,
    parent_path,
    sigmoid,
    softmax,
)
from .text import decode_texts, read_labels, read_vocab
from .wordpiece import (
    HF_BERT_RULES,
    PADDLENLP_RULES,
    CharTables,
    PaddleNLPTokenizer,
    PythonWordPieceTokenizer,
    WordPieceTokenizer,
    char_tables,
    clean_text,
)

__all__ = [name for name in dir() if not name.startswith("_")]
