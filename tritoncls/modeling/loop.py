"""Pieces of a training loop that train and prune share: device and seed, AdamW with warmup, and
length-grouped epoch batches."""

from __future__ import annotations

import math
import random

import numpy as np

from tritoncls.errors import ConfigError

DEVICES = ("cpu", "gpu", "xpu", "npu")


def set_seed(seed: int) -> None:
    import paddle

    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)


def set_device(device: str) -> None:
    import paddle

    compiled = {"gpu": paddle.is_compiled_with_cuda, "xpu": paddle.is_compiled_with_xpu}
    check = compiled.get(device)
    if check is not None and not check():
        raise ConfigError(
            f"--device {device}: this Paddle build ({paddle.__version__}) has no {device.upper()} "
            f"support. Install the matching paddlepaddle build (see README, GPU) or use --device cpu."
        )
    paddle.set_device(device)


def adamw(model, learning_rate: float, weight_decay: float, total_steps: int, warmup: int | float | None):
    """AdamW without decay on biases and norms; with ``warmup`` (steps, or a share of ``total_steps``) the
    rate rises linearly, then decays linearly to 0. Returns (optimizer, rate or schedule)."""
    import paddle
    from paddlenlp.transformers import LinearDecayWithWarmup

    lr = learning_rate if warmup is None else LinearDecayWithWarmup(learning_rate, total_steps, warmup)
    no_decay = {p.name for n, p in model.named_parameters() if "bias" in n or "norm" in n}
    opt = paddle.optimizer.AdamW(
        learning_rate=lr,
        parameters=model.parameters(),
        weight_decay=weight_decay,
        apply_decay_param_fun=lambda name: name not in no_decay,
    )
    return opt, lr


def epoch_batches(lengths: np.ndarray, batch_size: int, seed: int, rank: int, world: int) -> list[np.ndarray]:
    """This rank's batches for one epoch.

    Shuffles, then sorts within windows of 50 batches so each batch holds texts of similar length
    (less padding, much faster on CPU), then shuffles the batches. Every rank computes the same
    list and takes every ``world``-th batch; the list is padded so all ranks run equal steps.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    window = batch_size * 50
    batches: list[np.ndarray] = []
    for start in range(0, len(order), window):
        chunk = order[start:start + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    per_rank = math.ceil(len(batches) / world)
    while len(batches) < per_rank * world:
        batches.append(batches[len(batches) % max(1, per_rank)])
    return batches[rank::world]
