"""The repository's runtime (tritoncls_runtime.py): tokenizer parity with PaddleNLP, buckets, batching,
postprocess and per-request errors, tested outside Triton."""

from __future__ import annotations

import ast
import random
from pathlib import Path

import numpy as np
import pytest

from tests.support import SPECIAL_TOKENS, TRICKY_TEXTS, paddlenlp_tokenizer, random_texts
from tritoncls import runtime as rt
from tritoncls.builder.render import PYTHON_MODELS_DIR


@pytest.mark.parametrize("kind", [rt.WordPieceTokenizer, rt.PythonWordPieceTokenizer], ids=lambda k: k.__name__)
@pytest.mark.parametrize("lowercase", [True, False])
def test_tokenizers_give_paddlenlp_ids_on_tricky_and_random_unicode(kind, lowercase, tmp_path):
    from tritoncls.modeling import build_vocab

    rng = random.Random(0)
    vocab = build_vocab(random_texts(rng, 2000) + ["unaffable running ΟΔΟΣ café"], lowercase=lowercase, max_size=6000)
    reference = paddlenlp_tokenizer(tmp_path, vocab, lowercase)
    ours = kind(tmp_path / "vocab.txt", lowercase, SPECIAL_TOKENS, max_seq_length=64)
    texts = TRICKY_TEXTS + random_texts(rng, 1500)
    expected = reference(texts, max_length=64, truncation=True)["input_ids"]
    got = ours.encode(texts)
    mismatches = [(t, e, g) for t, e, g in zip(texts, expected, got) if e != g]
    assert not mismatches, f"{len(mismatches)} texts differ, first: {mismatches[0]}"


@pytest.mark.slow
@pytest.mark.kuake
def test_wordpiece_tokenizer_gives_the_exported_tokenizers_ids_on_every_kuake_dev_text(kuake_export, kuake_dir):
    from tritoncls import modeling
    from tritoncls.common import data
    from tritoncls.runtime import Manifest

    manifest = Manifest.load(kuake_export)
    texts = [e.text for e in data.read_examples(kuake_dir / "dev.txt", data.read_labels(kuake_dir / "label.txt"))]
    texts += TRICKY_TEXTS
    reference = modeling.load_tokenizer(kuake_export)(texts, max_length=manifest.max_seq_length, truncation=True)
    tok = manifest.tokenizer
    ours = rt.WordPieceTokenizer(kuake_export / tok.vocab_file, tok.do_lower_case, tok.special_tokens,
                                 manifest.max_seq_length)
    assert len(texts) == 1955 + len(TRICKY_TEXTS)
    assert ours.encode(texts) == reference["input_ids"]


def test_decode_texts_rejects_non_utf8_and_empty_text_naming_the_row():
    assert rt.decode_texts(np.array([["héllo".encode()], [b"x"]], dtype=np.object_)) == ["héllo", "x"]
    with pytest.raises(rt.RequestError, match=r"text 1: bytes b'\\xff\\xfe' at offset 0 are not valid UTF-8"):
        rt.decode_texts(np.array([[b"ok"], [b"\xff\xfe"]], dtype=np.object_))
    with pytest.raises(rt.RequestError, match="text 0: the text is empty"):
        rt.decode_texts(np.array([[b" \t "]], dtype=np.object_))


def test_bucket_width_picks_the_smallest_bucket_that_fits():
    assert [rt.bucket_width(n, (16, 32, 64)) for n in (1, 16, 17, 33, 64)] == [16, 16, 32, 64, 64]
    with pytest.raises(rt.RequestError, match="65 tokens exceed the largest bucket 64"):
        rt.bucket_width(65, (16, 32, 64))


def test_padded_width_per_padding_mode():
    rows = [[1, 2, 3], [1] * 20]
    assert rt.padded_width(rows, "buckets", (16, 32, 64), 64) == 32
    assert rt.padded_width(rows, "longest", (16, 32, 64), 64) == 20
    assert rt.padded_width(rows, "max_length", (16, 32, 64), 64) == 64


def test_pad_rows_pads_ids_with_pad_id_and_types_with_pad_type_id():
    ids, types = rt.pad_rows([[1, 5, 2], [1, 2]], 4, pad_id=0, pad_type_id=3)
    assert ids.tolist() == [[1, 5, 2, 0], [1, 2, 0, 0]] and ids.dtype == np.int64
    assert types.tolist() == [[0, 0, 0, 3], [0, 0, 3, 3]]


def test_merge_trim_and_split_round_trip_requests_of_different_widths():
    a, b = np.array([[1, 2, 0, 0]]), np.array([[1, 2, 3, 4, 5, 0, 0, 0], [1, 2, 0, 0, 0, 0, 0, 0]])
    merged = rt.merge_requests([a, b], pad_value=0)
    assert merged.shape == (3, 8)
    ids, _ = rt.trim_padding(merged, np.zeros_like(merged), pad_id=0)
    assert ids.shape == (3, 5) and ids.flags.c_contiguous
    assert [part.shape[0] for part in rt.split_rows(ids, [1, 2])] == [1, 2]


