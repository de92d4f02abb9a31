"""``tritoncls compress``: the choice within the accuracy budget, the Pareto front, resume and failures, the
outputs (from fake measurements, no server), refused inputs, and one small served run on the toy teacher."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests import support
from tritoncls.compress.config import (
    OPTIONS_FILE,
    PLOT_FILE,
    REPORT_FILE,
    REPORT_JSON,
    RESULT_FILE,
    CandidateResult,
    CompressConfig,
    CompressError,
    NoCandidateWithinBudget,
    Structure,
)
from tritoncls.compress.search import choose, length_bucket, pareto_front

# ---------------------------------------------------------------------------------------------
# Fakes: a checkpoint that is only files, structures without exports, measurements from a table
# ---------------------------------------------------------------------------------------------


def fake_checkpoint(path: Path, labels=support.TOY_LABELS, trained_length: int = 64) -> Path:
    """A checkpoint as far as compress's checks read one: weights file, marker, labels, training config."""
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}", encoding="utf-8")
    (path / "model_state.pdparams").write_bytes(b"")
    (path / "COMPLETE").write_text("", encoding="utf-8")
    if labels is not None:
        (path / "label.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    (path / "training_config.json").write_text(json.dumps({"max_seq_length": trained_length}), encoding="utf-8")
    return path


def config_for(tmp_path: Path, **overrides) -> CompressConfig:
    data = tmp_path / "data"
    if not data.exists():
        support.write_toy_dataset(data)
    checkpoint = tmp_path / "teacher"
    if not checkpoint.exists():
        fake_checkpoint(checkpoint)
    options = dict(checkpoint=str(checkpoint), dataset_dir=str(data), output=str(tmp_path / "out"), max_drop=1.0,
                   widths=("1/2",), precisions=("fp32", "int8"))
    return CompressConfig(**(options | overrides))


STRUCTURES = [("unpruned", 64, 2, "1"), ("width_mult_0.5", 64, 2, "1/2"), ("unpruned", 32, 2, "1"),
              ("width_mult_0.5", 32, 2, "1/2")]


def fake_structures(config, inputs, deadline=None):
    out = []
    for name, length, layers, width in STRUCTURES:
        export = config.output_dir / "structures" / f"{name}-L{length}" / "export"
        export.mkdir(parents=True, exist_ok=True)
        out.append(Structure(name, str(export), length, layers, width))
    return out, {"trained_length": 64, "corpus_length": 32, "length_quantile": 0.99,
                 "train_token_quantiles": {"p99": 20}}


class FakeMeasure:
    """score, texts/s at 32-text requests, single texts/s (and optionally the test score) per candidate name; an
    Exception value is raised."""

    def __init__(self, table):
        self.table, self.calls = table, []

    def __call__(self, candidate, folder):
        self.calls.append(candidate.name)
        value = self.table[candidate.name]
        if isinstance(value, Exception):
            raise value
        result = CandidateResult.for_candidate(candidate)
        result.score, result.batch_texts_per_s, result.single_texts_per_s = value[:3]
        if len(value) > 3:
            result.test_score, result.test_texts = value[3], 10
        result.batch_p99_ms, result.single_p99_ms, result.scored_texts = 50.0, 20.0, 8
        return result


TABLE = {
    "unpruned-L64-fp32": (0.90, 100.0, 80.0),
    "reference-style": (0.90, 20.0, 30.0),
    "unpruned-L64-int8": (0.895, 180.0, 120.0),
    "width_mult_0.5-L64-fp32": (0.885, 170.0, 130.0),
    "width_mult_0.5-L64-int8": (0.87, 300.0, 200.0),  # 3 points below: over a budget of 1
    "unpruned-L32-fp32": (0.90, 160.0, 100.0),
    "unpruned-L32-int8": (0.89, 260.0, 150.0),  # exactly 1 point below: within
    "width_mult_0.5-L32-fp32": (0.88, 250.0, 190.0),
    "width_mult_0.5-L32-int8": (0.86, 400.0, 260.0),
}

MACHINE = {"cpu": "test", "usable_cpus": 2}


def run(config, table=TABLE):
    from tritoncls.compress.compress import run_compress

    measure = FakeMeasure(table)
    return run_compress(config, measure=measure, structures_of=fake_structures, machine=MACHINE), measure


def result(name: str, score: float, batch: float, peer: bool = False) -> CandidateResult:
    r = CandidateResult(name, name, "fp32", 64, "e", {}, peer=peer)
    r.score, r.batch_texts_per_s, r.single_texts_per_s = score, batch, batch / 2
    return r


# ---------------------------------------------------------------------------------------------
# Pure logic
# ---------------------------------------------------------------------------------------------


def test_pareto_front_keeps_the_candidates_no_other_beats_on_both_score_and_speed_fastest_first():
    rows = [result("a", 0.90, 100), result("b", 0.88, 200), result("c", 0.87, 150), result("d", 0.85, 300),
            result("ref", 0.95, 1000, peer=True)]
    failed = result("e", 0.99, 999)
    failed.error = "boom"
    assert [r.name for r in pareto_front(rows + [failed])] == ["d", "b", "a"]


def test_the_fastest_candidate_within_the_budget_is_chosen_and_the_budget_edge_counts_as_within():
    rows = [result("base", 0.90, 100), result("edge", 0.89, 260), result("over", 0.8899, 900),
            result("ref", 0.95, 5000, peer=True)]
    assert choose(rows, 0.90, 1.0).name == "edge"
    assert choose(rows, 0.90, 0.0).name == "base"


def test_no_candidate_within_the_budget_raises_listing_the_closest_with_their_numbers():
    rows = [result("a", 0.80, 100), result("b", 0.85, 200), result("c", 0.70, 400), result("d", 0.84, 50)]
    with pytest.raises(NoCandidateWithinBudget) as info:
        choose(rows, 0.90, 1.0)
    message = str(info.value)
    assert "--max_drop 1" in message and "90.00%" in message
    assert message.index("b: score 85.00% (-5.00 pts), 200.0 texts/s") < message.index("d: score 84.00%") \
        < message.index("a: score 80.00%")
    assert "c: score" not in message  # three closest only


def test_the_length_bucket_rounds_the_quantile_up_and_never_passes_the_trained_length():
    assert length_bucket([10] * 98 + [40] * 2, 0.99, 128) == 48
    assert length_bucket([10] * 100, 0.99, 128) == 16
    assert length_bucket([100] * 10, 0.99, 64) == 64
    assert length_bucket([], 0.99, 64) == 64


def test_the_reference_style_peer_keeps_the_wordpiece_tokenizer_for_a_model_of_hugging_face_rules(tmp_path):
    """One definition for bench and compress; an hf-bert model cannot take the PaddleNLP tokenizer (build-repo
    refuses it), so its peer keeps the wordpiece tokenizer and the rest of the reference profile."""
    from tests.support import edit_manifest, write_tiny_export
    from tritoncls.builder import BuildConfig, build_repository
    from tritoncls.measure.served import REFERENCE_OPTIONS, reference_options

    export = write_tiny_export(tmp_path / "export")
    assert reference_options(export) == REFERENCE_OPTIONS
    edit_manifest(export, lambda manifest: manifest["tokenizer"].update(rules="hf-bert"))
    options = reference_options(export)
    assert options == {"profile": "reference", "padding": "max_length", "tokenizer": "wordpiece"}
    repo = build_repository(BuildConfig(model=str(export), output=str(tmp_path / "repo"), **options))
    assert (repo / "tokenizer" / "config.pbtxt").is_file()


# ---------------------------------------------------------------------------------------------
# The run with fake measurements: choice, outputs, resume, failures, budget
# ---------------------------------------------------------------------------------------------


def test_compress_chooses_the_fastest_within_budget_and_writes_report_plot_and_options_build_repo_reads(tmp_path):
    from tritoncls.builder.options import read_options

    outcome, measure = run(config_for(tmp_path))
    assert measure.calls[:2] == ["unpruned-L64-fp32", "reference-style"]
    assert sorted(measure.calls) == sorted(TABLE)
    assert outcome.chosen.name == "unpruned-L32-int8" and outcome.baseline.name == "unpruned-L64-fp32"
    out = tmp_path / "out"
    options = read_options(out / OPTIONS_FILE)
    assert options.build_options == {"precision": "int8"} and options.measured_on == MACHINE
    record = json.loads((out / OPTIONS_FILE).read_text(encoding="utf-8"))
    assert record["export"] == str((out / "structures" / "unpruned-L32" / "export").resolve())
    report = (out / REPORT_FILE).read_text(encoding="utf-8")
    assert "**Chosen: `unpruned-L32-int8`**" in report and "2.60x the default FP32, 13.00x reference-style" in report
    assert "| width_mult_0.5-L32-int8 | width_mult_0.5 | 2 | 1/2 | int8 | default | 32 | 86.00 | -4.00 |" in report
    assert "reference-style peer" in report and "default FP32 baseline" in report
    assert (out / PLOT_FILE).stat().st_size > 1000
    rows = {r["name"]: r for r in json.loads((out / REPORT_JSON).read_text(encoding="utf-8"))["candidates"]}
    assert rows["unpruned-L32-int8"]["ratios"]["batch_vs_reference"] == pytest.approx(13.0)
    assert rows["width_mult_0.5-L32-int8"]["pareto"] and not rows["width_mult_0.5-L64-fp32"]["pareto"]
    for name in TABLE:
        assert (out / "candidates" / name / RESULT_FILE).is_file()


def test_test_scores_are_reported_beside_dev_but_never_choose(tmp_path):
    # width_mult_0.5-L32-int8 scores best on test but 4 points under on dev: the dev budget still rules it out
    table = {name: (*value, value[0] - 0.01) for name, value in TABLE.items()}
    table["width_mult_0.5-L32-int8"] = (0.86, 400.0, 260.0, 0.99)
    data = tmp_path / "data"
    support.write_toy_dataset(data)
    (data / "test.txt").write_text((data / "dev.txt").read_text(encoding="utf-8"), encoding="utf-8")
    config = config_for(tmp_path)
    outcome, _ = run(config, table)
    assert outcome.chosen.name == "unpruned-L32-int8"
    out = tmp_path / "out"
    report = (out / REPORT_FILE).read_text(encoding="utf-8")
    assert f"Test: `{data / 'test.txt'}` (8 texts) is scored" in report
    assert "**Chosen: `unpruned-L32-int8`**: dev 89.00% (-1.00 pts), test 88.00% (-1.00 pts)," in report
    assert "| width_mult_0.5-L32-int8 | width_mult_0.5 | 2 | 1/2 | int8 | default | 32 | 86.00 | -4.00 | 99.00 | +10.00 |" \
        in report
    assert json.loads((out / OPTIONS_FILE).read_text(encoding="utf-8"))["served_test_score"] == pytest.approx(0.88)
    rows = {r["name"]: r for r in json.loads((out / REPORT_JSON).read_text(encoding="utf-8"))["candidates"]}
    assert rows["unpruned-L32-int8"]["test_drop_points"] == pytest.approx(1.0)


def test_the_test_file_is_read_with_the_data_checks_and_an_explicit_missing_one_is_refused(tmp_path):
    from tritoncls.compress.compress import check_inputs
    from tritoncls.errors import DataError

    config = config_for(tmp_path)
    assert check_inputs(config).test_texts == ()  # the toy set has no test.txt: dev only
    with pytest.raises(CompressError, match="--test_file .*held_out.txt: no such file.*--no_test"):
        check_inputs(config_for(tmp_path, test_file="held_out.txt"))
    test = Path(config.dataset_dir) / "test.txt"
    test.write_text("a soup text\tfood\na text about weather\tweather\n", encoding="utf-8")
    with pytest.raises(DataError, match=f"{test}:2: label 'weather' is not in the label file"):
        check_inputs(config)
    test.write_text("a soup text\tfood\n", encoding="utf-8")
    inputs = check_inputs(config)
    assert inputs.test_texts == ("a soup text",) and inputs.test_fields == ("food",)
    assert check_inputs(config_for(tmp_path, score_test=False)).test_texts == ()


def test_static_int8_is_built_as_int8_calibrated_on_the_train_texts_and_compress_json_keeps_it(tmp_path):
    from tritoncls.builder.config import BuildConfig
    from tritoncls.builder.options import read_options
    from tritoncls.compress.compress import plan_candidates

    config = config_for(tmp_path, precisions=("fp32", "int8_static"))
    structures, _ = fake_structures(config, None)
    candidates = {c.name: c for c in plan_candidates(structures, config)}
    train = str((Path(config.dataset_dir) / "train.txt").resolve())
    static = candidates["width_mult_0.5-L32-int8_static"].build_options()
    assert static == {"precision": "int8", "int8_mode": "static", "calibration_data": train}
    BuildConfig(model="e", output="o", **static)  # build-repo takes them as they are
    assert candidates["reference-style"].build_options() == {"precision": "fp32", "profile": "reference",
                                                             "padding": "max_length", "tokenizer": "paddlenlp"}
    table = {name.replace("-int8", "-int8_static"): value for name, value in TABLE.items()}
    outcome, _ = run(config, table)
    assert outcome.chosen.name == "unpruned-L32-int8_static"
    assert read_options(tmp_path / "out" / OPTIONS_FILE).build_options == static | {"precision": "int8"}


def test_every_serving_is_a_candidate_of_its_own_built_with_build_repos_options(tmp_path, monkeypatch):
    from tritoncls.builder.config import BuildConfig
    from tritoncls.builder.options import read_options
    from tritoncls.compress.compress import plan_candidates
    from tritoncls.errors import ConfigError
    from tritoncls.runtime import runners

    monkeypatch.setattr(runners, "usable_cores", lambda: 2)
    config = config_for(tmp_path, precisions=("int8",), servings=("default", "fused_split"))
    structures, _ = fake_structures(config, None)
    candidates = {c.name: c for c in plan_candidates(structures, config)}
    assert list(candidates) == ["unpruned-L64-fp32", "reference-style", "unpruned-L64-int8",
                                "unpruned-L64-int8-fused_split", "width_mult_0.5-L64-int8",
                                "width_mult_0.5-L64-int8-fused_split", "unpruned-L32-int8",
                                "unpruned-L32-int8-fused_split", "width_mult_0.5-L32-int8",
                                "width_mult_0.5-L32-int8-fused_split"]
    split = candidates["width_mult_0.5-L32-int8-fused_split"].build_options()
    assert split == {"precision": "int8", "layout": "fused", "instances": 2, "intra_op_threads": 1}
    BuildConfig(model="e", output="o", **split)  # build-repo takes them as they are
    assert candidates["unpruned-L64-fp32"].build_options() == {"precision": "fp32"}  # the yardstick stays default
    table = {k: v for k, v in TABLE.items() if "fp32" not in k or k == "unpruned-L64-fp32" or k == "reference-style"}
    table |= {f"{k}-fused_split": (v[0], v[1] * 1.3, v[2]) for k, v in table.items() if "int8" in k}
    outcome, _ = run(config, table)
    assert outcome.chosen.name == "unpruned-L32-int8-fused_split" and outcome.chosen.serving == "fused_split"
    assert read_options(tmp_path / "out" / OPTIONS_FILE).build_options == split
    report = (tmp_path / "out" / REPORT_FILE).read_text(encoding="utf-8")
    assert "| unpruned-L32-int8-fused_split | unpruned | 2 | 1 | int8 | fused_split | 32 |" in report
    with pytest.raises(ConfigError, match="--servings turbo: choose from default fused split fused_split"):
        config_for(tmp_path, servings=("turbo",))


def test_compress_with_no_candidate_within_budget_raises_with_the_closest_and_leaves_no_options_file(tmp_path):
    config = config_for(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / OPTIONS_FILE).write_text("stale", encoding="utf-8")
    table = {name: (0.5, 500.0, 500.0) for name in TABLE} | {"unpruned-L64-fp32": (0.9, 100.0, 80.0),
                                                            "unpruned-L32-fp32": (0.7, 150.0, 90.0)}
    with pytest.raises(NoCandidateWithinBudget, match="Closest: unpruned-L32-fp32: score 70.00% \\(-20.00 pts\\)"):
        run(config, table)
    assert not (tmp_path / "out" / OPTIONS_FILE).exists()
    assert "**No candidate is within the budget.**" in (tmp_path / "out" / REPORT_FILE).read_text(encoding="utf-8")


def test_a_failing_candidate_is_recorded_with_its_error_and_the_run_goes_on(tmp_path):
    from tritoncls.errors import BuildError

    table = TABLE | {"unpruned-L32-int8": BuildError("int8 quantization failed: no MatMul to quantize")}
    outcome, measure = run(config_for(tmp_path), table)
    failed = next(r for r in outcome.results if r.name == "unpruned-L32-int8")
    assert failed.error == "int8 quantization failed: no MatMul to quantize" and not failed.ok
    assert outcome.chosen.name == "unpruned-L64-int8"  # the next fastest within 1 point
    assert "failed: int8 quantization failed" in (tmp_path / "out" / REPORT_FILE).read_text(encoding="utf-8")


def test_resume_keeps_finished_candidates_and_measures_failed_ones_again(tmp_path):
    from tritoncls.errors import BuildError

    run(config_for(tmp_path), TABLE | {"unpruned-L32-int8": BuildError("killed")})
    outcome, measure = run(config_for(tmp_path, resume=True))
    assert measure.calls == ["unpruned-L32-int8"]
    assert outcome.chosen.name == "unpruned-L32-int8"
    _, again = run(config_for(tmp_path, resume=False))
    assert len(again.calls) == len(TABLE)  # without --resume everything is measured again


def test_past_the_time_budget_no_candidate_is_started_and_those_left_are_reported_not_measured(tmp_path):
    from tritoncls.compress.config import Candidate
    from tritoncls.compress.search import run_candidates

    times = iter([0.0, 0.0, 1.0, 100.0, 100.0])
    structure = Structure("unpruned", "e", 64)
    candidates = [Candidate(structure, "fp32"), Candidate(structure, "int8"), Candidate(Structure("x", "e", 32), "fp32")]
    measure = FakeMeasure({"unpruned-L64-fp32": (0.9, 1.0, 1.0), "unpruned-L64-int8": (0.9, 2.0, 1.0)})
    results = run_candidates(candidates, measure, tmp_path, deadline=50.0, clock=lambda: next(times))
    assert measure.calls == ["unpruned-L64-fp32"]
    assert [r.error for r in results[1:]] == ["not measured: --budget_minutes ran out before it started"] * 2
    assert not (tmp_path / "candidates" / "unpruned-L64-int8" / RESULT_FILE).exists()
    late = FakeMeasure(measure.table)  # a budget spent before the loop: the baselines are measured all the same
    results = run_candidates(candidates, late, tmp_path, deadline=50.0, clock=lambda: 100.0, always=2)
    assert late.calls == ["unpruned-L64-fp32", "unpruned-L64-int8"] and results[2].error.startswith("not measured")


def test_the_command_exits_3_and_names_the_closest_when_no_candidate_is_within_budget(tmp_path, monkeypatch, caplog):
    from tritoncls.cli import main
    from tritoncls.compress import compress

    def none_within(config):
        raise NoCandidateWithinBudget("no candidate's served dev score is within --max_drop 1 points. Closest: a")

    monkeypatch.setattr(compress, "run_compress", none_within)
    with caplog.at_level("ERROR", logger="tritoncls"):
        assert main(["compress", "--checkpoint", "c", "--dataset_dir", "d", "--output", str(tmp_path),
                     "--max_drop", "1"]) == 3
    assert "Closest: a" in caplog.text


# ---------------------------------------------------------------------------------------------
# Refused inputs
# ---------------------------------------------------------------------------------------------


def test_a_bare_encoder_is_refused_with_the_command_that_fine_tunes_it(tmp_path):
    from tritoncls.compress.compress import check_inputs

    bare = fake_checkpoint(tmp_path / "encoder", labels=None)
    config = config_for(tmp_path, checkpoint=str(bare))
    with pytest.raises(CompressError) as info:
        check_inputs(config)
    message = str(info.value)
    assert "not a fine-tuned classifier (no label.txt" in message
    assert (f"`tritoncls train --model_name {bare} --dataset_dir {config.dataset_dir} --output {bare}-finetuned`"
            in message)


def test_a_bare_hugging_face_encoder_is_refused_whether_imported_or_not(tmp_path):
    from tritoncls.compress.compress import check_inputs
    from tritoncls.modeling.hf import import_hf

    texts = [line.split("\t")[0] for line in support.toy_lines()]
    folder = support.write_hf_folder(tmp_path / "minilm", "bert", texts)
    config = config_for(tmp_path, checkpoint=str(folder))
    with pytest.raises(CompressError, match="a Hugging Face model without a classifier fine-tuned on these labels "
                                            "\\(a bare encoder\\).*`tritoncls train --model_name .*minilm --dataset_dir"):
        check_inputs(config)
    assert not (tmp_path / "out" / "teacher").exists()
    import_hf(folder, tmp_path / "imported", num_labels=2)  # `tritoncls import-hf --num_labels 2`: a new head
    with pytest.raises(CompressError, match="not a fine-tuned classifier \\(no label.txt"):
        check_inputs(config_for(tmp_path, checkpoint=str(tmp_path / "imported")))


def test_a_hugging_face_classifier_of_the_datas_labels_is_imported_as_the_teacher(tmp_path):
    from tritoncls.compress.compress import check_inputs

    texts = [line.split("\t")[0] for line in support.toy_lines()]
    folder = support.write_hf_folder(tmp_path / "classifier", "bert", texts, num_labels=2)
    with pytest.raises(CompressError, match=r"a Hugging Face classifier, but not of the labels .*label.txt lists "
                                            r"\(the model is already a classifier of 2 labels \['class_0', 'class_1'\]"):
        check_inputs(config_for(tmp_path, checkpoint=str(folder)))
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config["id2label"] = dict(enumerate(support.TOY_LABELS))
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    inputs = check_inputs(config_for(tmp_path, checkpoint=str(folder)))
    assert inputs.teacher == tmp_path / "out" / "teacher" and inputs.labels == support.TOY_LABELS
    assert inputs.trained_length == 64 and len(inputs.dev_texts) == 8  # the folder's 64 positions, not 128


def test_an_imported_encoder_with_a_new_head_is_refused_too(tmp_path):
    from tritoncls.compress.compress import check_inputs

    imported = fake_checkpoint(tmp_path / "imported")
    (imported / "training_config.json").unlink()
    (imported / "import_report.json").write_text(json.dumps({"kept_classifier": False}), encoding="utf-8")
    with pytest.raises(CompressError, match="kept_classifier false.*tritoncls train --model_name"):
        check_inputs(config_for(tmp_path, checkpoint=str(imported)))


def test_a_classifier_of_other_labels_is_refused_naming_both_label_lists(tmp_path):
    from tritoncls.compress.compress import check_inputs

    other = fake_checkpoint(tmp_path / "other", labels=("cats", "dogs"))
    with pytest.raises(CompressError, match=r"predicts \['cats', 'dogs'\] .* lists \['food', 'sport'\]"):
        check_inputs(config_for(tmp_path, checkpoint=str(other)))


def test_dev_data_with_an_unknown_label_is_refused_at_its_file_and_line(tmp_path):
    from tritoncls.compress.compress import check_inputs
    from tritoncls.errors import DataError

    config = config_for(tmp_path)
    dev = Path(config.dataset_dir) / "dev.txt"
    lines = dev.read_text(encoding="utf-8").splitlines()
    lines[2] = "a text about weather\tweather"
    dev.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=f"{dev}:3: label 'weather' is not in the label file"):
        check_inputs(config)


