"""The CLI pattern: one module per command, one flag name and one help text per concept, old spellings as aliases."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import subprocess
import sys

import pytest

from tritoncls.cli import COMMANDS, build_parser, main
from tritoncls.cli._args import CONCEPTS, config_from_args, option_strings

#: Arguments that satisfy each command's required options, so one more flag can be parsed.
MINIMAL = {
    "train": ["--dataset_dir", "d"],
    "evaluate": ["--dataset_dir", "d"],
    "predict": [],
    "export": [],
    "import-hf": ["folder", "--output", "o"],
    "analyze": ["--dataset_dir", "d"],
    "prune": [],
    "build-repo": ["--model", "m", "--output", "o"],
    "serve": ["--model_repository", "r"],
    "deploy": ["--model_repository", "r", "--output", "o"],
    "classify": ["--url", "h:1", "--input", "i", "--output", "o"],
    "soak": ["--url", "h:1", "--input", "i"],
    "monitor": ["--reference", "r"],
    "bench": ["--model", "m", "--input", "i", "--output", "o"],
    "bench-gpu": ["--model", "m", "--input", "i", "--output", "o"],
    "tune": ["--model", "m", "--input", "i", "--output", "o"],
    "compress": ["--checkpoint", "c", "--dataset_dir", "d", "--output", "o", "--max_drop", "1"],
    "perf-analyzer": [],
    "doctor": [],
}

#: Commands that hand every argument to another program: no options, no --help of their own.
PASS_THROUGH = {"perf-analyzer"}

#: (command, old spelling, canonical flag): each old spelling users may have in scripts.
ALIASES = [
    ("train", "--save_dir", "--output"),
    ("evaluate", "--params_path", "--checkpoint"),
    ("evaluate", "--report_json", "--report"),
    ("predict", "--params_path", "--checkpoint"),
    ("predict", "--output_file", "--output"),
    ("export", "--params_path", "--checkpoint"),
    ("export", "--output_path", "--output"),
    ("analyze", "--report_json", "--report"),
    ("prune", "--params_dir", "--checkpoint"),
    ("prune", "--output_dir", "--output"),
    ("prune", "--per_device_train_batch_size", "--batch_size"),
    ("prune", "--per_device_eval_batch_size", "--eval_batch_size"),
    ("prune", "--num_train_epochs", "--epochs"),
    ("classify", "--model_name", "--name"),
    ("soak", "--texts", "--input"),
    ("soak", "--reference_export", "--reference_model"),
    ("soak", "--model_name", "--name"),
    ("monitor", "--model_name", "--name"),
    ("bench", "--data", "--input"),
    ("import-hf", "--label_file", "--labels"),
]

#: Canonical flags each command must show in --help.
CANONICAL = {
    "train": ["--dataset_dir", "--output", "--device", "--max_seq_length", "--batch_size", "--epochs"],
    "evaluate": ["--dataset_dir", "--checkpoint", "--report", "--device"],
    "predict": ["--dataset_dir", "--checkpoint", "--model", "--input", "--output", "--device"],
    "export": ["--checkpoint", "--output", "--max_seq_length"],
    "import-hf": ["--output", "--report"],
    "analyze": ["--dataset_dir", "--report", "--max_seq_length"],
    "prune": ["--dataset_dir", "--checkpoint", "--output", "--batch_size", "--epochs", "--device"],
    "build-repo": ["--model", "--output", "--name", "--device", "--instances"],
    "serve": ["--model_repository"],
    "deploy": ["--model_repository", "--output", "--target", "--device", "--replicas", "--object_name", "--image"],
    "classify": ["--url", "--input", "--output", "--name", "--batch_size", "--timeout_s"],
    "soak": ["--url", "--model_repository", "--input", "--name", "--reference_model", "--report"],
    "monitor": ["--reference", "--metrics_url", "--prometheus", "--name", "--baseline", "--output"],
    "bench": ["--model", "--input", "--output", "--instances", "--intra_op_threads"],
    "bench-gpu": ["--model", "--input", "--output", "--max_texts", "--instance_kind"],
    "tune": ["--model", "--input", "--output", "--batch_size", "--name"],
    "compress": ["--checkpoint", "--dataset_dir", "--output", "--max_drop", "--budget_minutes", "--widths", "--depths",
                 "--precisions", "--epochs", "--resume"],
    "doctor": ["--model_repository"],
}


def subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def parse(command: str, *extra: str) -> argparse.Namespace:
    return build_parser().parse_args([command, *MINIMAL[command], *extra])


def test_every_command_module_has_the_pattern():
    for name in COMMANDS:
        module = importlib.import_module(f"tritoncls.cli.{name}")
        assert module.__doc__, name
        assert module.NAME == name.replace("_", "-")
        assert module.HELP and module.DESCRIPTION and module.STAGE.startswith("tritoncls.")
        assert callable(module.add_arguments) and callable(module.run)
    assert sorted(subparsers()) == sorted(name.replace("_", "-") for name in COMMANDS)
    assert set(MINIMAL) == set(subparsers()) == set(CANONICAL) | PASS_THROUGH


@pytest.mark.parametrize("command,old,canonical", ALIASES, ids=[f"{c}{o}" for c, o, _ in ALIASES])
def test_old_spellings_parse_to_the_canonical_dest(command, old, canonical):
    dest = canonical[2:]
    value = "7"
    for spelling in (old, old.replace("_", "-")):
        assert str(getattr(parse(command, spelling, value), dest)) == value, spelling
    assert str(getattr(parse(command, canonical, value), dest)) == value
    assert not hasattr(parse(command, old, value), old[2:])  # one dest, not a second option


def test_every_flag_also_has_its_dashed_form():
    for command, parser in subparsers().items():
        for action in parser._actions:
            for option in action.option_strings:
                if option.startswith("--") and "_" in option:
                    assert option.replace("_", "-") in action.option_strings, (command, option)


def test_help_uses_the_same_words_for_the_same_concept():
    for command, parser in subparsers().items():
        for action in parser._actions:
            concept = "model" if action.dest == "reference_model" else action.dest
            if concept in CONCEPTS:
                assert action.help.startswith(CONCEPTS[concept]), (command, action.dest, action.help)
                if action.dest in CONCEPTS:
                    assert action.option_strings[0] == f"--{action.dest}", (command, action.option_strings)


@pytest.mark.parametrize("command", sorted(CANONICAL))
def test_help_names_the_canonical_flags(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for flag in CANONICAL[command]:
        assert f"  {flag} " in text or f"  {flag}," in text or f" {flag} " in text, (command, flag)
    words = " ".join(text.split())
    for concept in ("checkpoint", "model", "output", "report", "input"):
        if f"--{concept} " in words.split("options:")[1]:
            assert CONCEPTS[concept] in words, (command, concept)


REQUIRED = [
    ("train", [], "--dataset_dir"),
    ("evaluate", [], "--dataset_dir"),
    ("analyze", [], "--dataset_dir"),
    ("build-repo", ["--output", "o"], "--model"),
    ("build-repo", ["--model", "m"], "--output"),
    ("serve", [], "--model_repository"),
    ("classify", ["--url", "h:1", "--output", "o"], "--input"),
    ("classify", ["--input", "i", "--output", "o"], "--url"),
    ("soak", ["--input", "i"], "--url"),
    ("soak", ["--url", "h:1"], "--input"),
    ("monitor", [], "--reference"),
    ("bench", ["--model", "m", "--output", "o"], "--input"),
    ("compress", ["--dataset_dir", "d", "--output", "o", "--max_drop", "1"], "--checkpoint"),
    ("compress", ["--checkpoint", "c", "--dataset_dir", "d", "--output", "o"], "--max_drop"),
    # needed unless another option is given: checked in run(), reported the same way
    ("prune", [], "--dataset_dir"),
    ("predict", [], "--input"),
    ("predict", ["--model", "m"], "--input"),
]


@pytest.mark.parametrize("command,argv,flag", REQUIRED, ids=[f"{c}-{f}" for c, _, f in REQUIRED])
def test_a_missing_required_option_is_a_usage_error_naming_it(command, argv, flag, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"usage: tritoncls {command}" in err and flag in err


def test_standalone_build_repo_reports_a_missing_option_like_argparse(capsys):
    from tritoncls.cli.build_repo import main as build_repo_main

    with pytest.raises(SystemExit) as info:
        build_repo_main(["--output", "o"])
    assert info.value.code == 2
    assert "--model" in capsys.readouterr().err


def test_a_malformed_arch_override_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--dataset_dir", str(tmp_path), "--arch", "num_hidden_layers"])
    assert info.value.code == 2
    assert "--arch 'num_hidden_layers': expected KEY=VALUE" in capsys.readouterr().err


@dataclasses.dataclass
class _Config:
    dataset_dir: str
    output: str = "out"
    device: str = "cpu"
    unknown_to_args: int = 5


def test_config_from_args_fills_same_named_fields_and_takes_derived_values():
    args = argparse.Namespace(dataset_dir="d", output="o", device="auto", handler=print, verbose=True)
    config = config_from_args(_Config, args, device="gpu")
    assert config == _Config(dataset_dir="d", output="o", device="gpu", unknown_to_args=5)
    with pytest.raises(TypeError, match="no field"):
        config_from_args(_Config, args, not_a_field=1)


def test_every_command_builds_its_config_from_the_parsed_defaults():
    from tritoncls.benchmarks.bench import BenchConfig
    from tritoncls.builder.config import BuildConfig
    from tritoncls.cli.bench import bench_config
    from tritoncls.cli.build_repo import build_config
    from tritoncls.cli.compress import compress_config
    from tritoncls.cli.tune import tune_config
    from tritoncls.clients.chunked import ClassifyFileConfig
    from tritoncls.compress.config import CompressConfig
    from tritoncls.modeling.export import ExportConfig
    from tritoncls.prune.prune import PruneConfig
    from tritoncls.soak import SoakConfig
    from tritoncls.training.analysis import AnalyzeConfig
    from tritoncls.training.evaluate import EvaluateConfig
    from tritoncls.training.predict import PredictConfig
    from tritoncls.training.train import TrainConfig
    from tritoncls.tune.config import TuneConfig

    assert config_from_args(TrainConfig, parse("train", "--save_dir", "ck"), device="cpu").output == "ck"
    assert config_from_args(EvaluateConfig, parse("evaluate", "--params_path", "ck"), device="cpu").checkpoint == "ck"
    predict = config_from_args(PredictConfig, parse("predict", "--dataset_dir", "d", "--output_file", "p.tsv"),
                               device="cpu")
    assert predict.output == "p.tsv"
    assert config_from_args(ExportConfig, parse("export", "--output_path", "e")).output == "e"
    assert config_from_args(AnalyzeConfig, parse("analyze", "--report_json", "a.json")).report == "a.json"
    prune = config_from_args(PruneConfig, parse("prune", "--dataset_dir", "d", "--num_train_epochs", "2"), device="cpu")
    assert prune.epochs == 2 and prune.checkpoint == "./checkpoint"
    classify = config_from_args(ClassifyFileConfig, parse("classify", "--model_name", "x"), urls=("h:1",))
    assert classify.name == "x" and classify.input == "i"
    soak = config_from_args(SoakConfig, parse("soak", "--reference_export", "e"))
    assert soak.reference_model == "e" and soak.input == "i"
    assert isinstance(build_config(parse("build-repo")), BuildConfig)
    assert isinstance(bench_config(parse("bench", "--tiny")), BenchConfig)
    tune = tune_config(parse("tune", "--data", "d.txt", "--concurrencies", "2", "8"))
    assert isinstance(tune, TuneConfig) and tune.input == "d.txt" and tune.concurrencies == (2, 8)
    compress = compress_config(parse("compress", "--widths", "1/2", "--depths", "1", "--no_plots"))
    assert isinstance(compress, CompressConfig) and compress.widths == ("1/2",) and compress.depths == (1,)
    assert compress.max_drop == 1.0 and compress.plots is False and compress.precisions == ("fp32", "int8", "int8_static")


def test_help_imports_no_heavy_library():
    code = ("import sys; from tritoncls.cli import build_parser; build_parser(); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'paddle', 'paddlenlp', 'onnxruntime', "
            "'tritonclient', 'tokenizers'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_option_strings_keep_the_canonical_name_first_without_repeats():
    assert option_strings("output", "save_dir", "output") == ["--output", "--save_dir", "--save-dir"]


@pytest.mark.parametrize("command", sorted(MINIMAL))
@pytest.mark.parametrize("error", ["ManifestError", "ModelLoadError", "OptionError", "ConfigError"])
def test_every_command_ends_an_error_of_either_root_with_exit_status_1_and_one_message(command, error, monkeypatch,
                                                                                       caplog):
    from tritoncls import errors, runtime

    root = getattr(runtime, error, None) or getattr(errors, error)
    message = f"export/manifest.json: field 'labels' is missing ({error}). Re-run `tritoncls export`."

    def fail(_args):
        raise root(message)

    set_defaults = argparse.ArgumentParser.set_defaults

    def every_handler_fails(parser, **defaults):  # each command's run, and each analyze audit's
        set_defaults(parser, **{**defaults, **({"handler": fail} if "handler" in defaults else {})})

    monkeypatch.setattr(argparse.ArgumentParser, "set_defaults", every_handler_fails)
    with caplog.at_level("ERROR", logger="tritoncls"):
        assert main([command, *MINIMAL[command]]) == 1
    errors_logged = [r for r in caplog.records if r.levelname == "ERROR"]
    assert [r.getMessage() for r in errors_logged] == [message]
    assert "Traceback" not in caplog.text


def test_the_build_repo_script_ends_a_runtime_error_like_the_cli(monkeypatch, caplog):
    from tritoncls.cli import build_repo
    from tritoncls.runtime import ModelLoadError

    def fail(_args):
        raise ModelLoadError("model.onnx: ONNX Runtime cannot load the model (bad file). Re-export it.")

    monkeypatch.setattr(build_repo, "run", fail)
    assert build_repo.main(["--model", "m", "--output", "o"]) == 1
    assert "cannot load the model" in caplog.text


def test_instance_kind_choices_are_the_builders_in_every_command():
    from tritoncls.builder.config import INSTANCE_KINDS

    parsers = subparsers()
    for command in ("bench-gpu", "build-repo"):
        action = next(a for a in parsers[command]._actions if a.dest == "instance_kind")
        assert tuple(action.choices) == tuple(INSTANCE_KINDS), command


def test_bench_device_gpu_names_the_command_it_became(capsys):
    with pytest.raises(SystemExit) as info:
        main(["bench", *MINIMAL["bench"], "--device", "gpu"])
    assert info.value.code == 2
    assert "tritoncls bench-gpu --model EXPORT" in capsys.readouterr().err
    assert parse("bench", "--device", "cpu").device == "cpu"


def test_bench_gpu_options_become_the_gpu_benchmarks_config(monkeypatch, capsys):
    import tritoncls.benchmarks.gpu_served as gpu_served
    from tritoncls.cli import bench_gpu

    seen = []
    monkeypatch.setattr(gpu_served, "run_gpu_bench", lambda config: seen.append(config) or {"precisions": []})
    monkeypatch.setattr(gpu_served, "markdown", lambda report: "the report")
    assert bench_gpu.run(parse("bench-gpu", "--instance_kind", "cpu")) == 0
    assert seen == [gpu_served.GpuBenchConfig(model="m", input="i", output="o", instance_kind="cpu")]
    assert "the report" in capsys.readouterr().out
