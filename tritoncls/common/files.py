"""Files that are whole or absent: every write a reader may see half-done goes through here.

One design for all of them: write to a temporary name in the same folder, fsync it, rename it
over the target, fsync the folder. Folders (checkpoints, exports) swap whole: see
:mod:`tritoncls.modeling.checkpoint`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any, TypeVar

from tritoncls.errors import TritonclsError


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (renames, new files) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file under ``root``, then ``root`` itself."""
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    fsync_dir(root)


def produce_file(target: str | Path, produce: Callable[[Path], Any]) -> Path:
    """``produce(tmp)`` writes a file beside ``target`` (same suffix), which is then fsynced and renamed
    to ``target``: nothing is at ``target`` until it is whole, e.g. a converted model."""
    target = Path(target)
    tmp = target.with_name(f".{target.stem}.tmp-{os.getpid()}{target.suffix}")
    try:
        produce(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(target.parent)
    return target


def write_with(path: str | Path, write: Callable[[IO[str]], None]) -> Path:
    """Call ``write(handle)`` on a temporary text file beside ``path``, then put it at ``path`` atomically."""
    def produce(tmp: Path) -> None:
        with tmp.open("w", encoding="utf-8", newline="\n") as handle:
            write(handle)

    return produce_file(path, produce)


def write_text(path: str | Path, text: str) -> Path:
    """``text`` at ``path``, whole or not at all."""
    return write_with(path, lambda handle: handle.write(text))


def write_json(path: str | Path, data: Any) -> Path:
    """``data`` as indented UTF-8 JSON at ``path``, whole or not at all."""
    return write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def concatenate(path: str | Path, header: str, parts: Iterable[Path]) -> Path:
    """``header`` then each part's bytes, in order, at ``path``, whole or not at all."""
    def write(out: IO[str]) -> None:
        out.write(header + "\n")
        for part in parts:
            with part.open(encoding="utf-8", newline="") as handle:
                shutil.copyfileobj(handle, out)

    return write_with(path, write)


T = TypeVar("T")


def check_replaceable(target: Path, marker: str, force: bool, error: type[TritonclsError], *,
                      not_ours: str, existing: str) -> None:
    """Refuse to touch an existing output unless ``force``, and never replace a folder without ``marker``
    (one that this kind of writer did not make). ``not_ours`` and ``existing`` finish the two messages."""
    if not target.exists() or (target.is_dir() and not any(target.iterdir())):
        return
    if not target.is_dir():
        raise error(f"{target}: exists and is a file; choose another --output.")
    if not (target / marker).is_file():
        raise error(f"{target}: exists, is not empty and {not_ours} (no {marker}); refusing to replace it. "
                    f"Choose another --output or empty it yourself.")
    if not force:
        raise error(f"{target}: {existing} already exists there; pass --force to replace it.")


def stage_folder(target: Path, fill: Callable[[Path], T], label: str = "writing") -> T:
    """``fill(staging)`` in a temporary folder beside ``target``; then the folder is swapped into place (an
    old one is removed only after the move). Anything ``fill`` raises leaves nothing behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.{label}-", dir=target.parent))
    try:
        result = fill(staging)
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            target.replace(old / target.name)
        staging.replace(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return result


def read_json(path: Path, error: type[TritonclsError] = TritonclsError) -> Any:
    """Parsed JSON; a missing or malformed file raises ``error`` naming the file (and line)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: file not found.") from None
    except json.JSONDecodeError as exc:
        raise error(f"{path}:{exc.lineno}: invalid JSON ({exc.msg}).") from None