def test_bad_options_are_refused_naming_the_flag():
    from tritoncls.errors import ConfigError

    with pytest.raises(ConfigError, match="--precisions fp16: choose from fp32 int8"):
        CompressConfig("c", "d", "o", 1.0, precisions=("fp16",))
    with pytest.raises(ConfigError, match="--widths 3/2: a width is a fraction in"):
        CompressConfig("c", "d", "o", 1.0, widths=("3/2",))
    with pytest.raises(ConfigError, match="--max_drop -1"):
        CompressConfig("c", "d", "o", -1.0)


# ---------------------------------------------------------------------------------------------
# One small served run
# ---------------------------------------------------------------------------------------------


@pytest.mark.triton
def test_compress_end_to_end_on_the_toy_teacher_prunes_serves_scores_and_chooses(perf_analyzer_ready,
                                                                                  teacher_checkpoint, toy_dataset,
                                                                                  tmp_path):
    from tritoncls.builder.options import read_options
    from tritoncls.cli import main

    out, data = tmp_path / "compress", tmp_path / "data"
    shutil.copytree(toy_dataset, data)
    (data / "test.txt").write_text((data / "dev.txt").read_text(encoding="utf-8"), encoding="utf-8")
    status = main(["compress", "--checkpoint", str(teacher_checkpoint), "--dataset_dir", str(data), "--output",
                   str(out), "--max_drop", "100", "--widths", "1/2", "--precisions", "fp32", "--epochs", "1",
                   "--max_dev_texts", "8", "--no_corpus_length", "--min_requests", "4", "--max_trials", "3",
                   "--stability_pct", "1000",
                   "--single_concurrency", "4", "--no_plots", "--servings", "default", "fused_split"])
    assert status == 0
    record = json.loads((out / REPORT_JSON).read_text(encoding="utf-8"))
    rows = {r["name"]: r for r in record["candidates"]}
    assert list(rows) == ["unpruned-L64-fp32", "reference-style", "unpruned-L64-fp32-fused_split",
                          "width_mult_0.5-L64-fp32", "width_mult_0.5-L64-fp32-fused_split"]
    assert rows["width_mult_0.5-L64-fp32-fused_split"]["build_options"]["layout"] == "fused"
    for row in rows.values():
        assert row["error"] is None and row["scored_texts"] == 8 and row["test_texts"] == 8, row
        assert row["test_score"] == row["score"]  # the test file holds the dev lines: the same served answers
        assert row["batch_texts_per_s"] > 0 and row["single_texts_per_s"] > 0 and row["batch_p99_ms"] > 0
    assert rows["unpruned-L64-fp32"]["score"] == 1.0  # the teacher learned the toy set, served as trained
    options = read_options(out / OPTIONS_FILE)
    chosen = json.loads((out / OPTIONS_FILE).read_text(encoding="utf-8"))
    assert chosen["candidate"] == record["chosen"] != "reference-style" and Path(chosen["export"]).is_dir()
    assert options.build_options == rows[record["chosen"]]["build_options"]
    assert (Path(rows["width_mult_0.5-L64-fp32"]["export_dir"]) / "manifest.json").is_file()


