"""Clients without a model: retries against a port nobody listens on, signatures, batching, results.

(Clients against a real server are tested in test_server_e2e.py.)
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from tritoncls.clients import CLIENTS, ServerUnavailable, classify_texts, make_client
from tritoncls.clients.base import Prediction, Signature, chunks, encode_texts, predictions_from, signature_from
from tritoncls.errors import ClientError
from tritoncls.server import free_port


@pytest.mark.parametrize("protocol", sorted(CLIENTS))
def test_client_retries_with_backoff_then_reports_the_server_unavailable(protocol):
    url = f"127.0.0.1:{free_port()}"
    start = time.monotonic()
    with make_client(url, protocol, retries=2, backoff_s=0.05, timeout_s=2) as client:
        with pytest.raises(ServerUnavailable, match=rf"{url}: could not read the model's metadata: server unavailable after 3 tries"):
            client.classify(["hello"])
    assert time.monotonic() - start >= 0.05 + 0.1  # two backoffs: 0.05 s, then 0.1 s


@pytest.mark.parametrize("protocol", sorted(CLIENTS))
def test_wait_until_ready_gives_up_after_its_timeout_with_a_hint(protocol):
    with make_client(f"127.0.0.1:{free_port()}", protocol, timeout_s=1) as client:
        with pytest.raises(ClientError, match="not ready after 1 s .*Is `tritoncls serve` running there?"):
            client.wait_until_ready(timeout_s=1)


def test_classify_texts_tries_every_url_before_giving_up():
    urls = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    with pytest.raises(ServerUnavailable):
        classify_texts(["a", "b"], urls, retries=0, batch_size=1, concurrency=2)


def test_classify_texts_needs_a_url():
    with pytest.raises(ClientError, match="no server URL"):
        classify_texts(["a"], [])


def test_unknown_protocol_is_refused():
    with pytest.raises(ClientError, match="protocol 'smtp'"):
        make_client("127.0.0.1:1", "smtp")


def test_chunks_respect_the_batch_limit():
    assert [list(c) for c in chunks(list(range(7)), 3)] == [[0, 1, 2], [3, 4, 5], [6]]


def test_encode_texts_sends_str_as_utf8_and_bytes_unchanged():
    data = encode_texts(["中", b"\xff"])
    assert data.shape == (2, 1) and data[0, 0] == "中".encode() and data[1, 0] == b"\xff"


def test_signature_needs_one_bytes_input_and_label_confidence_outputs():
    metadata = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": ["-1", "1"]}],
                "outputs": [{"name": "label"}, {"name": "confidence"}, {"name": "top_k_labels"}, {"name": "top_k_probs"}]}
    signature = signature_from(metadata, {"max_batch_size": 64}, "seqcls", "u")
    assert signature == Signature("text", ("label", "confidence", "top_k_labels", "top_k_probs"), 64)
    assert signature.has_top_k
    with pytest.raises(ClientError, match=r"has no outputs \['label'\]"):
        signature_from({**metadata, "outputs": [{"name": "confidence"}]}, {}, "seqcls", "u")
    with pytest.raises(ClientError, match="one BYTES input"):
        signature_from({**metadata, "inputs": [{"name": "input_ids", "datatype": "INT64"}]}, {}, "seqcls_model", "u")


def test_predictions_decode_labels_and_pair_top_k():
    signature = Signature("text", ("label", "confidence", "top_k_labels", "top_k_probs"), 8)
    outputs = {"label": np.array([["中".encode()]], dtype=np.object_), "confidence": np.array([[0.75]], dtype=np.float32),
               "top_k_labels": np.array([[b"\xe4\xb8\xad", b"b"]], dtype=np.object_),
               "top_k_probs": np.array([[0.75, 0.25]], dtype=np.float32)}
    assert predictions_from(outputs, signature) == [Prediction("中", 0.75, (("中", 0.75), ("b", 0.25)))]


# -- failover over several servers (BatchSender), with stand-in clients -----------------------------


def test_a_batch_moves_to_the_next_server_at_once_and_the_lost_one_is_put_last(stand_ins):
    from tritoncls.clients.classify import BatchSender

    stand_ins.down = {"a:1"}
    sender = BatchSender(["a:1", "b:2"], retries=3, backoff_s=10, cooldown_s=60)
    start = time.monotonic()
    assert [p.label for p in sender(0, ["x", "y"])] == ["b:2", "b:2"]
    assert [p.label for p in sender(2, ["z"])] == ["b:2"]  # its turn is a:1, but a:1 failed just now
    assert time.monotonic() - start < 1, "no backoff while another server answers"
    assert sum(c.calls for c in stand_ins.made if c.url == "a:1") == 1
    assert sender.stats.as_dict() == {"batches": 2, "unavailable": 1, "failed_over": 1, "backoffs": 0}
    assert all(c.options["retries"] == 0 for c in stand_ins.made), "the sender retries, not each client"


def test_a_server_that_comes_back_is_reached_with_a_fresh_client(stand_ins):
    from tritoncls.clients.classify import BatchSender

    stand_ins.down = {"a:1"}
    sender = BatchSender(["a:1", "b:2"], cooldown_s=0)
    sender(0, ["x"])
    stand_ins.down = set()
    assert [p.label for p in sender(0, ["x"])] == ["a:1"]
    first, *_, fresh = [c for c in stand_ins.made if c.url == "a:1"]
    assert first.closed and fresh is not first and not fresh.closed


def test_when_every_server_is_down_the_sender_backs_off_and_names_them_all(stand_ins):
    from tritoncls.clients.classify import BatchSender

    stand_ins.down = {"a:1", "b:2"}
    sender = BatchSender(["a:1", "b:2"], retries=2, backoff_s=0.05)
    start = time.monotonic()
    with pytest.raises(ServerUnavailable, match=r"every server \(a:1, b:2\) unavailable after 3 tries each"):
        sender(0, ["x"])
    assert time.monotonic() - start >= 0.05 + 0.1
    assert sum(c.calls for c in stand_ins.made) == 6 and sender.stats.backoffs == 2


def test_a_timed_out_request_moves_to_another_server_but_is_an_error_with_one_server(stand_ins):
    from tritoncls.clients.base import RequestTimedOut
    from tritoncls.clients.classify import BatchSender

    stand_ins.hung = {"a:1"}
    sender = BatchSender(["a:1", "b:2"], retries=3)
    assert [p.label for p in sender(0, ["x"])] == ["b:2"]
    assert sender.stats.failed_over == 1 and sender.stats.backoffs == 0
    with pytest.raises(RequestTimedOut, match="timed out"):
        BatchSender(["a:1"], retries=3)(0, ["x"])
    assert sum(c.calls for c in stand_ins.made if c.url == "a:1") == 2, "a timeout with one server is not retried"


def test_once_its_cooldown_is_over_one_batch_alone_probes_a_failed_server(stand_ins):
    from tritoncls.clients.classify import BatchSender

    stand_ins.hung = {"a:1"}
    sender = BatchSender(["a:1", "b:2"], cooldown_s=0)
    sender(0, ["x"])
    assert sender._order(0) == ["a:1", "b:2"], "the first caller probes it"
    assert sender._order(0) == ["b:2", "a:1"], "others avoid it while the probe is out"
    assert sender._order(1) == ["b:2", "a:1"]


@pytest.mark.parametrize(("message", "transient"), [
    ("Request for unknown model: 'seqcls' has no available versions", True),  # a server still loading it
    ("Request for unknown model: 'seqcls' is not found", False),  # a wrong --name
])
def test_a_model_not_loaded_yet_is_worth_retrying_a_wrong_name_is_not(message, transient):
    from tritonclient.utils import InferenceServerException

    from tritoncls.clients.base import TransientError

    def fail():
        raise InferenceServerException(message, status="StatusCode.NOT_FOUND")

    for protocol in sorted(CLIENTS):
        with make_client(f"127.0.0.1:{free_port()}", protocol) as client:
            with pytest.raises(TransientError if transient else ClientError):
                client._call("model metadata", fail)
