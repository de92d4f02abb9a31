"""Every defect in a data file gets its own message naming file:line and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from tritoncls.common.data import multi_hot, read_examples, read_labels, read_texts
from tritoncls.errors import DataError

LABELS = ["pos", "neg"]


def write(tmp_path: Path, name: str, content: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def test_read_examples_accepts_bom_crlf_and_skips_blank_lines(tmp_path, caplog):
    path = write(tmp_path, "train.txt", b"\xef\xbb\xbfgood film\tpos\r\n\r\nbad film\tneg\r\n   \n")
    with caplog.at_level("INFO"):
        examples = read_examples(path, LABELS)
    assert [(e.text, e.label, e.label_id, e.line) for e in examples] == [
        ("good film", "pos", 0, 1), ("bad film", "neg", 1, 3)]
    assert "Read 2 examples" in caplog.text and "2 blank lines skipped" in caplog.text


def test_read_examples_raises_on_line_without_tab(tmp_path):
    path = write(tmp_path, "train.txt", "ok\tpos\nno tab here\n")
    with pytest.raises(DataError, match=r"train.txt:2: no tab found"):
        read_examples(path, LABELS)


def test_read_examples_raises_on_line_with_two_tabs(tmp_path):
    path = write(tmp_path, "train.txt", "a\tb\tpos\n")
    with pytest.raises(DataError, match=r"train.txt:1: 2 tabs found"):
        read_examples(path, LABELS)


def test_read_examples_raises_on_empty_text(tmp_path):
    path = write(tmp_path, "dev.txt", "fine\tpos\n \tneg\n")
    with pytest.raises(DataError, match=r"dev.txt:2: the text before the tab is empty"):
        read_examples(path, LABELS)


def test_read_examples_raises_on_unknown_label(tmp_path):
    path = write(tmp_path, "dev.txt", "fine\tpos\nhmm\tneutral\n")
    with pytest.raises(DataError, match=r"dev.txt:2: label 'neutral' is not in the label file"):
        read_examples(path, LABELS)


def test_read_examples_raises_on_non_utf8_bytes_with_line_number(tmp_path):
    path = write(tmp_path, "train.txt", b"ok\tpos\n" + "坏\tneg\n".encode("gbk"))
    with pytest.raises(DataError, match=r"train.txt:2: bytes .* are not valid UTF-8"):
        read_examples(path, LABELS)


def test_read_examples_raises_on_empty_file(tmp_path):
    path = write(tmp_path, "train.txt", "\n\n")
    with pytest.raises(DataError, match=r"train.txt: labeled data file is empty"):
        read_examples(path, LABELS)


def test_read_examples_raises_on_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"missing.txt: labeled data file not found"):
        read_examples(tmp_path / "missing.txt", LABELS)


def test_read_labels_raises_on_duplicate_label(tmp_path):
    path = write(tmp_path, "label.txt", "pos\nneg\npos\n")
    with pytest.raises(DataError, match=r"label.txt:3: duplicate label 'pos' \(first defined on line 1\)"):
        read_labels(path)


def test_read_labels_raises_on_missing_and_empty_file(tmp_path):
    with pytest.raises(DataError, match="label file not found"):
        read_labels(tmp_path / "label.txt")
    with pytest.raises(DataError, match="label file is empty"):
        read_labels(write(tmp_path, "label.txt", ""))


def test_read_labels_keeps_order_and_unusual_names(tmp_path):
    names = ['say "hi"', "{{ x }}", "疾病表述", "a{b}"]
    path = write(tmp_path, "label.txt", "\ufeff" + "\r\n".join(names) + "\r\n")
    assert read_labels(path) == names


def test_read_texts_rejects_tabs_and_reads_lines(tmp_path):
    assert read_texts(write(tmp_path, "data.txt", "one\n\ntwo\n")) == ["one", "two"]
    with pytest.raises(DataError, match=r"data.txt:1: a tab found"):
        read_texts(write(tmp_path, "data.txt", "x\tpos\n"))


def test_every_defect_has_a_distinct_message(tmp_path):
    cases = {
        "no tab": "x\n", "two tabs": "a\tb\tpos\n", "empty text": "\tpos\n", "unknown label": "a\tzzz\n",
        "utf8": b"\xff\xfe\tpos\n", "empty": "",
    }
    messages = set()
    for name, content in cases.items():
        with pytest.raises(DataError) as info:
            read_examples(write(tmp_path, f"{name}.txt", content), LABELS)
        messages.add(str(info.value).split(": ", 1)[1][:20])
    assert len(messages) == len(cases)

# ---------------------------------------------------------------------------------------------
# Multi-label and hierarchical data
# ---------------------------------------------------------------------------------------------

TAGS = ["billing", "bug", "urgent"]
TREE = ["A", "A##B", "A##B##C", "D"]


def test_multi_label_lines_give_label_ids_in_label_order_and_an_empty_field_is_no_label(tmp_path):
    path = write(tmp_path, "train.txt", "charged twice\turgent, billing\nthanks\t\ncrash\tbug\n")
    examples = read_examples(path, TAGS, task="multi_label")
    assert [(e.label, e.label_ids, e.line) for e in examples] == [
        ("urgent, billing", (0, 2), 1), ("", (), 2), ("bug", (1,), 3)]
    assert multi_hot(examples, 3).tolist() == [[1, 0, 1], [0, 0, 0], [0, 1, 0]]
    with pytest.raises(ValueError, match="line 1 has 2 labels"):
        _ = examples[0].label_id


@pytest.mark.parametrize("task, line, message", [
    ("multi_label", "x\tbilling,refund", r"train.txt:2: label 'refund' is not in the label file"),
    ("multi_label", "x\tbug,bug", r"train.txt:2: label 'bug' is listed more than once"),
    ("multi_label", "x\tbug,,urgent", r"train.txt:2: an empty label in 'bug,,urgent'"),
    ("hierarchical", "x\tA,A##B##C", r"train.txt:2: 'A##B##C' is listed without its parent 'A##B'"),
    ("hierarchical", "x\tA##B", r"train.txt:2: 'A##B' is listed without its parent 'A'"),
])
def test_every_multi_label_data_error_names_file_line_and_the_fix(tmp_path, task, line, message):
    labels = TREE if task == "hierarchical" else TAGS
    path = write(tmp_path, "train.txt", f"fine\t{labels[0]}\n{line}\n")
    with pytest.raises(DataError, match=message):
        read_examples(path, labels, task=task)


def test_hierarchical_lines_listing_every_level_are_read(tmp_path):
    path = write(tmp_path, "dev.txt", "x\tA##B,A,A##B##C\ny\tD\n")
    assert [e.label_ids for e in read_examples(path, TREE, task="hierarchical")] == [(0, 1, 2), (3,)]


@pytest.mark.parametrize("task, labels, message", [
    ("multi_label", "billing\nbug,urgent\n", r"label.txt:2: label 'bug,urgent' contains ','"),
    ("hierarchical", "A\nA##B##C\n", r"label.txt:2: label 'A##B##C': its parent 'A##B' is not in the label file"),
    ("hierarchical", "A\nA####B\n", r"label.txt:2: label 'A####B' has an empty level"),
    ("hierarchical", "A\n##B\n", r"label.txt:2: label '##B' has an empty level"),
])
def test_label_files_that_cannot_hold_the_task_are_refused(tmp_path, task, labels, message):
    with pytest.raises(DataError, match=message):
        read_labels(write(tmp_path, "label.txt", labels), task=task)


def test_a_label_with_a_comma_is_fine_for_multi_class(tmp_path):
    assert read_labels(write(tmp_path, "label.txt", "yes, really\nno\n")) == ["yes, really", "no"]


@pytest.mark.parametrize("line, task", [("x\tbilling,bug", "multi_label"), ("x\t", "multi_label")])
def test_multi_label_data_read_without_task_says_so_and_names_the_flag(tmp_path, line, task):
    path = write(tmp_path, "train.txt", f"fine\tbug\n{line}\n")
    with pytest.raises(DataError, match=rf"train.txt:2: .*this is the multi-label layout.*--task {task}"):
        read_examples(path, TAGS)


def test_hierarchical_data_read_without_task_names_the_hierarchical_flag(tmp_path):
    path = write(tmp_path, "train.txt", "x\tA,A##B\n")
    with pytest.raises(DataError, match=r"--task hierarchical"):
        read_examples(path, TREE)


def test_an_unknown_task_is_refused():
    with pytest.raises(DataError, match="--task 'tags': choose one of multi_class, multi_label, hierarchical"):
        read_examples("train.txt", TAGS, task="tags")
