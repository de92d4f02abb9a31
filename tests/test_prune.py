"""Width and depth pruning: importance ranking, reordering, truncation, layer selection, validation, and pruned
exports."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tritoncls import modeling
from tritoncls.errors import ConfigError
from tritoncls.modeling.dynamic import encode, predict_logits
from tritoncls.modeling.objective import Objective
from tritoncls.prune.depth import bottom_layers, keep_layers, spread_layers
from tritoncls.prune.prune import (
    PruneConfig,
    WidthResult,
    importance,
    parse_width,
    plan_students,
    plan_widths,
    prune,
    reorder,
    row_from_report,
    saved_metric,
    student_copy,
    truncated_copy,
    write_report,
)
from tritoncls.runtime import MULTI_CLASS, MULTI_LABEL, Manifest

# ---------------------------------------------------------------------------------------------
# Ranking, reordering, truncation (no training)
# ---------------------------------------------------------------------------------------------


def test_reordering_heads_and_neurons_by_importance_leaves_logits_unchanged(tiny_model_and_batch):
    model, enc, labels = tiny_model_and_batch
    before = predict_logits(model, enc, 16)
    q_before = model.ernie.encoder.layers[0].self_attn.q_proj.weight.numpy().copy()
    heads, neurons = importance(model, enc, labels, 16)
    assert heads.shape == (2, 4) and neurons.shape == (2, 128)
    orders = [np.argsort(-h, kind="stable") for h in heads]
    assert any((order != np.arange(4)).any() for order in orders)  # a real permutation, not the identity

    reorder(model, heads, neurons)

    assert not np.array_equal(model.ernie.encoder.layers[0].self_attn.q_proj.weight.numpy(), q_before)
    np.testing.assert_allclose(predict_logits(model, enc, 16), before, atol=1e-5)


def test_after_reordering_every_layer_ranks_its_heads_and_neurons_most_important_first(tiny_model_and_batch):
    model, enc, labels = tiny_model_and_batch
    reorder(model, *importance(model, enc, labels, 16))
    heads, neurons = importance(model, enc, labels, 16)
    for scores in (*heads, *neurons):
        assert (np.diff(scores) <= 1e-6 * scores.max()).all()


def test_truncation_keeps_head_size_and_gives_an_ernie_with_fewer_heads_and_neurons(tiny_model_and_batch):
    from paddlenlp.transformers import ErnieForSequenceClassification

    model, enc, _ = tiny_model_and_batch
    small = truncated_copy(model, 2, 64)
    assert isinstance(small, ErnieForSequenceClassification)
    attn = small.ernie.encoder.layers[0].self_attn
    assert (attn.num_heads, attn.head_dim) == (2, 16)
    assert attn.q_proj.weight.shape == [64, 32] and attn.out_proj.weight.shape == [32, 64]
    assert small.ernie.encoder.layers[1].linear1.weight.shape == [64, 64]
    assert (small.config.num_attention_heads, small.config.intermediate_size, small.config.hidden_size) == (2, 64, 64)
    assert getattr(small.config, modeling.HEAD_DIM_FIELD) == 16
    assert predict_logits(small, enc, 16).shape == (len(enc), 2)
    assert model.ernie.encoder.layers[0].self_attn.num_heads == 4  # the source model is untouched


def test_distillation_loss_adds_the_hidden_state_term_only_when_weighted(tiny_model_and_batch, tmp_path):
    import paddle

    from tritoncls.modeling.dynamic import pad_batch
    from tritoncls.prune.prune import _distil_loss

    teacher, enc, labels = tiny_model_and_batch
    student = truncated_copy(teacher, 2, 64)
    ids, types = (paddle.to_tensor(a) for a in pad_batch(enc, list(range(8))))
    y = paddle.to_tensor(labels[:8])
    teacher_logits = teacher(ids, token_type_ids=types)
    plain = PruneConfig(dataset_dir=str(tmp_path))
    with_hidden = PruneConfig(dataset_dir=str(tmp_path), hidden_loss_weight=1.0)
    objective = Objective(MULTI_CLASS, ["food", "sport"])
    logits_only = float(_distil_loss(student, teacher, ids, types, y, teacher_logits, plain, objective))
    both = float(_distil_loss(student, teacher, ids, types, y, None, with_hidden, objective))
    assert np.isfinite(logits_only) and both > logits_only


def test_multi_class_distillation_loss_is_the_softmax_cross_entropy_it_always_was(tiny_model_and_batch, tmp_path):
    import paddle
    import paddle.nn.functional as F

    from tritoncls.modeling.dynamic import pad_batch
    from tritoncls.prune.prune import _distil_loss

    teacher, enc, labels = tiny_model_and_batch
    student = truncated_copy(teacher, 2, 64)
    ids, types = (paddle.to_tensor(a) for a in pad_batch(enc, list(range(8))))
    y = paddle.to_tensor(labels[:8])
    teacher_logits = teacher(ids, token_type_ids=types)
    config = PruneConfig(dataset_dir=str(tmp_path), temperature=3.0, soft_label_weight=0.3)
    loss = float(_distil_loss(student, teacher, ids, types, y, teacher_logits, config,
                              Objective(MULTI_CLASS, ["food", "sport"])))
    # The formula prune used before multi-label tasks, verbatim.
    logits, t = student(ids, token_type_ids=types), config.temperature
    soft = -(F.softmax(teacher_logits / t, axis=-1) * F.log_softmax(logits / t, axis=-1)).sum(-1).mean()
    before = config.soft_label_weight * t * t * soft + (1 - config.soft_label_weight) * F.cross_entropy(logits, y)
    np.testing.assert_allclose(loss, float(before), rtol=1e-6)


def _bce(logits: np.ndarray, target: np.ndarray) -> float:
    """Mean binary cross-entropy of logits against probabilities, written out."""
    p = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    return float(-(target * np.log(p) + (1 - target) * np.log(1 - p)).mean())


def test_multi_label_distillation_loss_is_bce_against_the_teachers_tempered_sigmoids_times_t_squared():
    import paddle

    rng = np.random.default_rng(5)
    student, teacher = rng.normal(0, 3, (6, 4)).astype(np.float32), rng.normal(0, 3, (6, 4)).astype(np.float32)
    t = 2.5
    loss = Objective(MULTI_LABEL, list("abcd")).distillation_loss(paddle.to_tensor(student), paddle.to_tensor(teacher), t)
    expected = t * t * _bce(student / t, 1.0 / (1.0 + np.exp(-teacher.astype(np.float64) / t)))
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def test_multi_label_prune_loss_mixes_soft_sigmoid_targets_and_the_label_sets(tiny_model_and_batch, tmp_path):
    import paddle

    from tritoncls.modeling.dynamic import pad_batch
    from tritoncls.prune.prune import _distil_loss

    teacher, enc, _ = tiny_model_and_batch
    student = truncated_copy(teacher, 2, 64)
    ids, types = (paddle.to_tensor(a) for a in pad_batch(enc, list(range(8))))
    label_sets = np.array([[i % 2, i % 3 == 0] for i in range(8)], dtype=np.float32)
    teacher_logits = teacher(ids, token_type_ids=types)
    config = PruneConfig(dataset_dir=str(tmp_path), temperature=2.0, soft_label_weight=0.4)
    loss = float(_distil_loss(student, teacher, ids, types, paddle.to_tensor(label_sets), teacher_logits, config,
                              Objective(MULTI_LABEL, ["food", "sport"])))
    logits, t = student(ids, token_type_ids=types).numpy(), 2.0
    soft_targets = 1.0 / (1.0 + np.exp(-teacher_logits.numpy().astype(np.float64) / t))
    expected = 0.4 * t * t * _bce(logits / t, soft_targets) + 0.6 * _bce(logits, label_sets)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_importance_ranks_with_the_loss_it_is_given(tiny_model_and_batch):
    import paddle

    model, enc, labels = tiny_model_and_batch
    label_sets = np.stack([labels, 1 - labels], axis=1).astype(np.float32)
    heads, neurons = importance(model, enc, label_sets, 16, paddle.nn.BCEWithLogitsLoss())
    assert heads.shape == (2, 4) and neurons.shape == (2, 128) and (heads > 0).any()
    assert not np.allclose(heads, importance(model, enc, labels, 16)[0])


@pytest.mark.slow  # distils (trains) the student for two epochs
def test_distillation_evaluates_every_save_steps_counted_from_the_last_evaluation(tiny_model_and_batch, tmp_path):
    from tritoncls.modeling.dynamic import Encoded
    from tritoncls.prune.prune import _Data, distil, plan_widths

    teacher, enc, labels = tiny_model_and_batch
    train = Encoded(enc.input_ids[:40], enc.token_type_ids[:40])  # 40 texts / batch 8 = 5 steps an epoch
    d = _Data(Objective(MULTI_CLASS, ["food", "sport"]), train, labels[:40], enc, labels, [], None)
    config = PruneConfig(dataset_dir=str(tmp_path), batch_size=8, epochs=2, save_steps=3,
                         hidden_loss_weight=1.0, learning_rate=1e-3)
    saved = []
    state = distil(truncated_copy(teacher, 2, 64), teacher, plan_widths(["1/2"], 4, 128)[0], d, config,
                   lambda model, st, dev: saved.append(st["global_step"]))
    # epoch 1: 3, 5 (its end); epoch 2: 8, 10 (its end). Counting global steps (every 3rd) gave 3, 5, 6, 9, 10:
    # step 6 came one step after the epoch-end evaluation at 5.
    assert [e["step"] for e in state["evaluations"]] == [3, 5, 8, 10]
    assert saved and saved[0] == 3 and set(saved) <= {3, 5, 8, 10}


def test_keeping_every_head_and_neuron_reproduces_the_model(tiny_model_and_batch):
    model, enc, _ = tiny_model_and_batch
    np.testing.assert_allclose(predict_logits(truncated_copy(model, 4, 128), enc, 16), predict_logits(model, enc, 16), atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Width validation
# ---------------------------------------------------------------------------------------------


def test_plan_widths_rejects_two_thirds_of_four_heads_naming_the_width_and_the_valid_ones():
    with pytest.raises(ConfigError, match=r"--width_mult_list 2/3: 2/3 x 4 attention heads .* 1/4 1/2 3/4 1"):
        plan_widths(["3/4", "2/3"], num_heads=4, intermediate_size=128)


def test_plan_widths_keeps_whole_heads_and_rounds_the_ffn():
    plans = plan_widths(["3/4", "2/3", "1/2"], num_heads=12, intermediate_size=1536)
    assert [(p.name, p.num_heads, p.intermediate_size) for p in plans] == [
        ("width_mult_0.75", 9, 1152), ("width_mult_0.67", 8, 1024), ("width_mult_0.5", 6, 768)]


@pytest.mark.parametrize("text", ["abc", "3/2", "0", "1/0"])
def test_parse_width_refuses_values_outside_zero_to_one(text):
    with pytest.raises(ConfigError, match="--width_mult_list"):
        parse_width(text)


def test_config_refuses_widths_that_share_an_output_directory(tmp_path):
    with pytest.raises(ConfigError, match="repeat.*width_mult_0.67"):
        PruneConfig(dataset_dir=str(tmp_path), width_mult_list=["2/3", "0.67"])


def test_prune_refuses_a_fractional_head_count_before_reading_data_or_training(teacher_checkpoint, tmp_path):
    out = tmp_path / "out"
    config = PruneConfig(dataset_dir=str(tmp_path / "no_such_dataset"), checkpoint=str(teacher_checkpoint),
                         output=str(out), width_mult_list=["1/2", "2/3"])
    with pytest.raises(ConfigError, match="2/3 x 4 attention heads"):
        prune(config)  # the missing dataset would raise DataError had anything been read
    assert not out.exists()


def test_prune_cli_exits_nonzero_and_names_the_bad_width(teacher_checkpoint, toy_dir, tmp_path, caplog):
    from tritoncls.cli import main

    code = main(["prune", "--dataset_dir", str(toy_dir), "--params_dir", str(teacher_checkpoint),
                 "--output_dir", str(tmp_path / "out"), "--width_mult_list", "3/4", "2/3", "--device", "cpu"])
    assert code == 1
    assert "--width_mult_list 2/3" in caplog.text


def test_prune_cli_without_dataset_dir_says_it_is_required(tmp_path, capsys):
    from tritoncls.cli import main

    with pytest.raises(SystemExit) as info:
        main(["prune", "--output_dir", str(tmp_path / "out")])
    assert info.value.code == 2
    assert "--dataset_dir is required" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_remeasure_without_an_earlier_run_names_the_missing_report(tmp_path, caplog):
    from tritoncls.cli import main

    assert main(["prune", "--remeasure", "--output_dir", str(tmp_path)]) == 1
    assert f"{tmp_path / 'prune_report.json'}: not found" in caplog.text


def test_prune_help_lists_the_reference_flags_with_defaults(capsys):
    from tritoncls.cli import main

    with pytest.raises(SystemExit) as info:
        main(["prune", "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for name in ("--output_dir", "--device", "--per_device_train_batch_size", "--per_device_eval_batch_size",
                 "--learning_rate", "--num_train_epochs", "--logging_steps", "--save_steps", "--seed",
                 "--dataset_dir", "--max_seq_length", "--params_dir", "--width_mult_list", "--width-mult-list",
                 "--depth_list", "--depth-list", "--layer_selection"):
        assert name in text
    assert "(default: ['3/4', '2/3', '1/2'])" in text and "(default: ./prune)" in text


# ---------------------------------------------------------------------------------------------
# The task and metric of a report (no training)
# ---------------------------------------------------------------------------------------------


def _report_rows(metric: str) -> list[WidthResult]:
    rows = []
    for name, width, score, truncated in (("unpruned", "1", 0.8, None), ("width_mult_0.5", "1/2", 0.75, 0.5)):
        row = WidthResult(name=name, width=width, num_attention_heads=2, attention_head_dim=16, intermediate_size=64,
                          parameters=1000, onnx_bytes=4000, export_dir=f"/exports/{name}", metric=metric,
                          dev_score_truncated=truncated, dev_score=score, ms_per_text=1.0, ms_per_text_best=1.0)
        if metric != "accuracy":
            row.dev_set_scores = {"macro_f1": score, "micro_f1": score + 0.1, "subset_accuracy": 0.5}
        rows.append(row)
    return rows


def test_multi_class_report_keeps_its_accuracy_columns_and_json_keys(tmp_path):
    md, js = write_report(tmp_path, _report_rows("accuracy"), PruneConfig(dataset_dir=str(tmp_path)), tmp_path, 8)
    text = md.read_text(encoding="utf-8")
    assert ("| width | heads x dim | FFN | params (M) | ONNX (MB) | dev acc (%) | Δ acc (pts) | ms/text | latency ratio "
            "| size ratio |\n|---|---|---|---|---|---|---|---|---|---|\n") in text
    assert "| 1/2 | 2 x 16 | 64 | 0.00 | 0.0 | 75.00 | -5.00 | 1.00 |" in text
    assert "Dev accuracy right after truncation (before distillation): 1/2: 50.00%." in text
    assert "F1" not in text
    report = json.loads(js.read_text())
    assert report["setup"]["task"] == MULTI_CLASS and report["setup"]["metric"] == "accuracy"
    row = report["rows"][1]
    assert (row["dev_accuracy"], row["dev_accuracy_truncated"]) == (0.75, 0.5)
    assert row["accuracy_delta_points"] == pytest.approx(-5.0)


def test_multi_label_report_names_its_metric_instead_of_accuracy(tmp_path):
    md, js = write_report(tmp_path, _report_rows("macro_f1"), PruneConfig(dataset_dir=str(tmp_path)), tmp_path, 8,
                          task=MULTI_LABEL)
    text = md.read_text(encoding="utf-8")
    assert "| dev macro-F1 (%) | Δ macro-F1 (pts) | dev micro-F1 (%) | ms/text |" in text
    assert "| 1/2 | 2 x 16 | 64 | 0.00 | 0.0 | 75.00 | -5.00 | 85.00 | 1.00 |" in text
    assert "Dev macro-F1 right after truncation (before distillation): 1/2: 50.00%." in text
    assert "tempered sigmoids" in text and "dev acc" not in text and "accuracy" not in text
    report = json.loads(js.read_text())
    assert report["setup"]["task"] == MULTI_LABEL and report["setup"]["metric"] == "macro_f1"
    row = report["rows"][1]
    assert (row["dev_macro_f1"], row["dev_macro_f1_truncated"]) == (0.75, 0.5)
    assert row["macro_f1_delta_points"] == pytest.approx(-5.0) and row["dev_set_scores"]["micro_f1"] == 0.85
    assert "dev_accuracy" not in row and "accuracy_delta_points" not in row


def test_a_report_row_written_before_multi_label_tasks_reads_as_an_accuracy_row():
    old = {"name": "width_mult_0.5", "width": "1/2", "num_attention_heads": 2, "attention_head_dim": 16,
           "intermediate_size": 64, "parameters": 1, "onnx_bytes": 1, "export_dir": "e", "checkpoint_dir": "c",
           "dev_accuracy_truncated": 0.5, "dev_accuracy_best_dynamic": 0.7, "distil_seconds": 3.0,
           "dev_accuracy": 0.75, "ms_per_text": 1.0, "ms_per_text_best": 1.0, "ms_per_text_runs": [1.0],
           "accuracy_delta_points": 0.0, "latency_ratio": 1.0}
    row = row_from_report(old)
    assert (row.metric, row.dev_score_truncated, row.dev_score_best_dynamic) == ("accuracy", 0.5, 0.7)
    assert np.isnan(row.dev_score) and row.ms_per_text_runs == []  # measured again


@pytest.mark.parametrize(("recorded", "task", "expected"), [
    (None, MULTI_CLASS, "accuracy"), (None, MULTI_LABEL, "macro_f1"), ("micro_f1", MULTI_LABEL, "micro_f1"),
    ("micro_f1", "hierarchical", "micro_f1"), ("accuracy", MULTI_CLASS, "accuracy")])
def test_the_dev_metric_is_the_one_the_checkpoint_was_selected_by(tmp_path, recorded, task, expected):
    if recorded is not None:
        (tmp_path / "task.json").write_text(json.dumps({"task": task, "metric": recorded}))
    assert saved_metric(tmp_path, task) == expected


def test_a_metric_that_does_not_fit_the_checkpoints_task_is_refused_naming_the_file(tmp_path):
    (tmp_path / "task.json").write_text(json.dumps({"task": MULTI_LABEL, "metric": "accuracy"}))
    with pytest.raises(ConfigError, match=r"task.json: metric 'accuracy' does not score a multi_label task"):
        saved_metric(tmp_path, MULTI_LABEL)


# ---------------------------------------------------------------------------------------------
# End to end on the toy set: checkpoints, exports, report
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_pruned_export_manifest_records_fewer_heads_of_the_same_size_and_a_smaller_ffn(pruned):
    import onnxruntime as ort

    from tritoncls.runtime import TensorSpec

    out, _ = pruned
    export_dir = out / "width_mult_0.5" / "export"
    manifest = Manifest.load(export_dir)
    arch = manifest.architecture
    assert (arch["num_attention_heads"], arch["attention_head_dim"], arch["intermediate_size"]) == (2, 16, 64)
    assert (arch["hidden_size"], arch["num_hidden_layers"], arch["num_labels"]) == (64, 2, 2)
    assert Manifest.load(out / "unpruned" / "export").architecture["num_attention_heads"] == 4
    assert manifest.onnx.input_names == ("input_ids", "token_type_ids")
    assert manifest.onnx.outputs == (TensorSpec("logits", "float32", (-1, 2)),)
    assert manifest.paddle.outputs[0].shape == (-1, 2)
    assert max(manifest.export_check.values()) < 1e-4
    assert manifest.max_seq_length == 32
    session = ort.InferenceSession(str(export_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    ids = np.array([[1, 5, 6, 2], [1, 7, 2, 0], [1, 8, 9, 2]], dtype=np.int64)
    logits = session.run(["logits"], {"input_ids": ids, "token_type_ids": np.zeros_like(ids)})[0]
    assert logits.shape == (3, 2) and np.isfinite(logits).all()


@pytest.mark.slow
def test_pruned_checkpoint_is_complete_and_loads_like_any_checkpoint(pruned, toy_dir):
    from tritoncls.modeling import checkpoint as ckpt

    out, _ = pruned
    directory = out / "width_mult_0.75" / "checkpoint"
    names = {p.name for p in directory.iterdir()}
    assert {"config.json", "model_state.pdparams", "vocab.txt", "label.txt", "training_config.json",
            ckpt.TASK_FILE, ckpt.COMPLETE_MARKER} <= names
    assert ckpt.saved_task(directory).task == "multi_class"
    assert json.loads((directory / ckpt.TASK_FILE).read_text())["metric"] == "accuracy"
    config = json.loads((directory / "config.json").read_text())
    assert (config["num_attention_heads"], config[modeling.HEAD_DIM_FIELD], config["intermediate_size"]) == (3, 16, 96)
    model = modeling.load_checkpoint_model(directory)
    assert model.ernie.encoder.layers[0].self_attn.q_proj.weight.shape == [64, 48]
    trained = json.loads((directory / "training_config.json").read_text())
    assert trained["width_mult"] == "3/4" and trained["max_seq_length"] == 32


@pytest.mark.slow
def test_pruned_export_classifies_texts_in_the_offline_predictor(pruned):
    from tritoncls.common.offline import OfflineConfig, open_predictor

    out, _ = pruned
    predictor = open_predictor(OfflineConfig(model=str(out / "width_mult_0.5" / "export")))
    labels, confidences = predictor.predict(["the goal and team today", "soup and bread", "cake"])
    assert len(labels) == 3 and set(labels) <= {"food", "sport"}
    assert all(0.5 <= c <= 1.0 for c in confidences)


@pytest.mark.slow
def test_prune_report_lists_every_width_with_ratios_to_the_unpruned_model(pruned):
    out, result = pruned
    report = json.loads((out / "prune_report.json").read_text())
    rows = report["rows"]
    assert [r["name"] for r in rows] == ["unpruned", "width_mult_0.5", "width_mult_0.75"]
    assert [r["width"] for r in rows] == ["1", "1/2", "3/4"]
    assert rows[0]["latency_ratio"] == 1.0 and rows[0]["accuracy_delta_points"] == 0.0
    assert rows[1]["parameters"] < rows[2]["parameters"] < rows[0]["parameters"]
    assert rows[1]["onnx_bytes"] < rows[0]["onnx_bytes"]
    for row in rows:
        assert row["ms_per_text"] > 0 and 0 <= row["dev_accuracy"] <= 1
    assert report["setup"]["latency"]["batch_size"] == 8
    text = result.report_md.read_text(encoding="utf-8")
    assert "| width | heads x dim |" in text and "| 1/2 | 2 x 16 | 64 |" in text


@pytest.mark.slow
def test_remeasure_adds_a_timing_session_and_keeps_the_rows(pruned, tmp_path):
    import shutil

    from tritoncls.cli import main

    out, _ = pruned
    again = tmp_path / "again"
    again.mkdir()
    shutil.copy(out / "prune_report.json", again)  # the rows point at the exports in `out`; they are only read
    first = json.loads((again / "prune_report.json").read_text())
    assert len(first["timing_sessions"]) == 1
    assert main(["prune", "--remeasure", "--output_dir", str(again), "--latency_repeats", "2"]) == 0
    report = json.loads((again / "prune_report.json").read_text())
    sessions = report["timing_sessions"]
    assert len(sessions) == 2 and sessions[1]["repeats"] == 2
    assert set(sessions[1]["latency_ratio"]) == {"unpruned", "width_mult_0.5", "width_mult_0.75"}
    assert sessions[1]["latency_ratio"]["unpruned"] == 1.0
    for before, after in zip(first["rows"], report["rows"]):
        assert after["dev_accuracy"] == before["dev_accuracy"] and after["parameters"] == before["parameters"]
        assert after["dev_accuracy_truncated"] == before["dev_accuracy_truncated"]
        assert len(after["ms_per_text_runs"]) == 2
    text = (again / "prune_report.md").read_text(encoding="utf-8")
    assert "in every timing session" in text and "| mean of 2 |" in text


@pytest.mark.slow
@pytest.mark.triton
def test_pruned_export_builds_a_repository_and_classifies_through_triton_like_its_checkpoint(pruned, tmp_path):
    from tritoncls.builder import BuildConfig, build_repository
    from tritoncls.clients import make_client
    from tritoncls.runtime import softmax
    from tritoncls.server import TritonServer

    out, _ = pruned
    width_dir = out / "width_mult_0.5"
    repository = build_repository(BuildConfig(model=str(width_dir / "export"), output=str(tmp_path / "repository")))
    texts = ["the goal and team today", "soup and bread", "cake", "match score coach 7", "rice salad 41"]
    model = modeling.load_checkpoint_model(width_dir / "checkpoint")
    expected = softmax(predict_logits(model, encode(modeling.load_tokenizer(width_dir / "checkpoint"), texts, 32), 8))
    with TritonServer(repository, log_file=tmp_path / "triton.log") as server:
        with make_client(server.grpc_url) as client:
            predictions = client.classify(texts)
    assert [p.label for p in predictions] == [["food", "sport"][i] for i in expected.argmax(1)]
    np.testing.assert_allclose([p.confidence for p in predictions], expected.max(1), atol=1e-4)


# ---------------------------------------------------------------------------------------------
# End to end on the multi-label toy set: the task comes from the teacher checkpoint
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_multi_label_prune_report_names_the_metric_and_scores_each_export_with_its_own_thresholds(multi_label_pruned):
    out, result = multi_label_pruned
    report = json.loads((out / "prune_report.json").read_text())
    assert (report["setup"]["task"], report["setup"]["metric"]) == (MULTI_LABEL, "macro_f1")
    rows = report["rows"]
    assert [r["name"] for r in rows] == ["unpruned", "width_mult_0.5"]
    for row in rows:
        assert row["metric"] == "macro_f1" and 0 <= row["dev_macro_f1"] <= 1 and "dev_accuracy" not in row
        assert set(row["dev_set_scores"]) == {"macro_f1", "micro_f1", "subset_accuracy"}
        assert row["dev_set_scores"]["macro_f1"] == row["dev_macro_f1"]
    assert rows[0]["dev_macro_f1"] >= 0.8  # the teacher's export, at the teacher's thresholds
    assert rows[1]["dev_macro_f1_best_dynamic"] is not None and rows[1]["dev_macro_f1_truncated"] is not None
    text = result.report_md.read_text(encoding="utf-8")
    assert "dev macro-F1 (%)" in text and "dev micro-F1 (%)" in text and "dev acc" not in text


@pytest.mark.slow
def test_each_pruned_multi_label_width_keeps_its_own_thresholds_and_exports_a_multi_label_model(multi_label_pruned):
    from tritoncls.modeling import checkpoint as ckpt

    out, _ = multi_label_pruned
    width_dir = out / "width_mult_0.5"
    saved = json.loads((width_dir / "checkpoint" / "task.json").read_text())
    assert saved["task"] == MULTI_LABEL and len(saved["thresholds"]) == 3 and saved["metric"] == "macro_f1"
    assert "per label" in saved["thresholds_from"] and 0 <= saved["dev_score"] <= 1
    spec = ckpt.saved_task(width_dir / "checkpoint", ["food", "sport", "weather"])
    manifest = Manifest.load(width_dir / "export")
    assert manifest.task == spec and manifest.task.task == MULTI_LABEL
    assert Manifest.load(out / "unpruned" / "export").task.task == MULTI_LABEL


@pytest.mark.slow
def test_the_reported_multi_label_dev_score_is_the_exports_served_label_sets_scored(multi_label_pruned,
                                                                                      multi_label_dataset):
    from tritoncls.common import data, metrics
    from tritoncls.common.offline import OfflineConfig, open_predictor

    out, result = multi_label_pruned
    labels = data.read_labels(multi_label_dataset / "label.txt", MULTI_LABEL)
    dev = data.read_examples(multi_label_dataset / "dev.txt", labels, MULTI_LABEL)
    truth = data.multi_hot(dev, len(labels)).astype(bool)
    for row in result.rows:
        predicted = open_predictor(OfflineConfig(model=row.export_dir)).predict_probs([e.text for e in dev]).mask
        assert row.dev_score == pytest.approx(metrics.score("macro_f1", truth, predicted))
        assert row.dev_set_scores["micro_f1"] == pytest.approx(metrics.score("micro_f1", truth, predicted))


@pytest.mark.slow
def test_remeasure_of_a_multi_label_run_keeps_its_task_and_dev_scores(multi_label_pruned, tmp_path):
    import shutil

    from tritoncls.cli import main

    out, _ = multi_label_pruned
    again = tmp_path / "again"
    again.mkdir()
    shutil.copy(out / "prune_report.json", again)
    first = json.loads((again / "prune_report.json").read_text())
    assert main(["prune", "--remeasure", "--output_dir", str(again), "--latency_repeats", "1"]) == 0
    report = json.loads((again / "prune_report.json").read_text())
    assert report["setup"]["task"] == MULTI_LABEL and len(report["timing_sessions"]) == 2
    for before, after in zip(first["rows"], report["rows"]):
        assert after["dev_macro_f1"] == before["dev_macro_f1"]
        assert after["dev_set_scores"] == before["dev_set_scores"]
        assert after["dev_macro_f1_truncated"] == before["dev_macro_f1_truncated"]
    assert "dev macro-F1 (%)" in (again / "prune_report.md").read_text(encoding="utf-8")


@pytest.mark.slow  # trains a hierarchical teacher and prunes it
def test_a_hierarchical_teacher_prunes_to_hierarchical_widths_whose_exports_keep_children_with_parents(tmp_path):
    from tests import support
    from tritoncls.common.offline import OfflineConfig, open_predictor
    from tritoncls.runtime import HIERARCHICAL, label_parents

    root = support.write_toy_multi_label_dataset(tmp_path / "tree", count=168, dev=28, hierarchical=True)
    support.train_tiny(root, tmp_path / "teacher", epochs=4, batch_size=8, learning_rate=3e-3, task=HIERARCHICAL)
    out = tmp_path / "prune"
    result = prune(PruneConfig(dataset_dir=str(root), checkpoint=str(tmp_path / "teacher"), output=str(out),
                               device="cpu", width_mult_list=["1/2"], batch_size=16, eval_batch_size=8, epochs=1,
                               learning_rate=1e-3, save_steps=5, max_seq_length=32, latency_repeats=1))
    report = json.loads(result.report_json.read_text())
    assert (report["setup"]["task"], report["setup"]["metric"]) == (HIERARCHICAL, "macro_f1")
    saved = json.loads((out / "width_mult_0.5" / "checkpoint" / "task.json").read_text())
    assert saved["task"] == HIERARCHICAL and len(saved["thresholds"]) == len(support.TOY_TREE_LABELS)
    export_dir = out / "width_mult_0.5" / "export"
    assert Manifest.load(export_dir).task.task == HIERARCHICAL
    texts = [line.split("\t")[0] for line in (root / "dev.txt").read_text(encoding="utf-8").splitlines()]
    mask = open_predictor(OfflineConfig(model=str(export_dir))).predict_probs(texts).mask
    parents = label_parents(support.TOY_TREE_LABELS)
    children = np.flatnonzero(parents >= 0)
    assert not (mask[:, children] & ~mask[:, parents[children]]).any()


# ---------------------------------------------------------------------------------------------
# Depth: which layers, the student's weights and config, the layer map of the hidden-state loss (no training)
# ---------------------------------------------------------------------------------------------

#: A 6-layer teacher of ERNIE 3.0 mini's width, for plans (no model is built).
MINI_ARCH = {"num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536}


def _four_layer_model(tmp_path):
    """The tiny architecture with 4 layers, random weights (eval mode), its tokenizer and the toy texts encoded."""
    import paddle

    from tests import support

    paddle.seed(13)
    texts = [line.split("\t")[0] for line in support.toy_lines()]
    tokenizer = modeling.scratch_tokenizer(texts, tmp_path / "vocab")
    model = modeling.scratch_model(dict(support.TINY_ARCH, num_hidden_layers=4, initializer_range=0.2), 2,
                                   len(tokenizer.vocab), tokenizer.pad_token_id)
    model.eval()
    return model, tokenizer, encode(tokenizer, texts, 32)


def _plan(model, depth: int, width: str = "1", selection: str = "spread"):
    config = PruneConfig(dataset_dir=".", depth_list=[depth], width_mult_list=[width], layer_selection=selection)
    (plan,) = plan_students(config, modeling.model_architecture_summary(model))
    return plan


@pytest.mark.parametrize(("layers", "depth", "kept"), [
    (12, 6, (0, 2, 4, 7, 9, 11)),  # the teacher layers Hugging Face's DistilBERT extraction copies
    (6, 4, (0, 2, 3, 5)), (6, 3, (0, 3, 5)), (6, 2, (0, 5)), (6, 1, (5,)), (6, 6, (0, 1, 2, 3, 4, 5)), (2, 1, (1,)),
])
def test_spread_keeps_the_first_and_the_last_layer_and_spaces_the_rest_evenly(layers, depth, kept):
    assert spread_layers(layers, depth) == kept


def test_every_spread_selection_is_distinct_in_order_and_ends_at_the_last_layer():
    for layers in range(1, 25):
        for depth in range(1, layers + 1):
            kept = spread_layers(layers, depth)
            assert len(kept) == depth and list(kept) == sorted(set(kept)) and kept[-1] == layers - 1
            assert depth == 1 or kept[0] == 0


def test_bottom_selection_keeps_the_first_layers():
    assert bottom_layers(6, 3) == (0, 1, 2)


def test_a_depth_only_student_holds_the_teachers_embeddings_chosen_layers_and_classifier_unchanged(tmp_path):
    teacher, _, enc = _four_layer_model(tmp_path)
    plan = _plan(teacher, 2)
    assert plan.name == "d2_w1" and plan.depth.layers == (0, 3)
    student = student_copy(teacher, plan)

    assert student.config.num_hidden_layers == 2 and len(student.ernie.encoder.layers) == 2
    assert teacher.config.num_hidden_layers == 4 and len(teacher.ernie.encoder.layers) == 4  # untouched
    assert not hasattr(student.config, modeling.HEAD_DIM_FIELD)  # full width: the attention is the teacher's
    source = teacher.state_dict()
    names = student.state_dict()
    assert len(names) < len(source)
    for name, weight in names.items():
        parts = name.split(".")
        if parts[:3] == ["ernie", "encoder", "layers"]:
            parts[3] = str(plan.depth.layers[int(parts[3])])
        np.testing.assert_array_equal(weight.numpy(), source[".".join(parts)].numpy(), err_msg=name)
    assert predict_logits(student, enc, 16).shape == (len(enc), 2)


def test_keeping_every_layer_reproduces_the_model(tmp_path):
    import copy

    model, _, enc = _four_layer_model(tmp_path)
    same = copy.deepcopy(model)
    keep_layers(same, range(4))
    np.testing.assert_allclose(predict_logits(same, enc, 16), predict_logits(model, enc, 16), atol=1e-6)


@pytest.mark.parametrize("width", ["1", "1/2"])
def test_a_depth_pruned_checkpoint_reloads_with_its_layer_count_and_gives_the_same_logits(tmp_path, width):
    import json

    teacher, tokenizer, enc = _four_layer_model(tmp_path)
    student = student_copy(teacher, _plan(teacher, 3, width))
    save = tmp_path / "checkpoint"
    student.save_pretrained(str(save))
    tokenizer.save_pretrained(str(save))
    config = json.loads((save / "config.json").read_text())
    assert config["num_hidden_layers"] == 3

    loaded = modeling.load_checkpoint_model(save)

    assert len(loaded.ernie.encoder.layers) == 3
    assert loaded.ernie.encoder.layers[0].self_attn.num_heads == (4 if width == "1" else 2)
    np.testing.assert_allclose(predict_logits(loaded, enc, 16), predict_logits(student, enc, 16), atol=1e-6)


def test_hidden_state_loss_compares_each_student_layer_with_the_teacher_layer_it_was_copied_from(tmp_path):
    import paddle
    import paddle.nn.functional as F

    from tritoncls.modeling.dynamic import pad_batch
    from tritoncls.prune.prune import _distil_loss

    teacher, _, enc = _four_layer_model(tmp_path)
    plan = _plan(teacher, 2)  # layers 0 and 3
    assert plan.hidden_state_map == [0, 1, 4]
    student = student_copy(teacher, plan)
    ids, types = (paddle.to_tensor(a) for a in pad_batch(enc, list(range(8))))
    y = paddle.to_tensor(np.array([i % 2 for i in range(8)], dtype=np.int64))
    objective = Objective(MULTI_CLASS, ["food", "sport"])
    plain = PruneConfig(dataset_dir=str(tmp_path))
    hidden = PruneConfig(dataset_dir=str(tmp_path), hidden_loss_weight=1.0)
    logits_only = float(_distil_loss(student, teacher, ids, types, y, teacher(ids, token_type_ids=types), plain,
                                     objective))
    both = float(_distil_loss(student, teacher, ids, types, y, None, hidden, objective, plan.hidden_state_map))

    mine = student(ids, token_type_ids=types, output_hidden_states=True, return_dict=True).hidden_states
    theirs = teacher(ids, token_type_ids=types, output_hidden_states=True, return_dict=True).hidden_states
    mse = [float(F.mse_loss(mine[i], theirs[j])) for i, j in enumerate(plan.hidden_state_map)]
    assert mse[0] == mse[1] == 0.0  # the embeddings and layer 0 are the teacher's, fed the same input
    assert mse[2] > 0  # teacher layer 3 now reads layer 0's output
    np.testing.assert_allclose(both - logits_only, sum(mse), rtol=1e-4)
    with pytest.raises(ConfigError, match=r"--hidden_loss_weight 1: the student has 2 layers and the teacher 4"):
        _distil_loss(student, teacher, ids, types, y, None, hidden, objective)


def test_plan_students_pairs_every_depth_with_every_width_but_the_whole_teacher():
    config = PruneConfig(dataset_dir=".", depth_list=[6, 4], width_mult_list=["1", "1/2"])
    plans = plan_students(config, MINI_ARCH)
    assert [p.name for p in plans] == ["width_mult_0.5", "d4_w1", "d4_w1_2"]
    assert [(p.width.num_heads, p.depth.depth) for p in plans] == [(6, 6), (12, 4), (6, 4)]
    assert plans[1].depth.layers == (0, 2, 3, 5) and plans[1].hidden_state_map == [0, 1, 3, 4, 6]
    assert plans[0].hidden_state_map is None and not plans[0].depth_pruned
    bottom = plan_students(PruneConfig(dataset_dir=".", depth_list=[3], width_mult_list=["0.75"],
                                       layer_selection="bottom"), MINI_ARCH)
    assert [(p.name, p.depth.layers) for p in bottom] == [("d3_w3_4", (0, 1, 2))]


def test_without_a_depth_list_every_width_keeps_every_layer_and_its_old_name():
    plans = plan_students(PruneConfig(dataset_dir="."), MINI_ARCH)
    assert [p.name for p in plans] == ["width_mult_0.75", "width_mult_0.67", "width_mult_0.5"]
    assert all(p.depth is None and p.hidden_state_map is None for p in plans)


@pytest.mark.parametrize(("depths", "message"), [
    ([0], r"--depth_list 0: a depth is the number of encoder layers to keep, at least 1"),
    ([-2], r"--depth_list -2: a depth is the number of encoder layers to keep"),
    ([4, 4, 2], r"--depth_list 4 4 2: depths repeat \(4\); list each depth once"),
    (["4"], r"--depth_list '4': not a whole number"),
])
def test_a_bad_depth_is_refused_naming_the_flag(depths, message):
    with pytest.raises(ConfigError, match=message):
        PruneConfig(dataset_dir=".", depth_list=depths)


def test_a_depth_deeper_than_the_teacher_is_refused_with_the_teachers_layer_count():
    config = PruneConfig(dataset_dir=".", depth_list=[4, 8, 7], width_mult_list=["1"])
    with pytest.raises(ConfigError, match=r"--depth_list 8 7: the teacher has 6 encoder layers; give depths from 1 to 6"):
        plan_students(config, MINI_ARCH)


def test_a_depth_and_width_that_keep_the_whole_teacher_are_refused_as_nothing_to_prune():
    config = PruneConfig(dataset_dir=".", depth_list=[6], width_mult_list=["1"])
    with pytest.raises(ConfigError, match=r"--depth_list 6 with --width_mult_list 1: every pair keeps the whole teacher"):
        plan_students(config, MINI_ARCH)


def test_an_unknown_layer_selection_is_refused_naming_the_choices():
    with pytest.raises(ConfigError, match=r"--layer_selection 'top': choose one of spread, bottom"):
        PruneConfig(dataset_dir=".", layer_selection="top")


def test_the_depth_flags_reach_the_config():
    from tritoncls.cli import build_parser
    from tritoncls.cli._args import config_from_args

    parse = build_parser().parse_args
    config = config_from_args(PruneConfig, parse(["prune", "--dataset_dir", "d", "--depth-list", "4", "2",
                                                  "--layer_selection", "bottom"]), device="cpu")
    assert (config.depth_list, config.layer_selection) == ([4, 2], "bottom")
    assert config_from_args(PruneConfig, parse(["prune", "--dataset_dir", "d"]), device="cpu").depth_list == []


def _depth_report_rows() -> list[WidthResult]:
    rows = []
    for name, width, layers, kept, score in (("unpruned", "1", 6, [0, 1, 2, 3, 4, 5], 0.8),
                                             ("width_mult_0.5", "1/2", 6, [0, 1, 2, 3, 4, 5], 0.78),
                                             ("d4_w1", "1", 4, [0, 2, 3, 5], 0.75)):
        rows.append(WidthResult(name=name, width=width, num_attention_heads=2, attention_head_dim=16,
                                intermediate_size=64, parameters=1000, onnx_bytes=4000, export_dir=f"/e/{name}",
                                num_hidden_layers=layers, layers_kept=kept, dev_score=score, ms_per_text=1.0,
                                ms_per_text_best=1.0, dev_score_truncated=None if name == "unpruned" else 0.5))
    return rows


def test_a_report_with_depth_pruned_rows_adds_the_layers_column_and_the_layers_kept(tmp_path):
    rows = _depth_report_rows()
    session = {"finished": "now", "repeats": 1, "ms_per_text": {r.name: 1.0 for r in rows},
               "latency_ratio": {r.name: 1.0 for r in rows}}
    md, js = write_report(tmp_path, rows, PruneConfig(dataset_dir=str(tmp_path), depth_list=[4]), tmp_path, 8,
                          [session, session])
    text = md.read_text(encoding="utf-8")
    assert text.startswith("# Depth and width pruning report")
    assert "| layers | width | heads x dim | FFN |" in text and "|---|---|---|---|---|---|---|---|---|---|---|\n" in text
    assert "| 6 | 1/2 | 2 x 16 | 64 |" in text and "| 4 | 1 | 2 x 16 | 64 |" in text
    assert "Teacher layers each depth keeps (zero-based, of 6; `spread` selection): 4: 0, 2, 3, 5." in text
    assert "1/2: 50.00%, d4 w1: 50.00%" in text
    assert "| unpruned ms/text | 1/2 | d4 w1 |" in text
    report = json.loads(js.read_text())
    assert [(r["num_hidden_layers"], r["layers_kept"]) for r in report["rows"]][2] == (4, [0, 2, 3, 5])
    assert report["config"]["depth_list"] == [4] and report["rows"][2]["accuracy_delta_points"] == pytest.approx(-5.0)
    assert row_from_report(report["rows"][2]).layers_kept == [0, 2, 3, 5]


# ---------------------------------------------------------------------------------------------
# Depth end to end on the toy set: a depth-pruned student distils, reloads, exports, agrees with its ONNX
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow  # distils one epoch per student and exports each
def test_depth_pruned_students_distil_reload_and_export_an_onnx_that_agrees_with_the_dynamic_graph(
        teacher_checkpoint, toy_dataset, tmp_path):
    import onnxruntime as ort

    from tritoncls.modeling import checkpoint as ckpt
    from tritoncls.modeling.dynamic import pad_batch

    out = tmp_path / "prune"
    result = prune(PruneConfig(
        dataset_dir=str(toy_dataset), checkpoint=str(teacher_checkpoint), output=str(out), device="cpu",
        depth_list=[1], width_mult_list=["1", "1/2"], hidden_loss_weight=0.5, batch_size=16, eval_batch_size=8,
        learning_rate=1e-3, epochs=1, logging_steps=1, save_steps=2, max_seq_length=32, importance_max_examples=24,
        latency_repeats=1,
    ))

    report = json.loads(result.report_json.read_text())
    rows = report["rows"]
    assert [r["name"] for r in rows] == ["unpruned", "d1_w1", "d1_w1_2"]
    assert [(r["num_hidden_layers"], r["layers_kept"]) for r in rows] == [(2, [0, 1]), (1, [1]), (1, [1])]
    assert all(0 <= r["dev_accuracy"] <= 1 and r["dev_accuracy_truncated"] is not None for r in rows[1:])
    assert rows[1]["parameters"] < rows[0]["parameters"] and rows[2]["num_attention_heads"] == 2
    assert "| layers | width |" in result.report_md.read_text(encoding="utf-8")
    texts = ["the goal and team today", "soup and bread", "cake", "match score coach 7", "rice salad 41"]
    for name in ("d1_w1", "d1_w1_2"):
        directory = out / name / "checkpoint"
        assert ckpt.saved_task(directory).task == MULTI_CLASS
        assert json.loads((directory / "config.json").read_text())["num_hidden_layers"] == 1
        trained = json.loads((directory / "training_config.json").read_text())
        assert (trained["num_hidden_layers"], trained["layers_kept"], trained["depth_list"]) == (1, [1], [1])
        model = modeling.load_checkpoint_model(directory)
        assert len(model.ernie.encoder.layers) == 1
        manifest = Manifest.load(out / name / "export")
        assert manifest.architecture["num_hidden_layers"] == 1 and max(manifest.export_check.values()) < 1e-4
        enc = encode(modeling.load_tokenizer(directory), texts, 32)
        ids, types = pad_batch(enc, list(range(len(texts))), int(model.config.pad_token_id or 0))
        session = ort.InferenceSession(str(out / name / "export" / "model.onnx"), providers=["CPUExecutionProvider"])
        onnx_logits = session.run(["logits"], {"input_ids": ids, "token_type_ids": types})[0]
        np.testing.assert_allclose(onnx_logits, predict_logits(model, enc, 8), atol=1e-4)
    assert modeling.HEAD_DIM_FIELD not in json.loads((out / "d1_w1" / "checkpoint" / "config.json").read_text())


def test_students_not_started_by_the_deadline_are_skipped_and_reported(teacher_checkpoint, toy_dataset, tmp_path):
    import time

    out = tmp_path / "prune"
    result = prune(PruneConfig(
        dataset_dir=str(toy_dataset), checkpoint=str(teacher_checkpoint), output=str(out), device="cpu",
        depth_list=[1], width_mult_list=["1"], batch_size=16, eval_batch_size=8, epochs=1, max_seq_length=32,
        latency_repeats=1), deadline=time.monotonic() - 1)
    assert result.skipped == ["d1_w1"] and [r.name for r in result.rows] == ["unpruned"]
    assert json.loads(result.report_json.read_text(encoding="utf-8"))["skipped"] == ["d1_w1"]
    assert "Not distilled (the time budget ran out before they started): d1_w1." in \
        result.report_md.read_text(encoding="utf-8")
    assert not (out / "d1_w1").exists()


def test_resume_keeps_a_finished_student_of_the_same_settings_and_distils_one_of_other_settings(
        teacher_checkpoint, toy_dataset, tmp_path, monkeypatch):
    from tritoncls.prune import prune as prune_module

    def config(**changes):
        return PruneConfig(**{**dict(
            dataset_dir=str(toy_dataset), checkpoint=str(teacher_checkpoint), output=str(tmp_path / "prune"),
            device="cpu", depth_list=[1], width_mult_list=["1"], batch_size=16, eval_batch_size=8, epochs=1,
            max_seq_length=32, latency_repeats=1, save_steps=100), **changes})

    first = prune(config())
    distilled = []
    real = prune_module.distil
    monkeypatch.setattr(prune_module, "distil", lambda *a, **k: distilled.append(a[2].name) or real(*a, **k))
    again = prune(config(resume=True))
    assert distilled == [] and [r.name for r in again.rows] == ["unpruned", "d1_w1"]
    assert again.rows[1].parameters == first.rows[1].parameters and again.rows[1].export_dir == first.rows[1].export_dir
    assert again.rows[1].dev_score_best_dynamic == first.rows[1].dev_score_best_dynamic
    prune(config(resume=True, temperature=3.0))  # another distillation: the kept student does not fit it
    assert distilled == ["d1_w1"]
    # the whole report is kept (nothing to redo) only for the run it records: teacher, students and settings
    assert prune_module.earlier_report(config(temperature=3.0))["rows"][1]["name"] == "d1_w1"
    assert prune_module.earlier_report(config()) is None
    assert prune_module.earlier_report(config(temperature=3.0, checkpoint=str(tmp_path))) is None
    assert prune_module.earlier_report(config(temperature=3.0, depth_list=[1, 2])) is None
