#!/usr/bin/env bash
# The measured multi-label and hierarchical runs of docs/multilabel.md, each one command:
#   bash scripts/multilabel_runs.sh goemotions     # MiniLM fine-tuned on GoEmotions (28 labels), then measured
#   bash scripts/multilabel_runs.sh hierarchical   # the same on GoEmotions' 37 paths sentiment##ekman##emotion
#   bash scripts/multilabel_runs.sh cail           # CAIL2019 divorce (20 elements), trained from scratch
# Flags after the run's name go to `tritoncls train` (e.g. `goemotions --metric micro_f1`).
# OUT (default /tmp/multilabel_runs) receives the checkpoint, train.log, and measure/summary.json
# (scripts/multilabel_experiment.py: test scores served and offline, parity, INT8, orphans).
# CHECKPOINT=DIR skips training and measures that checkpoint (how docs/multilabel.md's figures were taken
# from the checkpoints its runs saved). THRESHOLDS=FILE serves those thresholds instead of the checkpoint's
# (`tritoncls evaluate --tune_thresholds FILE` writes them).
# Run from the repository root after `make setup`. CPU times on the 2-core development machine: see the doc.
set -euo pipefail
run="${1:?usage: multilabel_runs.sh goemotions|hierarchical|cail [train flags]}"
shift
out="${OUT:-/tmp/multilabel_runs}/$run"
source "$(dirname "$0")/run_env.sh"  # bin, data, minilm
mkdir -p "$out"
case "$run" in
  goemotions)
    dataset="$data/goemotions/multilabel"; task=multi_label; max_len=64
    args=(--model_name "$minilm" --learning_rate 1e-4 --warmup --warmup_steps 300 --epochs 4 --batch_size 32) ;;
  hierarchical)
    dataset="$data/goemotions/hierarchical"; task=hierarchical; max_len=64
    args=(--model_name "$minilm" --learning_rate 1e-4 --warmup --warmup_steps 300 --epochs 4 --batch_size 32) ;;
  cail)
    dataset="$data/cail2019_divorce"; task=multi_label; max_len=128
    args=(--from_scratch --model_name ernie-3.0-nano-zh --arch num_hidden_layers=2 hidden_size=256
          num_attention_heads=4 intermediate_size=1024 --learning_rate 1e-3 --warmup --warmup_steps 300
          --epochs 20 --early_stop --batch_size 32) ;;
  *) echo "unknown run $run: goemotions, hierarchical or cail" >&2; exit 2 ;;
esac
checkpoint="${CHECKPOINT:-$out/checkpoint}"
if [[ -z "${CHECKPOINT:-}" ]]; then
  "$bin/tritoncls" train --dataset_dir "$dataset" --task "$task" --output "$out/checkpoint" --max_seq_length "$max_len" \
      --logging_steps 100 --device cpu "${args[@]}" "$@" 2>&1 | tee "$out/train.log"
fi
"$bin/python" scripts/multilabel_experiment.py --checkpoint "$checkpoint" --dataset_dir "$dataset" --task "$task" \
    --output "$out/measure" --fused ${THRESHOLDS:+--thresholds_file "$THRESHOLDS"}
