"""``tritoncls analyze AUDIT``: the audits are sub-commands of analyze that follow the CLI's pattern, and
``analyze --dataset_dir D`` is still the summary."""

from __future__ import annotations

import argparse
import json

import pytest

from tritoncls.cli import build_parser, main
from tritoncls.cli._args import CONCEPTS
from tritoncls.cli._audit import AUDITS


def audit_parsers() -> dict[str, argparse.ArgumentParser]:
    top = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    analyze = top.choices["analyze"]
    sub = next(a for a in analyze._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_audit_is_a_sub_command_of_analyze():
    assert sorted(audit_parsers()) == sorted(a.name for a in AUDITS) == ["augment", "interpret", "label-issues",
                                                                         "sparse"]


@pytest.mark.parametrize("name", [a.name for a in AUDITS])
def test_audit_flags_have_dashed_forms_and_the_shared_help_words(name):
    for action in audit_parsers()[name]._actions:
        for option in action.option_strings:
            if option.startswith("--") and "_" in option:
                assert option.replace("_", "-") in action.option_strings, (name, option)
        if action.dest in CONCEPTS and action.option_strings:
            assert action.help.startswith(CONCEPTS[action.dest]), (name, action.dest, action.help)
            assert action.option_strings[0] == f"--{action.dest}", (name, action.option_strings)


def test_analyze_without_an_audit_is_still_the_summary(demo_dir, tmp_path):
    assert main(["analyze", "--dataset_dir", str(demo_dir), "--report", str(tmp_path / "a.json")]) == 0
    assert json.loads((tmp_path / "a.json").read_text(encoding="utf-8"))["train"]["size"] == 400


def test_label_issues_command_writes_reports_and_a_cleaned_file(noisy_toy_dir, tmp_path):
    code = main(["analyze", "label-issues", "--dataset-dir", str(noisy_toy_dir), "--output", str(tmp_path / "audit"),
                 "--write_cleaned", str(tmp_path / "clean.txt"), "--mode", "drop", "--max_issues", "5"])
    assert code == 0
    assert len((tmp_path / "clean.txt").read_text(encoding="utf-8").splitlines()) == 115
    assert (tmp_path / "audit" / "label_issues.md").is_file()


def test_sparse_and_augment_commands_write_their_files(noisy_toy_dir, tmp_path):
    assert main(["analyze", "sparse", "--dataset_dir", str(noisy_toy_dir), "--output", str(tmp_path), "--top", "3",
                 "--select", "4"]) == 0
    assert [line.endswith("\t") for line in (tmp_path / "to_annotate.txt").read_text(encoding="utf-8").split("\n")[:4]] \
        == [True] * 4
    assert main(["analyze", "augment", "--dataset_dir", str(noisy_toy_dir), "--output", str(tmp_path / "aug.txt"),
                 "--targets", "all", "--copies", "1"]) == 0
    assert len((tmp_path / "aug.txt").read_text(encoding="utf-8").splitlines()) > 120


def test_an_audit_error_exits_1_with_the_message(noisy_toy_dir, tmp_path, caplog):
    (noisy_toy_dir / "train.txt").write_text("the soup\tfood\n", encoding="utf-8")
    assert main(["analyze", "label-issues", "--dataset_dir", str(noisy_toy_dir), "--output", str(tmp_path)]) == 1
    assert "every example has the label 'food'" in caplog.text


def test_an_audit_missing_its_required_option_is_a_usage_error_of_that_audit(capsys):
    with pytest.raises(SystemExit) as info:
        main(["analyze", "augment", "--dataset_dir", "d"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: tritoncls analyze augment" in err and "--output" in err
