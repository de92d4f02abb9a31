"""``analyze label-issues``: confident learning on out-of-fold probabilities finds flipped labels; the cleaned
file is new; bad input is a clear error."""

from __future__ import annotations

import json

import pytest

from tests import support
from tritoncls.errors import ConfigError, DataError
from tritoncls.training.audit.label_issues import LabelIssuesConfig, label_issues


def _run(dataset_dir, tmp_path, **options):
    return label_issues(LabelIssuesConfig(dataset_dir=str(dataset_dir), output=str(tmp_path / "audit"), **options))


def test_label_issues_flag_the_flipped_labels_first_with_file_line_and_the_true_label(noisy_toy_dir, tmp_path):
    result = _run(noisy_toy_dir, tmp_path)
    flipped = {f"{noisy_toy_dir / 'train.txt'}:{line}" for line in support.NOISY_TOY_FLIPPED}
    top = result["rows"][:len(flipped)]
    assert {row["where"] for row in top} == flipped
    for row in top:
        assert row["suggested"] != row["given"] and row["p_suggested"] > row["p_given"]
    written = json.loads((tmp_path / "audit" / "label_issues.json").read_text(encoding="utf-8"))
    assert written["rows"][0]["where"] == top[0]["where"]
    assert "| rank | where |" in (tmp_path / "audit" / "label_issues.md").read_text(encoding="utf-8")
    assert (tmp_path / "audit" / "label_issues.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("mode,lines", [("relabel", 120), ("drop", 115)])
def test_write_cleaned_fixes_or_drops_the_flagged_texts_and_leaves_the_original(noisy_toy_dir, tmp_path, mode, lines):
    original = (noisy_toy_dir / "train.txt").read_bytes()
    cleaned = tmp_path / "clean.txt"
    _run(noisy_toy_dir, tmp_path, write_cleaned=str(cleaned), mode=mode, max_issues=5)
    assert (noisy_toy_dir / "train.txt").read_bytes() == original
    written = cleaned.read_text(encoding="utf-8").splitlines()
    assert len(written) == lines
    expected = support.toy_lines(120)
    kept = [line for number, line in enumerate(expected, start=1) if mode == "relabel" or number not in
            support.NOISY_TOY_FLIPPED]
    assert written == kept


def test_review_file_holds_the_flagged_lines_and_after_review_makes_the_clean_training_set(noisy_toy_dir, tmp_path):
    rest, review = tmp_path / "rest.txt", tmp_path / "review.txt"
    result = _run(noisy_toy_dir, tmp_path, write_cleaned=str(rest), mode="drop", write_review=str(review),
                  max_issues=5)
    train_lines = (noisy_toy_dir / "train.txt").read_text(encoding="utf-8").splitlines()
    flagged = [int(row["where"].rsplit(":", 1)[1]) for row in result["rows"]]
    assert sorted(flagged) == sorted(support.NOISY_TOY_FLIPPED)
    # the given (wrong) labels, in the report's order, for the person to correct
    assert review.read_text(encoding="utf-8").splitlines() == [train_lines[line - 1] for line in flagged]
    truth = support.toy_lines(120)
    corrected = [truth[line - 1] for line in flagged]  # what the reviewer writes back
    assert sorted(rest.read_text(encoding="utf-8").splitlines() + corrected) == sorted(truth)


def test_review_file_may_not_be_the_training_file_or_the_cleaned_file(noisy_toy_dir, tmp_path):
    with pytest.raises(ConfigError, match=r"--write_review .*never changes.*train\.review\.txt"):
        _run(noisy_toy_dir, tmp_path, write_review=str(noisy_toy_dir / "train.txt"))
    with pytest.raises(ConfigError, match="both name"):
        _run(noisy_toy_dir, tmp_path, write_review=str(tmp_path / "x.txt"), write_cleaned=str(tmp_path / "x.txt"))


def test_write_cleaned_refuses_the_original_training_file(noisy_toy_dir, tmp_path):
    with pytest.raises(ConfigError, match=r"never changes.*train\.cleaned\.txt"):
        _run(noisy_toy_dir, tmp_path, write_cleaned=str(noisy_toy_dir / "train.txt"))


def test_a_one_class_training_file_is_a_clear_error(noisy_toy_dir, tmp_path):
    (noisy_toy_dir / "train.txt").write_text("the soup\tfood\nthe cake\tfood\n", encoding="utf-8")
    with pytest.raises(DataError, match="every example has the label 'food'.*at least 2"):
        _run(noisy_toy_dir, tmp_path)


def test_an_empty_training_file_is_a_clear_error(noisy_toy_dir, tmp_path):
    (noisy_toy_dir / "train.txt").write_text("\n", encoding="utf-8")
    with pytest.raises(DataError, match="train.txt: labeled data file is empty"):
        _run(noisy_toy_dir, tmp_path)


def test_a_label_missing_from_the_label_file_names_file_and_line(noisy_toy_dir, tmp_path):
    (noisy_toy_dir / "train.txt").write_text("the soup\tfood\nthe goal\tsports\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train.txt:2: label 'sports' is not in the label file"):
        _run(noisy_toy_dir, tmp_path)


def test_a_checkpoint_with_other_labels_is_refused_before_any_work(noisy_toy_dir, tmp_path):
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / "label.txt").write_text("food\nsport\nweather\n", encoding="utf-8")
    (checkpoint / "COMPLETE").write_text("ok\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"label.txt disagrees with .*\['weather'\]"):
        _run(noisy_toy_dir, tmp_path, source="checkpoint", checkpoint=str(checkpoint))


def test_label_issues_config_refuses_an_unknown_source_or_mode():
    with pytest.raises(ConfigError, match="--source 'bert'"):
        LabelIssuesConfig(dataset_dir="d", source="bert")
    with pytest.raises(ConfigError, match="--mode 'fix'"):
        LabelIssuesConfig(dataset_dir="d", mode="fix")