def test_the_student_settings_reach_prune_and_resume_keeps_students_only_when_they_match(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from tritoncls.compress.compress import _pruned_rows, check_inputs
    from tritoncls.prune import prune as prune_module

    seen = []
    export = tmp_path / "student" / "export"
    export.mkdir(parents=True)
    row = SimpleNamespace(name="d1_w1_2", export_dir=str(export), checkpoint_dir=None, width="1/2",
                          num_hidden_layers=1, parameters=10)

    def fake_prune(prune_config, deadline=None):  # records the settings and writes the report a real run leaves
        seen.append(prune_config)
        report = Path(prune_config.output) / f"{prune_module.REPORT_NAME}.json"
        report.parent.mkdir(parents=True, exist_ok=True)
        rows = [{"name": row.name, "export_dir": row.export_dir, "checkpoint_dir": None, "width": row.width}]
        skipped = ["d1_w1_4"] if deadline is not None else []
        report.write_text(json.dumps({"config": {k: v for k, v in vars(prune_config).items()}, "rows": rows,
                                      "skipped": skipped}), encoding="utf-8")
        return SimpleNamespace(rows=[row], skipped=skipped)

    monkeypatch.setattr(prune_module, "prune", fake_prune)
    config = config_for(tmp_path, depths=(1,), temperature=4.0, hidden_loss_weight=0.5, layer_selection="bottom",
                        soft_label_weight=0.7, augment_copies=2, augment_rate=0.2, resume=True)
    inputs = check_inputs(config)
    _pruned_rows(config, inputs)
    made = seen[-1]
    assert (made.temperature, made.hidden_loss_weight, made.layer_selection, made.soft_label_weight,
            made.augment_copies, made.augment_rate) == (4.0, 0.5, "bottom", 0.7, 2, 0.2)
    _pruned_rows(config, inputs)  # the same settings: kept, prune not called again
    assert len(seen) == 1
    _pruned_rows(config_for(tmp_path, depths=(1,), temperature=2.0, hidden_loss_weight=0.5, layer_selection="bottom",
                            soft_label_weight=0.7, augment_copies=2, augment_rate=0.2, resume=True),
                 inputs)  # another temperature: distilled again
    assert len(seen) == 2 and seen[-1].temperature == 2.0
    # a run the time budget cut short left a student undistilled: a resume distils again
    other = config_for(tmp_path, depths=(1,), temperature=3.0, resume=True)
    assert _pruned_rows(other, inputs, deadline=0.0)[1] == ["d1_w1_4"]
    _pruned_rows(other, inputs)
    assert len(seen) == 4


def test_students_the_time_budget_left_undistilled_are_listed_in_the_report(tmp_path):
    def short_of_time(config, inputs, deadline):
        structures, facts = fake_structures(config, inputs)
        return structures, facts | {"not_distilled": ["d2_w1_4"]}

    from tritoncls.compress.compress import run_compress

    outcome = run_compress(config_for(tmp_path, budget_minutes=5), measure=FakeMeasure(TABLE),
                           structures_of=short_of_time, machine=MACHINE)
    assert outcome.chosen is not None
    report = (tmp_path / "out" / REPORT_FILE).read_text(encoding="utf-8")
    assert "Not distilled, so not measured (--budget_minutes ran out before they started;" in report
    assert "a larger budget distils every student again): d2_w1_4." in report


@pytest.mark.triton
def test_compress_a_multi_label_teacher_scores_every_candidate_by_served_macro_f1(perf_analyzer_ready,
                                                                                 multi_label_teacher_checkpoint,
                                                                                 multi_label_dataset, tmp_path):
    from tritoncls.cli import main
    from tritoncls.modeling import checkpoint as ckpt

    out = tmp_path / "compress"
    status = main(["compress", "--checkpoint", str(multi_label_teacher_checkpoint), "--dataset_dir",
                   str(multi_label_dataset), "--output", str(out), "--max_drop", "100", "--widths", "1/2",
                   "--precisions", "int8", "--epochs", "1", "--no_corpus_length", "--min_requests", "4",
                   "--max_trials", "3", "--stability_pct", "1000", "--single_concurrency", "4", "--no_plots",
                   "--learning_rate", "1e-3"])
    assert status == 0
    record = json.loads((out / REPORT_JSON).read_text(encoding="utf-8"))
    assert record["metric"] == "macro_f1" and record["facts"]["task"] == "multi_label"
    rows = {r["name"]: r for r in record["candidates"]}
    assert list(rows) == ["unpruned-L64-fp32", "reference-style", "unpruned-L64-int8", "width_mult_0.5-L64-int8"]
    for row in rows.values():
        assert row["error"] is None and row["scored_texts"] == 28, row
    # the served FP32 teacher keeps what it learned, through the thresholds saved with it
    saved = ckpt.saved_task(multi_label_teacher_checkpoint)
    assert rows["unpruned-L64-fp32"]["score"] >= 0.8 and saved.task == "multi_label"
    assert "dev macro-F1 (%)" in (out / REPORT_FILE).read_text(encoding="utf-8")
