"""The package's layers: which part of tritoncls may import which (docs/architecture.md draws it).

The runtime imports nothing of tritoncls (it is copied into model repositories); shared layers
(common, modeling) import only layers below them; no stage imports another stage. Orchestrators
(the measuring primitives in measure, bench, tune, soak, doctor, the CLI, the demo) drive stages and may import them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tritoncls"
BASE = {"__init__", "errors"}  # the version string and the exception root
RUNTIME = {"runtime"}
COMMON = BASE | RUNTIME | {"common"}
MODELING = COMMON | {"modeling"}
STAGES = ("training", "prune", "builder", "server", "clients", "deploy")

#: part -> the parts it may import (itself always).
ALLOWED: dict[str, set[str]] = {
    "__init__": set(),
    "errors": RUNTIME,  # names the runtime's exception root beside its own (USER_ERRORS)
    "runtime": set(),
    "model_repository_templates": set(),
    "common": BASE | RUNTIME,
    "modeling": COMMON,
    "training": MODELING,
    "prune": MODELING,
    "builder": COMMON,
    "server": COMMON,
    "clients": COMMON,
    "deploy": COMMON,
    "deploy_templates": set(),
    "measure": MODELING | {"builder", "server", "clients"},  # the measuring primitives
    "benchmarks": MODELING | {"builder", "server", "clients", "measure"},  # bench and bench-gpu
    "tune": MODELING | {"builder", "server", "clients", "measure"},
    "compress": MODELING | {"prune", "builder", "server", "clients", "measure"},  # prune + measured search
    "soak": MODELING | {"builder", "server", "clients", "measure"},
    "doctor": COMMON | {"server", "measure"},
    "monitor": COMMON,  # reads a server's counters over HTTP; drives no stage
    "cli_common": BASE,
    "cli": MODELING | {"cli_common", "measure", "benchmarks", "tune", "compress", "soak", "doctor", "monitor", *STAGES},
    "demo": MODELING | {"cli_common", *STAGES},
}


def part_of(path: Path) -> str:
    """``tritoncls/<part>/...`` or ``tritoncls/<part>.py`` -> ``part``."""
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py") if len(relative.parts) > 1 or path.name != "__init__.py" else "__init__"


def imported_parts(path: Path) -> set[str]:
    """The parts of tritoncls that ``path`` imports (relative imports stay inside its part)."""
    names = {p.name.removesuffix(".py") for p in PACKAGE.iterdir() if p.suffix == ".py" or p.is_dir()}
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module] if node.module != "tritoncls" else [f"tritoncls.{a.name}" for a in node.names]
        else:
            continue
        for module in modules:
            parts = module.split(".")
            if parts[0] == "tritoncls":
                found.add(parts[1] if len(parts) > 1 and parts[1] in names else "__init__")
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_part_of_the_package_has_a_layer():
    parts = {part_of(path) for path in SOURCES}
    assert parts <= set(ALLOWED), f"add {sorted(parts - set(ALLOWED))} to ALLOWED (and to docs/architecture.md)"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_the_layers_its_part_may_use(path):
    part = part_of(path)
    bad = imported_parts(path) - ALLOWED.get(part, set()) - {part}
    assert not bad, f"{path.relative_to(PACKAGE)} ({part}) imports {sorted(bad)}; allowed: {sorted(ALLOWED.get(part, set()))}"


def test_no_stage_may_import_another_stage():
    for stage in STAGES:
        assert not ALLOWED[stage] & (set(STAGES) - {stage}), stage


def test_the_runtime_imports_nothing_of_tritoncls():
    for path in (PACKAGE / "runtime").rglob("*.py"):
        assert imported_parts(path) == set(), path


def test_no_two_modules_of_the_package_import_each_other():
    """A cycle hidden by imports inside functions (or under ``if TYPE_CHECKING:``) is still a cycle: every
    import counts here."""
    def imports(path: Path) -> set[str]:
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("tritoncls."):
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("tritoncls.")}
        return found

    modules = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts): p for p in SOURCES}
    edges = {name: imports(path) & set(modules) for name, path in modules.items()}
    cycles = sorted(f"{a} <-> {b}" for a, targets in edges.items() for b in targets if a < b and a in edges.get(b, ()))
    assert not cycles, cycles
