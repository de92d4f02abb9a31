"""``analyze sparse`` and ``analyze augment``: support ranks off-topic texts last, the selection covers them
from the pool without repeating train; augmentation is deterministic, offline and keeps the original."""

from __future__ import annotations

import numpy as np
import pytest

from tritoncls.errors import ConfigError
from tritoncls.training.audit import sparse as sp
from tritoncls.training.audit.augment import AugmentConfig, Augmenter, augment, split_units
from tritoncls.training.audit.sparse import SparseConfig


def test_sparse_ranks_a_text_unlike_any_training_text_least_supported(noisy_toy_dir, tmp_path):
    dev = noisy_toy_dir / "dev.txt"
    dev.write_text(dev.read_text(encoding="utf-8") + "quantum physics lecture notes\tfood\n", encoding="utf-8")
    result = sp.sparse(SparseConfig(dataset_dir=str(noisy_toy_dir), output=str(tmp_path), top=3, select=0))
    assert result["rows"][0]["text"] == "quantum physics lecture notes"
    assert result["rows"][0]["where"] == f"{dev}:13"
    assert 0 <= result["rows"][0]["support"] < result["rows"][-1]["support"] <= 1


def test_selection_covers_the_sparse_texts_with_pool_texts_not_in_train(noisy_toy_dir, tmp_path):
    (noisy_toy_dir / "data.txt").write_text("physics lecture today\nthe soup and salad today 1\nmy cake\n"
                                            "quantum physics lecture notes again\n", encoding="utf-8")
    (noisy_toy_dir / "dev.txt").write_text("quantum physics lecture notes\tfood\nthe soup\tfood\n", encoding="utf-8")
    sp.sparse(SparseConfig(dataset_dir=str(noisy_toy_dir), output=str(tmp_path), top=1, select=2, strategy="coverage"))
    chosen = (tmp_path / "to_annotate.txt").read_text(encoding="utf-8").splitlines()
    assert chosen == ["quantum physics lecture notes again\t", "physics lecture today\t"]


def test_uncertainty_selects_the_pool_texts_the_fold_models_cannot_decide(noisy_toy_dir, tmp_path):
    (noisy_toy_dir / "data.txt").write_text("the soup and salad 7\nthe goal and match 8\nthe soup and the goal 9\n"
                                            "the cake and the team 10\n", encoding="utf-8")
    result = sp.sparse(SparseConfig(dataset_dir=str(noisy_toy_dir), output=str(tmp_path), top=2, select=2,
                                    strategy="uncertainty"))
    chosen = (tmp_path / "to_annotate.txt").read_text(encoding="utf-8").splitlines()
    assert sorted(chosen) == ["the cake and the team 10\t", "the soup and the goal 9\t"]  # a food and a sport word
    assert all(0 <= item["margin"] < 0.5 and item["covers"] is None for item in result["selected"])


def test_margins_are_the_top_two_gap_of_the_averaged_fold_probabilities():
    folds = [np.array([[0.9, 0.1, 0.0], [0.2, 0.3, 0.5]]), np.array([[0.1, 0.9, 0.0], [0.2, 0.3, 0.5]])]
    assert sp.margins(folds) == pytest.approx([0.0, 0.2])


def test_select_uncertain_takes_the_smallest_margins_skipping_near_copies_and_excluded_rows():
    pool = np.eye(4, dtype=np.float32)
    pool[1] = pool[0]  # a copy of row 0
    margin = np.array([0.1, 0.0, 0.2, 0.9])
    allowed = np.array([True, True, False, True])
    assert sp.select_uncertain(pool, margin, allowed, 3, max_similarity=0.9) == [1, 3]  # 0 copies 1; 2 excluded
    assert sp.select_uncertain(pool, margin, allowed, 3, 0.9, candidates=np.array([0, 3])) == [0, 3]


def test_hybrid_prefers_uncertain_texts_near_the_sparse_ones_then_fills_from_the_rest(monkeypatch):
    pool = np.eye(5, dtype=np.float32)
    sparse_vecs = np.array([[1, 0, 0, 0, 0], [0, 0.6, 0.8, 0, 0]], dtype=np.float32)
    margin = np.array([0.5, 0.4, 0.3, 0.0, 0.1])  # rows 3 and 4 are the least certain but near no sparse text
    allowed = np.ones(5, dtype=bool)
    monkeypatch.setattr(sp, "HYBRID_CANDIDATES", 1)  # row 0 for the first sparse text, row 2 for the second
    picks = sp.choose("hybrid", sparse_vecs, pool, allowed, 3, 0.9, margin)
    assert [(p.row, p.covers) for p in picks] == [(2, 1), (0, 0), (3, None)]
    assert picks[0].similarity == pytest.approx(0.8) and picks[0].margin == pytest.approx(0.3)


