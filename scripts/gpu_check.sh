#!/usr/bin/env bash
# GPU check: ONNX Runtime CUDA FP32/FP16 and TensorRT-EP variants of an export on real texts,
# label agreement with CPU FP32, timings -> JSON. Needs an NVIDIA GPU and onnxruntime-gpu
# (or add --install_venv DIR [--wheel FILE]). The repository root goes on PYTHONPATH so the script
# imports the tritoncls runtime without tritoncls installed. Example:
#   scripts/gpu_check.sh --model EXPORT_DIR --input dev.txt --output gpu_check.json
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python3}" "$here/scripts/gpu_check.py" "$@"
