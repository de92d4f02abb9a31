#!/usr/bin/env bash
# GPU check (issue 4): ONNX Runtime CUDA FP32/FP16 and TensorRT-EP variants of an export on real texts,
# label agreement with CPU FP32, timings -> JSON. Needs an NVIDIA GPU and onnxruntime-gpu
# (or add --install_venv DIR [--wheel FILE]). Example:
#   benchmarks/gpu_check.sh --model EXPORT_DIR --data dev.txt --output gpu_check.json
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec "${PYTHON:-python3}" "$here/tritoncls/benchmarks/gpu_check.py" "$@"
