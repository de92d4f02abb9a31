"""One exception root for the whole package.

Every error a user can cause carries a message that says what went wrong, where (file:line or
field) and how to fix it. The runtime, which is copied into model repositories where tritoncls may
not be installed, has its own root (:class:`tritoncls.runtime.errors.TritonclsRuntimeError`).
:data:`USER_ERRORS` is both: the one boundary where the CLIs (and any loop that reports a failure and
goes on) print the message and exit non-zero.
"""

from __future__ import annotations

from tritoncls.runtime.errors import TritonclsRuntimeError


class TritonclsError(Exception):
    """Root of every error raised on purpose by tritoncls."""


class DataError(TritonclsError):
    """A data file is missing or malformed."""


class ConfigError(TritonclsError):
    """An option or combination of options is invalid."""


class ModelError(TritonclsError):
    """A model, checkpoint or export cannot be loaded or written."""


class BuildError(TritonclsError):
    """A Triton model repository cannot be rendered or fails validation."""


class ServeError(TritonclsError):
    """The Triton server cannot be started or stopped."""


class ClientError(TritonclsError):
    """A request to a Triton server failed."""


class UsageError(ConfigError):
    """Options that argparse cannot check alone (one is needed unless another is given).

    The CLI reports it like an argparse error: usage, the message, exit status 2.
    """


class BenchmarkError(TritonclsError):
    """A measurement cannot run (bench, tune, soak, doctor): a missing tool or library, a failed measurement."""


class DeployError(TritonclsError):
    """Deployment files (Dockerfile, Kubernetes or KServe manifests) cannot be rendered or fail validation."""


#: Every error raised on purpose, the package's and the runtime's: catch this, never one root alone.
USER_ERRORS: tuple[type[Exception], ...] = (TritonclsError, TritonclsRuntimeError)
