"""``analyze interpret``: integrated gradients add up to the logit's change (completeness), occlusion and
the renderings; on a trained model the keywords carry the prediction; a wrong label file is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tritoncls.errors import ConfigError
from tritoncls.training.audit import interpret as ig


def _ids(tokenizer, text):
    ids = tokenizer(text)["input_ids"]
    special = np.array([t in (tokenizer.cls_token_id, tokenizer.sep_token_id) for t in ids])
    return ids, special


@pytest.mark.parametrize("text", ["the soup and bread today 3", "the goal and coach today 8"])
def test_integrated_gradients_add_up_to_the_logit_change_from_the_baseline(random_tiny_classifier, text):
    model, tokenizer = random_tiny_classifier
    ids, special = _ids(tokenizer, text)
    attributions, logit, baseline = ig.integrated_gradients(model, ids, special, target=1, steps=200)
    assert abs(logit - baseline) > 0.05  # the check below would be vacuous on a flat model
    assert attributions.sum() == pytest.approx(logit - baseline, rel=0.02, abs=1e-3)
    assert attributions[special].tolist() == [0.0, 0.0]  # [CLS]/[SEP] are the same at the baseline


def test_integrated_gradients_logit_is_the_models_logit(random_tiny_classifier):
    from tritoncls.modeling.dynamic import Encoded, predict_logits

    model, tokenizer = random_tiny_classifier
    ids, special = _ids(tokenizer, "the cake and rice today 4")
    _, logit, _ = ig.integrated_gradients(model, ids, special, target=0, steps=4)
    assert logit == pytest.approx(float(predict_logits(model, Encoded([ids], [[0] * len(ids)]), 1)[0, 0]), abs=1e-4)


def test_occlusion_is_the_probability_fall_when_each_token_is_deleted(random_tiny_classifier):
    model, tokenizer = random_tiny_classifier
    ids, special = _ids(tokenizer, "the match and score today 9")
    drops = ig.occlusion(model, ids, special, target=1)
    full = ig.target_probabilities(model, [ids], 1)[0]
    without_second = ig.target_probabilities(model, [ids[:2] + ids[3:]], 1)[0]
    assert drops[2] == pytest.approx(full - without_second, abs=1e-6)
    assert drops[0] == drops[-1] == 0.0


def test_renderings_colour_tokens_and_hide_cls_and_sep():
    e = ig.Explanation(text="头疼 ok", tokens=["[CLS]", "头", "疼", "ok", "[SEP]"], target=0, probability=0.8,
                       attributions=np.array([0.0, 1.0, -0.5, 0.01, 0.0]), logit=1.0, baseline_logit=0.0)
    terminal = ig.ansi(e, "病情")
    assert terminal.startswith("病情 (0.80): ") and "\x1b[48;5;46m\x1b[97m头\x1b[0m" in terminal
    assert "[CLS]" not in terminal and terminal.endswith(" ok")
    page = ig.html_section(e, "病情")
    assert "rgba(0,150,0,1.00)" in page and "rgba(220,0,0,0.50)" in page and "[SEP]" not in page


def test_interpret_config_needs_a_text():
    with pytest.raises(ConfigError, match="--text"):
        ig.InterpretConfig(checkpoint="c")


@pytest.mark.slow
def test_keywords_carry_a_trained_models_prediction_and_the_report_is_written(keyword_checkpoint, tmp_path, capsys):
    rows = ig.interpret(ig.InterpretConfig(checkpoint=str(keyword_checkpoint), text=["the soup and cake today"],
                                           methods=["ig", "occlusion"], output=str(tmp_path), steps=100))
    row = rows[0]
    assert row["label"] == "food"
    ranked = [row["tokens"][i] for i in np.argsort(row["integrated_gradients"])[::-1]]
    assert set(ranked[:2]) == {"soup", "cake"}
    assert "food (" in capsys.readouterr().out
    assert json.loads((tmp_path / "interpret.json").read_text(encoding="utf-8"))["rows"][0]["label"] == "food"
    assert "<span" in (tmp_path / "interpret.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_interpret_refuses_a_checkpoint_whose_labels_disagree_with_the_data_set(keyword_checkpoint, tmp_path):
    (tmp_path / "label.txt").write_text("sport\nfood\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="same labels in another order"):
        ig.interpret(ig.InterpretConfig(checkpoint=str(keyword_checkpoint), text=["soup"], dataset_dir=str(tmp_path),
                                        output=str(tmp_path)))
