"""``manifest.json``: the contract between an export and everything downstream.

:class:`Manifest` is the only way code reads or writes an export's description. It validates on
load (every field present and of the right type, every file a plain name inside the export), so a
reader never falls back to a guessed value. ``format_version`` 2 added the optional ``variant``
section (what a benchmark variant was derived from); 3 made ``task`` one of ``multi_class``,
``multi_label``, ``hierarchical``, with ``thresholds`` (one per label) for the last two and
``hierarchy_separator`` for hierarchies. Earlier files load unchanged (their ``task``,
``sequence_classification``, is multi-class). The optional ``reference_file`` names the reference
distribution (dev data's label shares, confidences and lengths; see :mod:`.metrics`) that served traffic is
compared with; exports without it load unchanged.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .contract import LABEL_FILE, MANIFEST_FILE, TOKENIZER_RULES
from .errors import ManifestError, TaskError
from .task import Head, TaskSpec

FORMAT = "tritoncls-export"
FORMAT_VERSION = 3
LEGACY_TASK = "sequence_classification"  # format_version 1 and 2: always multi-class


class _Reader:
    """Typed look-ups in one JSON object, each error naming the file and the field."""

    def __init__(self, data: Any, where: str, prefix: str = "") -> None:
        if not isinstance(data, dict):
            raise ManifestError(f"{where}: field {prefix.rstrip('.') or '(top level)'!r} must be an object. "
                                f"Re-run `tritoncls export`.")
        self.data, self.where, self.prefix = data, where, prefix

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.data:
            if default is not ...:
                return default
            raise ManifestError(f"{self.where}: field {self.prefix + key!r} is missing. Re-run `tritoncls export`.")
        value = self.data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ManifestError(f"{self.where}: field {self.prefix + key!r} is {value!r}, expected "
                                f"{getattr(kind, '__name__', kind)}. Re-run `tritoncls export`.")
        return value

    def section(self, key: str) -> _Reader:
        return _Reader(self.get(key, dict), self.where, f"{self.prefix}{key}.")

    def file_name(self, key: str) -> str:
        """A plain file name inside the export: no folders, no '..' (the builder copies it under that name)."""
        name = self.get(key, str)
        if name in ("", ".", "..") or Path(name).name != name or "\\" in name:
            raise ManifestError(f"{self.where}: field {self.prefix + key!r} is {name!r}; it must be a plain file "
                                f"name inside the export directory (no folders, no '..'). Re-run `tritoncls export`.")
        return name


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str
    shape: tuple[int, ...]  # -1 for a dynamic dimension

    @classmethod
    def read(cls, data: Any, where: str, field_name: str) -> TensorSpec:
        r = _Reader(data, where, f"{field_name}.")
        shape = r.get("shape", list)
        if not all(isinstance(d, int) for d in shape):
            raise ManifestError(f"{where}: field {field_name + '.shape'!r} must list integers, got {shape!r}.")
        return cls(r.get("name", str), r.get("dtype", str), tuple(shape))


def _tensors(r: _Reader, key: str) -> tuple[TensorSpec, ...]:
    return tuple(TensorSpec.read(item, r.where, f"{r.prefix}{key}[{i}]") for i, item in enumerate(r.get(key, list)))


@dataclass(frozen=True)
class Graph:
    """Inputs and outputs of one exported graph, as read back from the written files."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_name(self) -> str:
        return self.outputs[0].name


@dataclass(frozen=True)
class OnnxGraph(Graph):
    file: str
    opset: int

    @property
    def files(self) -> tuple[str, ...]:
        return (self.file,)

    @classmethod
    def read(cls, r: _Reader) -> OnnxGraph:
        return cls(_tensors(r, "inputs"), _tensors(r, "outputs"), r.file_name("file"), r.get("opset", int))


@dataclass(frozen=True)
class PaddleGraph(Graph):
    model_file: str
    params_file: str

    @property
    def files(self) -> tuple[str, ...]:
        return (self.model_file, self.params_file)

    @classmethod
    def read(cls, r: _Reader) -> PaddleGraph:
        return cls(_tensors(r, "inputs"), _tensors(r, "outputs"), r.file_name("model_file"), r.file_name("params_file"))


