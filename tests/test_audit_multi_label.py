"""The data audits on multi-label and hierarchical data (``--task``): label issues flag corrupted label sets at
their file:line with a suggested set, the files written keep the ``text<TAB>label,label`` layout (and a
hierarchy's parents), the summary counts label sets, augment copies the label field, sparse refuses label sets."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests import support
from tritoncls.common import data
from tritoncls.errors import ConfigError, DataError
from tritoncls.training.audit.label_issues import LabelIssuesConfig, label_issues


def _run(dataset_dir, tmp_path, task="multi_label", **options):
    return label_issues(LabelIssuesConfig(dataset_dir=str(dataset_dir), output=str(tmp_path / "audit"), task=task,
                                          **options))


def _truth(count=120, hierarchical=False) -> dict[int, str]:
    """The clean label field of each line."""
    return {n: line.split("\t")[1] for n, line in enumerate(support.toy_multi_label_lines(count, hierarchical), 1)}


def test_corrupted_label_sets_are_flagged_at_their_lines_with_the_true_set_suggested(noisy_ml_dir, tmp_path):
    result = _run(noisy_ml_dir, tmp_path)
    train = noisy_ml_dir / "train.txt"
    assert {row["where"] for row in result["rows"]} == {f"{train}:{n}" for n in support.NOISY_ML_CORRUPTED}
    truth = _truth()
    for row in result["rows"]:
        line = int(row["where"].rsplit(":", 1)[1])
        assert row["given"] == (support.NOISY_ML_CORRUPTED[line] or "(none)")
        assert row["suggested"] == (truth[line] or "(none)")
        assert row["suggested_labels"] == [x for x in truth[line].split(",") if x]
        assert 0 <= row["quality"] < 0.5
    assert [r["quality"] for r in result["rows"]] == sorted(r["quality"] for r in result["rows"])
    assert result["task"] == "multi_label" and "out_of_fold_micro_f1" in result


def test_the_multi_label_report_shows_given_and_suggested_sets_and_their_probabilities(noisy_ml_dir, tmp_path):
    _run(noisy_ml_dir, tmp_path)
    markdown = (tmp_path / "audit" / "label_issues.md").read_text(encoding="utf-8")
    assert "| rank | where | given | suggested | change | quality | p_labels | text |" in markdown
    line_18 = next(line for line in markdown.splitlines() if "train.txt:18 |" in line)
    assert "| (none) | weather | +weather |" in line_18
    written = json.loads((tmp_path / "audit" / "label_issues.json").read_text(encoding="utf-8"))
    row = next(r for r in written["rows"] if r["where"].endswith(":71"))
    assert row["given_labels"] == ["food", "sport"] and row["suggested_labels"] == []
    assert set(row["probabilities"]) == {"food", "sport", "weather"}
    page = (tmp_path / "audit" / "label_issues.html").read_text(encoding="utf-8")
    assert "<td>food,sport</td>" in page and "<td>(none)</td>" in page


def test_cleaned_and_review_files_keep_the_multi_label_line_format(noisy_ml_dir, tmp_path):
    relabelled, rest, review = tmp_path / "relabelled.txt", tmp_path / "rest.txt", tmp_path / "review.txt"
    _run(noisy_ml_dir, tmp_path, write_cleaned=str(relabelled))
    assert relabelled.read_text(encoding="utf-8").splitlines() == support.toy_multi_label_lines(120)
    result = _run(noisy_ml_dir, tmp_path, write_cleaned=str(rest), mode="drop", write_review=str(review))
    train_lines = (noisy_ml_dir / "train.txt").read_text(encoding="utf-8").splitlines()
    flagged = [int(row["where"].rsplit(":", 1)[1]) for row in result["rows"]]
    assert review.read_text(encoding="utf-8").splitlines() == [train_lines[n - 1] for n in flagged]
    assert "today wind 17\t" in review.read_text(encoding="utf-8").splitlines()  # the empty field stays empty
    assert len(rest.read_text(encoding="utf-8").splitlines()) == 115
    labels = list(support.TOY_ML_LABELS)
    for path in (relabelled, rest, review):  # each reads back as multi-label data
        data.read_examples(path, labels, "multi_label")


def test_hierarchical_label_issues_suggest_and_write_consistent_paths(noisy_tree_dir, tmp_path):
    cleaned = tmp_path / "cleaned.txt"
    result = _run(noisy_tree_dir, tmp_path, task="hierarchical", write_cleaned=str(cleaned))
    train = noisy_tree_dir / "train.txt"
    assert {row["where"] for row in result["rows"]} == {f"{train}:{n}" for n in support.NOISY_TREE_CORRUPTED}
    truth = _truth(150, hierarchical=True)
    assert all(row["suggested"] == truth[int(row["where"].rsplit(":", 1)[1])] for row in result["rows"])
    assert cleaned.read_text(encoding="utf-8").splitlines() == support.toy_multi_label_lines(150, hierarchical=True)
    data.read_examples(cleaned, list(support.TOY_TREE_LABELS), "hierarchical")  # every child with its parent


def test_a_suggested_child_whose_parent_is_not_suggested_is_left_out(noisy_tree_dir):
    from tritoncls.training.audit import dataset
    from tritoncls.training.audit.label_issues import suggested_sets

    train = dataset.read_labelled(noisy_tree_dir, "train.txt", "label.txt", task="hierarchical")
    probs = np.array([[0.2, 0.9, 0.1, 0.1], [0.7, 0.9, 0.6, 0.4]])  # food, food##sweet, sport, sport##ball
    assert suggested_sets(train, probs).tolist() == [[False, False, False, False], [True, True, True, False]]


def test_multi_label_data_read_as_multi_class_names_the_task_flag(noisy_ml_dir, tmp_path):
    with pytest.raises(DataError, match="Pass --task multi_label"):
        _run(noisy_ml_dir, tmp_path, task="multi_class")


def test_one_label_set_for_every_text_is_a_clear_error(noisy_ml_dir, tmp_path):
    (noisy_ml_dir / "train.txt").write_text("the soup\tfood,sport\nthe goal\tsport,food\n", encoding="utf-8")
    with pytest.raises(DataError, match="every example has the label set 'food,sport'.*2 different label sets"):
        _run(noisy_ml_dir, tmp_path)


def test_an_unknown_task_is_refused():
    with pytest.raises(ConfigError, match="--task 'multilabel'"):
        LabelIssuesConfig(dataset_dir="d", task="multilabel")


def test_label_issues_command_takes_the_task(noisy_ml_dir, tmp_path):
    from tritoncls.cli import main

    cleaned = tmp_path / "clean.txt"
    assert main(["analyze", "label-issues", "--dataset_dir", str(noisy_ml_dir), "--task", "multi_label",
                 "--output", str(tmp_path / "audit"), "--write_cleaned", str(cleaned)]) == 0
    assert cleaned.read_text(encoding="utf-8").splitlines() == support.toy_multi_label_lines(120)


def test_one_vs_rest_folds_give_independent_probabilities_per_label(noisy_ml_dir):
    from tritoncls.training.audit import dataset, features

    train = dataset.read_labelled(noisy_ml_dir, "train.txt", "label.txt", task="multi_label")
    probs = features.tfidf_folds(train.texts, train.y, len(train.labels), 5, 3).oof_probs
    assert probs.shape == (120, 3) and ((probs >= 0) & (probs <= 1)).all()
    sums = probs.sum(axis=1)
    assert sums.max() > 1.5 and sums.min() < 0.5  # two labels, and none: not a softmax


def test_label_issues_from_frozen_embeddings_fit_one_model_per_label(noisy_ml_dir, tmp_path):
    """--source embeddings on label sets: one-vs-rest logistic regression on the encoder's vectors (a random-weight
    checkpoint here, so only the shapes and the layout are checked, not the flags)."""
    texts = [line.split("\t")[0] for line in support.toy_multi_label_lines(120)]
    checkpoint = support.write_random_checkpoint(tmp_path / "checkpoint", texts, support.TOY_ML_LABELS)
    result = _run(noisy_ml_dir, tmp_path, source="embeddings", checkpoint=str(checkpoint), folds=3, max_seq_length=32)
    assert result["source"] == "embeddings" and result["texts"] == 120
    assert all(set(row["probabilities"]) == set(support.TOY_ML_LABELS) for row in result["rows"])


@pytest.mark.slow
def test_k_fold_fine_tuning_on_label_sets_flags_the_corrupted_lines(keyword_checkpoint, tmp_path):
    """--source checkpoint with --task multi_label: each fold fine-tuned with binary cross-entropy, sigmoid
    probabilities. The keyword checkpoint's labels (food, sport) as label sets: none, one or both. (In this
    budget the tiny model, trained with a softmax, learns single labels and none far better than both, so the
    corruptions are a food text labelled sport and a label dropped.)"""
    sets = ["", "food", "sport", "food,sport"]
    corrupted = {3: "food", 10: ""}  # truly sport, and food
    lines = []
    for i in range(120):
        names = [label for label in sets[i % 4].split(",") if label]
        words = [support.TOY_WORDS[label][(i + k) % 5] for label in names for k in range(3 - len(names))]
        lines.append(f"the {' and '.join(words or ['news', 'weekend'])} today {i}\t{corrupted.get(i + 1, sets[i % 4])}")
    root = tmp_path / "data"
    root.mkdir()
    (root / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "label.txt").write_text("food\nsport\n", encoding="utf-8")
    result = label_issues(LabelIssuesConfig(dataset_dir=str(root), output=str(tmp_path / "audit"), task="multi_label",
                                            source="checkpoint", checkpoint=str(keyword_checkpoint), folds=2,
                                            epochs=10, batch_size=16, learning_rate=3e-3, max_seq_length=32))
    top = {row["where"].rsplit(":", 1)[1]: row for row in result["rows"][:3]}
    assert top["3"]["suggested"] == "sport" and top["10"]["suggested"] == "food"
    assert result["source"] == "checkpoint" and result["task"] == "multi_label"


# ---------------------------------------------------------------------------------------------
# The summary, augment and sparse
# ---------------------------------------------------------------------------------------------


def test_the_summary_counts_label_sets_per_label_with_labels_per_text_and_texts_without_one(tmp_path):
    from tritoncls.training.analysis import AnalyzeConfig, analyze

    root = support.write_toy_multi_label_dataset(tmp_path / "ml", count=70, dev=14)  # 56 train: 8 each of 7 sets
    (root / "train.txt").write_text((root / "train.txt").read_text(encoding="utf-8")
                                    + "today soup match 0\tsport,food\n", encoding="utf-8")  # the same set, reordered
    report = analyze(AnalyzeConfig(dataset_dir=str(root), task="multi_label"))
    train = report["train"]
    assert train["size"] == 57 and report["task"] == "multi_label"
    # food: 8 alone + 8 with sport + 8 with weather + the extra line; a text counts once for each of its labels
    assert train["label_counts"] == {"food": 25, "sport": 25, "weather": 24}
    assert train["texts_without_label"] == 8
    assert train["labels_per_text"]["histogram"] == {"0": 8, "1": 24, "2": 25}
    assert train["labels_per_text"]["mean"] == pytest.approx((24 + 2 * 25) / 57)
    assert train["distinct_label_sets"] == 7 and train["top_label_sets"]["food,sport"] == 9
    assert train["duplicate_texts"] == 0 and "dev" in report


def test_the_summary_counts_duplicates_with_differently_ordered_sets_as_agreeing(tmp_path):
    from tritoncls.training.analysis import AnalyzeConfig, analyze

    root = support.write_toy_multi_label_dataset(tmp_path / "ml")
    (root / "train.txt").write_text("a\tfood,sport\na\tsport,food\nb\tfood\nb\t\n", encoding="utf-8")
    train = analyze(AnalyzeConfig(dataset_dir=str(root), task="multi_label"))["train"]
    assert train["duplicate_texts"] == 2 and train["conflicting_duplicates"] == 1  # only b: {food} vs none


def test_the_summary_of_a_hierarchy_counts_texts_per_level(tmp_path):
    from tritoncls.training.analysis import AnalyzeConfig, analyze

    root = support.write_toy_multi_label_dataset(tmp_path / "tree", count=50, dev=10, hierarchical=True)
    train = analyze(AnalyzeConfig(dataset_dir=str(root), task="hierarchical"))["train"]
    assert train["texts_per_level"] == {"1": 40, "2": 24}  # 3 of the 5 sets go two levels deep (8 texts each)
    assert train["label_counts"]["food"] == 24 and train["label_counts"]["food##sweet"] == 16


def test_analyze_command_takes_the_task_and_refuses_label_sets_without_it(tmp_path, caplog):
    from tritoncls.cli import main

    root = support.write_toy_multi_label_dataset(tmp_path / "ml")
    assert main(["analyze", "--dataset_dir", str(root), "--task", "multi_label", "--report", str(tmp_path / "a.json")]) == 0
    assert json.loads((tmp_path / "a.json").read_text(encoding="utf-8"))["train"]["texts_without_label"] == 7
    assert main(["analyze", "--dataset_dir", str(root)]) == 1
    assert "Pass --task multi_label" in caplog.text


@pytest.mark.parametrize("hierarchical", [False, True])
def test_augment_copies_each_source_lines_label_field(tmp_path, hierarchical):
    from tritoncls.training.audit.augment import AugmentConfig, augment

    root = support.write_toy_multi_label_dataset(tmp_path / "ml", hierarchical=hierarchical)
    task = "hierarchical" if hierarchical else "multi_label"
    out = tmp_path / "augmented.txt"
    result = augment(AugmentConfig(dataset_dir=str(root), output=str(out), task=task, targets="all", copies=1))
    original = (root / "train.txt").read_text(encoding="utf-8").splitlines()
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[:len(original)] == original and len(lines) == len(original) + result["augmented"] > len(original)
    for line, item in zip(lines[len(original):], result["examples"]):
        source = original[int(item["source"].rsplit(":", 1)[1]) - 1]
        assert line.split("\t")[1] == source.split("\t")[1]  # empty fields included
    labels = list(support.TOY_TREE_LABELS if hierarchical else support.TOY_ML_LABELS)
    assert len(data.read_examples(out, labels, task)) == len(lines)


def test_augment_of_the_neighbours_of_sparse_dev_texts_works_on_label_sets(tmp_path):
    from tritoncls.training.audit.augment import AugmentConfig, augment

    root = support.write_toy_multi_label_dataset(tmp_path / "ml")
    result = augment(AugmentConfig(dataset_dir=str(root), output=str(tmp_path / "a.txt"), task="multi_label", top=2,
                                   neighbours=2))
    assert 1 <= result["targets"] <= 4 and result["augmented"] > 0


def test_sparse_refuses_label_sets_and_says_what_to_use(tmp_path):
    from tritoncls.cli import main
    from tritoncls.training.audit.sparse import SparseConfig

    with pytest.raises(ConfigError, match=r"sparse --task multi_label: not available for label sets.*analyze augment "
                                          r"--task multi_label.*label-issues --task multi_label"):
        SparseConfig(dataset_dir="d", task="multi_label")
    root = support.write_toy_multi_label_dataset(tmp_path / "ml")
    assert main(["analyze", "sparse", "--dataset_dir", str(root), "--task", "hierarchical"]) == 1


# ---------------------------------------------------------------------------------------------
# interpret on a multi-label checkpoint (random weights, written without training)
# ---------------------------------------------------------------------------------------------


def _checkpoint(tmp_path, thresholds=None, hierarchical=False):
    from tritoncls.runtime import TaskSpec

    labels = support.TOY_TREE_LABELS if hierarchical else support.TOY_ML_LABELS
    texts = [line.split("\t")[0] for line in support.toy_multi_label_lines(60, hierarchical)]
    task = None if thresholds is None else TaskSpec("hierarchical" if hierarchical else "multi_label", thresholds)
    return support.write_random_checkpoint(tmp_path / "checkpoint", texts, labels, task)


def _interpret(checkpoint, tmp_path, steps=64, methods=("ig", "occlusion"), **options):
    from tritoncls.training.audit import interpret as ig

    config = ig.InterpretConfig(checkpoint=str(checkpoint), text=["today soup and rain 3"], output=str(tmp_path / "out"),
                                steps=steps, terminal=False, methods=list(methods), **options)
    return ig.interpret(config)


def _probabilities(checkpoint, tmp_path) -> dict[str, float]:
    """Each label's probability for the text, as interpret reports it (one integrated-gradient step each)."""
    return {label: _interpret(checkpoint, tmp_path, steps=1, methods=["ig"], label=label)[0]["probability"]
            for label in support.TOY_ML_LABELS}


