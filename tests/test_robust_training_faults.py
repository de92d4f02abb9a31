"""Training faults: ``tritoncls train`` SIGKILLed while it trains and while it writes the best checkpoint.

The last good checkpoint must load (same weights as before the kill), ``--init_from_ckpt`` must resume
from it, and nothing half-written may ever be taken for a checkpoint. To kill inside checkpoint writing
at a known point, the run goes through a small wrapper (written below) that patches
``tritoncls.modeling.checkpoint`` to pause there: nothing in the package knows about it.

Runs are subprocesses on a tiny two-class dataset and architecture; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import REPO_ROOT, TINY_ARCH, train_tiny, wait_for
from tritoncls.errors import ModelError
from tritoncls.modeling import checkpoint as ckpt

TINY = ["--from_scratch", "--model_name", "ernie-3.0-nano-zh", "--arch", "num_hidden_layers=2", "hidden_size=64",
        "num_attention_heads=4", "intermediate_size=128", "--max_seq_length", "32", "--learning_rate", "2e-3",
        "--batch_size", "8", "--logging_steps", "1", "--device", "cpu"]
RUN_TIMEOUT_S = 240

#: Runs the CLI with a pause at PAUSE_AT inside checkpoint writing; touches PAUSE_FLAG when it gets there.
PAUSE_WRAPPER = '''
import os, sys, time
from pathlib import Path
import tritoncls.modeling.checkpoint as ckpt

point, flag = os.environ["PAUSE_AT"], Path(os.environ["PAUSE_FLAG"])

def pause():
    flag.write_text(str(os.getpid()))
    time.sleep(600)

if point == "mid_fill":  # weights and optimizer written into the staging folder, training config not yet
    write_json = ckpt.write_json
    ckpt.write_json = lambda path, data: (pause(), write_json(path, data))
elif point == "before_swap":  # staging complete (COMPLETE written and fsynced), not yet swapped in
    install = ckpt._install
    ckpt._install = lambda staging, target: (pause(), install(staging, target))
elif point == "between_renames":  # no renameat2: old checkpoint moved aside, new one not yet in place
    ckpt._exchange = lambda a, b: False
    real_rename, calls = os.rename, []
    class Os:
        def __getattr__(self, name):
            return getattr(os, name)
        def rename(self, a, b):
            calls.append(a)
            if len(calls) == 2:
                pause()
            return real_rename(a, b)
    ckpt.os = Os()
else:
    raise SystemExit(f"unknown PAUSE_AT {point}")

from tritoncls.cli import main
sys.exit(main(sys.argv[1:]))
'''


def train_command(toy: Path, save_dir: Path, epochs: int, *extra: str) -> list[str]:
    return ["train", "--dataset_dir", str(toy), "--save_dir", str(save_dir), "--epochs", str(epochs), *TINY, *extra]


def environment() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))


def kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


def assert_loads(save_dir: Path) -> Path:
    """The checkpoint resolves, is complete and its model loads; returns the directory read."""
    from tritoncls import modeling

    directory = ckpt.resolve_checkpoint(save_dir)
    assert ckpt.is_complete(directory)
    state = json.loads((directory / "training_state.json").read_text(encoding="utf-8"))
    assert state["epoch"] >= 1
    modeling.load_checkpoint_model(directory)
    return directory


def assert_nothing_half_written_is_a_checkpoint(parent: Path, save_dir: Path) -> None:
    for path in parent.iterdir():
        if path.name.startswith(f".{save_dir.name}.writing-"):
            with pytest.raises(ModelError, match="being written"):
                ckpt.resolve_checkpoint(path)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["mid_fill", "before_swap", "between_renames"])
def test_sigkill_while_writing_the_best_checkpoint_keeps_the_last_good_one(toy_dataset_64, good_checkpoint, tmp_path, point):
    import shutil

    save_dir = tmp_path / "ck"
    shutil.copytree(good_checkpoint, save_dir)
    before = snapshot(save_dir)
    wrapper, flag = tmp_path / "pause.py", tmp_path / "paused"
    wrapper.write_text(PAUSE_WRAPPER, encoding="utf-8")
    env = environment() | {"PAUSE_AT": point, "PAUSE_FLAG": str(flag)}
    # A fresh run's first epoch always "improves" on nothing, so it writes the best checkpoint over the old one.
    process = subprocess.Popen([sys.executable, str(wrapper), *train_command(toy_dataset_64, save_dir, 1)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: flag.exists() or process.poll() is not None, RUN_TIMEOUT_S, f"the pause at {point}", 0.1)
        assert process.poll() is None, "training ended before it reached the pause"
    finally:
        kill(process)

    directory = assert_loads(save_dir)
    assert snapshot(directory) == before, "the last good checkpoint changed"
    assert directory == (save_dir.with_name("ck.previous") if point == "between_renames" else save_dir)
    assert_nothing_half_written_is_a_checkpoint(tmp_path, save_dir)
    stale = [p for p in tmp_path.iterdir() if p.name.startswith(".ck.writing-")]
    assert stale, "the killed writer's staging folder should be there to clean up"

    # Resume from what survived (in-process: the same train() the CLI calls); a save removes the dead
    # writer's staging folder.
    result = train_tiny(toy_dataset_64, save_dir, epochs=2, max_seq_length=32, batch_size=8, arch_overrides=dict(TINY_ARCH),
                        init_from_ckpt=str(save_dir))
    assert [h["epoch"] for h in result.history] == [2], "the run must resume after epoch 1"
    assert_loads(save_dir)
    assert not [p for p in stale if p.exists()], "the next run removes a dead writer's staging folders"


def under_way(log: Path, process: subprocess.Popen, save_dir: Path) -> bool:
    """A first run has saved its first checkpoint; a resumed run has taken its first step (or it ended)."""
    text = log.read_text()
    return "Saved best checkpoint" in text or (save_dir.exists() and " step " in text) or process.poll() is not None


@pytest.mark.slow
def test_sigkill_at_random_moments_of_training_never_leaves_a_bad_checkpoint(toy_dataset_64, tmp_path):
    """Kill a run at three random moments after its first checkpoint; each time what is on disk loads and
    the next run resumes from it; a last run finishes."""
    rng = random.Random(6)
    save_dir = tmp_path / "ck"
    kills = []
    for round_ in range(3):
        extra = ("--init_from_ckpt", str(save_dir)) if save_dir.exists() else ()
        log = tmp_path / f"run{round_}.log"
        with log.open("w") as sink:
            process = subprocess.Popen([sys.executable, "-m", "tritoncls.cli", *train_command(toy_dataset_64, save_dir, 40, *extra)],
                                       env=environment(), stdout=sink, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda log=log, process=process: under_way(log, process, save_dir), RUN_TIMEOUT_S, "training", 0.1)
            time.sleep(rng.uniform(0.0, 2.0))
            assert process.poll() is None, f"training ended before the kill:\n{log.read_text()[-2000:]}"
            kills.append(time.monotonic())
        finally:
            kill(process)
        assert_loads(save_dir)
        assert_nothing_half_written_is_a_checkpoint(tmp_path, save_dir)
    final = subprocess.run([sys.executable, "-m", "tritoncls.cli",
                            *train_command(toy_dataset_64, save_dir, 4, "--init_from_ckpt", str(save_dir))],
                           env=environment(), capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert final.returncode == 0, final.stderr[-3000:]
    assert len(kills) == 3
    assert_loads(save_dir)
    print(f"\ntraining SIGKILLed {len(kills)} times at random moments; every time the checkpoint loaded and the "
          f"next run resumed from it")


def test_a_staging_folder_is_never_taken_for_a_checkpoint(tmp_path):
    staging = tmp_path / f".ck.writing-{os.getpid()}-abc"
    staging.mkdir()
    (staging / "model_state.pdparams").write_bytes(b"half")  # what a kill mid-fill leaves: weights, nothing else
    with pytest.raises(ModelError, match=r"being written .* Pass the directory it was written for .*ck\)"):
        ckpt.resolve_checkpoint(staging)
    with pytest.raises(ModelError, match="being written"):
        ckpt.resolve_checkpoint(staging / "model_state.pdparams")


def test_stale_staging_folders_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".ck.writing-{int(dead.stdout)}-x1"
    live = tmp_path / f".ck.writing-{os.getpid()}-x2"
    other = tmp_path / f".ck2.writing-{int(dead.stdout)}-x3"  # another target's: not ours to judge
    for folder in (stale, live, other):
        folder.mkdir()
    ckpt.write_checkpoint(tmp_path / "ck", lambda d: (d / "w.bin").write_text("1"))
    assert not stale.exists() and live.exists() and other.exists()
    assert (tmp_path / "ck" / ckpt.COMPLETE_MARKER).is_file()
