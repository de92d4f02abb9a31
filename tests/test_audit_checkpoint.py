"""The audits that use a checkpoint: label issues by k-fold fine-tuning, sparse data in the [CLS] space."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.slow
def test_label_issues_from_k_fold_fine_tuning_of_a_checkpoint_flag_the_flipped_labels(keyword_checkpoint, noisy_toy_dir,
                                                                                        tmp_path):
    from tests import support
    from tritoncls.training.audit.label_issues import LabelIssuesConfig, label_issues

    result = label_issues(LabelIssuesConfig(dataset_dir=str(noisy_toy_dir), output=str(tmp_path), source="checkpoint",
                                            checkpoint=str(keyword_checkpoint), folds=2, epochs=1,
                                            learning_rate=1e-3, max_seq_length=32))
    flipped = {f"{noisy_toy_dir / 'train.txt'}:{line}" for line in support.NOISY_TOY_FLIPPED}
    assert flipped <= {row["where"] for row in result["rows"][:10]}


@pytest.mark.slow
def test_sparse_in_the_checkpoint_space_uses_unit_cls_vectors_and_selects(keyword_checkpoint, noisy_toy_dir, tmp_path):
    from tritoncls.training.audit.finetune import cls_embeddings
    from tritoncls.training.audit.sparse import SparseConfig, sparse

    vectors = cls_embeddings(keyword_checkpoint, ["the soup today", "the goal today", "the soup today"], 32, 2)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors[0], vectors[2], atol=1e-5) and not np.allclose(vectors[0], vectors[1], atol=1e-3)
    result = sparse(SparseConfig(dataset_dir=str(noisy_toy_dir), output=str(tmp_path), space="checkpoint",
                                 checkpoint=str(keyword_checkpoint), top=3, select=2, max_seq_length=32))
    assert len(result["rows"]) == 3 and all(-1.0 <= row["similarity"] <= 1.0 for row in result["rows"])
    assert len((tmp_path / "to_annotate.txt").read_text(encoding="utf-8").splitlines()) == 2


@pytest.mark.slow
def test_interpret_command_prints_coloured_text_and_writes_the_page(keyword_checkpoint, tmp_path, capsys):
    from tritoncls.cli import main

    code = main(["analyze", "interpret", "--checkpoint", str(keyword_checkpoint), "--text", "the soup and cake today",
                 "--output", str(tmp_path), "--steps", "20", "--max_seq_length", "32"])
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.startswith("food (") and "\x1b[48;5;" in printed
    assert "<span" in (tmp_path / "interpret.html").read_text(encoding="utf-8")


def test_label_issues_from_frozen_mean_pooled_embeddings_flag_the_flipped_labels(keyword_checkpoint, noisy_toy_dir,
                                                                                   tmp_path):
    """--source embeddings: logistic regression on the checkpoint's mean-pooled vectors, k-fold; no training."""
    from tests import support
    from tritoncls.training.audit.label_issues import LabelIssuesConfig, label_issues

    result = label_issues(LabelIssuesConfig(dataset_dir=str(noisy_toy_dir), output=str(tmp_path), source="embeddings",
                                            checkpoint=str(keyword_checkpoint), folds=3, max_seq_length=32))
    flipped = {f"{noisy_toy_dir / 'train.txt'}:{line}" for line in support.NOISY_TOY_FLIPPED}
    assert flipped <= {row["where"] for row in result["rows"][:10]}
    assert result["source"] == "embeddings"


def test_mean_pooling_averages_only_the_real_tokens(random_tiny_classifier):
    import paddle

    from tritoncls.training.audit.finetune import _PooledRunner

    model, tokenizer = random_tiny_classifier
    ids = np.array([[1, 5, 6, 2, 0, 0], [1, 5, 6, 2, 0, 0]], dtype=np.int64)
    short = np.array([[1, 5, 6, 2]], dtype=np.int64)
    pooled = _PooledRunner(model, "mean", 0).run(ids, np.zeros_like(ids))
    with paddle.no_grad():
        sequence = model.ernie(paddle.to_tensor(short), token_type_ids=paddle.to_tensor(np.zeros_like(short)))[0].numpy()
    unpadded = _PooledRunner(model, "mean", 0).run(short, np.zeros_like(short))
    assert np.allclose(unpadded[0], sequence[0].mean(0), atol=1e-5)
    assert pooled.shape == (2, sequence.shape[-1]) and np.allclose(pooled[0], unpadded[0], atol=1e-5)
    assert np.allclose(_PooledRunner(model, "cls", 0).run(short, np.zeros_like(short))[0], sequence[0, 0], atol=1e-5)
