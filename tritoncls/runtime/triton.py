"""What every python model's ``model.py`` does around its step: read each request's input
tensors, and turn each result (or exception) into a response. ``pb_utils`` is Triton's
``triton_python_backend_utils``, passed in: it exists only inside the python backend."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .errors import RequestError
from .metrics import TritonRecorder


def request_inputs(pb_utils: Any, requests: Sequence[Any], names: Sequence[str]) -> list[Any]:
    """Per request, its input array (one name) or tuple of arrays (several), or the exception that
    reading it raised: a request without the tensor fails alone, not the batch."""
    out: list[Any] = []
    for request in requests:
        try:
            arrays = tuple(pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in names)
            out.append(arrays[0] if len(arrays) == 1 else arrays)
        except Exception as exc:  # noqa: BLE001 - this request only
            out.append(exc)
    return out


def error_response(pb_utils: Any, exc: Exception) -> Any:
    """An error response: INVALID_ARG for bad request data, INTERNAL for anything else."""
    code = pb_utils.TritonError.INVALID_ARG if isinstance(exc, RequestError) else pb_utils.TritonError.INTERNAL
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(exc), code))


def responses(pb_utils: Any, results: Sequence[Any], tensors: Callable[[Any], Mapping[str, Any]]) -> list[Any]:
    """One response per result: ``tensors(result)`` names its output arrays; an exception becomes an error."""
    return [error_response(pb_utils, result) if isinstance(result, Exception) else
            pb_utils.InferenceResponse([pb_utils.Tensor(name, array) for name, array in tensors(result).items()])
            for result in results]


def install_metrics(pb_utils: Any, step: Any) -> None:
    """Give ``step`` a recorder that exports its metrics through Triton, where its repository asks for them
    (``step.metrics`` is None when the repository was built with ``--metrics off``)."""
    if step.metrics is not None:
        step.recorder = TritonRecorder(pb_utils, step.metrics)


def close_metrics(step: Any) -> None:
    """Send what ``step``'s recorder has left (the python model's ``finalize``); nothing without metrics."""
    close = getattr(step.recorder, "close", None)
    if close is not None:
        close()