def test_an_unknown_strategy_is_a_clear_error(noisy_toy_dir, tmp_path):
    with pytest.raises(ConfigError, match="--strategy 'newest': choose one of coverage, uncertainty, hybrid, diverse"):
        SparseConfig(dataset_dir=str(noisy_toy_dir), strategy="newest")
    with pytest.raises(ConfigError, match="strategy 'newest'"):
        sp.choose("newest", np.eye(2), np.eye(2), np.ones(2, dtype=bool), 1, 0.9)
    with pytest.raises(ValueError, match="margins"):
        sp.choose("uncertainty", np.eye(2), np.eye(2), np.ones(2, dtype=bool), 1, 0.9)


def _two_clusters() -> tuple[np.ndarray, np.ndarray]:
    """Six unit rows in two tight clusters (rows 0-2 near axis 0, rows 3-5 near axis 2), all nearly a tie; the
    first cluster a little less certain, so plain uncertainty takes both of two picks from it."""
    pool = np.zeros((6, 4))
    pool[:3, 0], pool[:3, 1] = 1, [0.0, 0.3, 0.6]  # cosine 0.86-0.97 within a cluster, 0 across
    pool[3:, 2], pool[3:, 3] = 1, [0.0, 0.3, 0.6]
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    return pool, np.array([0.05, 0.04, 0.06, 0.10, 0.11, 0.12])


def test_diverse_takes_one_text_from_each_cluster_where_uncertainty_takes_two_from_one():
    pool, margin = _two_clusters()
    allowed = np.ones(6, dtype=bool)
    assert sp.select_uncertain(pool, margin, allowed, 2, max_similarity=0.99) == [1, 0]  # both near axis 0
    picks = sp.choose("diverse", np.eye(4), pool, allowed, 2, 0.99, margin, prefilter=3, seed=1)
    rows = [p.row for p in picks]
    assert len(rows) == 2 and {r // 3 for r in rows} == {0, 1}  # one of rows 0-2, one of rows 3-5
    assert rows[0] < 3  # the less certain cluster first
    assert all(p.covers is None and p.margin == pytest.approx(margin[p.row]) for p in picks)


def test_diverse_takes_the_text_nearest_each_centroid():
    pool = np.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0], [-0.8, -0.6]])
    margin = np.full(6, 0.1)
    # prefilter 3: all six rows are candidates, clustered {0, 1, 2, 3} and {4, 5}; rows 1 and 2 are the central
    # ones of the first (the least certain, row 0 on a tie, would be wrong)
    rows = sp.select_diverse(pool, margin, np.ones(6, dtype=bool), 2, 0.99, prefilter=3, seed=0)
    assert sorted(rows)[0] in (1, 2) and sorted(rows)[1] in (4, 5)


def test_diverse_respects_allowed_near_copies_and_is_seeded():
    import scipy.sparse

    pool, margin = _two_clusters()
    allowed = np.array([True, True, True, False, False, True])
    rows = sp.select_diverse(pool, margin, allowed, 2, 0.99, prefilter=2, seed=3)
    assert 5 in rows and all(allowed[r] for r in rows)
    copies = np.vstack([pool[:3], pool[:3]])  # rows 3-5 are copies of rows 0-2: never two of one text
    chosen = sp.select_diverse(copies, np.full(6, 0.1), np.ones(6, dtype=bool), 4, 0.99, prefilter=2, seed=3)
    assert len({r % 3 for r in chosen}) == len(chosen) == 3  # only three distinct texts exist
    big = scipy.sparse.random(200, 50, density=0.1, random_state=1, format="csr")
    big = scipy.sparse.diags(1 / np.sqrt(big.multiply(big).sum(1).A1 + 1e-12)) @ big
    wide = np.random.default_rng(1).random(200)
    runs = [sp.select_diverse(big, wide, np.ones(200, dtype=bool), 10, 0.9, prefilter=5, seed=7) for _ in range(2)]
    assert runs[0] == runs[1] and len(runs[0]) == 10
    assert set(runs[0]) <= set(np.argsort(wide)[:50].tolist())  # only among the 5 x 10 least certain


@pytest.mark.parametrize("bad", [0, -2, 2.5, True])
def test_a_bad_prefilter_is_a_clear_error(noisy_toy_dir, bad):
    with pytest.raises(ConfigError, match="--prefilter must be a whole number of at least 1"):
        SparseConfig(dataset_dir=str(noisy_toy_dir), strategy="diverse", prefilter=bad)
    with pytest.raises(ConfigError, match="--prefilter"):
        sp.select_diverse(np.eye(2), np.zeros(2), np.ones(2, dtype=bool), 1, 0.9, prefilter=bad)


