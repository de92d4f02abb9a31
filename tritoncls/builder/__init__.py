"""Build a Triton model repository from a ``tritoncls export`` directory (``tritoncls build-repo``)."""

from tritoncls.builder.build import MARKER, build_repository
from tritoncls.builder.config import BuildConfig

__all__ = ["MARKER", "BuildConfig", "build_repository"]
