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


@pytest.fixture()
def noisy_ml_dir(tmp_path):
    """The multi-label toy set (120 texts, labels food/sport/weather) with support.NOISY_ML_CORRUPTED."""
    return support.write_noisy_multi_label_dataset(tmp_path / "noisy_ml")


@pytest.fixture()
def noisy_tree_dir(tmp_path):
    """The hierarchical toy set (150 texts) with support.NOISY_TREE_CORRUPTED."""
    return support.write_noisy_multi_label_dataset(tmp_path / "noisy_tree", count=150, hierarchical=True)


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
