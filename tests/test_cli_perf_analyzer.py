"""``tritoncls perf-analyzer ARGS...``: the installed perf_analyzer, arguments untouched, libraries found."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from tritoncls.cli import build_parser, main, split_pass_through
from tritoncls.cli.perf_analyzer import command
from tritoncls.measure import perf_analyzer as pa

ARGS = ["-m", "seqcls", "-u", "127.0.0.1:8001", "-i", "grpc", "--string-data", "héllo wörld", "--concurrency-range",
        "1:4", "-v", "--help", "--", "-x"]


def tritoncls(*args: str) -> subprocess.CompletedProcess:
    """``tritoncls ARGS`` in a subprocess (perf-analyzer replaces its process)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                      os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "tritoncls.cli", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def fake_environment(tmp_path: Path, monkeypatch, binary: bool) -> None:
    """This Python seen in an empty ``bin/`` (with a perf_analyzer file or not) and nothing on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if binary:
        (bin_dir / "perf_analyzer").write_text("not a program\n", encoding="utf-8")  # never executable
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    monkeypatch.setenv("PATH", str(bin_dir))


def test_every_argument_after_the_command_name_is_passed_through_untouched():
    assert split_pass_through(["-v", "perf-analyzer", *ARGS]) == (["-v", "perf-analyzer"], ARGS)
    assert split_pass_through(["perf-analyzer"]) == (["perf-analyzer"], [])
    assert split_pass_through(["serve", "--help"]) == (["serve", "--help"], None)
    assert split_pass_through(["--version"]) == (["--version"], None)
    assert build_parser().parse_args(["perf-analyzer"]).args == []


def test_the_binary_runs_with_cuda_runtimes_lib_folder_first_on_the_library_path(perf_analyzer_ready):
    binary, argv, env = command(ARGS)
    assert argv == [binary, *ARGS] and Path(binary).is_file()
    cudart = pa.cuda_runtime_lib_dir()
    if cudart is not None:
        assert env["LD_LIBRARY_PATH"].split(os.pathsep)[0] == str(cudart)


def test_version_runs_the_real_binary_and_exits_zero(perf_analyzer_ready):
    done = tritoncls("perf-analyzer", "--version")
    assert done.returncode == 0, done.stderr
    assert "Perf Analyzer Version" in done.stdout + done.stderr
    print(f"\n{(done.stdout + done.stderr).strip()}")


def test_help_is_perf_analyzers_own_with_its_own_exit_status(perf_analyzer_ready):
    done = tritoncls("perf-analyzer", "--help")
    direct = subprocess.run([str(perf_analyzer_ready.binary), "--help"], capture_output=True, text=True,
                            env=perf_analyzer_ready.env, timeout=60)
    assert "SYNOPSIS" in done.stdout + done.stderr and "usage: tritoncls" not in done.stdout + done.stderr
    assert done.returncode == direct.returncode  # 2.51 answers --help with its synopsis and status 99


def test_a_missing_binary_says_how_to_install_it(tmp_path, monkeypatch, caplog):
    fake_environment(tmp_path, monkeypatch, binary=False)
    with caplog.at_level(logging.ERROR):
        assert main(["perf-analyzer", "--version"]) == 1
    assert "perf_analyzer not found" in caplog.text and "tritonclient[grpc,http]==2.51.0" in caplog.text


def test_a_missing_libb64_says_how_to_install_it(tmp_path, monkeypatch, caplog):
    fake_environment(tmp_path, monkeypatch, binary=True)
    monkeypatch.setattr(pa, "LIBB64", "libb64-absent-for-this-test.so.0d")
    with caplog.at_level(logging.ERROR):
        assert main(["perf-analyzer", "--version"]) == 1
    assert "apt-get install libb64-0d" in caplog.text and "scripts/system_deps.sh" in caplog.text


def test_a_missing_cuda_runtime_says_how_to_install_it(tmp_path, monkeypatch, caplog):
    fake_environment(tmp_path, monkeypatch, binary=True)
    monkeypatch.setattr(pa, "check_libb64", lambda: None)
    monkeypatch.setattr(pa, "cuda_runtime_lib_dir", lambda: None)
    monkeypatch.setattr(pa, "CUDART", "libcudart-absent-for-this-test.so.12")
    with caplog.at_level(logging.ERROR):
        assert main(["perf-analyzer", "--version"]) == 1
    assert "pip install nvidia-cuda-runtime-cu12" in caplog.text


def test_a_binary_that_cannot_run_is_an_error_not_a_traceback(tmp_path, monkeypatch, caplog):
    fake_environment(tmp_path, monkeypatch, binary=True)
    monkeypatch.setattr(pa, "check_libb64", lambda: None)
    with caplog.at_level(logging.ERROR):
        assert main(["perf-analyzer", "--version"]) == 1
    assert "cannot run it (Permission denied)" in caplog.text
