"""Shared fixtures: tiny models trained once per session on real data, and their exports.

Models are tiny (2 layers, hidden 64) so that a session-scoped fixture trains one in seconds.
KUAKE-QIC is read from ../shared/data/kuake_qic; tests that need it skip when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tritoncls.cli_common import set_cpu_threads

set_cpu_threads()  # before anything imports paddle

REPO_ROOT = Path(__file__).resolve().parents[1]
KUAKE_DIR = Path(os.environ.get("TRITONCLS_KUAKE_DIR", REPO_ROOT.parent / "shared" / "data" / "kuake_qic"))
DEMO_DIR = REPO_ROOT / "tritoncls" / "data" / "demo"

TINY_ARCH = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128}


@pytest.fixture(scope="session")
def kuake_dir() -> Path:
    if not (KUAKE_DIR / "dev.txt").is_file():
        pytest.skip(f"KUAKE-QIC not found at {KUAKE_DIR} (set TRITONCLS_KUAKE_DIR or place ../shared beside the repo)")
    return KUAKE_DIR


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    return DEMO_DIR


def train_tiny(dataset_dir: Path, save_dir: Path, epochs: int = 2, **overrides):
    """Train the tiny architecture from scratch; returns the TrainResult."""
    from tritoncls.training.train import TrainConfig, train

    options = dict(dataset_dir=str(dataset_dir), output=str(save_dir), model_name="ernie-3.0-nano-zh",
                   from_scratch=True, arch_overrides=dict(TINY_ARCH), epochs=epochs, learning_rate=2e-3,
                   batch_size=32, logging_steps=50, max_seq_length=64, seed=3)
    options.update(overrides)
    return train(TrainConfig(**options))


def export_dir_for(checkpoint: Path, out: Path) -> Path:
    from tritoncls.modeling.export import ExportConfig, export

    return export(ExportConfig(checkpoint=str(checkpoint), output=str(out)))


@pytest.fixture(scope="session")
def demo_checkpoint(tmp_path_factory, demo_dir) -> Path:
    save = tmp_path_factory.mktemp("demo") / "checkpoint"
    train_tiny(demo_dir, save, epochs=3)
    return save


@pytest.fixture(scope="session")
def demo_export(tmp_path_factory, demo_checkpoint) -> Path:
    return export_dir_for(demo_checkpoint, tmp_path_factory.mktemp("demo_export") / "export")


@pytest.fixture(scope="session")
def kuake_checkpoint(tmp_path_factory, kuake_dir) -> Path:
    save = tmp_path_factory.mktemp("kuake") / "checkpoint"
    train_tiny(kuake_dir, save, epochs=2)
    return save


@pytest.fixture(scope="session")
def kuake_export(tmp_path_factory, kuake_checkpoint) -> Path:
    return export_dir_for(kuake_checkpoint, tmp_path_factory.mktemp("kuake_export") / "export")