@dataclass(frozen=True)
class TokenizerSpec:
    """What the serving tokenizer needs: files, casing, special tokens and padding ids."""

    files: dict[str, str]  # "vocab" -> "vocab.txt", "tokenizer_config" -> ..., "special_tokens_map" -> ...
    do_lower_case: bool
    special_tokens: dict[str, str]  # pad_token, cls_token, sep_token, unk_token, mask_token
    pad_token_id: int
    pad_token_type_id: int = 0
    kind: str = "wordpiece"
    class_name: str = ""  # the training tokenizer's class (JSON key "class")
    rules: str = "paddlenlp"  # how text becomes words: TOKENIZER_RULES (exports before the key: paddlenlp)

    @property
    def vocab_file(self) -> str:
        return self.files["vocab"]

    @classmethod
    def read(cls, r: _Reader) -> TokenizerSpec:
        files_r = r.section("files")
        files = {key: files_r.file_name(key) for key in files_r.data}
        if "vocab" not in files:
            raise ManifestError(f"{r.where}: field 'tokenizer.files.vocab' is missing. Re-run `tritoncls export`.")
        specials_r = r.section("special_tokens")
        specials = {key: specials_r.get(key, str) for key in specials_r.data}
        for key in ("pad_token", "cls_token", "sep_token", "unk_token"):
            specials_r.get(key, str)
        rules = r.get("rules", str, "paddlenlp")
        if rules not in TOKENIZER_RULES:
            raise ManifestError(f"{r.where}: field 'tokenizer.rules' is {rules!r}, not one of {TOKENIZER_RULES}. "
                                f"Re-run `tritoncls export` with this tritoncls.")
        return cls(files, r.get("do_lower_case", bool), specials, r.get("pad_token_id", int),
                   r.get("pad_token_type_id", int, 0), r.get("kind", str, "wordpiece"), r.get("class", str, ""), rules)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "class": self.class_name, "rules": self.rules, "files": dict(self.files),
                "do_lower_case": self.do_lower_case, "special_tokens": dict(self.special_tokens),
                "pad_token_id": self.pad_token_id, "pad_token_type_id": self.pad_token_type_id}