def tokenize_step(export: Path, padding: str = "buckets") -> rt.TokenizeStep:
    tokenizer = rt.WordPieceTokenizer(export / "vocab.txt", True, SPECIAL_TOKENS, 64)
    return rt.TokenizeStep(tokenizer, padding, (16, 32, 64), 64, pad_token_id=0)


def column(*texts: str | bytes) -> np.ndarray:
    return np.array([[t.encode() if isinstance(t, str) else t] for t in texts], dtype=np.object_)


def test_tokenize_step_pads_each_request_to_its_own_bucket_and_fails_only_the_bad_request(tiny_export):
    step = tokenize_step(tiny_export)
    results = step([column("good movie"), column(b"\xc3\x28"), column("the movie " * 10, "ok"), column("")])
    assert results[0][0].shape == (1, 16)
    assert isinstance(results[1], rt.RequestError) and "not valid UTF-8" in str(results[1])
    assert results[2][0].shape == (2, 32)
    assert isinstance(results[3], rt.RequestError) and "empty" in str(results[3])


def test_tokenize_step_truncates_long_text_to_max_seq_length_like_training(tiny_export):
    ids, _ = tokenize_step(tiny_export)([column("good " * 500)])[0]
    assert ids.shape == (1, 64) and ids[0, 0] == 1 and ids[0, -1] == 2  # [CLS] ... [SEP]


def test_model_step_merged_run_equals_one_run_per_request(tiny_export):
    runner = rt.OnnxRunner(tiny_export / "model.onnx", ("input_ids", "token_type_ids"), "logits")
    inputs = tokenize_step(tiny_export)([column("good movie"), column("bad " * 20, "ok"), column("great fine")])
    merged = rt.ModelStep(runner, pad_token_id=0, merge=True)(inputs)
    single = rt.ModelStep(runner, pad_token_id=0, merge=False)(inputs)
    for m, s in zip(merged, single):
        np.testing.assert_allclose(m, s, atol=1e-5)
    assert [m.shape for m in merged] == [(1, 3), (2, 3), (1, 3)]


def test_model_step_passes_request_errors_through_and_runs_the_rest(tiny_export):
    runner = rt.OnnxRunner(tiny_export / "model.onnx", ("input_ids", "token_type_ids"), "logits")
    bad = rt.RequestError("bad text")
    results = rt.ModelStep(runner, 0)([bad, *tokenize_step(tiny_export)([column("good")])])
    assert results[0] is bad and results[1].shape == (1, 3)


def test_postprocess_gives_label_confidence_and_top_k_best_first():
    logits = np.array([[0.0, 2.0, 1.0], [3.0, 3.0, 0.0]], dtype=np.float32)
    out = rt.PostprocessStep(["a", "b", "c"], top_k=2)([logits[:1], rt.RequestError("x"), logits[1:]])
    first, error, second = out
    assert first.label.tolist() == [[b"b"]] and first.top_k_labels.tolist() == [[b"b", b"c"]]
    np.testing.assert_allclose(first.confidence, rt.softmax(logits[:1]).max(axis=1, keepdims=True))
    assert isinstance(error, rt.RequestError)
    assert second.label.tolist() == [[b"a"]] and second.top_k_labels.tolist() == [[b"a", b"b"]]  # tie: lower id first


def test_postprocess_refuses_a_label_file_that_does_not_match_the_logits(tmp_path):
    (tmp_path / "label.txt").write_text("a\nb\n", encoding="utf-8")
    params = rt.PostprocessParameters(num_labels=3).to_strings()
    with pytest.raises(rt.ParameterError, match="2 labels, but the model gives 3 logits"):
        rt.PostprocessStep.from_parameters(params, tmp_path)


def test_read_labels_reads_like_training_bom_crlf_and_blank_lines(tmp_path):
    path = tmp_path / "label.txt"
    path.write_bytes('\ufeffsay "hi"\r\n\r\n{{ x }}\r\n中文\n'.encode())
    from tritoncls.common.data import read_labels

    assert rt.read_labels(path) == read_labels(path) == ['say "hi"', "{{ x }}", "中文"]


ALLOWED_IMPORTS = {"__future__", "functools", "json", "math", "os", "re", "threading", "time", "typing", "unicodedata",
                   "warnings", "collections.abc",
                   "dataclasses", "pathlib", "numpy", "tokenizers", "tokenizers.models", "onnxruntime", "paddle",
                   "paddlenlp.transformers", "triton_python_backend_utils", "tritoncls_runtime"}
RUNTIME_FILES = sorted(Path(rt.__file__).parent.glob("*.py"))


@pytest.mark.parametrize("path", [*RUNTIME_FILES, *sorted(PYTHON_MODELS_DIR.glob("*.py"))], ids=lambda p: p.name)
def test_repository_python_never_imports_tritoncls(path):
    """What build-repo copies into a repository imports the runtime (relatively) and libraries only."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
    assert modules <= ALLOWED_IMPORTS, f"{path.name} imports {sorted(modules - ALLOWED_IMPORTS)}"
