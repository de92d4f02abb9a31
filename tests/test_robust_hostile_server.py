"""Hostile input to a served ensemble: every request gets an error response or a correct answer, and the
server keeps serving (health probe plus a correct answer after each case).

The repository's labels are hostile too (quotes, braces, ``{{ }}``, non-ASCII, shell and HTML text), and
it returns the top k = all labels, so every label must come back from the server byte for byte.
"Correct" means what the in-process runtime Predictor gives on the same export. Loopback only; the
thousand connections are opened and dropped once per port, with bounded waits.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from tests.support import (
    HOSTILE_LABELS,
    SPECIAL_TOKENS,
    TRICKY_TEXTS,
    Hostile,
    paddlenlp_tokenizer,
    random_texts,
    wait_for,
)
from tritoncls import runtime as rt
from tritoncls.clients import make_client
from tritoncls.errors import ClientError

PROTOCOLS = ("grpc", "http")
MB = 1 << 20
CONNECTIONS = Hostile.CONNECTIONS


def assert_matches(hostile: Hostile, predictions, texts: list[str]) -> None:
    labels, confidences = hostile.expected(texts)
    assert [p.label for p in predictions] == labels
    assert np.abs(np.array([p.confidence for p in predictions]) - np.array(confidences)).max() <= 1e-5


def assert_still_serving(hostile: Hostile) -> None:
    """Health probe, then a correct answer on both protocols."""
    assert hostile.server.is_running() and hostile.server.is_ready(), "the server stopped serving"
    texts = ["good movie", "the movie was very bad !"]
    for protocol in PROTOCOLS:
        with make_client(hostile.url(protocol), protocol, timeout_s=30, retries=0) as client:
            assert_matches(hostile, client.classify(texts), texts)


# ---------------------------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------------------------


@pytest.mark.triton
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_hostile_label_comes_back_from_the_server_byte_for_byte(hostile, protocol):
    label_file = hostile.repo / "seqcls_postprocess" / "1" / "label.txt"
    assert label_file.read_bytes() == (hostile.export / "label.txt").read_bytes()
    with make_client(hostile.url(protocol), protocol) as client:
        prediction = client.classify(["good movie"])[0]
    assert sorted(label for label, _ in prediction.top_k) == sorted(HOSTILE_LABELS)
    assert prediction.label == prediction.top_k[0][0]


# ---------------------------------------------------------------------------------------------
# Texts
# ---------------------------------------------------------------------------------------------

#: name -> (text sent, error expected or None for "answered like the in-process predictor")
TEXT_CASES: dict[str, tuple[str | bytes, str | None]] = {
    "empty": ("", "text 0: the text is empty"),
    "blank": (" \t\u3000 ", "text 0: the text is empty"),
    "not utf-8": (b"\xff\xfe good", r"text 0: bytes b'\\xff\\xfe g.*' at offset 0 are not valid UTF-8"),
    "utf-8 cut mid-character": ("好".encode()[:2], "not valid UTF-8"),
    "encoded surrogate": (b"good \xed\xa0\x80", "at offset 5 are not valid UTF-8"),
    "overlong encoding": (b"\xc0\xaf", "not valid UTF-8"),
    "control characters": ("\x00\x01\x07\x1b[31m good \x7f movie\x1b[0m\x08", None),
    "only control characters": ("\x00\x01\x02\x7f", None),
    "zero-width characters": ("go\u200bod\u200c mo\u200dvie\ufeff \u2060bad", None),
    "only zero-width characters": ("\u200b\u200c\u200d\ufeff", None),
    "bidi overrides": ("\u202egood\u202c \u2066bad\u2069 \u200f", None),
    "special tokens in the text": ("[CLS] good [SEP] [PAD] bad [MASK] [UNK]", None),
    "emoji and private use": ("👍🏽 good \ue000\U000f0000 🙂", None),
    "1 MB of words": ("good movie " * (MB // 11), None),
    "1 MB without a space": ("a" * MB, None),
    "1 MB of CJK": ("中文好坏" * (MB // 12), None),
    "1 MB of zero-width then words": ("\u200b" * (MB // 3) + " very good", None),
    "1 MB of newlines and tabs then words": ("\n\t\r" * (MB // 3) + "bad movie", None),
}


@pytest.mark.triton
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("case", sorted(TEXT_CASES))
def test_hostile_text_gets_an_error_or_the_reference_answer_and_the_server_keeps_serving(hostile, protocol, case):
    text, error = TEXT_CASES[case]
    with make_client(hostile.url(protocol), protocol, timeout_s=60, retries=0) as client:
        if error is not None:
            with pytest.raises(ClientError, match=error) as raised:
                client.classify([text])
            assert "INVALID_ARGUMENT" in str(raised.value) or "400" in str(raised.value)
        else:
            assert_matches(hostile, client.classify([text]), [text])
    assert_still_serving(hostile)


@pytest.mark.triton
def test_a_batch_of_64_one_megabyte_texts_is_answered_correctly_and_quickly(hostile):
    """A 64 MB request once held the tokenizer for over a minute (every text tokenized in full for 64 tokens)."""
    rng = random.Random(0)
    words = ["good", "bad", "movie", "very", "not", "中文", "好"]
    texts = [" ".join(rng.choice(words) for _ in range(MB // 5))[:MB] for _ in range(64)]
    started = time.monotonic()
    with make_client(hostile.server.grpc_url, "grpc", timeout_s=120, retries=0) as client:
        predictions = client.classify(texts)
    seconds = time.monotonic() - started
    assert_matches(hostile, predictions, texts)
    assert seconds < 30, f"64 x 1 MB took {seconds:.1f} s"
    print(f"\n64 x 1 MB texts in one request: {seconds:.1f} s")
    assert_still_serving(hostile)


def test_tokenizing_from_the_head_of_long_texts_gives_the_full_texts_ids(tmp_path):
    """The tokenizer reads a long text only up to a word boundary past its head; the ids must be those of
    tokenizing all of it (PaddleNLP's training tokenizer), whatever the head length."""
    from tritoncls.modeling import build_vocab

    rng = random.Random(1)
    vocab = build_vocab(random_texts(rng, 2000), lowercase=True, max_size=6000)
    reference = paddlenlp_tokenizer(tmp_path, vocab, True)
    texts = (TRICKY_TEXTS + random_texts(rng, 300) + ["".join(random_texts(rng, 30)) for _ in range(200)]
             + [t * 20 for t in TRICKY_TEXTS])
    expected = reference(texts, max_length=16, truncation=True)["input_ids"]
    for kind in (rt.WordPieceTokenizer, rt.PythonWordPieceTokenizer):
        for head_chars in (1, 3, 20):
            ours = kind(tmp_path / "vocab.txt", True, SPECIAL_TOKENS, max_seq_length=16)
            ours.head_chars = head_chars
            got = ours.encode(texts)
            wrong = [(t, e, g) for t, e, g in zip(texts, expected, got) if e != g]
            assert not wrong, f"{kind.__name__} head_chars={head_chars}: {len(wrong)} differ, first {wrong[0]}"


# ---------------------------------------------------------------------------------------------
# Malformed requests
# ---------------------------------------------------------------------------------------------


def _raw_infer(hostile: Hostile, protocol: str, inputs: list[tuple[str, np.ndarray, str]], model: str = "seqcls",
               outputs: tuple[str, ...] = ("label",)):
    if protocol == "grpc":
        import tritonclient.grpc as tc

        client = tc.InferenceServerClient(hostile.server.grpc_url)
    else:
        import tritonclient.http as tc

        client = tc.InferenceServerClient(hostile.server.http_url)
    tensors = []
    for name, array, dtype in inputs:
        tensor = tc.InferInput(name, list(array.shape), dtype)
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    try:
        return client.infer(model, tensors, outputs=[tc.InferRequestedOutput(o) for o in outputs])
    finally:
        client.close()


def _texts(*texts: bytes) -> np.ndarray:
    return np.array([[t] for t in texts], dtype=np.object_).reshape(-1, 1)


#: name -> (inputs, model, outputs, expected error text)
MALFORMED = {
    "int32 text": ([("text", np.array([[1]], dtype=np.int32), "INT32")], "seqcls", ("label",),
                   "data-type is 'INT32', but model 'seqcls' expects 'BYTES'"),
    "fp32 text": ([("text", np.array([[1.5]], dtype=np.float32), "FP32")], "seqcls", ("label",),
                  "data-type is 'FP32', but model 'seqcls' expects 'BYTES'"),
    "shape [1, 2]": ([("text", np.array([[b"a", b"b"]], dtype=np.object_), "BYTES")], "seqcls", ("label",),
                     r"unexpected shape for input 'text'.*got \[1,2\]"),
    "no batch dimension": ([("text", np.array([b"a"], dtype=np.object_), "BYTES")], "seqcls", ("label",),
                           r"unexpected shape for input 'text'.*got \[1\]"),
    "empty batch": ([("text", np.zeros((0, 1), dtype=np.object_), "BYTES")], "seqcls", ("label",), "got 0"),
    "65 rows (max_batch_size 64)": ([("text", _texts(*[b"good"] * 65), "BYTES")], "seqcls", ("label",),
                                    "batch-size must be <= 64"),
    "unknown input": ([("txt", _texts(b"good"), "BYTES")], "seqcls", ("label",), "unexpected inference input 'txt'"),
    "extra input": ([("text", _texts(b"good"), "BYTES"), ("more", _texts(b"x"), "BYTES")], "seqcls", ("label",),
                    "expected 1 inputs but got 2"),
    "no input": ([], "seqcls", ("label",), "expected 1 inputs but got 0"),
    "unknown output": ([("text", _texts(b"good"), "BYTES")], "seqcls", ("logits_please",), "logits_please"),
    "unknown model": ([("text", _texts(b"good"), "BYTES")], "no_such_model", ("label",), "no_such_model"),
    "step model called directly with text": ([("text", _texts(b"good"), "BYTES")], "seqcls_model", ("logits",),
                                             "missing required input"),
}


@pytest.mark.triton
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_request_gets_an_error_response_and_the_server_keeps_serving(hostile, protocol, case):
    from tritonclient.utils import InferenceServerException

    inputs, model, outputs, message = MALFORMED[case]
    with pytest.raises(InferenceServerException, match=message):
        _raw_infer(hostile, protocol, inputs, model, outputs)
    assert_still_serving(hostile)


def _http(hostile: Hostile, body: bytes, headers: dict[str, str], path: str = "/v2/models/seqcls/infer") -> tuple[int, bytes]:
    host, port = hostile.server.http_url.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.triton
def test_malformed_http_bodies_get_an_error_response_and_the_server_keeps_serving(hostile):
    good = {"inputs": [{"name": "text", "shape": [1, 1], "datatype": "BYTES", "data": ["good movie"]}]}
    header = json.dumps({"inputs": [{"name": "text", "shape": [1, 1], "datatype": "BYTES",
                                     "parameters": {"binary_data_size": 1000}}]}).encode()
    cases = {
        "not json": (b"{not json", {}),
        "json array": (b"[1, 2, 3]", {}),
        "wrong types": (json.dumps({"inputs": [{"name": 5, "shape": "x", "datatype": None}]}).encode(), {}),
        "data of the wrong type": (json.dumps({"inputs": [{**good["inputs"][0], "data": [[1.5]]}]}).encode(), {}),
        "shape larger than data": (json.dumps({"inputs": [{**good["inputs"][0], "shape": [4, 1]}]}).encode(), {}),
        "binary size beyond the body": (header + struct.pack("<I", 5) + b"hello",
                                        {"Inference-Header-Content-Length": str(len(header))}),
        "header length beyond the body": (b"{}", {"Inference-Header-Content-Length": "99999"}),
        "non-utf-8 json": (b'{"inputs": [{"name": "text", "shape": [1, 1], "datatype": "BYTES", "data": ["\xff"]}]}', {}),
    }
    statuses = {}
    for name, (body, headers) in cases.items():
        status, answer = _http(hostile, body, {"Content-Type": "application/json", **headers})
        statuses[name] = status
        # Triton answers 400 for most and 500 for JSON it cannot parse; either way an error, never a crash.
        assert status >= 400 and "error" in json.loads(answer), f"{name}: HTTP {status} {answer[:200]!r}"
    print(f"\nmalformed HTTP bodies -> {statuses}")
    status, answer = _http(hostile, json.dumps(good).encode(), {"Content-Type": "application/json"})
    assert status == 200, answer
    assert json.loads(answer)["outputs"][0]["data"][0] == hostile.expected(["good movie"])[0][0]
    assert_still_serving(hostile)


# ---------------------------------------------------------------------------------------------
# Connections
# ---------------------------------------------------------------------------------------------


def _open_files(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def _drop(sock: socket.socket, reset: bool) -> None:
    if reset:  # RST instead of FIN
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.triton
@pytest.mark.parametrize("port_kind", ["grpc", "http"])
def test_a_thousand_connections_opened_and_dropped_leave_the_server_serving(hostile, port_kind):
    host, port = hostile.url(port_kind).split(":")
    pid = hostile.server.process.pid
    baseline = _open_files(pid)
    payloads = [b"", b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n",  # a request never finished
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"\x00\xff" * 64, b"POST /v2/models/seqcls/infer HTTP/1.1\r\n"
                b"Content-Length: 1000000\r\n\r\n{\"inputs\":"]
    sockets: list[socket.socket] = []
    started = time.monotonic()
    try:
        for i in range(CONNECTIONS):
            sock = socket.create_connection((host, int(port)), timeout=10)
            if payloads[i % len(payloads)]:
                sock.sendall(payloads[i % len(payloads)])
            sockets.append(sock)
        time.sleep(0.5)
        held = _open_files(pid)  # it closes at once those that speak another protocol
        assert hostile.server.is_ready(), "health probe failed while a thousand connections were held"
    finally:
        for i, sock in enumerate(sockets):
            _drop(sock, reset=bool(i % 2))
    seconds = time.monotonic() - started
    assert len(sockets) == CONNECTIONS
    wait_for(lambda: _open_files(pid) <= baseline + 10, 30, "the server to close the dropped connections")
    print(f"\n{port_kind}: {CONNECTIONS} connections opened (the server kept {held - baseline} open, closing those "
          f"that spoke another protocol) and "
          f"dropped in {seconds:.1f} s; descriptors back to {_open_files(pid)} (baseline {baseline})")
    assert_still_serving(hostile)
