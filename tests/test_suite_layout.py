"""The test suite's own rules: fixtures live in conftest.py, nothing imports conftest or another test
module, and a test not marked slow neither trains nor exports with Paddle nor starts tritonserver."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support import TrainingOutsideSlowError, must_be_slow

TESTS = Path(__file__).resolve().parent
FIXTURE = re.compile(r"^@pytest\.fixture\b", re.MULTILINE)
FORBIDDEN_IMPORT = re.compile(r"^\s*(from|import)\s+tests\.(conftest|test_\w+)\b", re.MULTILINE)


def modules_besides_conftest() -> list[Path]:
    return [path for path in sorted(TESTS.glob("*.py")) if path.name != "conftest.py"]


def test_no_module_but_conftest_defines_a_fixture():
    offenders = [path.name for path in modules_besides_conftest() if FIXTURE.search(path.read_text(encoding="utf-8"))]
    assert modules_besides_conftest() and not offenders, f"move the fixtures of {offenders} to tests/conftest.py"


def test_no_module_imports_conftest_or_another_test_module():
    offenders = [f"{path.name}: {match.group(0).strip()}" for path in sorted(TESTS.glob("*.py"))
                 for match in FORBIDDEN_IMPORT.finditer(path.read_text(encoding="utf-8"))]
    assert not offenders, "import helpers from tests.support instead: " + "; ".join(offenders)


def test_every_collected_test_that_trains_or_starts_tritonserver_is_marked_slow(request):
    unmarked = [item.nodeid for item in request.session.items
                if must_be_slow(item) and item.get_closest_marker("slow") is None]
    assert not unmarked, unmarked


def test_a_test_not_marked_slow_cannot_create_a_paddle_optimizer_or_save_a_static_graph(tmp_path):
    import paddle

    layer = paddle.nn.Linear(2, 2)
    with pytest.raises(TrainingOutsideSlowError, match="test_suite_layout.py::.* is not marked slow"):
        paddle.optimizer.AdamW(parameters=layer.parameters())
    with pytest.raises(TrainingOutsideSlowError, match="is not marked slow"):
        paddle.optimizer.SGD(parameters=layer.parameters())
    with pytest.raises(TrainingOutsideSlowError, match="is not marked slow"):
        paddle.jit.save(layer, str(tmp_path / "layer"))
