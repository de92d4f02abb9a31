"""Which pip packages a repository's python steps import inside NVIDIA's Triton image, pinned.

The steps run ``tritoncls_runtime``, which imports numpy everywhere and, only where a class needs
them: ``tokenizers`` (tokenizer implementation ``wordpiece``), ``paddlenlp`` (``paddlenlp``, which
imports paddle), ``onnxruntime`` (model step ``--backend python --runtime onnxruntime``) and
``paddle`` (``--runtime paddle_inference``). The ``python`` tokenizer and the ``onnxruntime`` /
``paddle`` Triton backends import nothing beyond numpy, which the image's python backend brings,
so a ``--tokenizer python --backend onnxruntime`` repository installs nothing at all.

Versions come from the build record (the export's environment); ``--pin NAME==VERSION`` overrides
or completes them. The image's Python is older than the one tritoncls is developed on, and some
releases have no wheel for it: :data:`NEWEST_FOR_IMAGE_PYTHON` caps those (the cap is said in the
rendered files).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tritoncls.deploy.repository import RepositoryInfo
from tritoncls.errors import DeployError

#: tokenizer implementation -> the packages its python step imports (beyond numpy)
TOKENIZER_PACKAGES: dict[str, tuple[str, ...]] = {
    "wordpiece": ("tokenizers",),
    "python": (),
    "paddlenlp": ("paddlenlp", "paddlepaddle"),
}
#: runtime of a ``--backend python`` model step -> the packages it imports
RUNTIME_PACKAGES: dict[str, tuple[str, ...]] = {"onnxruntime": ("onnxruntime",), "paddle_inference": ("paddlepaddle",)}
#: CPU package -> the package to install for --device gpu
GPU_PACKAGES = {"onnxruntime": "onnxruntime-gpu", "paddlepaddle": "paddlepaddle-gpu"}
#: paddlenlp 3.0.0b4 fails at import without these (see constraints.txt)
PADDLENLP_CONSTRAINTS = ("aistudio-sdk==0.2.6", "datasets==2.21.0", "pyarrow<18", "pandas<2.3", "huggingface_hub<0.26")
#: Triton 24.10's python-backend stub (pybind11 2.10) misreads text inputs under NumPy 2 and dies on the first
#: request; python_backend fixed it after 24.10 (pull request 384). A package that pulled NumPy 2 into the image
#: would break every model, so the install keeps the image's NumPy 1.x or fails at build time.
STUB_NUMPY = "numpy<2"
#: GPU packages released with the same version numbers as their CPU package (onnxruntime-gpu's are not)
SAME_VERSION_AS_CPU = {"paddlepaddle-gpu"}
#: Paddle 3 GPU wheels are not on PyPI; Paddle's own index (CUDA 12.6, the image's CUDA). Not reachable from here.
PADDLE_GPU_INDEX = "https://www.paddlepaddle.org.cn/packages/stable/cu126/"
#: newest release with a wheel for the image's Python (3.10), checked with `pip index versions` on 2026-11-30
NEWEST_FOR_IMAGE_PYTHON = {"onnxruntime": "1.23.2", "onnxruntime-gpu": "1.23.2"}


@dataclass(frozen=True)
class Constraint:
    """A line installed beside the requirements so that they import and run at all, and why."""

    line: str
    why: str

    def __str__(self) -> str:
        return self.line


@dataclass(frozen=True)
class Requirement:
    """One package to install: ``name==version``, and why (which step imports it)."""

    name: str
    version: str
    why: str
    note: str = ""  # e.g. the version was capped for the image's Python

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


def required_packages(repo: RepositoryInfo, device: str, pins: dict[str, str]) -> tuple[Requirement, ...]:
    """The pinned packages the repository's python steps import, in install order; () when numpy is enough."""
    if repo.tokenizer not in TOKENIZER_PACKAGES:
        raise DeployError(f"{repo.path}: tokenizer implementation {repo.tokenizer!r} is unknown to this deploy; "
                          f"known: {', '.join(TOKENIZER_PACKAGES)}.")
    wanted: dict[str, str] = {}
    for package in TOKENIZER_PACKAGES[repo.tokenizer]:
        wanted.setdefault(package, f"tokenizer step ({repo.tokenizer})")
    if repo.backend == "python":
        for package in RUNTIME_PACKAGES.get(repo.runtime or "onnxruntime", ()):
            wanted.setdefault(package, f"model step (runtime {repo.runtime})")
    return tuple(_pin(GPU_PACKAGES.get(p, p) if device == "gpu" else p, p, why, repo, pins) for p, why in wanted.items())


def extra_constraints(requirements: tuple[Requirement, ...]) -> tuple[Constraint, ...]:
    """What the requirements need beside them: the image's NumPy 1.x kept (the stub dies under 2), and the pins
    paddlenlp needs to import at all."""
    if not requirements:
        return ()
    out = [Constraint(STUB_NUMPY, "Triton 24.10's python-backend stub dies on text inputs under NumPy 2")]
    if any(r.name == "paddlenlp" for r in requirements):
        out += [Constraint(c, "paddlenlp 3.0.0b4 does not import without it") for c in PADDLENLP_CONSTRAINTS]
    return tuple(out)


def extra_index(requirements: tuple[Requirement, ...]) -> str | None:
    return PADDLE_GPU_INDEX if any(r.name == "paddlepaddle-gpu" for r in requirements) else None


def _pin(name: str, cpu_name: str, why: str, repo: RepositoryInfo, pins: dict[str, str]) -> Requirement:
    version = pins.get(name) or repo.versions.get(name)
    same_numbers = name == cpu_name or name in SAME_VERSION_AS_CPU
    if not version and same_numbers:
        version = pins.get(cpu_name) or repo.versions.get(cpu_name)
    if not version:
        raise DeployError(
            f"{repo.path}: the build record has no version of {name} (export.versions in tritoncls_build.json), "
            f"which the {why} imports. Pass --pin {name}==VERSION with the version the export was checked with"
            + (f" ({name} numbers its releases apart from {cpu_name}: choose one for the image's CUDA 12)."
               if not same_numbers else "."))
    cap = NEWEST_FOR_IMAGE_PYTHON.get(name)
    if cap and name not in pins and _newer(version, cap):
        note = f"the build used {version}, which has no wheel for the image's Python; {cap} is the newest that does"
        return Requirement(name, cap, why, note)
    return Requirement(name, version, why)


def _newer(version: str, than: str) -> bool:
    """``version`` is a later release than ``than`` (numeric release parts compared; suffixes ignored)."""
    return _release(version) > _release(than)


def _release(version: str) -> tuple[int, ...]:
    match = re.match(r"\d+(\.\d+)*", version)
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()
