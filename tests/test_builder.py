"""build-repo: golden configs per backend/device, Triton-schema validation, ensemble checks, safe output.

Regenerate the golden files after an intended change with
``TRITONCLS_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_builder.py`` and review the diff.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.support import edit_manifest, write_tiny_export
from tritoncls import runtime as rt
from tritoncls.builder import MARKER, BuildConfig, build_repository
from tritoncls.builder.plan import ExportInfo, clip_buckets, plan_repository
from tritoncls.builder.render import Renderer, pbtxt_string
from tritoncls.builder.validate import parse_config, validate_repository
from tritoncls.cli.build_repo import main as build_repo_main
from tritoncls.errors import BuildError, ConfigError

GOLDEN = Path(__file__).parent / "golden"
UPDATE_GOLDEN = os.environ.get("TRITONCLS_UPDATE_GOLDEN") == "1"

#: golden case -> build options
CASES = {
    "python_cpu": {"top_k": 3},
    "onnxruntime_cpu": {"backend": "onnxruntime", "intra_op_threads": 2, "inter_op_threads": 1},
    "onnxruntime_gpu_tensorrt_fp16": {"backend": "onnxruntime", "device": "gpu", "accelerator": "tensorrt",
                                      "precision": "fp16", "instances": 2, "preferred_batch_sizes": (16, 32)},
    "paddle_gpu": {"backend": "paddle", "device": "gpu", "accelerator": "tensorrt", "precision": "fp16"},
    "python_cpu_reference": {"profile": "reference"},
    "python_gpu_fp16": {"device": "gpu", "precision": "fp16"},
}


def build(export: Path, output: Path, **options) -> Path:
    return build_repository(BuildConfig(model=str(export), output=str(output), **options))


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_configs_match_golden_files(case, tiny_export, tmp_path):
    repo = build(tiny_export, tmp_path / "repo", **CASES[case])
    configs = sorted(repo.glob("*/config.pbtxt"))
    assert len(configs) == 4
    for config in configs:
        golden = GOLDEN / case / f"{config.parent.name}.pbtxt"
        text = config.read_text(encoding="utf-8")
        if UPDATE_GOLDEN:
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(text, encoding="utf-8")
        assert golden.is_file(), f"{golden} missing; run with TRITONCLS_UPDATE_GOLDEN=1 to create it"
        assert text == golden.read_text(encoding="utf-8"), f"{config} differs from {golden}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_configs_parse_with_tritons_schema_and_their_ensemble_maps_check_out(case, tmp_path):
    repo = tmp_path / "repo"
    for golden in (GOLDEN / case).glob("*.pbtxt"):
        (repo / golden.stem / "1").mkdir(parents=True)
        shutil.copy(golden, repo / golden.stem / "config.pbtxt")
    configs = validate_repository(repo)
    ensemble = configs["seqcls"]
    assert ensemble.platform == "ensemble"
    assert [s.model_name for s in ensemble.ensemble_scheduling.step] == ["tokenizer", "seqcls_model", "seqcls_postprocess"]
    assert [t.name for t in ensemble.input] == ["text"]
    assert [t.name for t in ensemble.output][:2] == ["label", "confidence"]


def test_onnxruntime_gpu_tensorrt_config_sets_fp16_engine_cache_and_profile_shapes(tiny_export, tmp_path):
    repo = build(tiny_export, tmp_path / "repo", **CASES["onnxruntime_gpu_tensorrt_fp16"])
    config = parse_config(repo / "seqcls_model" / "config.pbtxt")
    assert config.backend == "onnxruntime" and config.instance_group[0].kind == config.instance_group[0].KIND_GPU
    trt = config.optimization.execution_accelerators.gpu_execution_accelerator[0]
    assert trt.name == "tensorrt"
    assert trt.parameters["precision_mode"] == "FP16"
    assert trt.parameters["trt_engine_cache_enable"] == "true"
    assert trt.parameters["trt_engine_cache_path"] == "/tmp/tritoncls_trt_cache/seqcls_model"
    assert trt.parameters["trt_profile_min_shapes"] == "input_ids:1x1,token_type_ids:1x1"
    assert trt.parameters["trt_profile_max_shapes"] == "input_ids:64x64,token_type_ids:64x64"
    assert list(config.dynamic_batching.preferred_batch_size) == [16, 32]


def test_repository_is_self_contained_with_runtime_beside_every_python_model(tiny_export, tmp_path):
    repo = build(tiny_export, tmp_path / "repo")
    for model in ("tokenizer", "seqcls_model", "seqcls_postprocess"):
        version = repo / model / "1"
        copied = version / rt.RUNTIME_PACKAGE
        assert (version / "model.py").is_file() and (copied / "__init__.py").is_file()
        source = Path(rt.__file__).parent
        assert sorted(p.name for p in copied.iterdir()) == sorted(p.name for p in source.glob("*.py"))
        assert all((copied / p.name).read_bytes() == p.read_bytes() for p in source.glob("*.py"))
    assert (repo / "tokenizer" / "1" / "vocab.txt").read_bytes() == (tiny_export / "vocab.txt").read_bytes()
    assert (repo / "seqcls_model" / "1" / "model.onnx").read_bytes() == (tiny_export / "model.onnx").read_bytes()
    assert (repo / MARKER).is_file() and (repo / "README.md").is_file()
    assert not list(tmp_path.glob(".repo.*")), "no staging folder may be left behind"


def test_labels_with_quotes_braces_and_non_ascii_reach_the_postprocess_intact(tmp_path):
    labels = ['say "hi"', "{{ not_a_template }}", "{% raw %}", "back\\slash", "中文标签", "émoji 🙂"]
    export = write_tiny_export(tmp_path / "export", labels=labels)
    repo = build(export, tmp_path / "repo", top_k=2)
    copied = repo / "seqcls_postprocess" / "1" / "label.txt"
    assert copied.read_bytes() == (export / "label.txt").read_bytes()
    assert "中文标签" not in (repo / "seqcls_postprocess" / "config.pbtxt").read_text(encoding="utf-8")
    config = rt.PostprocessParameters(num_labels=len(labels), top_k=2).to_strings()
    params = rt.string_parameters({"parameters": {key: {"string_value": value} for key, value in config.items()}})
    step = rt.PostprocessStep.from_parameters(params, copied.parent)
    assert step.labels == labels


def test_build_refuses_an_existing_repository_without_force_and_replaces_it_with_force(tiny_export, tmp_path):
    repo = build(tiny_export, tmp_path / "repo")
    with pytest.raises(BuildError, match="--force"):
        build(tiny_export, repo)
    build(tiny_export, repo, force=True, top_k=2)
    assert "top_k_labels" in (repo / "seqcls" / "config.pbtxt").read_text(encoding="utf-8")


def test_build_refuses_to_replace_a_folder_that_is_not_a_repository_even_with_force(tiny_export, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not delete", encoding="utf-8")
    with pytest.raises(BuildError, match="not a tritoncls repository"):
        build(tiny_export, precious, force=True)
    assert (precious / "thesis.tex").read_text(encoding="utf-8") == "do not delete"


def test_manifest_names_that_differ_from_the_onnx_graph_fail_the_build_and_leave_nothing(tmp_path):
    export = write_tiny_export(tmp_path / "export")
    edit_manifest(export, lambda m: m["onnx"]["inputs"][0].update(name="ids"))
    with pytest.raises(BuildError, match=r"seqcls_model/config.pbtxt: input names \['ids', 'token_type_ids'\] differ"):
        build(export, tmp_path / "repo")
    assert not (tmp_path / "repo").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["export"]


def test_ensemble_map_to_an_unknown_model_input_names_file_field_and_fix(tiny_export, tmp_path):
    repo = build(tiny_export, tmp_path / "repo")
    config = repo / "seqcls" / "config.pbtxt"
    config.write_text(config.read_text(encoding="utf-8").replace('key: "token_type_ids" value', 'key: "segment_ids" value'),
                      encoding="utf-8")
    with pytest.raises(BuildError) as error:
        validate_repository(repo)
    message = str(error.value)
    assert str(config) in message and "step[0].output_map key 'segment_ids'" in message and "use one of" in message


def test_ensemble_check_rejects_a_dtype_mismatch_between_steps(tiny_export, tmp_path):
    repo = build(tiny_export, tmp_path / "repo")
    config = repo / "seqcls_model" / "config.pbtxt"
    config.write_text(config.read_text(encoding="utf-8").replace("TYPE_INT64", "TYPE_INT32", 1), encoding="utf-8")
    with pytest.raises(BuildError, match=r"tensor 'input_ids' is TYPE_INT64 \[-1\].*expects TYPE_INT32"):
        validate_repository(repo)


def test_unparsable_config_is_reported_with_its_file_and_line(tiny_export, tmp_path):
    repo = build(tiny_export, tmp_path / "repo")
    config = repo / "tokenizer" / "config.pbtxt"
    config.write_text(config.read_text(encoding="utf-8") + "\nmax_batch_sise: 3\n", encoding="utf-8")
    with pytest.raises(BuildError, match=r"tokenizer/config.pbtxt:\d+:\d+ : .*max_batch_sise"):
        validate_repository(repo)


def test_template_with_an_undefined_variable_fails_naming_template_and_variable(tmp_path):
    (tmp_path / "broken.pbtxt.j2").write_text('name: {{ spec.name | q }}\nmax_batch_size: {{ spec.max_batch }}\n')
    with pytest.raises(BuildError, match=r"broken.pbtxt.j2: the template uses an undefined value .*max_batch"):
        Renderer(tmp_path).render("broken.pbtxt.j2", spec=type("S", (), {"name": "x"})())


def test_pbtxt_string_escapes_what_protobuf_needs_and_keeps_utf8(tmp_path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    value = 'a "quoted" \\ back\nline\ttab 中文 {{ x }}'
    config = text_format.Parse(f'name: "m"\nparameters {{ key: "k" value {{ string_value: {pbtxt_string(value)} }} }}',
                               model_config_pb2.ModelConfig())
    assert config.parameters["k"].string_value == value


def test_buckets_are_clipped_to_max_seq_length_which_is_always_the_last_bucket():
    assert clip_buckets((16, 32, 64, 128), 64) == (16, 32, 64)
    assert clip_buckets((16, 32, 64, 128), 50) == (16, 32, 50)
    assert clip_buckets((16, 32, 64, 128), 512) == (16, 32, 64, 128, 512)


def test_reference_profile_uses_the_paddlenlp_tokenizer_own_length_padding_and_no_dynamic_batching(tiny_export, tmp_path):
    plan = plan_repository(BuildConfig(model=str(tiny_export), output=str(tmp_path / "r"), profile="reference"),
                           ExportInfo.load(tiny_export))
    tokenizer = plan.model("tokenizer").spec
    params = {p.key: p.value for p in tokenizer.parameters}
    assert (params["implementation"], params["padding"]) == ("python", "longest")
    assert all(m.spec.dynamic_batching is None for m in plan.models[1:])


def test_explicit_options_override_the_profile(tiny_export, tmp_path):
    config = BuildConfig(model=str(tiny_export), output=str(tmp_path / "r"), profile="reference", padding="max_length")
    assert config.resolved().padding == "max_length" and config.resolved().tokenizer == "python"


def test_another_name_prefixes_every_step_so_two_classifiers_can_share_a_server(tiny_export, tmp_path):
    repo = build(tiny_export, tmp_path / "repo", name="intent")
    assert sorted(p.name for p in repo.iterdir() if p.is_dir()) == ["intent", "intent_model", "intent_postprocess",
                                                                   "intent_tokenizer"]


def test_python_backend_with_paddle_inference_serves_the_paddle_graph_names(tiny_export, tmp_path):
    repo = build(tiny_export, tmp_path / "repo", runtime="paddle_inference")
    model = parse_config(repo / "seqcls_model" / "config.pbtxt")
    assert [o.name for o in model.output] == ["fetch_name_0"]
    assert (repo / "seqcls_model" / "1" / "model.json").is_file()
    assert model.parameters["runtime"].string_value == "paddle_inference"


@pytest.mark.parametrize("options, message", [
    ({"precision": "fp16"}, "--precision: fp16 needs --device gpu"),
    ({"precision": "fp16", "device": "gpu", "runtime": "paddle_inference"}, "--precision: fp16 needs --device gpu"),
    ({"backend": "onnxruntime", "accelerator": "mkldnn"}, "--accelerator: 'mkldnn' is not allowed with --backend onnxruntime"),
    ({"backend": "paddle", "runtime": "paddle_inference"}, "--runtime: applies to --backend python only"),
    ({"preferred_batch_sizes": (128,)}, "--preferred_batch_sizes: [128] must lie in 1..--max_batch_size"),
    ({"buckets": (64, 32)}, "--buckets: [64, 32] must be increasing"),
    ({"instance_kind": "gpu"}, "--instance_kind: gpu needs --device gpu"),
])
def test_build_config_rejects_bad_option_combinations_naming_the_flag(options, message, tmp_path):
    with pytest.raises(ConfigError) as error:
        BuildConfig(model="m", output=str(tmp_path), **options)
    assert message in str(error.value)


@pytest.mark.parametrize("tokenizer", ["python", "paddlenlp"])
def test_a_model_with_hf_bert_tokenizer_rules_is_built_with_the_wordpiece_tokenizer_only(tokenizer, tmp_path):
    export = write_tiny_export(tmp_path / "export")
    edit_manifest(export, lambda m: m["tokenizer"].update(rules="hf-bert"))
    with pytest.raises(BuildError, match=f"--tokenizer {tokenizer}: only the wordpiece tokenizer .* 'hf-bert'"):
        build(export, tmp_path / "bad", tokenizer=tokenizer)
    repo = build(export, tmp_path / "repo")
    assert 'key: "rules"\n  value: { string_value: "hf-bert" }' in (repo / "tokenizer" / "config.pbtxt").read_text()
    fused = build(export, tmp_path / "fused", layout="fused")
    assert 'key: "rules"\n  value: { string_value: "hf-bert" }' in (fused / "seqcls" / "config.pbtxt").read_text()


def test_an_export_without_its_paddle_graph_builds_onnx_repositories_and_refuses_paddle_ones(tmp_path):
    """A repository copies one graph, so an export may travel with only that one (a GPU machine's skeleton)."""
    export = write_tiny_export(tmp_path / "export")
    params = export / rt.Manifest.load(export).paddle.params_file
    params.unlink()
    build(export, tmp_path / "onnx")
    with pytest.raises(BuildError, match=f"files \\['{params.name}'\\] named in .* are missing"):
        build(export, tmp_path / "paddle", runtime="paddle_inference")


def test_top_k_above_the_number_of_labels_is_refused(tiny_export, tmp_path):
    with pytest.raises(BuildError, match="--top_k 5 is more than the model's 3 labels"):
        build(tiny_export, tmp_path / "repo", top_k=5)


def test_build_repo_console_script_exits_non_zero_with_the_reason(tmp_path, caplog):
    assert build_repo_main(["--model", str(tmp_path / "missing"), "--output", str(tmp_path / "repo")]) == 1
    assert "manifest.json: not found" in caplog.text


def test_build_repo_console_script_builds(tiny_export, tmp_path, capsys):
    assert build_repo_main(["--model", str(tiny_export), "--output", str(tmp_path / "repo"), "--buckets", "8", "16"]) == 0
    assert "tritoncls serve --model-repository" in capsys.readouterr().out
    tokenizer = parse_config(tmp_path / "repo" / "tokenizer" / "config.pbtxt")
    assert tokenizer.parameters["buckets"].string_value == "8,16,64"


def test_int8_precision_quantizes_the_repositorys_onnx_and_leaves_the_export_alone(tiny_export, tmp_path):
    import numpy as np
    import onnx

    before = sorted(p.name for p in tiny_export.iterdir())
    fp32 = build(tiny_export, tmp_path / "fp32")
    int8 = build(tiny_export, tmp_path / "int8", precision="int8")
    ops = {node.op_type for node in onnx.load(int8 / "seqcls_model" / "1" / "model.onnx").graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops
    assert sorted(p.name for p in tiny_export.iterdir()) == before  # nothing written beside the export
    assert not list((int8 / "seqcls_model" / "1").glob("*.partial*"))

    def logits(repo: Path) -> np.ndarray:
        version = repo / "seqcls_model" / "1"
        config = parse_config(repo / "seqcls_model" / "config.pbtxt")
        params = {key: value.string_value for key, value in config.parameters.items()}
        step = rt.ModelStep.from_parameters(params, version, ("input_ids", "token_type_ids"), "logits")
        ids = np.array([[1, 5, 6, 7, 2, 0], [1, 8, 2, 0, 0, 0]], dtype=np.int64)
        return step([(ids, np.zeros_like(ids))])[0]

    reference, quantized = logits(fp32), logits(int8)
    assert reference.shape == quantized.shape == (2, 3)
    np.testing.assert_allclose(quantized, reference, atol=0.1 * np.abs(reference).max())
    assert (quantized.argmax(1) == reference.argmax(1)).all()


@pytest.mark.parametrize("options", [{}, {"backend": "onnxruntime", "accelerator": "cuda"}], ids=["python", "onnxruntime"])
def test_fp16_on_gpu_converts_the_repositorys_onnx_keeping_fp32_inputs_and_outputs(options, tiny_export, tmp_path):
    """What the GPU would run, checked on the CPU: FP16 weights, FP32 logits out, the FP32 graph's labels (ONNX
    Runtime's CPU provider runs the FP16 graph too; the model step falls back to it without CUDA)."""
    import numpy as np
    import onnx

    repo = build(tiny_export, tmp_path / "fp16", device="gpu", precision="fp16", **options)
    graph = onnx.load(repo / "seqcls_model" / "1" / "model.onnx").graph
    assert {init.data_type for init in graph.initializer if len(init.dims) == 2} == {onnx.TensorProto.FLOAT16}
    assert [v.type.tensor_type.elem_type for v in (*graph.input, *graph.output)] == [
        onnx.TensorProto.INT64, onnx.TensorProto.INT64, onnx.TensorProto.FLOAT]
    config = parse_config(repo / "seqcls_model" / "config.pbtxt")
    assert config.instance_group[0].kind == config.instance_group[0].KIND_GPU
    if options:
        return
    fp32 = build(tiny_export, tmp_path / "fp32")
    ids = np.array([[1, 5, 6, 7, 2, 0], [1, 8, 2, 0, 0, 0]], dtype=np.int64)

    def logits(repo: Path) -> np.ndarray:
        config = parse_config(repo / "seqcls_model" / "config.pbtxt")
        params = {key: value.string_value for key, value in config.parameters.items()}
        step = rt.ModelStep.from_parameters(params, repo / "seqcls_model" / "1", ("input_ids", "token_type_ids"), "logits")
        return step([(ids, np.zeros_like(ids))])[0]

    reference = logits(fp32)
    with pytest.warns(RuntimeWarning, match="CUDA provider is not available here .* runs on the CPU"):
        half = logits(repo)
    assert half.dtype == np.float32
    np.testing.assert_allclose(half, reference, atol=0.02 * np.abs(reference).max())
    assert (half.argmax(1) == reference.argmax(1)).all()


@pytest.mark.parametrize("options", [{"precision": "int8", "runtime": "paddle_inference"},
                                     {"precision": "int8", "backend": "paddle"},
                                     {"precision": "int8", "device": "gpu"},
                                     {"precision": "int8", "backend": "onnxruntime", "accelerator": "openvino"}])
def test_int8_precision_is_refused_where_onnx_runtime_cpu_does_not_run_the_model(options, tmp_path):
    with pytest.raises(ConfigError, match="--precision: int8 is ONNX Runtime dynamic quantization on CPU"):
        BuildConfig(model="m", output=str(tmp_path), **options)
