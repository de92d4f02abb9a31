"""Files that are whole or absent: every write a reader may see half-done goes through here.

One design for all of them: write to a temporary name in the same folder, fsync it, rename it
over the target, fsync the folder. Folders (checkpoints, exports) swap whole: see
:mod:`tritoncls.modeling.checkpoint`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

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


def write_with(path: str | Path, write: Callable[[IO[str]], None]) -> Path:
    """Call ``write(handle)`` on a temporary file beside ``path``, then put it at ``path`` atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("w", encoding="utf-8", newline="\n") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return path


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


def replace_file(source: Path, target: Path, produce: Callable[[Path, Path], Any]) -> Path:
    """``produce(source, tmp)`` writes a file, which is then put at ``target`` atomically (e.g. a
    converted model: nothing at ``target`` until the conversion finished)."""
    tmp = target.with_name(f".{target.stem}.tmp-{os.getpid()}{target.suffix}")
    try:
        produce(source, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(target.parent)
    return target


def read_json(path: Path, error: type[TritonclsError] = TritonclsError) -> Any:
    """Parsed JSON; a missing or malformed file raises ``error`` naming the file (and line)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: file not found.") from None
    except json.JSONDecodeError as exc:
        raise error(f"{path}:{exc.lineno}: invalid JSON ({exc.msg}).") from None
