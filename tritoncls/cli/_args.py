"""argparse helpers every command shares: one flag name and one help text per concept.

A concept (a checkpoint read, an export read, the main output, a JSON report, a texts file, ...) has one
canonical flag across every command, written once here. Spellings a command used before (and the
PaddleNLP reference's names) stay as aliases: extra option strings on the same ``dest``, each also in
its dashed form (``--save_dir`` and ``--save-dir``). Commands build their config with
:func:`config_from_args`, so a flag's ``dest`` is the config field it fills.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any, TypeVar

from tritoncls.runtime.task import TASKS

Parser = argparse.ArgumentParser | argparse._ArgumentGroup
Config = TypeVar("Config")

DEFAULT_HELP = " (default: %(default)s)"

#: Training devices Paddle can run on; ``auto`` is resolved by ``resolve_device``.
DEVICE_CHOICES = ("auto", "cpu", "gpu", "xpu", "npu")

#: The words every command's ``--help`` uses for a shared concept, by ``dest``. A command may add a
#: detail after them (``CONCEPTS[dest]; detail``), never other words for the same thing.
CONCEPTS: dict[str, str] = {
    "checkpoint": "training checkpoint directory, written by `tritoncls train`",
    "model": "export directory, written by `tritoncls export` (holds manifest.json)",
    "output": "where this command writes its result",
    "report": "also write the report as JSON to this file",
    "input": "texts file, one text a line (UTF-8)",
    "device": "where to run",
    "dataset_dir": "dataset directory",
    "label_file": "label file name inside --dataset_dir",
    "train_file": "training file name inside --dataset_dir",
    "dev_file": "dev file name inside --dataset_dir",
    "data_file": "file of texts to classify inside --dataset_dir",
    "max_seq_length": "tokens per text after truncation, [CLS]/[SEP] included",
    "batch_size": "texts per batch",
    "epochs": "training epochs",
    "learning_rate": "peak AdamW learning rate",
    "weight_decay": "AdamW weight decay (not on biases and norms)",
    "logging_steps": "log the loss every this many steps",
    "seed": "random seed",
    "model_repository": "Triton model repository folder, written by `tritoncls build-repo`",
    "url": "server address HOST:PORT (gRPC 8001 or HTTP 8000 by default)",
    "protocol": "how to talk to the server",
    "name": "the ensemble's name",
    "concurrency": "requests in flight at once",
    "timeout_s": "per-request timeout in seconds",
    "instances": "model-step instances",
    "intra_op_threads": "threads inside an operator in the model step (0: one per physical core the server may run on)",
    "task": "what a line's label field holds: multi_class (one label), multi_label (label,label,... or nothing) or "
            "hierarchical (label paths level1##level2, every level listed)",
    "threshold": "one probability threshold for every label (multi_label, hierarchical), instead of the per-label "
                 "thresholds chosen on dev",
    "thresholds_file": "a label<TAB>threshold file (every label once; multi_label, hierarchical) instead of the "
                       "per-label thresholds chosen on dev",
}


def option_strings(name: str, *aliases: str) -> list[str]:
    """``--name`` and every alias, each with its dashed variant, without repeats, canonical first."""
    out: list[str] = []
    for spelling in (name, *aliases):
        for option in (f"--{spelling}", f"--{spelling.replace('_', '-')}"):
            if option not in out:
                out.append(option)
    return out


def flag(parser: Parser, name: str, *aliases: str, **kwargs: Any) -> argparse.Action:
    """Add ``--name`` (dest ``name``), its dashed alias and older spellings ``aliases`` on the same dest.

    The reference's flags use underscores (``--dataset_dir``); dashes are the CLI convention. Both work.
    """
    if "help" in kwargs and kwargs.get("default") is not None and kwargs.get("action") not in (
            "store_true", "store_false"):
        kwargs["help"] += DEFAULT_HELP
    kwargs.setdefault("dest", name)
    return parser.add_argument(*option_strings(name, *aliases), **kwargs)


def shared(parser: Parser, name: str, *aliases: str, detail: str = "", **kwargs: Any) -> argparse.Action:
    """Add a shared concept's flag with the help words of :data:`CONCEPTS` (plus a command's ``detail``)."""
    text = CONCEPTS[name] + (f"; {detail}" if detail else "")
    return flag(parser, name, *aliases, help=text, **kwargs)


def add_checkpoint(parser: Parser, *aliases: str, detail: str = "", **kwargs: Any) -> argparse.Action:
    """``--checkpoint``: a training checkpoint directory the command reads."""
    kwargs.setdefault("default", "./checkpoint")
    return shared(parser, "checkpoint", *aliases, detail=detail, **kwargs)


def add_model(parser: Parser, *aliases: str, detail: str = "", **kwargs: Any) -> argparse.Action:
    """``--model``: an export directory the command reads."""
    return shared(parser, "model", *aliases, detail=detail, **kwargs)


def add_output(parser: Parser, what: str, *aliases: str, **kwargs: Any) -> argparse.Action:
    """``--output``: where the command writes its main result, described by ``what``."""
    return shared(parser, "output", *aliases, detail=what, **kwargs)


def add_report(parser: Parser, *aliases: str, detail: str = "") -> argparse.Action:
    """``--report``: an optional JSON report file."""
    return shared(parser, "report", *aliases, detail=detail, default=None)


def add_input(parser: Parser, *aliases: str, detail: str = "", **kwargs: Any) -> argparse.Action:
    """``--input``: a file of texts the command reads."""
    return shared(parser, "input", *aliases, detail=detail, **kwargs)


def add_device(parser: Parser) -> argparse.Action:
    """``--device`` of the Paddle commands (train, evaluate, predict, prune)."""
    return shared(parser, "device", detail="'auto' picks gpu when this Paddle build has CUDA and a GPU, else cpu",
                  default="auto", choices=DEVICE_CHOICES)


def add_dataset(parser: Parser, *, required: bool = True, files: tuple[str, ...] = ("train", "dev"),
                holds: str = "train.txt, dev.txt and label.txt") -> None:
    """``--dataset_dir`` and the file names inside it (``--label_file`` and ``--<f>_file`` for ``files``)."""
    detail = f"holds {holds}" + ("" if required else " (see the description for when it is needed)")
    shared(parser, "dataset_dir", detail=detail, required=required, default=None)
    shared(parser, "label_file", default="label.txt")
    for name in files:
        shared(parser, f"{name}_file", default=f"{name}.txt")


def add_max_seq_length(parser: Parser, detail: str = "", default: int | None = 128) -> argparse.Action:
    """``--max_seq_length``."""
    return shared(parser, "max_seq_length", detail=detail, type=int, default=default)


def add_batch_size(parser: Parser, detail: str, *aliases: str, default: int = 32) -> argparse.Action:
    """``--batch_size``, with what one batch is for this command."""
    return shared(parser, "batch_size", *aliases, detail=detail, type=int, default=default)


def add_optimizer(parser: Parser, *, epochs_aliases: tuple[str, ...] = (), epochs_detail: str = "") -> None:
    """Learning rate, weight decay, epochs, logging and seed of the commands that train (train, prune)."""
    shared(parser, "learning_rate", type=float, default=3e-5)
    shared(parser, "weight_decay", type=float, default=0.0)
    shared(parser, "epochs", *epochs_aliases, detail=epochs_detail, type=int, default=10)
    shared(parser, "logging_steps", type=int, default=5)
    shared(parser, "seed", type=int, default=3)


def add_task(parser: Parser, detail: str = "") -> argparse.Action:
    """``--task`` of the commands that read labeled data without a checkpoint (train, analyze)."""
    return shared(parser, "task", detail=detail, default="multi_class",
                  choices=TASKS)


def add_thresholds(parser: Parser, detail: str = "") -> None:
    """``--threshold`` and ``--thresholds_file``: a multi-label model's thresholds, overriding those chosen on dev."""
    shared(parser, "threshold", detail=detail, type=float, default=None)
    shared(parser, "thresholds_file", detail=detail, default=None)


