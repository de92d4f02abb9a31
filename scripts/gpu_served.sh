#!/usr/bin/env bash
# The ensemble served on a GPU, measured (issue 15): the prepared script for an offline GPU machine that
# takes at most 64 MiB per call and keeps /tmp only while it stays warm (30 s between calls).
#
# Here (network, the project's venv):
#   scripts/gpu_served.sh prepare TRAINED_EXPORT [SHAPE_EXPORT or medium|mini|nano ...]
#       downloads the wheels the GPU machine lacks (onnxruntime-gpu, nvidia-pytriton's tritonserver,
#       tritonclient's perf_analyzer and its libraries), copies the trained export, makes skeletons of
#       the shape exports (weights removed; refilled there) and the dev texts, and splits it all into
#       .gpu/part1 ... partN of at most 56 MiB each (.gpu/ is git-ignored through .git/info/exclude).
# There, one device call per part, back to back, each carrying its part (carry: [".gpu/partK"]):
#   bash scripts/gpu_served.sh receive .gpu/partK
# and in the last call (carrying the last part), after receiving it:
#   bash scripts/gpu_served.sh run
#       reassembles and installs the wheels into a venv over the image's packages (/tmp/tritoncls_venv: the
#       python-backend stub reads its packages from there, not from PYTHONPATH), prints a preflight
#       (preflight.txt, `tritoncls doctor`: the stub's libraries and imports, perf_analyzer, the GPU) so a
#       missing piece shows in seconds, refills the skeletons, runs `tritoncls bench-gpu` per export,
#       shapes first (FP32 and FP16 repositories served with the model step on the GPU, perf_analyzer sweeps,
#       in-process CUDA on the same texts), then the in-process GPU check (gpu_check.py: CUDA FP32/FP16,
#       TensorRT when its libraries are there), and writes everything under $OUT (or ./gpu_served_out).
#       BENCH_ARGS adds options to each bench; BENCH_ONLY=NAME benches that export alone.
# Here again, before spending GPU time:
#   scripts/gpu_served.sh rehearse
#       the same receive + run on this machine, under a Python 3.12 venv holding the GPU image's packages
#       (made once in $REHEARSE_VENV from ${PYTHON312:-python3.12}; it stands in for the image's venv),
#       with the model step in a KIND_CPU instance (Triton sees no GPU here; ONNX Runtime falls back to the
#       CPU), 256 texts, and only the trained export benched (the shapes are refilled). Every step but the
#       GPU itself is exercised: the install, imports, the stub, tritonserver, perf_analyzer, the reports.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
carry="$repo/.gpu"
store="${TRITONCLS_GPU_STORE:-/tmp/tritoncls_gpu}"
venv="${TRITONCLS_GPU_VENV:-/tmp/tritoncls_venv}"
part_mib=56  # the working tree travels in the same 64 MiB
py_tag=3.12  # the GPU machine's python3 (see the device notes)
platforms=(--platform manylinux_2_35_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
           --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
# No protobuf: the image's onnx needs its own (>= 5.26, for runtime_version), and tritonclient's generated
# modules load under it even though its metadata asks for < 5 (rehearsed with 7.36; `rehearse` below).
wheels=(onnxruntime-gpu==1.31.0 nvidia-pytriton==0.7.0 tritonclient==2.51.0 python-rapidjson==1.25
        nvidia-cuda-runtime-cu12==12.9.79 numpy==1.26.4)

prepare() {
  local trained="$1"; shift
  local python="${PYTHON:-$repo/.venv/bin/python}"
  for ignored in /.gpu/ /.gpu_shapes/; do
    grep -qx "$ignored" "$repo/.git/info/exclude" 2>/dev/null || echo "$ignored" >>"$repo/.git/info/exclude"
  done
  rm -rf "$carry" && mkdir -p "$carry/stage/wheels" "$carry/stage/exports" "$carry/stage/debs"
  "$python" -m pip download -q --no-deps --only-binary=:all: --python-version "$py_tag" --implementation cp \
    "${platforms[@]}" -d "$carry/stage/wheels" "${wheels[@]}"
  (cd "$carry/stage/debs" && apt-get download libb64-0d)
  cp -r "$trained" "$carry/stage/exports/trained"
  rm -f "$carry/stage/exports/trained/"*.pdiparams  # the ONNX model step needs no Paddle weights
  for shape in "$@"; do
    if [ ! -d "$shape" ]; then  # a shape name: random weights, the trained export's vocabulary (bench's shapes)
      shape="$(PYTHONPATH="$repo" "$python" -c 'import sys; from pathlib import Path
from tritoncls.measure.variants import shape_export
print(shape_export(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])))' "$shape" "$trained" "$repo/.gpu_shapes" | tail -n 1)"
    fi
    "$python" "$repo/scripts/gpu_check.py" --model "$shape" --strip_to "$carry/stage/skeletons/$(basename "$shape")"
  done
  head -n 1024 "$repo/../shared/data/kuake_qic/dev.txt" | cut -f1 >"$carry/stage/texts.txt"
  tar -C "$carry/stage" -cf - . | split -b "${part_mib}m" -d -a 2 - "$carry/stage.tar."
  local k=0
  for piece in "$carry"/stage.tar.*; do
    k=$((k + 1)); mkdir -p "$carry/part$k"; mv "$piece" "$carry/part$k/"
  done
  rm -rf "$carry/stage"
  echo "prepared $k parts in $carry (carry each in its own call: bash scripts/gpu_served.sh receive .gpu/partK)"
  du -sh "$carry"/part*
}

