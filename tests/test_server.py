"""tritoncls serve / TritonServer: finding and preparing tritonserver, failed starts, the serve command."""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from tests.support import SPECIAL_TOKENS, ServeProcess
from tritoncls import runtime as rt
from tritoncls.clients import GrpcClient, HttpClient
from tritoncls.errors import ServeError
from tritoncls.server import TritonServer, find_tritonserver
from tritoncls.server.triton import parse_size


def test_parse_size_understands_bytes_and_k_m_g_suffixes():
    assert [parse_size(s) for s in ("1048576", "16M", "64MiB", "2k", "1G")] == [2**20, 16 * 2**20, 64 * 2**20, 2048, 2**30]
    with pytest.raises(ServeError, match="size 'lots' is not understood"):
        parse_size("lots")


def test_bundled_server_gets_this_pythons_stub_linked_into_a_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("PATH", os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not (Path(p) / "tritonserver").exists()))
    install = find_tritonserver()
    assert install.bundled and install.binary.name == "tritonserver"
    stub = install.backend_directory / "python" / "triton_python_backend_stub"
    assert stub.is_symlink() and "python_backend_stubs" in str(stub.resolve())
    assert install.backend_directory.is_relative_to(tmp_path)
    assert install.library_path.name == "nvidia_pytriton.libs"
    assert find_tritonserver().backend_directory == install.backend_directory  # prepared once, then reused


def test_bundled_server_refuses_numpy_2_whose_stub_dies_on_text_inputs(monkeypatch):
    from tritoncls.server import install

    assert install.stub_numpy_problem("1.26.4") is None
    assert "pip install 'numpy<2'" in install.stub_numpy_problem("2.5.5")
    monkeypatch.setenv("PATH", os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not (Path(p) / "tritonserver").exists()))
    monkeypatch.setattr(install.importlib.metadata, "version", lambda name: "2.0.0" if name == "numpy" else "0")
    with pytest.raises(ServeError, match="cannot serve text models under NumPy 2.0.0"):
        find_tritonserver()


def test_the_stubs_libraries_are_looked_up_as_the_server_will_run_it(tiny_repo):
    from tritoncls.server.install import stub_missing_libraries

    install = find_tritonserver()
    if not install.bundled:
        pytest.skip("tritonserver on PATH: its stub is not ours to check")
    stub = install.backend_directory / "python" / "triton_python_backend_stub"
    assert stub_missing_libraries(stub, TritonServer(tiny_repo).environment(install)) == []
    bare = {"PATH": os.environ["PATH"], "LD_LIBRARY_PATH": ""}  # without nvidia_pytriton.libs: its libcudart is missing
    assert any(name.startswith("libcudart") for name in stub_missing_libraries(stub, bare))


def test_a_stub_without_libpython_is_refused_before_the_server_starts(tiny_repo, monkeypatch):
    from tritoncls.server import triton

    if not find_tritonserver().bundled:
        pytest.skip("tritonserver on PATH: its stub is not ours to check")
    monkeypatch.setattr(triton, "stub_missing_libraries", lambda stub, env: ["libpython3.11.so.1.0"])
    server = TritonServer(tiny_repo)
    with pytest.raises(ServeError, match=r"cannot start: libpython3.11.so.1.0 not found\. Fix: .*--enable-shared"):
        server.start()
    assert server.process is None


@pytest.mark.triton
def test_a_stub_that_cannot_load_fails_the_start_at_once_not_after_the_timeout(tiny_repo, tmp_path):
    """The python backend waits for its stub for good; the loader's message is enough to stop."""
    import time

    install = find_tritonserver()
    if not install.bundled:
        pytest.skip("tritonserver on PATH: the backend folder is its own")
    backends = tmp_path / "backends" / "python"
    backends.mkdir(parents=True)
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        (backends / name).symlink_to((install.backend_directory / "python" / name).resolve())
    stub = backends / "triton_python_backend_stub"
    stub.write_text("#!/bin/sh\necho \"$0: error while loading shared libraries: libpython9.9.so.1.0: cannot open "
                    "shared object file: No such file or directory\" >&2\nexit 127\n")
    stub.chmod(0o755)
    started = time.monotonic()
    with pytest.raises(ServeError, match=r"(?s)a python-backend stub could not start.*libpython9\.9\.so\.1\.0.*--enable-shared"):
        TritonServer(tiny_repo, backend_directory=backends.parent).start(timeout_s=120)
    assert time.monotonic() - started < 60


