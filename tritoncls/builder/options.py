"""Build-options files (``tune.json`` from ``tritoncls tune``, ``compress.json`` from ``tritoncls compress``): read,
checked, applied under flags.

``build-repo --options FILE`` takes each option of the file's ``build_options`` unless the command
line sets it: explicit flags win. The file also says which machine measured the options, and
``tritoncls_build.json`` repeats that, so a repository says where its settings came from.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tritoncls.builder.config import BuildConfig
from tritoncls.errors import ConfigError

FORMAT = "tritoncls-build-options"
FORMAT_VERSION = 1
#: BuildConfig fields an options file may not set: where to read and write, and whether to replace.
NOT_OPTIONS = frozenset({"model", "output", "force", "options_file"})
TUPLE_FIELDS = frozenset({"buckets", "preferred_batch_sizes"})


@dataclasses.dataclass(frozen=True)
class OptionsFile:
    """A read options file: the build options and what measured them."""

    path: Path
    build_options: dict[str, Any]
    measured_on: dict[str, Any]


def option_names() -> list[str]:
    return [f.name for f in dataclasses.fields(BuildConfig) if f.name not in NOT_OPTIONS]


def write_options(path: Path, build_options: Mapping[str, Any], measured_on: Mapping[str, Any],
                  extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``build_options`` (BuildConfig field names) with the machine that measured them."""
    check_options(path, build_options)
    record = {"format": FORMAT, "format_version": FORMAT_VERSION,
              "build_options": {k: list(v) if isinstance(v, tuple) else v for k, v in build_options.items()},
              "measured_on": dict(measured_on), **(extra or {})}
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_options(path: str | Path) -> OptionsFile:
    """The options file at ``path``, every key checked against build-repo's options."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--options {path}: not found; pass the tune.json that `tritoncls tune` wrote.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--options {path}: cannot be read as JSON ({exc}); re-run `tritoncls tune`.") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ConfigError(f"--options {path}: field 'format' is not {FORMAT!r}; pass the tune.json that "
                          f"`tritoncls tune` wrote.")
    options = record.get("build_options")
    if not isinstance(options, dict):
        raise ConfigError(f"--options {path}: field 'build_options' must be an object of build-repo options.")
    check_options(path, options)
    options = {k: tuple(v) if k in TUPLE_FIELDS else v for k, v in options.items()}
    return OptionsFile(path, options, dict(record.get("measured_on") or {}))


def check_options(path: Path, options: Mapping[str, Any]) -> None:
    unknown = sorted(set(options) - set(option_names()))
    if unknown:
        raise ConfigError(f"--options {path}: build_options {unknown} are not build-repo options (known: "
                          f"{', '.join(option_names())}); the file comes from another tritoncls version: re-run tune.")


def apply_options(values: Mapping[str, Any], options: OptionsFile, explicit: Iterable[str]) -> dict[str, Any]:
    """``values`` (BuildConfig keyword arguments) with the file's options where no flag was given."""
    explicit = set(explicit)
    taken = {k: v for k, v in options.build_options.items() if k not in explicit}
    return dict(values) | taken | {"options_file": str(options.path)}


def provenance(config: BuildConfig) -> dict[str, Any] | None:
    """For ``tritoncls_build.json``: the options file, the options it set, the machine that measured them."""
    if not config.options_file:
        return None
    options = read_options(config.options_file)
    resolved = config.to_dict()
    applied = sorted(k for k, v in options.build_options.items() if _same(resolved.get(k), v))
    overridden = sorted(set(options.build_options) - set(applied))
    return {"path": str(Path(config.options_file).resolve()), "applied": applied, "overridden_by_flags": overridden,
            "measured_on": options.measured_on,
            "note": "these options were measured (by `tritoncls tune` or `tritoncls compress`) on the machine in measured_on "
                    "(its usable cores from os.sched_getaffinity); re-run tune on a serving machine with other cores"}


def _same(a: Any, b: Any) -> bool:
    return (list(a) if isinstance(a, tuple) else a) == (list(b) if isinstance(b, tuple) else b)