def test_interpret_label_explains_that_labels_own_sigmoid_and_attributions_differ_by_label(tmp_path):
    checkpoint = _checkpoint(tmp_path, thresholds=(0.5, 0.5, 0.5))
    (food,), (weather,) = _interpret(checkpoint, tmp_path, label="food"), _interpret(checkpoint, tmp_path, label="weather")
    assert food["label"] == "food" and weather["label"] == "weather"
    for row in (food, weather):
        assert row["probability"] == pytest.approx(1 / (1 + np.exp(-row["logit"])), abs=1e-4)  # sigmoid, not softmax
        assert sum(row["integrated_gradients"]) == pytest.approx(row["logit"] - row["baseline_logit"], rel=0.05,
                                                                 abs=1e-2)
    assert not np.allclose(food["integrated_gradients"], weather["integrated_gradients"], atol=1e-3)
    assert not np.allclose(food["occlusion"], weather["occlusion"], atol=1e-4)
    written = json.loads((tmp_path / "out" / "interpret.json").read_text(encoding="utf-8"))
    assert written["task"] == "multi_label" and written["rows"][0]["label"] == "weather"


def test_interpret_defaults_to_each_predicted_label_at_the_checkpoints_thresholds(tmp_path):
    rows = _interpret(_checkpoint(tmp_path, thresholds=(0.0, 1.0, 0.0)), tmp_path)  # food and weather always
    assert [row["label"] for row in rows] == ["food", "weather"]
    assert {row["predicted"] for row in rows} == {"food,weather"}
    assert "| predicted |" in (tmp_path / "out" / "interpret.md").read_text(encoding="utf-8")


