#!/usr/bin/env bash
# The measured `tritoncls compress` runs of docs/compress.md, each one command:
#   bash scripts/compress_runs.sh trec     # all-MiniLM-L6-v2 fine-tuned on TREC-6, then compressed
#   bash scripts/compress_runs.sh kuake    # the ERNIE 3.0 mini shape (6 layers) trained on KUAKE-QIC, then compressed
# OUT (default /tmp/compress_runs) receives teacher/ (the fine-tuned model, train.log) and compress/ (the reports,
# compress.json, every candidate's export). TEACHER=DIR skips the fine-tuning and compresses that checkpoint.
# Extra arguments go to `tritoncls compress` after the run's own (a later flag wins: --epochs 2, --resume, ...).
# Run from the repository root after `make setup`; the CPU times of the 2-core development machine are in the doc.
set -euo pipefail
run="${1:?usage: compress_runs.sh trec|kuake [compress flags...]}"
shift
out="${OUT:-/tmp/compress_runs}/$run"
source "$(dirname "$0")/run_env.sh"  # bin, data, minilm
mkdir -p "$out"
case "$run" in
  trec)
    dataset="$data/trec/trec6"
    train=(--model_name "$minilm" --learning_rate 1e-4 --max_seq_length 64 --batch_size 32 --epochs 3 --warmup
           --warmup_steps 50)
    search=(--depths 3 --widths 1 --precisions fp32 int8 --servings default --layer_selection bottom --augment_copies 4
            --epochs 3 --learning_rate 1e-4 --no_corpus_length) ;;
  kuake)
    dataset="$data/kuake_qic"
    train=(--model_name ernie-3.0-mini-zh --from_scratch --max_seq_length 64 --learning_rate 5e-4 --warmup
           --warmup_steps 200 --weight_decay 0.01 --epochs 3 --batch_size 32)
    search=(--depths 2 --widths 1 1/2 --precisions fp32 int8 --epochs 2 --learning_rate 2e-4 --no_corpus_length) ;;
  *) echo "unknown run $run: trec or kuake" >&2; exit 2 ;;
esac
teacher="${TEACHER:-$out/teacher}"
if [[ -z "${TEACHER:-}" ]]; then
  "$bin/tritoncls" train --dataset_dir "$dataset" --output "$teacher" --logging_steps 50 --device cpu "${train[@]}" \
      2>&1 | tee "$out/train.log"
fi
"$bin/tritoncls" compress --checkpoint "$teacher" --dataset_dir "$dataset" --output "$out/compress" --max_drop 1.0 \
    "${search[@]}" "$@" 2>&1 | tee "$out/compress.log"