@dataclass(frozen=True)
class Manifest:
    """An export: its labels, tokenizer, graphs and where it came from."""

    labels: tuple[str, ...]
    max_seq_length: int
    tokenizer: TokenizerSpec
    architecture: dict[str, Any]  # family, layer counts and sizes, num_labels (benchmarks and pruning read it)
    onnx: OnnxGraph
    paddle: PaddleGraph
    label_file: str = LABEL_FILE
    precision: str = "fp32"
    source_checkpoint: str = ""
    export_check: dict[str, float] = field(default_factory=dict)  # max |logit diff| of each graph vs the dynamic graph
    versions: dict[str, str] = field(default_factory=dict)
    variant: dict[str, Any] | None = None  # a benchmark variant: its name, what it was derived from, how
    task: TaskSpec = field(default_factory=TaskSpec)
    reference_file: str | None = None  # the reference distribution (metrics.REFERENCE_FILE), where recorded
    format_version: int = FORMAT_VERSION

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def files(self) -> tuple[str, ...]:
        """Every file of the export the manifest names (the manifest itself aside)."""
        reference = (self.reference_file,) if self.reference_file else ()
        return (self.label_file, *self.onnx.files, *self.paddle.files, *self.tokenizer.files.values(), *reference)

    def head(self) -> Head:
        """Logits -> probabilities -> labels, as this export's task decides them."""
        return self.task.head(self.labels)

    def replace(self, **changes: Any) -> Manifest:
        return replace(self, **changes)

    # --- reading ------------------------------------------------------------------------------

    @classmethod
    def load(cls, export_dir: str | Path) -> Manifest:
        """Read and validate ``export_dir/manifest.json``."""
        path = Path(export_dir) / MANIFEST_FILE
        if not path.is_file():
            raise ManifestError(f"{path}: not found. Create the export with `tritoncls export --checkpoint CKPT "
                                f"--output {export_dir}`.")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise ManifestError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}). Re-run `tritoncls export`.") from None
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg}). Re-run `tritoncls export`.") from None
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: Any, where: str = MANIFEST_FILE) -> Manifest:
        r = _Reader(data, where)
        if r.get("format", str, None) != FORMAT:
            raise ManifestError(f"{where}: field 'format' is {data.get('format')!r}, expected {FORMAT!r}.")
        version = r.get("format_version", int, 1)
        if version > FORMAT_VERSION:
            raise ManifestError(f"{where}: format_version {version} is newer than this tritoncls supports "
                                f"({FORMAT_VERSION}); upgrade tritoncls.")
        labels = r.get("labels", list)
        if not labels or not all(isinstance(label, str) for label in labels):
            raise ManifestError(f"{where}: field 'labels' must be a non-empty list of strings.")
        architecture = r.get("architecture", dict)
        if architecture.get("num_labels", len(labels)) != len(labels):
            raise ManifestError(f"{where}: {len(labels)} labels but architecture.num_labels is "
                                f"{architecture.get('num_labels')}; re-export the model.")
        max_len = r.get("max_seq_length", int)
        if max_len < 3:
            raise ManifestError(f"{where}: field 'max_seq_length' is {max_len}; it must be at least 3 ([CLS] x [SEP]).")
        return cls(
            labels=tuple(labels), max_seq_length=max_len, tokenizer=TokenizerSpec.read(r.section("tokenizer")),
            architecture=dict(architecture), onnx=OnnxGraph.read(r.section("onnx")),
            paddle=PaddleGraph.read(r.section("paddle")), label_file=r.file_name("label_file"),
            precision=r.get("precision", str), source_checkpoint=r.get("source_checkpoint", str, ""),
            export_check=dict(r.get("export_check", dict, {})), versions=dict(r.get("versions", dict, {})),
            variant=r.get("variant", dict, None) or r.get("benchmark_variant", dict, None),
            task=_task(r, version, tuple(labels)),
            reference_file=r.file_name("reference_file") if data.get("reference_file") is not None else None,
            format_version=FORMAT_VERSION,
        )

    # --- writing ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        def graph(g: Graph, **files: Any) -> dict[str, Any]:
            return {**files, "inputs": [asdict(t) | {"shape": list(t.shape)} for t in g.inputs],
                    "outputs": [asdict(t) | {"shape": list(t.shape)} for t in g.outputs]}

        out: dict[str, Any] = {
            "format": FORMAT, "format_version": self.format_version, **self.task.to_dict(),
            "labels": list(self.labels), "label_file": self.label_file, "max_seq_length": self.max_seq_length,
            "precision": self.precision, "tokenizer": self.tokenizer.to_dict(), "architecture": dict(self.architecture),
            "onnx": graph(self.onnx, file=self.onnx.file, opset=self.onnx.opset),
            "paddle": graph(self.paddle, model_file=self.paddle.model_file, params_file=self.paddle.params_file),
            "source_checkpoint": self.source_checkpoint, "export_check": dict(self.export_check),
            "versions": dict(self.versions),
        }
        if self.variant is not None:
            out["variant"] = dict(self.variant)
        if self.reference_file:
            out["reference_file"] = self.reference_file
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"


def _task(r: _Reader, version: int, labels: tuple[str, ...]) -> TaskSpec:
    """The task fields: before format_version 3 only multi-class existed."""
    if version < 3:
        task = r.get("task", str, LEGACY_TASK)
        if task != LEGACY_TASK:
            raise ManifestError(f"{r.where}: field 'task' is {task!r} in a format_version {version} manifest, which "
                                f"knows only {LEGACY_TASK!r}. Re-run `tritoncls export`.")
        return TaskSpec()
    fields = {"task": r.get("task", str), "thresholds": r.get("thresholds", list, []),
              "hierarchy_separator": r.get("hierarchy_separator", str, "##")}
    try:
        spec = TaskSpec.from_dict(fields, r.where)
    except TaskError as exc:
        raise ManifestError(f"{exc}. Re-run `tritoncls export`.") from None
    try:
        spec.check(labels)
    except TaskError as exc:
        raise ManifestError(f"{r.where}: {exc}. Re-run `tritoncls export`.") from None
    return spec
