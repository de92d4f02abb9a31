"""The runtime's contracts: the typed manifest, the typed Triton parameters, and the one
sort-pad-run-scatter loop every in-process path uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support import edit_manifest
from tritoncls import runtime as rt
from tritoncls.runtime.manifest import FORMAT_VERSION, Manifest


def test_manifest_round_trips_through_its_json(own_tiny_export):
    manifest = Manifest.load(own_tiny_export)
    assert Manifest.from_dict(json.loads(manifest.to_json())) == manifest
    assert manifest.format_version == FORMAT_VERSION
    assert manifest.onnx.input_names == rt.INPUT_NAMES and manifest.onnx.output_name == rt.LOGITS
    assert manifest.num_labels == len(manifest.labels) == manifest.architecture["num_labels"]


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m: m.pop("max_seq_length"), r"field 'max_seq_length' is missing"),
    (lambda m: m.update(max_seq_length="64"), r"field 'max_seq_length' is '64', expected int"),
    (lambda m: m["tokenizer"].update(pad_token_id=True), r"field 'tokenizer.pad_token_id' is True, expected int"),
    (lambda m: m["onnx"].update(file="../model.onnx"), r"field 'onnx.file' is '../model.onnx'; it must be a plain file name"),
    (lambda m: m["tokenizer"]["files"].update(vocab="/etc/passwd"), r"'tokenizer.files.vocab' is '/etc/passwd'"),
    (lambda m: m["onnx"]["outputs"][0].update(shape=[-1, "x"]), r"'onnx.outputs\[0\].shape' must list integers"),
    (lambda m: m.update(format_version=FORMAT_VERSION + 1), r"newer than this tritoncls supports"),
    (lambda m: m.update(format="something-else"), r"field 'format' is 'something-else'"),
    (lambda m: m["architecture"].update(num_labels=7), r"3 labels but architecture.num_labels is 7"),
    (lambda m: m["tokenizer"]["special_tokens"].pop("unk_token"), r"'tokenizer.special_tokens.unk_token' is missing"),
    (lambda m: m["tokenizer"].update(rules="sentencepiece"), r"'tokenizer.rules' is 'sentencepiece', not one of"),
])
def test_manifest_names_the_file_and_field_of_every_defect(own_tiny_export, edit, message):
    edit_manifest(own_tiny_export, edit)
    with pytest.raises(rt.ManifestError, match=message) as caught:
        Manifest.load(own_tiny_export)
    assert str(own_tiny_export / "manifest.json") in str(caught.value)


def test_manifest_version_1_with_a_benchmark_variant_loads_as_variant(own_tiny_export):
    edit_manifest(own_tiny_export, lambda m: m.update(format_version=1, benchmark_variant={"variant": "int8"}))
    assert Manifest.load(own_tiny_export).variant == {"variant": "int8"}


def test_manifest_without_tokenizer_rules_was_written_for_paddlenlp_rules(own_tiny_export):
    edit_manifest(own_tiny_export, lambda m: m["tokenizer"].pop("rules", None))
    assert Manifest.load(own_tiny_export).tokenizer.rules == "paddlenlp"


def test_hf_bert_rules_reach_the_export_tokenizer_and_the_python_tokenizer_refuses_them(own_tiny_export):
    edit_manifest(own_tiny_export, lambda m: m["tokenizer"].update(rules="hf-bert"))
    manifest = Manifest.load(own_tiny_export)
    assert Manifest.from_dict(json.loads(manifest.to_json())).tokenizer.rules == "hf-bert"
    assert rt.export_tokenizer(own_tiny_export, manifest).rules == "hf-bert"
    with pytest.raises(rt.OptionError, match="'paddlenlp' rules only"):
        rt.PythonWordPieceTokenizer(own_tiny_export / "vocab.txt", True, manifest.tokenizer.special_tokens, 64, "hf-bert")
    params = rt.TokenizerParameters(implementation="python", rules="hf-bert", vocab_file="vocab.txt",
                                    special_tokens=manifest.tokenizer.special_tokens, max_seq_length=64,
                                    buckets=(64,), pad_token_id=0)
    with pytest.raises(rt.ParameterError, match="rebuild with --tokenizer wordpiece"):
        rt.TokenizeStep.from_parameters(params.to_strings(), own_tiny_export)


def test_missing_manifest_says_how_to_make_one(tmp_path):
    with pytest.raises(rt.ManifestError, match="tritoncls export"):
        Manifest.load(tmp_path)


@pytest.mark.parametrize("params", [
    rt.TokenizerParameters(vocab_file="vocab.txt", special_tokens={"unk_token": "[UNK]"}, max_seq_length=64,
                           buckets=(16, 32, 64), pad_token_id=0, do_lower_case=False),
    rt.ModelParameters(pad_token_id=1, runtime="paddle_inference", params_file="model.pdiparams", trim_padding=False),
    rt.PostprocessParameters(num_labels=3, top_k=2),
], ids=lambda p: p.step)
def test_triton_parameters_round_trip_through_config_strings(params):
    strings = params.to_strings()
    assert all(isinstance(v, str) for v in strings.values())
    assert type(params).from_strings(strings) == params


def test_triton_parameters_refuse_a_missing_or_unknown_key_naming_both():
    strings = rt.PostprocessParameters(num_labels=3).to_strings()
    del strings["top_k"]
    strings["colour"] = "blue"
    with pytest.raises(rt.ParameterError, match=r"missing \['top_k'\], unknown \['colour'\].*build-repo"):
        rt.PostprocessParameters.from_strings(strings)
    with pytest.raises(rt.ParameterError, match="parameter 'merge_requests': 'yes'"):
        rt.ModelParameters.from_strings({**rt.ModelParameters(pad_token_id=0).to_strings(), "merge_requests": "yes"})


class RecordingRunner:
    """Logits that encode each row (its length and first id), and the batches it saw."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, int]] = []

    def run(self, input_ids: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        self.shapes.append(input_ids.shape)
        assert not token_type_ids.any()
        lengths = (input_ids != 0).sum(axis=1)
        return np.stack([lengths, input_ids[:, 0]], axis=1).astype(np.float32)


@pytest.mark.parametrize("sort", [True, False])
def test_run_batched_scatters_logits_back_to_input_order(sort):
    rows = [[5] * n for n in (7, 1, 4, 9, 2, 3, 8)]
    runner = RecordingRunner()
    run = rt.run_batched(rows, runner, pad_token_id=0, batch_size=3, sort=sort)
    assert run.logits[:, 0].tolist() == [len(r) for r in rows]
    assert run.real_tokens == sum(len(r) for r in rows)
    assert run.padded_tokens == sum(a * b for a, b in runner.shapes) >= run.real_tokens
    assert max(a for a, _ in runner.shapes) <= 3


def test_sorting_by_length_pads_less_than_input_order():
    rows = [[5] * n for n in (30, 1, 29, 2, 28, 3)]
    sorted_run = rt.run_batched(rows, RecordingRunner(), 0, 2, sort=True)
    file_run = rt.run_batched(rows, RecordingRunner(), 0, 2, sort=False)
    assert sorted_run.padded_tokens < file_run.padded_tokens
    np.testing.assert_array_equal(sorted_run.logits, file_run.logits)


def test_predictor_from_export_gives_the_served_model_steps_logits(own_tiny_export):
    manifest = Manifest.load(own_tiny_export)
    predictor = rt.Predictor.from_export(own_tiny_export, batch_size=2)
    texts = ["good movie", "bad", "neutral words here and more", "good"]
    run = predictor.logits(texts)
    step = rt.ModelStep(rt.OnnxRunner(own_tiny_export / manifest.onnx.file, manifest.onnx.input_names, manifest.onnx.output_name),
                        manifest.tokenizer.pad_token_id)
    rows = predictor.encode(texts)
    expected = np.concatenate(step([rt.pad_rows([r], len(r), 0) for r in rows]))
    np.testing.assert_allclose(run.logits, expected, atol=1e-6)
    labels, confidences = predictor.predict(texts)
    assert labels == [manifest.labels[i] for i in expected.argmax(1)]
    assert all(0 < c <= 1 for c in confidences)


class FakePbUtils:
    """The few parts of Triton's triton_python_backend_utils that runtime.triton uses."""

    class TritonError:
        INVALID_ARG, INTERNAL = "INVALID_ARG", "INTERNAL"

        def __init__(self, message: str, code: str = "INTERNAL") -> None:
            self.message, self.code = message, code

    class Tensor:
        def __init__(self, name: str, array: np.ndarray) -> None:
            self.name, self.array = name, array

    class InferenceResponse:
        def __init__(self, output_tensors, error=None) -> None:
            self.output_tensors, self.error = output_tensors, error

    class _Input:
        def __init__(self, array: np.ndarray) -> None:
            self.array = array

        def as_numpy(self) -> np.ndarray:
            return self.array

    @classmethod
    def get_input_tensor_by_name(cls, request: dict, name: str):
        return cls._Input(request[name]) if name in request else None


def test_python_model_glue_fails_only_the_bad_request_with_the_right_code():
    pb = FakePbUtils
    requests = [{"a": np.ones(2), "b": np.zeros(2)}, {"a": np.ones(1)}, {"a": np.ones(3), "b": np.ones(3)}]
    inputs = rt.triton.request_inputs(pb, requests, ["a", "b"])
    assert isinstance(inputs[1], Exception) and [len(x[0]) for i, x in enumerate(inputs) if i != 1] == [2, 3]
    results = [inputs[0][0], inputs[1], rt.RequestError("text 0: the text is empty")]
    out = rt.triton.responses(pb, results, lambda array: {"y": array * 2})
    assert out[0].error is None and out[0].output_tensors[0].name == "y"
    np.testing.assert_array_equal(out[0].output_tensors[0].array, [2, 2])
    assert (out[1].error.code, out[2].error.code) == ("INTERNAL", "INVALID_ARG")
    assert out[2].error.message == "text 0: the text is empty" and out[2].output_tensors == []


def test_usable_cores_counts_physical_cores_of_the_affinity_once(tmp_path, monkeypatch):
    from tritoncls.runtime.runners import usable_cores

    for cpu, (package, core) in enumerate([(0, 0), (0, 0), (0, 1), (0, 1)]):  # 2 cores x 2 hyperthreads
        topology = tmp_path / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True)
        (topology / "physical_package_id").write_text(f"{package}\n")
        (topology / "core_id").write_text(f"{core}\n")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert usable_cores(tmp_path) == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {2})
    assert usable_cores(tmp_path) == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {7})  # no topology: logical CPUs
    assert usable_cores(tmp_path) == 1


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs CPU affinity and 2 usable CPUs")
def test_onnx_runtime_threads_stay_on_the_cpus_the_process_may_use(tiny_export):
    # ONNX Runtime's own default (0 threads) pins a pool thread to every core of the machine; ours must not
    # leave the affinity taskset or tune --client_cpus gave the process. A fresh process: affinity is per thread.
    script = (f"import glob, os\nos.sched_setaffinity(0, {{{min(os.sched_getaffinity(0))}}})\n"
              "import numpy as np\nfrom tritoncls.runtime.manifest import Manifest\n"
              "from tritoncls.runtime.runners import OnnxRunner\n"
              f"m = Manifest.load({str(tiny_export)!r})\n"
              f"runner = OnnxRunner({str(tiny_export)!r} + '/' + m.onnx.file, m.onnx.input_names, m.onnx.output_name, 0)\n"
              "runner.run(np.full((4, 8), 5, dtype=np.int64), np.zeros((4, 8), dtype=np.int64))\n"
              "print(sorted({open(t).read().split('Cpus_allowed_list:')[1].split()[0]\n"
              "              for t in glob.glob(f'/proc/{os.getpid()}/task/*/status')}))")
    shown = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                           cwd=Path(__file__).parents[1]).stdout
    assert shown.strip() == f"['{min(os.sched_getaffinity(0))}']"