def test_diverse_selects_end_to_end(noisy_toy_dir, tmp_path):
    (noisy_toy_dir / "data.txt").write_text("the soup and salad 7\nthe goal and match 8\nthe soup and the goal 9\n"
                                            "the cake and the team 10\n", encoding="utf-8")
    result = sp.sparse(SparseConfig(dataset_dir=str(noisy_toy_dir), output=str(tmp_path), top=2, select=2,
                                    strategy="diverse", prefilter=2))
    assert result["strategy"] == "diverse" and len(result["selected"]) == 2
    assert len((tmp_path / "to_annotate.txt").read_text(encoding="utf-8").splitlines()) == 2


def test_the_command_takes_diverse_and_refuses_a_bad_prefilter(noisy_toy_dir, tmp_path, caplog):
    from tritoncls.cli import main

    (noisy_toy_dir / "data.txt").write_text("".join(f"the soup and the goal {i}\n" for i in range(8)), encoding="utf-8")
    args = ["analyze", "sparse", "--dataset_dir", str(noisy_toy_dir), "--output", str(tmp_path), "--top", "2",
            "--select", "2", "--strategy", "diverse"]
    assert main(args + ["--prefilter", "3"]) == 0
    assert "k-means of the 3 x 2 least certain" in (tmp_path / "sparse.md").read_text(encoding="utf-8")
    assert main(args + ["--prefilter", "0"]) == 1
    assert "--prefilter must be a whole number of at least 1" in caplog.text


def test_select_covering_skips_near_copies_and_excluded_rows():
    pool = np.eye(4, dtype=np.float32)
    pool[1] = pool[0]  # a copy of row 0
    sparse_vecs = np.array([[1, 0, 0, 0], [0, 0, 1, 0]], dtype=np.float32)
    allowed = np.array([True, True, False, True])
    chosen = sp.select_covering(sparse_vecs, pool, allowed, 3, max_similarity=0.9)
    assert [row for row, _, _ in chosen] == [0, 3]  # 1 is a copy of 0; 2 is excluded; then nothing is left


def test_stability_is_the_share_of_fold_models_agreeing_with_the_majority():
    folds = [np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([[0.6, 0.4], [0.7, 0.3]]), np.array([[0.8, 0.2], [0.1, 0.9]])]
    share, majority = sp.stability(folds)
    assert share.tolist() == [1.0, pytest.approx(2 / 3)] and majority.tolist() == [0, 1]


def test_sparse_without_a_pool_file_says_how_to_go_on(noisy_toy_dir, tmp_path):
    (noisy_toy_dir / "data.txt").unlink()
    with pytest.raises(ConfigError, match="--select 0"):
        sp.sparse(SparseConfig(dataset_dir=str(noisy_toy_dir), output=str(tmp_path)))


def test_units_are_characters_in_chinese_and_words_in_english():
    assert split_units("头疼吃什么药 ok") == (["头", "疼", "吃", "什", "么", "药", " ", "ok"], "")
    assert split_units("who wrote hamlet ?") == (["who", "wrote", "hamlet", "?"], " ")


@pytest.mark.parametrize("method", ["swap", "delete", "insert"])
def test_each_method_changes_a_text_by_one_unit_and_inserts_only_corpus_units(method):
    corpus = ["头疼吃什么药", "感冒发烧怎么办"]
    out = Augmenter(corpus, ratio=0.1, seed=1).augment("头疼吃什么药", method)
    assert out != "头疼吃什么药"
    assert len(out) == {"swap": 6, "delete": 5, "insert": 7}[method]
    assert set(out) <= set("".join(corpus))


def test_augment_writes_original_then_new_lines_deterministically(noisy_toy_dir, tmp_path):
    outputs = []
    for name in ("a.txt", "b.txt"):
        result = augment(AugmentConfig(dataset_dir=str(noisy_toy_dir), output=str(tmp_path / name), targets="all",
                                       copies=1, seed=7))
        outputs.append((tmp_path / name).read_text(encoding="utf-8"))
    original = (noisy_toy_dir / "train.txt").read_text(encoding="utf-8")
    assert outputs[0] == outputs[1] and outputs[0].startswith(original)
    added = outputs[0][len(original):].splitlines()
    assert len(added) == result["augmented"] > 100
    assert all(line.rsplit("\t", 1)[1] in ("food", "sport") for line in added)


def test_augment_sparse_targets_only_neighbours_of_the_least_supported_dev_texts(noisy_toy_dir, tmp_path):
    result = augment(AugmentConfig(dataset_dir=str(noisy_toy_dir), output=str(tmp_path / "a.txt"), top=1,
                                   neighbours=3, copies=1))
    assert result["targets"] == 3


def test_augment_refuses_to_write_over_the_training_file(noisy_toy_dir):
    with pytest.raises(ConfigError, match=r"never changes.*train\.augmented\.txt"):
        augment(AugmentConfig(dataset_dir=str(noisy_toy_dir), output=str(noisy_toy_dir / "train.txt")))
