"""Locked-down serving: Triton's administrative APIs behind a header key, model control off, and a warning
when ``serve`` binds beyond loopback without a key. Inference, metadata and health stay open."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.support import ADMIN_KEY
from tritoncls.cli import main
from tritoncls.cli.serve import admin_key
from tritoncls.errors import ServeError
from tritoncls.server import AdminKey, ServerInstall, TritonServer, open_admin_warning
from tritoncls.server import triton as triton_module
from tritoncls.server.auth import API_KEY_ENV, RESTRICTED_APIS

FAKE_INSTALL = ServerInstall(Path("/opt/tritonserver/bin/tritonserver"), None, None, False)


def serve_args(*extra: str):
    from tritoncls.cli import build_parser

    return build_parser().parse_args(["serve", "--model_repository", "r", *extra])

# ---------------------------------------------------------------------------------------------
# The command line and the key (no server)
# ---------------------------------------------------------------------------------------------


def test_a_keyed_server_restricts_the_admin_apis_over_http_and_grpc_with_model_control_off(tmp_path):
    command = TritonServer(tmp_path, admin_key=ADMIN_KEY).command(FAKE_INSTALL)
    setting = f"shared-memory,model-repository,statistics,trace,logging:admin-key={ADMIN_KEY.key}"
    assert f"--http-restricted-api={setting}" in command
    assert f"--grpc-restricted-protocol={setting}" in command
    assert "--model-control-mode=none" in command
    assert not any("inference" in arg or "health" in arg or "metadata" in arg for arg in command)


def test_without_a_key_nothing_is_restricted_and_model_control_stays_off(tmp_path):
    command = TritonServer(tmp_path).command(FAKE_INSTALL)
    assert "--model-control-mode=none" in command
    assert not any("restricted" in arg for arg in command)


def test_the_key_stays_out_of_logs_and_reprs(tmp_path):
    server = TritonServer(tmp_path, admin_key=ADMIN_KEY)
    redacted = " ".join(server._redacted(server.command(FAKE_INSTALL)))
    assert ADMIN_KEY.key not in redacted and redacted.count("<api key>") == 2
    assert ADMIN_KEY.key not in repr(ADMIN_KEY) and "31 characters" in repr(ADMIN_KEY)


def test_clients_send_the_header_triton_expects_for_each_protocol():
    assert ADMIN_KEY.headers("http") == {"admin-key": ADMIN_KEY.key}
    assert ADMIN_KEY.headers("grpc") == {"triton-grpc-protocol-admin-key": ADMIN_KEY.key}
    with pytest.raises(ServeError, match="use 'http' or 'grpc'"):
        ADMIN_KEY.headers("sagemaker")


@pytest.mark.parametrize("key,header,message", [
    ("short", "admin-key", "at least 16 visible ASCII"),
    ("has a space in the middle!", "admin-key", "without spaces"),
    ("k" * 20, "Admin-Key", "lowercase"),
    ("k" * 20, "grpc-key", "'grpc-' is reserved"),
    ("k" * 20, "admin key", "lowercase"),
])
def test_an_unusable_key_or_header_is_refused_with_how_to_fix_it(key, header, message):
    with pytest.raises(ServeError, match=message):
        AdminKey(key, header)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_hosts_need_no_warning(host):
    assert open_admin_warning(host, None) is None


def test_binding_beyond_loopback_warns_without_a_key_and_not_with_one():
    text = open_admin_warning("0.0.0.0", None)
    assert text and "0.0.0.0 without an API key" in text and API_KEY_ENV in text
    assert all(api in text for api in RESTRICTED_APIS)
    assert open_admin_warning("0.0.0.0", ADMIN_KEY) is None


def test_serve_reads_the_key_from_the_environment_or_a_file(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    assert admin_key(serve_args()) is None
    monkeypatch.setenv(API_KEY_ENV, "env-key-0123456789abcdef\n")
    assert admin_key(serve_args("--api_key_header", "x-key")).headers() == {"x-key": "env-key-0123456789abcdef"}
    key_file = tmp_path / "key"
    key_file.write_text("file-key-0123456789abcdef\n", encoding="utf-8")
    key_file.chmod(0o600)
    with caplog.at_level(logging.WARNING):
        assert admin_key(serve_args("--api_key_file", str(key_file))).key == "file-key-0123456789abcdef"
    assert "using the file" in caplog.text and "other users" not in caplog.text
    key_file.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        admin_key(serve_args("--api-key-file", str(key_file)))
    assert "can be read by other users" in caplog.text
    with pytest.raises(ServeError, match="cannot read the API key file"):
        admin_key(serve_args("--api_key_file", str(tmp_path / "absent")))


def _serve_until_the_server_would_start(tmp_path, monkeypatch, *extra: str) -> int:
    """``tritoncls serve`` up to the point where it looks for tritonserver (stopped there: nothing binds)."""
    def stop_here(*_args, **_kwargs):
        raise ServeError("stopped before starting tritonserver")

    monkeypatch.setattr(triton_module, "find_tritonserver", stop_here)
    return main(["serve", "--model_repository", str(tmp_path), *extra])


def test_serve_on_all_interfaces_without_a_key_warns(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    with caplog.at_level(logging.WARNING):
        assert _serve_until_the_server_would_start(tmp_path, monkeypatch, "--host", "0.0.0.0") == 1
    assert "tritonserver binds 0.0.0.0 without an API key" in caplog.text
    assert "stopped before starting tritonserver" in caplog.text


def test_serve_with_a_key_or_on_loopback_does_not_warn(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    with caplog.at_level(logging.WARNING):
        _serve_until_the_server_would_start(tmp_path, monkeypatch)
        monkeypatch.setenv(API_KEY_ENV, ADMIN_KEY.key)
        _serve_until_the_server_would_start(tmp_path, monkeypatch, "--host", "0.0.0.0")
    assert "without an API key" not in caplog.text
    assert caplog.text.count("stopped before starting tritonserver") == 2


def test_serve_refuses_a_short_key_before_starting_anything(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(API_KEY_ENV, "secret")
    with caplog.at_level(logging.ERROR):
        assert _serve_until_the_server_would_start(tmp_path, monkeypatch) == 1
    assert "at least 16" in caplog.text and "stopped before" not in caplog.text

# ---------------------------------------------------------------------------------------------
# A real locked server
# ---------------------------------------------------------------------------------------------

ADMIN_CALLS = {
    "system shared memory status": lambda client, headers: client.get_system_shared_memory_status(headers=headers),
    "statistics": lambda client, headers: client.get_inference_statistics(headers=headers),
    "repository index": lambda client, headers: client.get_model_repository_index(headers=headers),
    "log settings": lambda client, headers: client.get_log_settings(headers=headers),
    "trace settings": lambda client, headers: client.get_trace_settings(headers=headers),
}


def admin_client(server: TritonServer, protocol: str):
    if protocol == "http":
        import tritonclient.http as module

        return module.InferenceServerClient(server.http_url)
    import tritonclient.grpc as module

    return module.InferenceServerClient(server.grpc_url)


@pytest.mark.triton
@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("api", sorted(ADMIN_CALLS))
def test_admin_apis_refuse_requests_without_the_key_and_answer_with_it(locked_server, protocol, api):
    from tritonclient.utils import InferenceServerException

    client = admin_client(locked_server, protocol)
    call = ADMIN_CALLS[api]
    with pytest.raises(InferenceServerException, match="restricted") as refused:
        call(client, None)
    with pytest.raises(InferenceServerException, match="restricted"):
        call(client, {ADMIN_KEY.header if protocol == "grpc" else "x-other": ADMIN_KEY.key})  # wrong header
    with pytest.raises(InferenceServerException, match="restricted"):
        call(client, ADMIN_KEY.headers(protocol) | {next(iter(ADMIN_KEY.headers(protocol))): "wrong-key-0123456789"})
    assert call(client, ADMIN_KEY.headers(protocol)) is not None
    print(f"\n{protocol} {api}: without the key -> {str(refused.value)[:90]}")


@pytest.mark.triton
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_inference_metadata_and_health_need_no_key(locked_server, protocol):
    from tritoncls.clients import GrpcClient, HttpClient

    client = admin_client(locked_server, protocol)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("seqcls")
    assert client.get_server_metadata() and client.get_model_metadata("seqcls")
    opener = HttpClient if protocol == "http" else GrpcClient
    url = locked_server.http_url if protocol == "http" else locked_server.grpc_url
    with opener(url) as classifier:
        predictions = classifier.classify(["good movie", "bad movie", "中文"])
    assert len(predictions) == 3 and all(p.label for p in predictions)


@pytest.mark.triton
def test_no_model_loads_or_unloads_over_the_network_even_with_the_key(locked_server):
    from tritonclient.utils import InferenceServerException

    client = admin_client(locked_server, "grpc")
    with pytest.raises(InferenceServerException, match="not allowed"):
        client.unload_model("seqcls", headers=ADMIN_KEY.headers("grpc"))
    with pytest.raises(InferenceServerException, match="not allowed"):
        admin_client(locked_server, "http").load_model("seqcls", headers=ADMIN_KEY.headers("http"))
    assert client.is_model_ready("seqcls")


@pytest.mark.triton
def test_serve_takes_the_key_from_the_environment_and_locks_the_admin_apis(tiny_repo, tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    from tests.support import ServeProcess
    from tritoncls.clients import GrpcClient

    monkeypatch.setenv(API_KEY_ENV, ADMIN_KEY.key)  # the serve subprocess inherits it
    serve = ServeProcess(tiny_repo, tmp_path / "tritonserver.log")
    try:
        grpc_url = serve.wait_ready()
        http_url = serve.output[-1].split("HTTP ")[1].split()[0]
        assert "need the 'admin-key' header" in serve.process.stdout.readline()
        stats = f"http://{http_url}/v2/models/stats"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(stats, timeout=10)
        assert refused.value.code == 403
        with urllib.request.urlopen(urllib.request.Request(stats, headers=ADMIN_KEY.headers()), timeout=10) as answer:
            assert answer.status == 200
        with GrpcClient(grpc_url) as client:
            assert len(client.classify(["good movie"])) == 1
    finally:
        assert serve.interrupt() == 0
