"""The runtime's exception root. The runtime is copied into model repositories, where tritoncls
may not be installed, so it cannot share :mod:`tritoncls.errors`; the CLI catches both roots."""

from __future__ import annotations


class TritonclsRuntimeError(Exception):
    """Root of every error the runtime raises on purpose."""


class RequestError(TritonclsRuntimeError, ValueError):
    """One request's data is bad; that request alone gets an error response. ``reason`` names the kind
    (the served metrics count refusals by it: ``empty``, ``invalid_utf8``, ``too_long``, ``malformed``)."""

    def __init__(self, message: str, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


class ManifestError(TritonclsRuntimeError, ValueError):
    """An export's manifest.json is missing, malformed, or names files that are not there."""


class OptionError(TritonclsRuntimeError, ValueError):
    """An option the runtime was given (backend, padding, tokenizer rules, batch size) is not one it supports."""


class ModelLoadError(TritonclsRuntimeError):
    """A runtime (ONNX Runtime, Paddle Inference) cannot load a model file."""


class ParameterError(TritonclsRuntimeError, ValueError):
    """A Triton model config's ``parameters`` lack a key, carry an unknown one, or hold a bad value."""


class TaskError(TritonclsRuntimeError, ValueError):
    """A task description (task, thresholds, label hierarchy) is invalid or does not fit the labels."""