def test_interpret_explains_the_most_probable_label_when_none_is_predicted(tmp_path):
    from tritoncls.training.audit import interpret as ig

    checkpoint = _checkpoint(tmp_path, thresholds=(1.0, 1.0, 1.0))
    (row,) = _interpret(checkpoint, tmp_path)
    probabilities = _probabilities(checkpoint, tmp_path)
    assert row["label"] == max(probabilities, key=probabilities.get) and row["predicted"] == "(none)"
    assert ig.InterpretConfig(checkpoint="c", text=["t"]).label is None


def test_interpret_on_a_hierarchy_predicts_a_path_only_with_its_parent(tmp_path):
    # food is never predicted, so food##sweet (threshold 0) is not either; sport and sport##ball always are
    rows = _interpret(_checkpoint(tmp_path, thresholds=(1.0, 0.0, 0.0, 0.0), hierarchical=True), tmp_path)
    assert [row["label"] for row in rows] == ["sport", "sport##ball"]


def test_interpret_on_a_multi_class_checkpoint_still_explains_the_predicted_label(tmp_path):
    checkpoint = _checkpoint(tmp_path)  # no task.json: multi-class, softmax
    probabilities = _probabilities(checkpoint, tmp_path)
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    (row,) = _interpret(checkpoint, tmp_path)
    assert row["label"] == max(probabilities, key=probabilities.get) and "predicted" not in row


def test_an_unknown_label_is_a_clear_error_naming_the_checkpoints_labels(tmp_path):
    from tritoncls.cli import main

    checkpoint = _checkpoint(tmp_path, thresholds=(0.5, 0.5, 0.5))
    with pytest.raises(ConfigError, match=r"--label 'drinks' is not one of the checkpoint's labels: food, sport, "
                                          r"weather\. Name one of them .*leave --label out to explain the predicted labels"):
        _interpret(checkpoint, tmp_path, label="drinks")
    assert main(["analyze", "interpret", "--checkpoint", str(checkpoint), "--text", "soup", "--label", "drinks",
                 "--output", str(tmp_path / "o")]) == 1


def test_interpret_command_takes_label_and_its_older_spelling_target(tmp_path, capsys):
    from tritoncls.cli import main

    checkpoint = _checkpoint(tmp_path, thresholds=(0.5, 0.5, 0.5))
    for option in ("--label", "--target"):
        assert main(["analyze", "interpret", "--checkpoint", str(checkpoint), "--text", "today soup 1", option, "sport",
                     "--output", str(tmp_path / "o"), "--steps", "8", "--device", "cpu"]) == 0
        assert capsys.readouterr().out.startswith("sport (")
