"""Runners: int64 ``input_ids`` and ``token_type_ids`` in, float32 logits out.

Every in-process path (the Triton model step, the offline predictor, the benchmarks' baselines,
the GPU check) runs a model through this one small interface.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import ModelLoadError


class Runner(Protocol):
    """What a model step needs from a runtime."""

    def run(self, input_ids: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray: ...


class OnnxRunner:
    """An ONNX Runtime session over an ONNX graph (an export's or a repository's model.onnx)."""

    def __init__(self, model_file: str | Path, input_names: Sequence[str], output_name: str,
                 intra_op_threads: int = 0, inter_op_threads: int = 0, device: str = "cpu") -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # 0 would let ONNX Runtime size its pool from the machine's cores and pin a thread to each, escaping
        # the process's CPU affinity (taskset, tune --client_cpus); one thread per core the process may use
        # stays inside it.
        options.intra_op_num_threads = intra_op_threads or usable_cores()
        options.inter_op_num_threads = inter_op_threads
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "gpu" else ["CPUExecutionProvider"]
        if device == "gpu":
            _preload_cuda(ort)
        try:
            self._session = ort.InferenceSession(str(model_file), options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises many types for a bad file
            raise ModelLoadError(f"{model_file}: ONNX Runtime cannot load the model ({exc}). "
                                 f"Re-run `tritoncls export`.") from exc
        if device == "gpu" and "CUDAExecutionProvider" not in self.providers:
            warnings.warn(f"{model_file}: ONNX Runtime's CUDA provider is not available here (providers "
                          f"{ort.get_available_providers()}); the model runs on the CPU. Install onnxruntime-gpu.",
                          RuntimeWarning, stacklevel=2)
        self._inputs = list(input_names)
        self._output = output_name

    @property
    def providers(self) -> list[str]:
        """The execution providers ONNX Runtime actually uses (CUDA may fall back to CPU)."""
        return self._session.get_providers()

    def run(self, input_ids: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        feed = dict(zip(self._inputs, (input_ids, token_type_ids)))
        return self._session.run([self._output], feed)[0]


def usable_cores(sysfs: Path = Path("/sys/devices/system/cpu")) -> int:
    """Physical cores among the CPUs this process may run on (its affinity); hyperthreads of one core count
    once, as in ONNX Runtime's own default. Without affinity or topology: the logical CPU count."""
    try:
        cpus = os.sched_getaffinity(0)
    except AttributeError:  # no affinity on this platform (macOS)
        return os.cpu_count() or 1
    cores = set()
    for cpu in cpus:
        topology = sysfs / f"cpu{cpu}" / "topology"
        try:
            cores.add(((topology / "physical_package_id").read_text().strip(), (topology / "core_id").read_text().strip()))
        except OSError:
            return len(cpus) or 1
    return len(cores) or 1


def _preload_cuda(ort) -> None:
    """Load CUDA and cuDNN from pip's nvidia-* packages where onnxruntime-gpu can (1.21 and later), so its CUDA
    provider finds them without LD_LIBRARY_PATH (inside Triton's python stub too)."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        try:
            preload()
        except Exception:  # noqa: BLE001, S110 - best effort: the session then says which library it misses
            pass


class PaddleRunner:
    """A Paddle Inference predictor over a Paddle 3 static graph (program .json + .pdiparams)."""

    def __init__(self, model_file: str | Path, params_file: str | Path, input_names: Sequence[str],
                 output_name: str, intra_op_threads: int = 0, device: str = "cpu") -> None:
        from paddle import inference

        config = inference.Config(str(model_file), str(params_file))
        if device == "gpu":
            config.enable_use_gpu(256, 0)
        else:
            config.disable_gpu()
            config.set_cpu_math_library_num_threads(intra_op_threads or 1)
        config.disable_glog_info()
        self._predictor = inference.create_predictor(config)
        self._inputs = list(input_names)
        self._output = output_name

    def run(self, input_ids: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        for name, array in zip(self._inputs, (input_ids, token_type_ids)):
            self._predictor.get_input_handle(name).copy_from_cpu(np.ascontiguousarray(array))
        self._predictor.run()
        return self._predictor.get_output_handle(self._output).copy_to_cpu()