def add_client(parser: Parser, *, concurrency: int, timeout_s: float) -> None:
    """Protocol, ensemble name, concurrency and timeout of the commands that send requests (classify, soak)."""
    shared(parser, "protocol", default="grpc", choices=("grpc", "http"))
    shared(parser, "name", "model_name", detail="as given to build-repo --name", default="seqcls")
    shared(parser, "concurrency", type=int, default=concurrency)
    shared(parser, "timeout_s", type=float, default=timeout_s)


class _Replaced(argparse.Action):
    """An option some newer spelling or command replaced (``new`` says which)."""

    def __init__(self, option_strings: list[str], dest: str, new: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.new = new


class DeprecatedAlias(_Replaced):
    """An older spelling that still works and says, on stderr, which flag replaces it (``why``: what else it means)."""

    def __init__(self, option_strings: list[str], dest: str, new: str, why: str = "", **kwargs: Any) -> None:
        super().__init__(option_strings, dest, new, **kwargs)
        self.why = why

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        why = f" ({self.why})" if self.why else ""
        print(f"{parser.prog}: {option_string} is deprecated here{why}; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


class MovedTo(_Replaced):
    """An option whose other values became another command: those stop with a usage error saying where they went
    (``new``); the values in ``keeps`` still work."""

    def __init__(self, option_strings: list[str], dest: str, new: str, keeps: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(option_strings, dest, new, **kwargs)
        self.keeps = keeps

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        if values not in self.keeps:
            parser.error(f"{option_string} {values}: {self.new}")
        setattr(namespace, self.dest, values)


def config_from_args(cls: type[Config], args: argparse.Namespace, **extra: Any) -> Config:
    """Build dataclass ``cls`` from the ``args`` attributes named like its fields, in one call.

    Fields without a same-named attribute keep their defaults; ``extra`` sets values derived from the
    options (a resolved device, a tuple from a list, a flag inverted).
    """
    fields = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = set(extra) - fields
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    values = {name: getattr(args, name) for name in fields if hasattr(args, name)}
    return cls(**(values | extra))


EXPLICIT = "explicit_flags"  # the Namespace attribute track_explicit fills


def track_explicit(parser: argparse.ArgumentParser) -> None:
    """Record in ``args.explicit_flags`` the dest of every option given on the command line, so a
    value read from a file can yield to a flag even when the flag repeats the default."""
    for action in parser._actions:
        if action.dest not in (argparse.SUPPRESS, "help") and action.option_strings:
            action.__class__ = _recording(type(action))


def explicit_flags(args: argparse.Namespace) -> set[str]:
    """The dests set on the command line of a parser passed to :func:`track_explicit`."""
    return set(getattr(args, EXPLICIT, ()))


_RECORDING: dict[type, type] = {}


def _recording(kind: type) -> type:
    if kind not in _RECORDING:
        def call(self, parser, namespace, values, option_string=None):  # noqa: ANN001 - argparse's signature
            setattr(namespace, EXPLICIT, explicit_flags(namespace) | {self.dest})
            return kind.__call__(self, parser, namespace, values, option_string)

        _RECORDING[kind] = type(f"Recording{kind.__name__}", (kind,), {"__call__": call})
    return _RECORDING[kind]
