"""Distillation's data augmentation: changed copies of the training texts, labelled by the teacher."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from tritoncls.errors import ConfigError
from tritoncls.modeling import checkpoint as ckpt
from tritoncls.modeling.dynamic import Encoded
from tritoncls.prune import prune as prune_module
from tritoncls.prune.augment import augment
from tritoncls.prune.prune import PruneConfig, prune

CLS, SEP, MASK = 101, 102, 103
SPECIAL = (0, CLS, SEP, MASK)


def rows(*lengths: int) -> Encoded:
    ids = [[CLS] + [1000 + 10 * r + i for i in range(n)] + [SEP] for r, n in enumerate(lengths)]
    return Encoded(ids, [[0] * len(row) for row in ids])


def test_every_copy_keeps_the_special_tokens_and_changes_only_into_masks_or_corpus_tokens():
    original = rows(20, 7, 12)
    corpus = {t for row in original.input_ids for t in row[1:-1]}
    copies = augment(original, copies=3, rate=0.25, seed=1, mask_id=MASK, special_ids=SPECIAL)
    assert len(copies) == 9  # every row's first copy, then the second ones, ...
    for i, row in enumerate(copies.input_ids):
        source = original.input_ids[i % 3]
        assert row[0] == CLS and row[-1] == SEP and len(copies.token_type_ids[i]) == len(row)
        changed = round(0.25 * (len(source) - 2))
        assert len(source) - changed <= len(row) <= len(source)  # a changed token is at most deleted
        assert set(row[1:-1]) <= corpus | {MASK}
        assert row != source
    assert copies.input_ids == augment(original, 3, 0.25, 1, MASK, SPECIAL).input_ids  # the seed decides
    assert copies.input_ids != augment(original, 3, 0.25, 2, MASK, SPECIAL).input_ids


def test_a_one_token_text_is_never_emptied_and_a_text_of_special_tokens_is_kept_as_it_is():
    copies = augment(Encoded([[CLS, 1000, SEP], [CLS, SEP]], [[0, 0, 0], [0, 0]]), copies=50, rate=0.15, seed=0,
                     mask_id=MASK, special_ids=SPECIAL)
    assert all(len(row) == 3 for row in copies.input_ids[0::2])  # masked or replaced, never deleted
    assert all(row == [CLS, SEP] for row in copies.input_ids[1::2])


def test_concat_appends_rows_in_order():
    a, b = rows(2), rows(3)
    both = a.concat(b)
    assert both.input_ids == a.input_ids + b.input_ids and both.token_type_ids == a.token_type_ids + b.token_type_ids


@pytest.mark.parametrize(("copies", "rate"), [(-1, 0.15), (1, 0.0), (1, 1.0)])
def test_the_config_refuses_a_negative_copy_count_or_a_rate_outside_zero_to_one(copies, rate):
    with pytest.raises(ConfigError, match="--augment_copies .* --augment_rate"):
        PruneConfig(dataset_dir="d", augment_copies=copies, augment_rate=rate)


def test_prune_distils_on_the_training_texts_and_their_copies_labelled_by_the_teacher(
        teacher_checkpoint, toy_dataset, tmp_path, monkeypatch, caplog):
    seen = {}
    real = prune_module.distil

    def spy(student, teacher, plan, d, config, save):
        seen.update(rows=len(d.train), targets=d.train_y, logits=d.teacher_logits)
        return real(student, teacher, plan, d, config, save)

    monkeypatch.setattr(prune_module, "distil", spy)
    config = PruneConfig(dataset_dir=str(toy_dataset), checkpoint=str(teacher_checkpoint), output=str(tmp_path / "p"),
                         device="cpu", depth_list=[1], width_mult_list=["1"], batch_size=16, eval_batch_size=8,
                         epochs=1, max_seq_length=32, latency_repeats=1, save_steps=100, augment_copies=2)
    with caplog.at_level(logging.INFO, logger="tritoncls.prune.prune"):
        result = prune(config)
    train = 40  # the toy set's training texts
    assert seen["rows"] == 3 * train and len(seen["targets"]) == 3 * train and len(seen["logits"]) == 3 * train
    # each copy's hard target is the teacher's prediction on it
    np.testing.assert_array_equal(seen["targets"][train:], seen["logits"][train:].argmax(axis=1))
    assert "Augmented the 40 training texts with 2 changed copies each" in caplog.text
    saved = ckpt.read_json(tmp_path / "p" / "d1_w1" / "checkpoint" / "training_config.json")
    assert (saved["augment_copies"], saved["augment_rate"]) == (2, 0.15)  # what --resume compares
    assert "2 augmented copies of each training text" in result.report_md.read_text(encoding="utf-8")


def test_an_imported_hugging_face_tokenizer_gives_the_mask_and_special_ids_augmentation_needs(tmp_path):
    from tests import support
    from tritoncls import modeling
    from tritoncls.modeling.dynamic import encode
    from tritoncls.modeling.hf import import_hf

    texts = ["what is the capital of france", "who wrote hamlet", "how far is the moon"]
    import_hf(support.write_hf_folder(tmp_path / "bert", "bert", texts, num_labels=2), tmp_path / "ckpt")
    tokenizer = modeling.load_tokenizer(tmp_path / "ckpt")
    vocab = tokenizer.vocab
    assert tokenizer.mask_token_id == vocab["[MASK]"]
    assert {vocab[t] for t in ("[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]")} == set(tokenizer.all_special_ids)
    encoded = encode(tokenizer, texts, 32)
    copies = augment(encoded, 2, 0.3, 0, tokenizer.mask_token_id, tokenizer.all_special_ids)
    assert all(row[0] == vocab["[CLS]"] and row[-1] == vocab["[SEP]"] for row in copies.input_ids)