def test_a_gpu_repository_on_a_cpu_onnxruntime_is_said_to_fall_back_to_the_cpu(tiny_repo, tiny_export, tmp_path):
    import onnxruntime as ort

    from tritoncls.builder import BuildConfig, build_repository
    from tritoncls.server.install import gpu_step_without_cuda

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    gpu = build_repository(BuildConfig(model=str(tiny_export), output=str(tmp_path / "gpu"), device="gpu"))
    assert "will run on the CPU. Install onnxruntime-gpu" in gpu_step_without_cuda(gpu)
    assert gpu_step_without_cuda(tiny_repo) is None  # built for the CPU
    assert gpu_step_without_cuda(tmp_path) is None  # not a tritoncls repository: nothing recorded


def test_server_command_binds_localhost_and_sizes_python_shared_memory(tiny_repo):
    install = find_tritonserver()
    server = TritonServer(tiny_repo, grpc_port=1, http_port=2, metrics_port=3, shm_size="8M")
    command = server.command(install)
    for flag in ("--grpc-address=127.0.0.1", "--http-address=127.0.0.1", "--metrics-address=127.0.0.1",
                 "--grpc-port=1", "--backend-config=python,shm-default-byte-size=8388608"):
        assert flag in command
    assert server.environment(install)["PATH"].startswith(str(Path(os.sys.executable).parent))


def test_bundled_server_loads_this_pythons_libpython_before_the_systems(tiny_repo, monkeypatch):
    from tritoncls.server.install import python_library_dir

    install = find_tritonserver()
    monkeypatch.setenv("LD_LIBRARY_PATH", "/usr/lib/x86_64-linux-gnu")
    paths = TritonServer(tiny_repo).environment(install)["LD_LIBRARY_PATH"].split(os.pathsep)
    libdir = python_library_dir()
    if install.bundled:
        assert paths[0] == str(install.library_path)
        if libdir is not None:  # a Python built without a shared libpython has nothing to put first
            assert paths[1] == str(libdir) and (libdir / sysconfig.get_config_var("INSTSONAME")).is_file()
    assert paths[-1] == "/usr/lib/x86_64-linux-gnu" and len(paths) == len(set(paths))


@pytest.mark.triton
def test_failed_start_raises_with_the_servers_own_error_lines(tiny_repo, tmp_path):
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(tiny_repo, broken)
    (broken / "seqcls_postprocess" / "1" / "label.txt").write_text("only\ntwo\n", encoding="utf-8")
    with pytest.raises(ServeError) as error:
        TritonServer(broken, log_file=tmp_path / "server.log").start(timeout_s=120)
    message = str(error.value)
    assert "tritonserver exited" in message and "2 labels, but the model gives 3 logits" in message
    assert "CudaDriverHelper" not in message  # CPU-only noise is left out


@pytest.mark.triton
def test_serve_command_serves_a_repository_and_stops_cleanly_on_ctrl_c(tiny_repo, tmp_path):
    texts = ["good movie", "the movie was very bad !", "中文 好", "ok " * 40]
    expected = in_process_predictions(tiny_repo, texts)
    serve = ServeProcess(tiny_repo, tmp_path / "server.log")
    try:
        grpc_url = serve.wait_ready()
        with GrpcClient(grpc_url) as client:
            got = client.classify(texts)
        assert [p.label for p in got] == [label for label, _ in expected]
        np.testing.assert_allclose([p.confidence for p in got], [c for _, c in expected], atol=1e-5)
        assert all(len(p.top_k) == 2 and p.top_k[0][0] == p.label for p in got)
        http_port = int(next(line for line in serve.output if "HTTP" in line).split("HTTP 127.0.0.1:")[1].split()[0])
        with HttpClient(f"127.0.0.1:{http_port}") as client:
            assert client.classify(texts) == got
    finally:
        code = serve.interrupt()
    assert code == 0, "".join(serve.output)


def in_process_predictions(repo: Path, texts: list[str]) -> list[tuple[str, float]]:
    """The same steps, run in this process from the repository's own files."""
    tok_dir, model_dir, post_dir = (repo / m / "1" for m in ("tokenizer", "seqcls_model", "seqcls_postprocess"))
    tokenizer = rt.WordPieceTokenizer(tok_dir / "vocab.txt", True, SPECIAL_TOKENS, 64)
    ids, types = rt.TokenizeStep(tokenizer, "longest", (64,), 64, 0)([np.array([[t.encode()] for t in texts], dtype=object)])[0]
    logits = rt.OnnxRunner(model_dir / "model.onnx", ("input_ids", "token_type_ids"), "logits").run(ids, types)
    result = rt.classify(logits, rt.read_labels(post_dir / "label.txt"), 0)
    return [(label[0].decode(), float(conf[0])) for label, conf in zip(result.label, result.confidence)]


def test_free_ports_are_distinct_so_a_server_never_gets_one_port_twice():
    from tritoncls.server.triton import free_ports

    for _ in range(50):
        ports = free_ports(3)
        assert len(set(ports)) == 3 and all(p > 0 for p in ports)
