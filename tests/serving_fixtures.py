"""Helpers for the serving tests (builder, server, clients). Plain functions; each test module wraps
the ones it needs in fixtures.

``write_tiny_export`` writes an export directory that looks exactly like ``tritoncls export``'s
(manifest, ONNX graph, tokenizer files, labels) without training anything: its ONNX graph is a
masked-mean bag of embeddings, so its logits, like ERNIE's, do not depend on trailing [PAD] columns.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

SPECIAL_TOKENS = {"pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]", "unk_token": "[UNK]",
                  "mask_token": "[MASK]"}
TINY_LABELS = ("positive", "negative", "neutral")
TINY_WORDS = ("good", "bad", "ok", "fine", "great", "awful", "the", "movie", "is", "was", "very", "not", "中", "文",
              "好", "坏", "##s", "##ly", "!", ",", ".", "?")


def tiny_vocab() -> list[str]:
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


def write_tiny_export(directory: Path, labels: Sequence[str] = TINY_LABELS, max_seq_length: int = 64,
                      do_lower_case: bool = True) -> Path:
    """An export directory with the layout and manifest of ``tritoncls export``."""
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
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    return directory


def edit_manifest(export_dir: Path, edit) -> None:
    path = export_dir / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    edit(manifest)
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")


def copy_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, symlinks=False)
    return target


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
        import signal

        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=timeout_s)
        finally:
            if self.process.poll() is None:
                self.process.kill()
