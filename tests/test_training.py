"""Training behaviours: early stopping, resume, atomic checkpoints, data-parallel launch, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import TINY_ARCH, train_tiny
from tritoncls.errors import ConfigError, ModelError
from tritoncls.modeling import checkpoint as ckpt


@pytest.mark.slow
def test_early_stop_ends_training_after_patience_epochs_without_improvement(toy_dir, tmp_path):
    # A learning rate of 1e-12 cannot change dev accuracy: epoch 1 is the best, 2 and 3 are not.
    result = train_tiny(toy_dir, tmp_path / "ck", epochs=10, learning_rate=1e-12, early_stop=True, early_stop_nums=2)
    assert result.stopped_early
    assert result.epochs_run == 3
    assert result.best_epoch == 1


@pytest.mark.slow
def test_without_early_stop_all_epochs_run(toy_dir, tmp_path):
    result = train_tiny(toy_dir, tmp_path / "ck", epochs=3, learning_rate=1e-12)
    assert not result.stopped_early and result.epochs_run == 3


@pytest.mark.slow
def test_checkpoint_holds_everything_needed_to_rebuild_the_model(toy_dir, tmp_path):
    train_tiny(toy_dir, tmp_path / "ck", epochs=1)
    names = {p.name for p in (tmp_path / "ck").iterdir()}
    assert {"config.json", "model_state.pdparams", "vocab.txt", "tokenizer_config.json", "label.txt",
            "training_config.json", "training_state.json", "model_state.pdopt", ckpt.COMPLETE_MARKER} <= names
    config = json.loads((tmp_path / "ck" / "training_config.json").read_text())
    assert config["from_scratch"] and config["arch_overrides"] == TINY_ARCH and config["num_labels"] == 2


@pytest.mark.slow
def test_resume_continues_epochs_and_step_count_from_checkpoint(toy_dir, tmp_path):
    first = train_tiny(toy_dir, tmp_path / "a", epochs=2, learning_rate=5e-3)
    state_a = json.loads((tmp_path / "a" / "training_state.json").read_text())
    resumed = train_tiny(toy_dir, tmp_path / "b", epochs=4, learning_rate=5e-3, init_from_ckpt=str(tmp_path / "a"))
    assert [h["epoch"] for h in resumed.history] == list(range(state_a["epoch"] + 1, 5))
    assert resumed.best_accuracy >= first.best_accuracy
    # the saved state is the best epoch's; the resumed run counts on from there, epoch by epoch
    per_epoch = state_a["global_step"] // state_a["epoch"]
    assert per_epoch > 0 and first.global_step == 2 * per_epoch
    assert resumed.global_step == state_a["global_step"] + per_epoch * len(resumed.history)


@pytest.mark.slow
def test_a_resumed_run_that_never_beats_the_resumed_best_names_the_checkpoint_that_holds_it(toy_dir, tmp_path, caplog):
    train_tiny(toy_dir, tmp_path / "a", epochs=1)
    with caplog.at_level("WARNING"):  # a learning rate too small to change a prediction: no epoch is better
        result = train_tiny(toy_dir, tmp_path / "b", epochs=2, learning_rate=1e-12, init_from_ckpt=str(tmp_path / "a"))
    assert not (tmp_path / "b").exists() and result.save_dir == tmp_path / "a" and result.best_epoch == 1
    assert "nothing was written to" in caplog.text and str(tmp_path / "a") in caplog.text


@pytest.mark.slow
def test_resume_accepts_the_pdparams_file_path_like_the_reference(toy_dir, tmp_path):
    train_tiny(toy_dir, tmp_path / "a", epochs=1)
    result = train_tiny(toy_dir, tmp_path / "b", epochs=2, init_from_ckpt=str(tmp_path / "a" / "model_state.pdparams"))
    assert [h["epoch"] for h in result.history] == [2]


@pytest.mark.slow
def test_resume_refuses_a_checkpoint_trained_with_other_labels(toy_dir, tmp_path):
    train_tiny(toy_dir, tmp_path / "a", epochs=1)
    (toy_dir / "label.txt").write_text("sport\nfood\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="labels .* differ"):
        train_tiny(toy_dir, tmp_path / "b", epochs=2, init_from_ckpt=str(tmp_path / "a"))


def test_interrupted_checkpoint_write_leaves_previous_checkpoint_intact(tmp_path):
    target = tmp_path / "ck"
    ckpt.write_checkpoint(target, lambda d: (d / "model_state.pdparams").write_text("v1"))

    def crash(d: Path) -> None:
        (d / "model_state.pdparams").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ckpt.write_checkpoint(target, crash)
    assert (target / "model_state.pdparams").read_text() == "v1"
    assert ckpt.resolve_checkpoint(target) == target
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]


def test_checkpoint_swap_replaces_old_files(tmp_path):
    target = tmp_path / "ck"
    ckpt.write_checkpoint(target, lambda d: (d / "old.bin").write_text("1"))
    ckpt.write_checkpoint(target, lambda d: (d / "new.bin").write_text("2"))
    assert sorted(p.name for p in target.iterdir()) == [ckpt.COMPLETE_MARKER, "new.bin"]


def test_half_written_checkpoint_is_refused(tmp_path):
    broken = tmp_path / "ck"
    broken.mkdir()
    (broken / "model_state.pdparams").write_text("x")
    (broken / "training_config.json").write_text("{}")
    with pytest.raises(ModelError, match="incomplete"):
        ckpt.resolve_checkpoint(broken)


def test_train_rejects_max_seq_length_beyond_position_embeddings(toy_dir, tmp_path):
    with pytest.raises(ConfigError, match="max_position_embeddings"):
        train_tiny(toy_dir, tmp_path / "ck", arch_overrides={**TINY_ARCH, "max_position_embeddings": 32}, max_seq_length=64)


def test_unknown_model_name_lists_the_choices(toy_dir, tmp_path):
    with pytest.raises(ModelError, match="unknown model name 'ernie-9'.*ernie-3.0-medium-zh"):
        train_tiny(toy_dir, tmp_path / "ck", model_name="ernie-9")


def test_pretrained_name_offline_explains_local_directory_option(toy_dir, tmp_path, monkeypatch):
    from tritoncls import modeling

    def offline(*_args, **_kwargs):
        raise ConnectionError("hub unreachable")

    monkeypatch.setattr("paddlenlp.transformers.AutoTokenizer.from_pretrained", offline)
    with pytest.raises(ModelError, match="could not download 'ernie-3.0-nano-zh'.*local.*--from_scratch"):
        modeling.hub_tokenizer("ernie-3.0-nano-zh")


@pytest.mark.slow
def test_two_process_gloo_launch_trains_and_saves_once(toy_dir, tmp_path):
    script = Path(sys.executable).with_name("tritoncls")
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--backend", "gloo",
           "--log_dir", str(tmp_path / "log"), str(script), "train", "--dataset_dir", str(toy_dir),
           "--from_scratch", "--model_name", "ernie-3.0-nano-zh", "--arch",
           *[f"{k}={v}" for k, v in TINY_ARCH.items()], "--epochs", "1", "--batch_size", "8",
           "--learning_rate", "1e-3", "--save_dir", str(tmp_path / "ck"), "--device", "cpu"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PADDLE_")}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    workers = {p.name: p.read_text(errors="replace") for p in sorted((tmp_path / "log").glob("workerlog.*"))}
    logs = "\n".join(workers.values())
    ends = "".join(f"\n--- end of {name} ---\n{text[-1500:]}" for name, text in workers.items())
    assert done.returncode == 0, done.stderr[-1500:] + ends
    assert all("Best dev accuracy" in text for text in workers.values()), ends  # every rank ran to the end
    config = json.loads((tmp_path / "ck" / "training_config.json").read_text())
    assert config["world_size"] == 2
    assert "step 3/3" in logs  # 40 texts / batch 8 = 5 batches -> 3 per rank (padded to equal counts)


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "export"])
def test_every_subcommand_help_explains_flags_and_defaults(command, capsys):
    from tritoncls.cli import main

    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "(default:" in text
    if command == "train":
        for name in ("--dataset_dir", "--dataset-dir", "--early_stop_nums", "--warmup_steps", "--init_from_ckpt"):
            assert name in text


def test_cli_reports_bad_data_and_exits_nonzero(tmp_path, caplog):
    from tritoncls.cli import main

    (tmp_path / "label.txt").write_text("a\nb\n", encoding="utf-8")
    (tmp_path / "train.txt").write_text("no tab\n", encoding="utf-8")
    code = main(["train", "--dataset_dir", str(tmp_path), "--from_scratch", "--device", "cpu", "--save_dir", str(tmp_path / "ck")])
    assert code == 1
    assert "train.txt:1: no tab found" in caplog.text
