"""Hostile input to the tools: label names, manifest file names, output paths and corrupt model files.

Labels with quotes, braces, ``{{ }}`` and non-ASCII survive ``build-repo`` byte for byte (that they come
back from a live server is checked in test_robust_hostile_server.py); a label with a line break is
refused with the reason. An output that would escape or overwrite is refused (without ``--force``, or
always when it would destroy the export itself or the input). A truncated or corrupt ONNX, vocabulary or
label file gives a clear error at ``build-repo``; a corrupt ONNX or pdiparams inside a repository gives
the server's own error at ``serve``, quickly, never a hang.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from tests.support import HOSTILE_LABELS, edit_manifest, write_tiny_export
from tritoncls.builder import MARKER, BuildConfig, build_repository
from tritoncls.cli.build_repo import main as build_repo_main
from tritoncls.clients.chunked import ChunkJournal, ClassifyFileConfig, classify_file
from tritoncls.errors import BuildError, ClientError, ServeError
from tritoncls.server import TritonServer

SERVE_FAILS_WITHIN_S = 120


def build(export: Path, output: Path, **options) -> Path:
    return build_repository(BuildConfig(model=str(export), output=str(output), **options))


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


# ---------------------------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------------------------


def test_hostile_labels_survive_build_repo_byte_for_byte(tmp_path):
    export = write_tiny_export(tmp_path / "export", labels=HOSTILE_LABELS)
    repo = build(export, tmp_path / "repo", top_k=3)
    assert (repo / "seqcls_postprocess" / "1" / "label.txt").read_bytes() == (export / "label.txt").read_bytes()
    assert json.loads((repo / MARKER).read_text(encoding="utf-8"))["export"]["labels"] == list(HOSTILE_LABELS)
    for config in repo.glob("*/config.pbtxt"):
        text = config.read_text(encoding="utf-8")
        assert not any(label in text for label in HOSTILE_LABELS if len(label) > 3), f"a label leaked into {config}"


@pytest.mark.parametrize("label", ["two\nlines", "carriage\rreturn"])
def test_a_label_with_a_line_break_is_refused_naming_the_field(tmp_path, label):
    export = write_tiny_export(tmp_path / "export")
    edit_manifest(export, lambda m: m.update(labels=[label, "b", "c"]))
    with pytest.raises(BuildError, match=r"labels\[0\] .* contains a line break; label.txt holds one label a line"):
        build(export, tmp_path / "repo")
    assert not (tmp_path / "repo").exists()


# ---------------------------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field, value", [
    ("vocab", "../../outside.txt"), ("vocab", "/etc/passwd"), ("label_file", "../label.txt"),
    ("onnx", "sub/model.onnx"), ("onnx", ".."),
])
def test_manifest_file_names_that_leave_the_export_are_refused_and_nothing_is_written_outside(tmp_path, field, value):
    root = tmp_path / "a" / "b"
    export = write_tiny_export(root / "export")
    shutil.copy(export / "vocab.txt", tmp_path / "outside.txt")

    def edit(manifest):
        if field == "vocab":
            manifest["tokenizer"]["files"]["vocab"] = value
        elif field == "onnx":
            manifest["onnx"]["file"] = value
        else:
            manifest[field] = value

    edit_manifest(export, edit)
    before = files_under(tmp_path)
    with pytest.raises(BuildError, match="must be a plain file name inside the export directory"):
        build(export, root / "repo")
    assert files_under(tmp_path) == before


def test_output_that_is_or_holds_the_export_is_refused_even_with_force(tmp_path):
    export = write_tiny_export(tmp_path / "repo" / "export")
    (tmp_path / "repo" / MARKER).write_text("{}")  # looks like a repository that --force may replace
    for output in (tmp_path / "repo" / "export", tmp_path / "repo"):
        with pytest.raises(BuildError, match="writing the repository there would delete it"):
            build(export, output, force=True)
    assert (export / "manifest.json").is_file()


def test_existing_outputs_are_refused_without_force(tmp_path):
    export = write_tiny_export(tmp_path / "export")
    (tmp_path / "file").write_text("keep me")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("keep me")
    with pytest.raises(BuildError, match="exists and is a file"):
        build(export, tmp_path / "file", force=True)
    with pytest.raises(BuildError, match="is not a tritoncls repository .* refusing to replace it"):
        build(export, tmp_path / "folder", force=True)
    repo = build(export, tmp_path / "repo")
    with pytest.raises(BuildError, match="pass --force to replace it"):
        build(export, repo)
    assert (tmp_path / "file").read_text() == "keep me" and (tmp_path / "folder" / "notes.txt").read_text() == "keep me"


def test_a_symlinked_output_is_replaced_as_a_link_and_its_target_is_left_alone(tmp_path):
    export = write_tiny_export(tmp_path / "export")
    elsewhere = build(export, tmp_path / "elsewhere")
    before = {p: p.read_bytes() for p in files_under(elsewhere) if p.is_file()}
    (tmp_path / "link").symlink_to(elsewhere)
    repo = build(export, tmp_path / "link", force=True, top_k=2)
    assert not repo.is_symlink() and (repo / MARKER).is_file()
    assert {p: p.read_bytes() for p in files_under(elsewhere) if p.is_file()} == before


def test_classify_refuses_to_overwrite_or_to_mix_runs_without_being_told(tmp_path):
    source = tmp_path / "input.txt"
    source.write_text("good\nbad\n", encoding="utf-8")
    output = tmp_path / "results.tsv"

    def run(**options):
        return classify_file(ClassifyFileConfig(input=str(source), output=str(options.pop("output", output)),
                                                urls=("127.0.0.1:1",), retries=0, **options))

    with pytest.raises(ClientError, match="is the input file"):
        run(output=source, force=True)
    with pytest.raises(ClientError, match="is a directory"):
        run(output=tmp_path)
    output.write_text("precious\n")
    with pytest.raises(ClientError, match="already exists; pass --force"):
        run()
    with pytest.raises(ClientError, match="nothing to resume"):
        run(resume=True)
    assert output.read_text() == "precious\n"
    output.unlink()
    ChunkJournal(output).start({"format": "tritoncls-classify-journal", "input_sha256": "0" * 64, "texts": 2,
                                "chunk_size": 1000, "model_name": "seqcls"})
    with pytest.raises(ClientError, match="holds partial results of an earlier run; pass --resume"):
        run()
    with pytest.raises(ClientError, match="cannot resume: the input file has changed"):
        run(resume=True)


def test_classify_resume_of_a_complete_output_does_nothing(tmp_path):
    from tritoncls.common.predictions import write_predictions

    source = tmp_path / "input.txt"
    source.write_text("good\nbad\n", encoding="utf-8")
    write_predictions(tmp_path / "results.tsv", ["good", "bad"], ["x", "y"], [0.5, 0.5])
    result = classify_file(ClassifyFileConfig(input=str(source), output=str(tmp_path / "results.tsv"),
                                              urls=("127.0.0.1:1",), resume=True))
    assert result.resumed_texts == 2


# ---------------------------------------------------------------------------------------------
# Corrupt files
# ---------------------------------------------------------------------------------------------


CORRUPTIONS = {
    "truncated onnx": ("model.onnx", lambda data: data[:len(data) // 2], "model.onnx: not a valid ONNX model"),
    "garbage onnx": ("model.onnx", lambda data: b"\x00garbage" * 64, "model.onnx: not a valid ONNX model"),
    "empty onnx": ("model.onnx", lambda data: b"", "model.onnx: not a valid ONNX model .*holds no graph"),
    "binary vocab": ("vocab.txt", lambda data: b"\xff\xfe" + data, "vocab.txt: not UTF-8 text"),
    "binary labels": ("label.txt", lambda data: b"\xff" + data, "label.txt: not UTF-8 text"),
    "manifest cut short": ("manifest.json", lambda data: data[:40], r"manifest.json:\d+: invalid JSON"),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corrupt_export_files_fail_build_repo_with_a_clear_error_and_exit_1(tmp_path, case, caplog):
    name, corrupt, message = CORRUPTIONS[case]
    export = write_tiny_export(tmp_path / "export")
    (export / name).write_bytes(corrupt((export / name).read_bytes()))
    started = time.monotonic()
    code = build_repo_main(["--model", str(export), "--output", str(tmp_path / "repo")])
    assert code == 1 and time.monotonic() - started < 60
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors and any(re.search(message, e) for e in errors), errors
    assert "Traceback" not in "\n".join(errors)
    assert not (tmp_path / "repo").exists() and not list(tmp_path.glob(".repo.*"))


def _serve_fails_fast(repo: Path, log_file: Path) -> str:
    started = time.monotonic()
    with pytest.raises(ServeError) as error:
        TritonServer(repo, log_file=log_file).start(timeout_s=SERVE_FAILS_WITHIN_S)
    seconds = time.monotonic() - started
    assert seconds < SERVE_FAILS_WITHIN_S, "a failed load must not run into the ready timeout"
    print(f"\nserve failed after {seconds:.1f} s: {str(error.value)[:600]}")
    return str(error.value)


@pytest.mark.triton
def test_a_truncated_onnx_inside_a_repository_fails_serve_with_the_servers_error(tmp_path):
    repo = build(write_tiny_export(tmp_path / "export"), tmp_path / "repo")
    model = repo / "seqcls_model" / "1" / "model.onnx"
    model.write_bytes(model.read_bytes()[:200])
    message = _serve_fails_fast(repo, tmp_path / "server.log")
    assert "tritonserver exited" in message and "seqcls_model" in message
    assert "model.onnx" in message or "ONNX" in message or "onnx" in message


@pytest.mark.triton
@pytest.mark.slow
def test_a_truncated_pdiparams_builds_but_fails_serve_with_a_clear_error(demo_export, tmp_path):
    """Paddle Inference reads the weights only at load time: serve says which model failed, and why."""
    export = shutil.copytree(demo_export, tmp_path / "export")
    params = export / json.loads((export / "manifest.json").read_text())["paddle"]["params_file"]
    params.write_bytes(params.read_bytes()[:os.path.getsize(params) // 3])
    repo = build(export, tmp_path / "repo", runtime="paddle_inference")
    message = _serve_fails_fast(repo, tmp_path / "server.log")
    assert "tritonserver exited" in message and "seqcls_model" in message