receive() {
  mkdir -p "$store"
  cp "$1"/stage.tar.* "$store/"
  echo "received $(ls "$store" | wc -l) piece(s) in $store"
}

install() {
  # A venv of our own on top of the image's packages: the python-backend stub ignores PYTHONPATH and takes
  # its packages from the venv of the `python3` first on PATH, and Triton 2.51's stub breaks on NumPy 2
  # (BYTES inputs: "unpack_from requires a buffer"), so numpy 1.26 and onnxruntime-gpu must come first
  # there. The image's own site-packages follow through a .pth file.
  local purelib='import sysconfig; print(sysconfig.get_paths()["purelib"])' image_site ours
  rm -rf "$store/stage" && mkdir -p "$store/stage"
  cat "$store"/stage.tar.* | tar -C "$store/stage" -xf -
  image_site="$(python3 -c "$purelib")"
  rm -rf "$venv" && python3 -m venv --without-pip "$venv"  # the image's pip installs into it (no ensurepip needed)
  ours="$("$venv/bin/python3" -c "$purelib")"
  echo "$image_site" >"$ours/zz_image_packages.pth"
  python3 -m pip --python "$venv/bin/python3" install -q --no-index --no-deps --no-compile --no-cache-dir \
    "$store"/stage/wheels/*.whl
  mkdir -p "$store/root" && for deb in "$store"/stage/debs/*.deb; do dpkg -x "$deb" "$store/root"; done
  export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
  export PATH="$venv/bin:$PATH"
  export LD_LIBRARY_PATH="$store/root/usr/lib/x86_64-linux-gnu:$ours/nvidia/cuda_runtime/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
}

preflight() {
  # `tritoncls doctor`: Python, NumPy, tritonserver and its stub's libraries, perf_analyzer, ONNX Runtime's
  # providers, what the stub imports without PYTHONPATH, the GPU
  python3 -c 'import sys; from tritoncls.cli import main; sys.exit(main())' doctor || echo "doctor: a check FAILED (above)"
}

run() {
  local out="${OUT:-$PWD/gpu_served_out}" exports=() skeleton name args=()
  install
  mkdir -p "$out"
  preflight 2>&1 | tee "$out/preflight.txt"
  for skeleton in "$store"/stage/skeletons/*; do  # the shapes first: medium carries the throughput goal
    [ -d "$skeleton" ] || continue
    name="$(basename "$skeleton")"
    python3 "$repo/scripts/gpu_check.py" --model "$skeleton" --refill_to "$store/stage/exports/$name"
    exports+=("$store/stage/exports/$name")
  done
  exports+=("$store/stage/exports/trained")
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$out/nvidia_smi.csv" || true
  for e in "${exports[@]}"; do  # served first, each report copied out as soon as it is written
    name="$(basename "$e")"
    [ -z "${BENCH_ONLY:-}" ] || [ "$name" = "$BENCH_ONLY" ] || continue
    # shellcheck disable=SC2086  # BENCH_ARGS is a list of options
    python3 -c 'import sys; from tritoncls.cli import main; sys.exit(main())' bench-gpu --model "$e" \
      --input "$store/stage/texts.txt" --output "$store/out_$name" ${BENCH_ARGS:-} 2>&1 | tail -n 40 \
      || echo "bench $name exited $?"
    for f in gpu_served.json gpu_served.md; do cp "$store/out_$name/$f" "$out/${name}_$f" 2>/dev/null || true; done
  done
  for e in "${exports[@]}"; do args+=(--model "$e"); done  # then in-process CUDA/TensorRT (measured 2026-11-28)
  python3 "$repo/scripts/gpu_check.py" "${args[@]}" --input "$store/stage/texts.txt" \
    --output "$out/gpu_check.json" --time_budget_s 90 || echo "gpu_check exited $?"
  ls -la "$out"
}

# What tritoncls needs of the GPU image's own packages (KINDS.md lists them), for the rehearsal venv.
image_packages=(numpy jinja2 tokenizers onnx onnxruntime protobuf grpcio psutil tqdm pyyaml requests matplotlib
                scikit-learn safetensors packaging typing-extensions)

rehearse() {
  local image="${REHEARSE_VENV:-/tmp/tritoncls_rehearse_image}" part  # stands in for the image's /opt/torch/.venv
  [ -n "$(ls -d "$carry"/part* 2>/dev/null)" ] || { echo "no parts in $carry: run prepare first"; exit 2; }
  if [ ! -x "$image/bin/python3" ]; then
    "${PYTHON312:-python3.12}" -m venv "$image"
    "$image/bin/python3" -m pip install -q "${image_packages[@]}"
  fi
  store="${TRITONCLS_GPU_STORE:-/tmp/tritoncls_rehearse_store}" venv="/tmp/tritoncls_rehearse_venv"
  local out=/tmp/tritoncls_rehearse_out  # removed first, so never $OUT
  rm -rf "$store" "$out"
  for part in "$carry"/part*; do receive "$part"; done
  # shapes are refilled but not benched: medium serves ~25 texts/s on two cores
  PATH="$image/bin:$PATH" BENCH_ARGS="--instance_kind cpu --max_texts 256 ${BENCH_ARGS:-}" BENCH_ONLY=trained \
    OUT="$out" run
}

case "${1:-}" in
  prepare) shift; prepare "$@" ;;
  receive) shift; receive "$1" ;;
  run) run ;;
  rehearse) rehearse ;;
  *) sed -n '2,29p' "${BASH_SOURCE[0]}"; exit 2 ;;
esac
