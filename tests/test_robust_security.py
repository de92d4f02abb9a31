"""Security defaults: ``serve`` listens on 127.0.0.1 unless told otherwise; nothing evaluates request
content; the served repository never unpickles; the docs say that checkpoints load with pickle."""

from __future__ import annotations

import ipaddress
import re
import socket
from pathlib import Path

import pytest

from tests.support import ServeProcess, write_tiny_export
from tritoncls.builder import BuildConfig, build_repository
from tritoncls.server import TritonServer, find_tritonserver

PACKAGE = Path(__file__).resolve().parents[1] / "tritoncls"
DOCS = Path(__file__).resolve().parents[1] / "docs"
#: A call of the builtins, not a method such as ``model.eval()``.
EVAL_OR_EXEC = re.compile(r"(?<![\w.])(eval|exec)\s*\(")


def python_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.py"))


def test_no_eval_or_exec_anywhere_in_the_package():
    offenders = [f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}"
                 for path in python_files(PACKAGE)
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
                 if EVAL_OR_EXEC.search(line.split("#")[0])]
    assert python_files(PACKAGE) and not offenders, "\n".join(offenders)


def test_served_code_never_unpickles_or_imports_tritoncls():
    served = [*python_files(PACKAGE / "runtime"), *python_files(PACKAGE / "model_repository_templates")]
    for path in served:
        text = path.read_text(encoding="utf-8")
        for forbidden in ("pickle", "allow_pickle", "paddle.load(", "marshal", "shell=True"):
            assert forbidden not in text, f"{path}: {forbidden}"


def test_serve_binds_localhost_by_default_and_only_when_asked_anything_else(tmp_path):
    from tritoncls.cli import build_parser

    args = build_parser().parse_args(["serve", "--model-repository", str(tmp_path)])
    assert args.host == "127.0.0.1"
    assert TritonServer(tmp_path).host == "127.0.0.1"
    exposed = TritonServer(tmp_path, host="0.0.0.0", grpc_port=1, http_port=2, metrics_port=3).command(find_tritonserver())
    assert {"--grpc-address=0.0.0.0", "--http-address=0.0.0.0", "--metrics-address=0.0.0.0"} <= set(exposed)


def _outward_address() -> str | None:
    """This machine's address on its default route, if it has one (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed anywhere real
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if ipaddress.ip_address(address).is_loopback else address


@pytest.mark.triton
def test_a_running_tritoncls_serve_listens_on_loopback_only(tmp_path):
    import psutil

    export = write_tiny_export(tmp_path / "export")
    repo = build_repository(BuildConfig(model=str(export), output=str(tmp_path / "repo")))
    serve = ServeProcess(repo, tmp_path / "serve.log")
    try:
        serve.wait_ready()
        root = psutil.Process(serve.process.pid)
        listening = [(c.laddr.ip, c.laddr.port) for p in [root, *root.children(recursive=True)]
                     for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        assert len(listening) >= 3, listening  # gRPC, HTTP, metrics
        for ip, _ in listening:
            assert ipaddress.ip_address(ip.removeprefix("::ffff:")).is_loopback, f"listening on {ip}"
        outward = _outward_address()
        if outward:
            for _, port in listening:
                with pytest.raises(OSError):
                    socket.create_connection((outward, port), timeout=2).close()
    finally:
        assert serve.interrupt() == 0


def test_docs_say_checkpoints_load_with_pickle_and_how_to_stay_safe():
    robustness = (DOCS / "robustness.md").read_text(encoding="utf-8")
    assert robustness.count("Security\n") == 1, "one Security section"
    start = robustness.index("## 6. Security")
    section = robustness[start:robustness.index("\n## ", start + 1)]
    for needle in ("pickle", "paddle.load", "trust", "127.0.0.1", "--host 0.0.0.0"):
        assert needle in section, needle
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    assert "unpickles" in readme
