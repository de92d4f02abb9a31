"""Process setup shared by the commands: CPU threads, logging, device (argparse helpers: ``tritoncls.cli._args``)."""

from __future__ import annotations

import logging
import os


def set_cpu_threads() -> None:
    """Use every core for Paddle's CPU kernels (``import paddle`` sets OMP_NUM_THREADS=1 when unset).

    Must run before paddle is imported. Under ``paddle.distributed.launch`` the cores are shared
    among the local processes.
    """
    if "OMP_NUM_THREADS" in os.environ:
        return
    local = int(os.environ.get("PADDLE_LOCAL_SIZE") or launched_processes())
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // max(local, 1)))


def launched_processes() -> int:
    """How many processes ``paddle.distributed.launch`` started for this job (1 without it)."""
    return int(os.environ.get("PADDLE_TRAINERS_NUM") or 1)


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="[%(asctime)s] [%(levelname)7s] %(name)s - %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    os.environ.setdefault("GLOG_minloglevel", "2")  # Paddle's C++ logs: warnings and up
    for noisy in ("paddlenlp", "paddle2onnx", "PIL", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def quiet_paddlenlp() -> None:
    """paddlenlp logs every weight file it loads at INFO through its own logger; keep warnings."""
    try:
        from paddlenlp.utils.log import logger
    except ImportError:
        return
    logger.set_level("WARNING")


def resolve_device(device: str) -> str:
    """``auto`` -> ``gpu`` when this Paddle build has CUDA and a GPU is visible, else ``cpu``."""
    if device != "auto":
        return device
    import paddle

    if paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
        return "gpu"
    return "cpu"
