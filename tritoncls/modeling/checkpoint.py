"""Checkpoints that are whole or absent: written aside, then swapped into place atomically.

A checkpoint directory holds the model config and weights, the tokenizer files, ``label.txt``,
``task.json`` (the task and, for multi-label and hierarchical tasks, the thresholds chosen on dev),
the resolved training config and the training state. :func:`write_checkpoint` fills a sibling
temporary directory, fsyncs it, and swaps it with the target in one ``renameat2(RENAME_EXCHANGE)``
call (Linux). Where that call is missing it falls back to two renames and leaves a
``<name>.previous`` directory that :func:`resolve_checkpoint` recovers from. A reader therefore
never sees a half-written checkpoint: ``COMPLETE`` is the last file written, and a directory
without it is refused, as is a staging directory (``.<name>.writing-<pid>-*``) passed by hand.
A writer killed mid-way leaves its staging directory behind; the next write to the same target
removes those whose process is gone.
"""

from __future__ import annotations

import ctypes
import glob
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from tritoncls.common import files
from tritoncls.common.files import fsync_dir, fsync_tree
from tritoncls.errors import ModelError
from tritoncls.runtime import TaskError, TaskSpec
from tritoncls.runtime.contract import LABEL_FILE

COMPLETE_MARKER = "COMPLETE"
TASK_FILE = "task.json"  # the checkpoint's task (absent: a multi-class checkpoint)
_STAGING = re.compile(r"^\.(?P<name>.+)\.writing-(?:(?P<pid>\d+)-)?[^.]*$")
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths; False where the kernel or libc lacks renameat2."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return result == 0


def write_checkpoint(target: str | Path, fill: Callable[[Path], None]) -> Path:
    """Call ``fill(tmpdir)`` to write a checkpoint, then atomically put it at ``target``."""
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.writing-{os.getpid()}-", dir=target.parent))
    try:
        fill(staging)
        (staging / COMPLETE_MARKER).write_text("ok\n", encoding="utf-8")
        fsync_tree(staging)
        _install(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    fsync_dir(target.parent)
    return target


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def remove_stale_staging(target: Path) -> list[Path]:
    """Delete staging directories of ``target`` left by writers that were killed (their pid is gone).

    Each can hold a whole model and its optimizer state, so repeated crashes would fill the disk.
    """
    removed = []
    for path in target.parent.glob(f".{glob.escape(target.name)}.writing-*"):
        match = _STAGING.match(path.name)
        if match and match["name"] == target.name and match["pid"] and not _pid_alive(int(match["pid"])):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _install(staging: Path, target: Path) -> None:
    if not target.exists():
        os.rename(staging, target)
        return
    if _exchange(staging, target):
        return  # ``staging`` now holds the old checkpoint and is removed by the caller
    previous = target.with_name(target.name + ".previous")
    if previous.exists():
        shutil.rmtree(previous)
    os.rename(target, previous)
    os.rename(staging, target)
    shutil.rmtree(previous, ignore_errors=True)


def is_complete(directory: Path) -> bool:
    return (directory / COMPLETE_MARKER).is_file()


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint directory to load for ``path`` (a directory or a ``.pdparams`` file inside one).

    Refuses a directory that a crash left half-written, and falls back to ``<name>.previous`` when a
    crash hit the two-rename fallback between its renames.
    """
    path = Path(path)
    directory = path.parent if path.suffix == ".pdparams" else path
    if _STAGING.match(directory.name):
        raise ModelError(f"{directory}: a checkpoint being written (or left by a writer that was killed), not a "
                         f"checkpoint. Pass the directory it was written for ({directory.parent / _STAGING.match(directory.name)['name']}).")
    if directory.is_dir() and is_complete(directory):
        return directory
    previous = directory.with_name(directory.name + ".previous")
    if previous.is_dir() and is_complete(previous):
        return previous
    if directory.is_dir() and (directory / "model_state.pdparams").is_file():
        if (directory / "training_config.json").is_file():
            raise ModelError(
                f"{directory}: checkpoint is incomplete (no {COMPLETE_MARKER} marker): it was being "
                f"written when the run stopped. Use an earlier checkpoint, or retrain."
            )
        return directory  # a plain PaddleNLP checkpoint, written by other tools
    raise ModelError(
        f"{path}: no checkpoint found. Pass the directory that `tritoncls train --output` wrote "
        f"(it holds model_state.pdparams, config.json and vocab.txt)."
    )


def write_labels(directory: Path, labels: list[str]) -> Path:
    """The checkpoint's (or export's) ``label.txt``: one label a line, in logit order."""
    path = directory / LABEL_FILE
    path.write_text("\n".join(labels) + "\n", encoding="utf-8")
    return path


def saved_labels(directory: Path) -> list[str] | None:
    """The labels a checkpoint was trained with, or None where it has no ``label.txt``."""
    from tritoncls.common.data import read_labels

    path = directory / LABEL_FILE
    return read_labels(path) if path.is_file() else None


def read_json(path: Path) -> dict:
    return files.read_json(path, ModelError)


def write_json(path: Path, data: dict) -> None:
    files.write_json(path, data)


def write_task(directory: Path, task: TaskSpec, **provenance: object) -> Path:
    """The checkpoint's ``task.json``: the task spec and how its thresholds were chosen."""
    path = directory / TASK_FILE
    write_json(path, task.to_dict() | provenance)
    return path


def saved_task(directory: Path, labels: list[str] | None = None) -> TaskSpec:
    """The task a checkpoint was trained for (multi-class where it has no ``task.json``), checked against
    ``labels`` where given."""
    path = directory / TASK_FILE
    if not path.is_file():
        return TaskSpec()
    try:
        task = TaskSpec.from_dict(read_json(path), str(path))
        if labels is not None:
            task.check(labels)
    except TaskError as exc:
        raise ModelError(f"{exc} ({path}); retrain, or fix the file.") from None
    return task


def saved_metric(directory: Path) -> str | None:
    """The metric a label-set checkpoint's best epoch and thresholds were chosen by (``task.json``), if any."""
    path = directory / TASK_FILE
    return read_json(path).get("metric") if path.is_file() else None
