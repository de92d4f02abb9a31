"""``tritoncls doctor``: each check answers with the code serve and bench use, and names the fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tritoncls import doctor
from tritoncls.cli import main

NAMES = ["python", "numpy", "tritonserver", "python-backend stub", "perf_analyzer", "onnxruntime", "stub imports",
         "gpu"]


def _bundled() -> bool:
    return doctor._bundled_server()


def test_this_environment_passes_every_check(capsys):
    assert main(["doctor"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line[6:].split("  ")[0].strip() for line in lines if not line.lstrip().startswith("fix:")]
    assert names == (NAMES if _bundled() else [n for n in NAMES if n != "python-backend stub"])
    assert not any(line.startswith("FAIL") for line in lines)


def test_numpy_2_fails_with_the_fix(monkeypatch, capsys):
    if not _bundled():
        pytest.skip("tritonserver on PATH brings its own python backend")
    monkeypatch.setattr(doctor.importlib.metadata, "version", lambda name: "2.1.0" if name == "numpy" else "0")
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  numpy" in out and "pip install 'numpy<2'" in out


def test_packages_on_pythonpath_that_the_stub_will_not_see_are_named(tmp_path, monkeypatch):
    shadow = tmp_path / "shadow" / "onnxruntime"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("", encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(shadow.parent), os.environ.get("PYTHONPATH", "")]))
    check = doctor.stub_imports_check()
    assert check.status == doctor.WARN and str(shadow.parent) in check.detail and "ignores it" in check.fix


def test_numpy_2_where_the_stub_imports_from_fails(monkeypatch):
    if not _bundled():
        pytest.skip("tritonserver on PATH brings its own python backend")
    seen = iter([["/a/onnxruntime/__init__.py", "/a/numpy/__init__.py", "1.26.4"],
                 ["/b/onnxruntime/__init__.py", "/b/numpy/__init__.py", "2.5.2"]])
    monkeypatch.setattr(doctor, "_imports", lambda env: next(seen))
    check = doctor.stub_imports_check()
    assert check.status == doctor.FAIL and "numpy is 2.5.2 from /b" in check.detail and "numpy<2" in check.fix


def test_a_missing_repository_fails_and_fixes_print_only_for_problems(tmp_path, capsys):
    assert main(["doctor", "--model_repository", str(tmp_path / "nope")]) == 1
    out = capsys.readouterr().out
    assert "FAIL  repository" in out and "fix: build one with `tritoncls build-repo`" in out
    rendered = doctor.render([doctor.Check("a", doctor.OK, "fine", "never shown"), doctor.Check("b", doctor.WARN, "x", "do y")])
    assert rendered.splitlines() == ["  ok  a  fine", "warn  b  x", "         fix: do y"]


def test_a_repository_checks_against_this_onnxruntime(tiny_repo):
    check = doctor.repository_check(Path(tiny_repo))
    assert check.status == doctor.OK
