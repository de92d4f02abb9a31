"""build-repo's fused layout and ``--options tune.json``: what the tune search picks is what build-repo renders.

The fused layout's config is pinned by golden files (tests/golden/python_cpu_fused); its python model is
checked in-process against the ensemble's three steps.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tritoncls import runtime as rt
from tritoncls.builder import MARKER, BuildConfig, build_repository
from tritoncls.builder.options import read_options, write_options
from tritoncls.builder.validate import parse_config, validate_repository
from tritoncls.cli.build_repo import main as build_repo_main
from tritoncls.errors import BuildError, ConfigError

GOLDEN = Path(__file__).parent / "golden" / "python_cpu_fused"
UPDATE_GOLDEN = os.environ.get("TRITONCLS_UPDATE_GOLDEN") == "1"


def fused_repo(export: Path, output: Path, **options) -> Path:
    return build_repository(BuildConfig(model=str(export), output=str(output), layout="fused", **options))


def test_fused_layout_renders_one_python_model_matching_its_golden_config(tiny_export, tmp_path):
    repo = fused_repo(tiny_export, tmp_path / "repo", top_k=3, instances=2, intra_op_threads=1, group_padding=1.5)
    configs = sorted(repo.glob("*/config.pbtxt"))
    assert [c.parent.name for c in configs] == ["seqcls"]
    text = configs[0].read_text(encoding="utf-8")
    golden = GOLDEN / "seqcls.pbtxt"
    if UPDATE_GOLDEN:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")
    assert sorted(p.name for p in (repo / "seqcls" / "1").iterdir()) == [
        "label.txt", "model.onnx", "model.py", "special_tokens_map.json", "tokenizer_config.json",
        "tritoncls_runtime", "vocab.txt"]


def test_fused_config_has_the_ensembles_inputs_and_outputs(tiny_export, tmp_path):
    fused = parse_config(fused_repo(tiny_export, tmp_path / "fused", top_k=2) / "seqcls" / "config.pbtxt")
    ensemble = parse_config(build_repository(BuildConfig(model=str(tiny_export), output=str(tmp_path / "ens"),
                                                         top_k=2)) / "seqcls" / "config.pbtxt")
    assert list(fused.input) == list(ensemble.input) and list(fused.output) == list(ensemble.output)
    assert fused.backend == "python" and fused.dynamic_batching.max_queue_delay_microseconds == 2000


def test_fused_parameters_round_trip_and_split_into_the_three_steps_parameters(tiny_export, tmp_path):
    config = parse_config(fused_repo(tiny_export, tmp_path / "repo", group_padding=1.3) / "seqcls" / "config.pbtxt")
    params = rt.FusedParameters.from_strings({k: v.string_value for k, v in config.parameters.items()})
    assert params.graph.group_padding == 1.3 and params.graph.graph_inputs == "input_ids,token_type_ids"
    assert params.tokenizer.buckets == (16, 32, 64) and params.model.trim_padding
    assert params.postprocess.num_labels == 3


def test_fused_step_gives_the_ensemble_steps_labels_and_fails_only_the_bad_request(tiny_export, tmp_path):
    repo = fused_repo(tiny_export, tmp_path / "repo", top_k=2)
    config = parse_config(repo / "seqcls" / "config.pbtxt")
    fused = rt.FusedStep.from_parameters({k: v.string_value for k, v in config.parameters.items()}, repo / "seqcls" / "1")
    columns = [np.array([[t.encode()] for t in texts], dtype=np.object_)
               for texts in (["good movie"], ["bad " * 20, "ok"], [""], ["great fine"])]
    got = fused(columns)
    chained = fused.postprocess(rt.ModelStep(fused.model.runner, 0, merge=False)(fused.tokenize(columns)))
    assert isinstance(got[2], rt.RequestError)
    for mine, theirs in zip(got[:2] + got[3:], chained[:2] + chained[3:]):
        assert list(mine.label) == list(theirs.label)
        np.testing.assert_allclose(mine.confidence, theirs.confidence, atol=1e-5)


def test_validation_refuses_a_fused_model_whose_parameters_misname_the_graph(tiny_export, tmp_path):
    repo = fused_repo(tiny_export, tmp_path / "repo")
    path = repo / "seqcls" / "config.pbtxt"
    path.write_text(path.read_text(encoding="utf-8").replace('"input_ids,token_type_ids"', '"ids,types"'),
                    encoding="utf-8")
    with pytest.raises(BuildError, match="graph_inputs"):
        validate_repository(repo)


@pytest.mark.parametrize("options, problem", [
    ({"backend": "onnxruntime"}, "--layout"),
    ({"tokenizer_instances": 2}, "--tokenizer_instances"),
    ({"group_padding": 0.9}, "--group_padding"),
])
def test_fused_layout_refuses_options_it_cannot_honour(tiny_export, tmp_path, options, problem):
    with pytest.raises(ConfigError, match=problem):
        BuildConfig(model=str(tiny_export), output=str(tmp_path / "r"), layout="fused", **options)


def test_group_padding_is_refused_for_the_ensemble_layout(tiny_export, tmp_path):
    with pytest.raises(ConfigError, match="--group_padding: applies to --layout fused"):
        BuildConfig(model=str(tiny_export), output=str(tmp_path / "r"), group_padding=1.5)


def test_tokenizer_instances_render_into_the_tokenizer_config(tiny_export, tmp_path):
    repo = build_repository(BuildConfig(model=str(tiny_export), output=str(tmp_path / "r"), tokenizer_instances=2))
    assert parse_config(repo / "tokenizer" / "config.pbtxt").instance_group[0].count == 2


# ---------------------------------------------------------------------------------------------
# --options tune.json
# ---------------------------------------------------------------------------------------------

TUNED = {"layout": "fused", "instances": 2, "intra_op_threads": 1, "max_queue_delay_us": 4000,
         "max_batch_size": 32, "buckets": [16, 24, 40, 64], "group_padding": 1.3}
MACHINE = {"usable_cpus": 2, "cpu": "test CPU"}


def test_build_repo_options_renders_the_tuned_configuration(tiny_export, tmp_path):
    options = write_options(tmp_path / "tune.json", TUNED, MACHINE)
    repo = tmp_path / "repo"
    assert build_repo_main(["--model", str(tiny_export), "--output", str(repo), "--options", str(options)]) == 0
    config = parse_config(repo / "seqcls" / "config.pbtxt")
    params = {k: v.string_value for k, v in config.parameters.items()}
    assert (config.instance_group[0].count, config.max_batch_size) == (2, 32)
    assert config.dynamic_batching.max_queue_delay_microseconds == 4000
    assert (params["buckets"], params["intra_op_threads"], params["group_padding"]) == ("16,24,40,64", "1", "1.3")
    record = json.loads((repo / MARKER).read_text(encoding="utf-8"))
    assert record["layout"] == "fused" and record["options_file"]["measured_on"] == MACHINE
    assert record["options_file"]["applied"] == sorted(TUNED) and record["options_file"]["overridden_by_flags"] == []
    assert record["build_machine"]["usable_cpus"] == len(os.sched_getaffinity(0))
    assert "sched_getaffinity" in record["build_machine"]["note"]


def test_explicit_flags_win_over_the_options_file_even_at_their_default(tiny_export, tmp_path):
    options = write_options(tmp_path / "tune.json", TUNED, MACHINE)
    repo = tmp_path / "repo"
    assert build_repo_main(["--model", str(tiny_export), "--output", str(repo), "--options", str(options),
                            "--instances", "1", "--max_queue_delay_us", "100"]) == 0
    config = parse_config(repo / "seqcls" / "config.pbtxt")
    assert config.instance_group[0].count == 1 and config.dynamic_batching.max_queue_delay_microseconds == 100
    assert config.max_batch_size == 32  # from the file
    record = json.loads((repo / MARKER).read_text(encoding="utf-8"))
    assert record["options_file"]["overridden_by_flags"] == ["instances", "max_queue_delay_us"]


def test_options_file_with_an_unknown_option_is_refused_naming_it(tmp_path):
    path = tmp_path / "tune.json"
    path.write_text(json.dumps({"format": "tritoncls-build-options", "build_options": {"instancez": 2}}))
    with pytest.raises(ConfigError, match=r"\['instancez'\] are not build-repo options"):
        read_options(path)


def test_options_file_that_is_not_one_is_refused(tmp_path):
    path = tmp_path / "tune.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot be read as JSON"):
        read_options(path)
    with pytest.raises(ConfigError, match="not found"):
        read_options(tmp_path / "absent.json")


@pytest.mark.triton
def test_served_fused_layout_gives_the_ensembles_labels_and_fails_only_the_bad_request(tiny_export, tmp_path):
    import tritonclient.grpc as grpcclient

    from tritoncls.measure.served import classify
    from tritoncls.server import TritonServer

    texts = ["good movie", "bad " * 30, "the movie was very fine", "中文 好", "awful !"]
    labels = {}
    for layout in ("ensemble", "fused"):
        repo = build_repository(BuildConfig(model=str(tiny_export), output=str(tmp_path / layout), layout=layout,
                                            instances=2, intra_op_threads=1))
        with TritonServer(repo, log_file=tmp_path / f"{layout}.log") as server:
            labels[layout] = [p.label for p in classify(server.grpc_url, "seqcls", texts, batch_size=2)]
            if layout == "fused":
                client = grpcclient.InferenceServerClient(server.grpc_url)
                bad = grpcclient.InferInput(rt.TEXT, [1, 1], "BYTES")
                bad.set_data_from_numpy(np.array([[b"\xc3\x28"]], dtype=np.object_))
                with pytest.raises(Exception, match="UTF-8"):
                    client.infer("seqcls", [bad])
                assert [p.label for p in classify(server.grpc_url, "seqcls", texts[:1])] == labels[layout][:1]
                client.close()
    assert labels["fused"] == labels["ensemble"] and set(labels["fused"]) <= {"positive", "negative", "neutral"}
