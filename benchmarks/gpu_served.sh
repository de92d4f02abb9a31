#!/usr/bin/env bash
# The ensemble served on a GPU, measured (issue 15): the prepared script for an offline GPU machine that
# takes at most 64 MiB per call and keeps /tmp only while it stays warm (30 s between calls).
#
# Here (network, the project's venv):
#   benchmarks/gpu_served.sh prepare TRAINED_EXPORT [SHAPE_EXPORT ...]
#       downloads the wheels the GPU machine lacks (onnxruntime-gpu, nvidia-pytriton's tritonserver,
#       tritonclient's perf_analyzer and its libraries), copies the trained export, makes skeletons of
#       the shape exports (weights removed; refilled there) and the dev texts, and splits it all into
#       .gpu/part1 ... partN of at most 56 MiB each (.gpu/ is git-ignored through .git/info/exclude).
# There, one device call per part, back to back, each carrying its part (carry: [".gpu/partK"]):
#   bash benchmarks/gpu_served.sh receive .gpu/partK
# and in the last call (carrying the last part), after receiving it:
#   bash benchmarks/gpu_served.sh run
#       reassembles and installs the wheels into /tmp/tritoncls_site, refills the skeletons, then for
#       each export runs `tritoncls bench --device gpu` (FP32 and FP16 repositories served with the model
#       step on the GPU, perf_analyzer sweeps, in-process CUDA on the same texts), plus the in-process
#       GPU check (gpu_check.py: CUDA FP32/FP16, TensorRT when its libraries are there), and writes
#       everything under $OUT (or ./gpu_served_out).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
carry="$repo/.gpu"
store="${TRITONCLS_GPU_STORE:-/tmp/tritoncls_gpu}"
site=/tmp/tritoncls_site
part_mib=56  # the working tree travels in the same 64 MiB
py_tag=3.12  # the GPU machine's python3 (see the device notes)
platforms=(--platform manylinux_2_35_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
           --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
wheels=(onnxruntime-gpu==1.31.0 nvidia-pytriton==0.7.0 tritonclient==2.51.0 python-rapidjson==1.25 protobuf==4.25.9
        nvidia-cuda-runtime-cu12==12.9.79)

prepare() {
  local trained="$1"; shift
  local python="${PYTHON:-$repo/.venv/bin/python}"
  grep -qx '/.gpu/' "$repo/.git/info/exclude" 2>/dev/null || echo '/.gpu/' >>"$repo/.git/info/exclude"
  rm -rf "$carry" && mkdir -p "$carry/stage/wheels" "$carry/stage/exports" "$carry/stage/debs"
  "$python" -m pip download -q --no-deps --only-binary=:all: --python-version "$py_tag" --implementation cp \
    "${platforms[@]}" -d "$carry/stage/wheels" "${wheels[@]}"
  (cd "$carry/stage/debs" && apt-get download libb64-0d)
  cp -r "$trained" "$carry/stage/exports/trained"
  rm -f "$carry/stage/exports/trained/"*.pdiparams  # the ONNX model step needs no Paddle weights
  for shape in "$@"; do
    "$python" "$repo/tritoncls/benchmarks/gpu_check.py" --model "$shape" --strip_to "$carry/stage/skeletons/$(basename "$shape")"
  done
  head -n 1024 "$repo/../shared/data/kuake_qic/dev.txt" | cut -f1 >"$carry/stage/texts.txt"
  tar -C "$carry/stage" -cf - . | split -b "${part_mib}m" -d -a 2 - "$carry/stage.tar."
  local k=0
  for piece in "$carry"/stage.tar.*; do
    k=$((k + 1)); mkdir -p "$carry/part$k"; mv "$piece" "$carry/part$k/"
  done
  rm -rf "$carry/stage"
  echo "prepared $k parts in $carry (carry each in its own call: bash benchmarks/gpu_served.sh receive .gpu/partK)"
  du -sh "$carry"/part*
}

receive() {
  mkdir -p "$store"
  cp "$1"/stage.tar.* "$store/"
  echo "received $(ls "$store" | wc -l) piece(s) in $store"
}

install() {
  rm -rf "$store/stage" && mkdir -p "$store/stage"
  cat "$store"/stage.tar.* | tar -C "$store/stage" -xf -
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
    "$store"/stage/wheels/*.whl
  mkdir -p "$store/root" && for deb in "$store"/stage/debs/*.deb; do dpkg -x "$deb" "$store/root"; done
  export PYTHONPATH="$repo:$site${PYTHONPATH:+:$PYTHONPATH}"
  export PATH="$site/bin:$PATH"
  export LD_LIBRARY_PATH="$store/root/usr/lib/x86_64-linux-gnu:$site/nvidia/cuda_runtime/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
}

run() {
  local out="${OUT:-$PWD/gpu_served_out}"
  install
  mkdir -p "$out"
  local exports=("$store/stage/exports/trained")
  for skeleton in "$store"/stage/skeletons/*; do
    [ -d "$skeleton" ] || continue
    python3 "$repo/tritoncls/benchmarks/gpu_check.py" --model "$skeleton" --refill_to "$store/stage/exports/$(basename "$skeleton")"
    exports+=("$store/stage/exports/$(basename "$skeleton")")
  done
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$out/nvidia_smi.csv" || true
  local args=()
  for e in "${exports[@]}"; do args+=(--model "$e"); done
  python3 "$repo/tritoncls/benchmarks/gpu_check.py" "${args[@]}" --input "$store/stage/texts.txt" \
    --output "$out/gpu_check.json" --time_budget_s 120 || echo "gpu_check exited $?"
  for e in "${exports[@]}"; do
    name="$(basename "$e")"
    python3 -c 'import sys; from tritoncls.cli import main; sys.exit(main())' bench --device gpu --model "$e" \
      --input "$store/stage/texts.txt" --output "$store/out_$name" 2>&1 | tail -n 40 || echo "bench $name exited $?"
    for f in gpu_served.json gpu_served.md; do cp "$store/out_$name/$f" "$out/${name}_$f" 2>/dev/null || true; done
  done
  ls -la "$out"
}

case "${1:-}" in
  prepare) shift; prepare "$@" ;;
  receive) shift; receive "$1" ;;
  run) run ;;
  *) sed -n '2,21p' "${BASH_SOURCE[0]}"; exit 2 ;;
esac
