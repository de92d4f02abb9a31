"""Multi-label and hierarchical models on a real tritonserver, in both layouts: every served label set equals the
offline predictor's (probabilities within 1e-4), a child never comes without its parent, and the tensor
contract works from stock clients (tritonclient gRPC/HTTP, a KServe v2 JSON body, perf_analyzer).

One server per model and layout, for the module (fixtures ``ml_served`` and ``ml_offline`` in conftest.py).
"""

from __future__ import annotations

import json
import subprocess
import urllib.request

import numpy as np
import pytest

from tritoncls.clients import classify_texts, make_client
from tritoncls.errors import ClientError
from tritoncls.runtime import Manifest

pytestmark = [pytest.mark.triton, pytest.mark.slow]

PROB_TOLERANCE = 1e-4


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_served_label_sets_equal_the_offline_predictors_on_every_test_text(protocol, ml_served, ml_offline):
    server, export, texts = ml_served
    probs, sets = ml_offline
    url = server.grpc_url if protocol == "grpc" else server.http_url
    predictions = classify_texts(texts, [url], protocol=protocol, concurrency=4, batch_size=16, all_probs=True)
    labels = Manifest.load(export).labels
    assert [p.names for p in predictions] == [tuple(labels[i] for i in row) for row in sets]
    served_probs = np.array([p.probs for p in predictions])
    assert np.abs(served_probs - probs).max() <= PROB_TOLERANCE
    for prediction, row in zip(predictions, served_probs):  # each label's probability is its ``probs`` entry
        assert all(abs(p - row[labels.index(name)]) < 1e-6 for name, p in prediction.labels)
    assert len({len(p.labels) for p in predictions}) > 1, "every set the same size: the padding was not exercised"


def test_single_text_requests_get_the_same_sets_as_batched_ones(ml_served, ml_offline):
    server, export, texts = ml_served
    labels = Manifest.load(export).labels
    with make_client(server.grpc_url) as client:
        for i in range(0, 40, 7):
            (prediction,) = client.classify([texts[i]])
            assert prediction.names == tuple(labels[j] for j in ml_offline[1][i])


def test_a_kserve_v2_json_body_gets_variable_width_label_sets_and_probs_on_request(ml_served, ml_offline):
    server, export, texts = ml_served
    probs, sets = ml_offline
    labels = Manifest.load(export).labels
    sizes = [len(row) for row in sets]
    rows = [sizes.index(min(sizes)), sizes.index(max(sizes))]  # the narrowest set is padded to the widest
    body = {"inputs": [{"name": "text", "shape": [len(rows), 1], "datatype": "BYTES", "data": [texts[i] for i in rows]}],
            "outputs": [{"name": name} for name in ("labels", "label_probs", "label_count", "probs")]}
    request = urllib.request.Request(f"http://{server.http_url}/v2/models/seqcls/infer", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        outputs = {o["name"]: o for o in json.loads(response.read())["outputs"]}
    width = max(len(sets[i]) for i in rows)
    assert outputs["labels"]["shape"] == [len(rows), width] and outputs["labels"]["datatype"] == "BYTES"
    assert outputs["label_count"]["data"] == [len(sets[i]) for i in rows]
    expected = [labels[j] for i in rows for j in sets[i] + [None] * (width - len(sets[i])) if j is not None]
    assert [name for name in outputs["labels"]["data"] if name] == expected
    assert outputs["probs"]["shape"] == [len(rows), len(labels)]
    np.testing.assert_allclose(np.reshape(outputs["probs"]["data"], (len(rows), -1)), probs[rows], atol=PROB_TOLERANCE)


def test_bad_requests_get_the_same_clear_errors_as_multi_class(ml_served):
    server, _, texts = ml_served
    with make_client(server.grpc_url) as client:
        with pytest.raises(ClientError, match=r"text 0: bytes b'\\xff\\xfe n' at offset 0 are not valid UTF-8"):
            client.infer_raw([b"\xff\xfe not utf-8"])
        with pytest.raises(ClientError, match="text 0: the text is empty"):
            client.infer_raw([""])
        assert client.classify(texts[:2])  # still serving
    assert server.is_running()


def test_perf_analyzer_drives_the_multi_label_ensemble_with_string_data(ml_served, perf_analyzer_ready):
    server, _, texts = ml_served
    command = [str(perf_analyzer_ready.binary), "-m", "seqcls", "-u", server.grpc_url, "-i", "grpc",
               "--string-data", texts[0], "--concurrency-range", "2", "--measurement-mode", "count_windows",
               "--measurement-request-count", "20", "--stability-percentage", "999"]  # any rate: this is no benchmark
    done = subprocess.run(command, capture_output=True, text=True, env=perf_analyzer_ready.env, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Throughput:" in done.stdout


def test_classify_writes_label_sets_with_their_probabilities(ml_served, ml_offline, tmp_path):
    server, export, texts = ml_served
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    from tritoncls.cli import main

    assert main(["classify", "--url", server.grpc_url, "--input", str(tmp_path / "texts.txt"),
                 "--output", str(tmp_path / "served.tsv"), "--chunk_size", "64"]) == 0
    assert main(["predict", "--model", str(export), "--input", str(tmp_path / "texts.txt"),
                 "--output", str(tmp_path / "offline.tsv")]) == 0
    served_rows = (tmp_path / "served.tsv").read_text(encoding="utf-8").splitlines()
    assert served_rows[0] == "text\tlabels\tprobabilities"
    assert [row.split("\t")[:2] for row in served_rows] == [
        row.split("\t")[:2] for row in (tmp_path / "offline.tsv").read_text(encoding="utf-8").splitlines()]
