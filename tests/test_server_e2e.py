"""End to end on a real tritonserver: a repository built from a model trained on KUAKE-QIC classifies all
1955 dev texts over gRPC and HTTP exactly like the Paddle dynamic graph; bad requests fail alone;
single-text requests are batched; a copied repository serves the same predictions.

One server for the module (plus one for the copied repository), to keep CI fast.
"""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.support import ServeProcess
from tritoncls.builder import MARKER
from tritoncls.clients import GrpcClient, classify_texts, make_client
from tritoncls.errors import ClientError
from tritoncls.server import TritonServer

pytestmark = [pytest.mark.triton, pytest.mark.slow, pytest.mark.kuake]

MAX_CONFIDENCE_DIFF = 1e-4


def url_for(server: TritonServer, protocol: str) -> str:
    return server.grpc_url if protocol == "grpc" else server.http_url


def assert_matches(predictions, labels: list[str], confidences: np.ndarray) -> None:
    got = [p.label for p in predictions]
    wrong = [i for i, (a, b) in enumerate(zip(got, labels)) if a != b]
    assert len(got) == len(labels) and not wrong, f"{len(wrong)} labels differ, e.g. row {wrong[:5]}"
    diff = np.abs(np.array([p.confidence for p in predictions]) - confidences).max()
    assert diff <= MAX_CONFIDENCE_DIFF, f"max confidence difference {diff:.2e}"


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_all_kuake_dev_texts_get_the_dynamic_graphs_labels_and_confidences(protocol, kuake_server, dev_texts, reference):
    predictions = classify_texts(dev_texts, [url_for(kuake_server, protocol)], protocol=protocol, concurrency=4, batch_size=32)
    assert len(dev_texts) == 1955
    assert_matches(predictions, *reference)
    assert all(len(p.top_k) == 3 and p.top_k[0] == (p.label, pytest.approx(p.confidence)) for p in predictions)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_bad_requests_each_get_a_clear_error_and_the_server_keeps_serving(protocol, kuake_server, dev_texts, reference,
                                                                         dynamic_graph):
    labels, confidences = reference
    with make_client(url_for(kuake_server, protocol), protocol) as client:
        with pytest.raises(ClientError, match=r"text 0: bytes b'\\xff\\xfe n' at offset 0 are not valid UTF-8"):
            client.infer_raw([b"\xff\xfe not utf-8"])
        with pytest.raises(ClientError, match="text 0: the text is empty"):
            client.infer_raw([""])
        with pytest.raises(ClientError, match="batch-size must be <= 64"):
            client.infer_raw(dev_texts[:65])
        split = client.classify(dev_texts[:150])  # the client splits to max_batch_size
        assert_matches(split, labels[:150], confidences[:150])
        long_text = dev_texts[0] * 40  # far beyond max_seq_length: truncated, as in training
        expected_label, expected_confidence = dynamic_graph.predict([long_text])
        assert_matches(client.classify([long_text]), expected_label, expected_confidence)
        assert_matches(client.classify(dev_texts[:3]), labels[:3], confidences[:3])
    assert kuake_server.is_running()


def test_a_bad_request_fails_alone_when_batched_with_good_ones(kuake_server, dev_texts, reference):
    labels, confidences = reference
    jobs = [(i, dev_texts[i] if i % 3 else b"\xc3\x28") for i in range(60)]
    barrier = threading.Barrier(12)

    def send(job):
        index, text = job
        if index < 12:
            barrier.wait()  # the first dozen arrive together
        try:
            return index, client.classify([text])[0]
        except ClientError as exc:
            return index, exc

    with GrpcClient(kuake_server.grpc_url) as client, ThreadPoolExecutor(12) as pool:
        results = dict(pool.map(send, jobs))
    for index, result in results.items():
        if index % 3:
            assert result.label == labels[index] and abs(result.confidence - confidences[index]) <= MAX_CONFIDENCE_DIFF
        else:
            assert isinstance(result, ClientError) and "not valid UTF-8" in str(result)


def model_step_counts(server: TritonServer) -> tuple[int, int]:
    import tritonclient.grpc as grpcclient

    stats = grpcclient.InferenceServerClient(server.grpc_url).get_inference_statistics("seqcls_model", as_json=True)
    model = stats["model_stats"][0]
    return int(model.get("inference_count", 0)), int(model.get("execution_count", 0))


def test_concurrent_single_text_requests_are_batched_at_the_model_step(kuake_server, dev_texts, reference):
    inferences_before, executions_before = model_step_counts(kuake_server)
    predictions = classify_texts(dev_texts[:600], [kuake_server.grpc_url], concurrency=16, batch_size=1)
    inferences, executions = (a - b for a, b in zip(model_step_counts(kuake_server), (inferences_before, executions_before)))
    assert inferences == 600
    assert executions < inferences, f"{executions} executions for {inferences} single-text requests: no batching"
    print(f"\nmodel step: {inferences} texts in {executions} executions ({inferences / executions:.1f} texts/execution)")
    assert_matches(predictions, reference[0][:600], reference[1][:600])


def test_classify_command_writes_what_predict_writes_spreading_requests_over_urls(kuake_server, dev_texts, reference, tmp_path):
    from tritoncls.cli import main
    from tritoncls.common.predictions import OUTPUT_HEADER

    texts = dev_texts[:120]
    (tmp_path / "data.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    port = kuake_server.grpc_url.split(":")[1]
    code = main(["classify", "--url", f"127.0.0.1:{port}", "--url", f"localhost:{port}", "--input",
                 str(tmp_path / "data.txt"), "--output", str(tmp_path / "results.tsv"), "--concurrency", "3",
                 "--batch_size", "8"])
    assert code == 0
    lines = (tmp_path / "results.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == OUTPUT_HEADER and len(lines) == len(texts) + 1
    rows = [line.split("\t") for line in lines[1:]]
    assert [r[0] for r in rows] == texts and [r[1] for r in rows] == reference[0][:120]
    assert all(len(r[2].split(".")[1]) == 6 for r in rows)  # confidence %.6f, as predict writes it
    assert np.abs(np.array([float(r[2]) for r in rows]) - reference[1][:120]).max() <= MAX_CONFIDENCE_DIFF


def test_a_copied_repository_serves_the_same_predictions(kuake_server, kuake_repo, kuake_export, dev_texts, tmp_path):
    copy = shutil.copytree(kuake_repo, tmp_path / "elsewhere" / "repo")
    for path in copy.rglob("*"):
        if path.is_file() and path.name != MARKER and path.suffix in (".pbtxt", ".py", ".json", ".txt"):
            text = path.read_text(encoding="utf-8")
            assert str(kuake_export) not in text and str(kuake_repo) not in text, f"{path} points outside the repository"
    texts = dev_texts[:200]
    with GrpcClient(kuake_server.grpc_url) as client:
        original = client.classify(texts)
    serve = ServeProcess(copy, tmp_path / "copy.log")
    try:
        with GrpcClient(serve.wait_ready()) as client:
            copied = client.classify(texts)
    finally:
        code = serve.interrupt()
    assert [p.label for p in copied] == [p.label for p in original]
    np.testing.assert_allclose([p.confidence for p in copied], [p.confidence for p in original], atol=1e-6)
    assert code == 0
