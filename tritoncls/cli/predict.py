"""``tritoncls predict``: classify a texts file with a checkpoint (dynamic graph) or an export (in-process)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from tritoncls.cli._args import (
    add_batch_size,
    add_checkpoint,
    add_dataset,
    add_device,
    add_input,
    add_max_seq_length,
    add_model,
    add_output,
    add_thresholds,
    config_from_args,
    flag,
)
from tritoncls.common.offline import PRECISIONS
from tritoncls.errors import UsageError
from tritoncls.runtime.predictor import BACKENDS

log = logging.getLogger(__name__)

NAME = "predict"
STAGE = "tritoncls.training"
HELP = "classify a texts file with a checkpoint, or with an export (--model)"
DESCRIPTION = (
    "Classify one text per line: --input, or --dataset_dir's data.txt. With --checkpoint it runs the Paddle "
    "dynamic graph (labels: --dataset_dir's label.txt, else the checkpoint's own); with --model EXPORT_DIR it "
    "runs the exported model in-process (ONNX Runtime or Paddle Inference), with no server."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Predict's options; the reference's ``--params_path`` and ``--output_file`` work too."""
    add_device(parser)
    add_dataset(parser, required=False, files=("data",), holds="data.txt and label.txt")
    add_checkpoint(parser, "params_path")
    add_output(parser, "text<TAB>label<TAB>confidence lines (multi-label: text<TAB>labels<TAB>probabilities, "
               "comma-separated)", "output_file", default="output.txt")
    add_max_seq_length(parser)
    add_batch_size(parser, "per forward pass")
    add_input(parser, detail="the texts to classify (default: --dataset_dir/--data_file)", default=None)
    add_thresholds(parser, detail="for this run")
    group = parser.add_argument_group("exported model (in-process, no server)")
    add_model(group, detail="switches to the offline predictor", default=None)
    flag(group, "backend", default="onnxruntime", choices=BACKENDS,
         help="runtime for --model")
    flag(group, "precision", default="fp32", choices=PRECISIONS,
         help="fp32; int8 = ONNX Runtime dynamic quantization (CPU); fp16 needs a GPU")
    flag(group, "num_threads", type=int, default=None, help="CPU threads for the runtime (default: all cores)")
    flag(group, "keep_order", action="store_true",
         help="batch texts in file order instead of sorted by length (results are in input order either way)")


def run(args: argparse.Namespace) -> int:
    """Predict with a checkpoint, or with an export when ``--model`` is given."""
    from tritoncls.cli_common import quiet_paddlenlp, resolve_device

    if not args.input and not args.dataset_dir:
        raise UsageError("--input is required (a texts file, one text a line), or --dataset_dir holding data.txt")
    if args.model:
        return _run_offline(args)
    quiet_paddlenlp()
    from tritoncls.training.predict import PredictConfig, predict

    predict(config_from_args(PredictConfig, args, device=resolve_device(args.device)))
    return 0


def _run_offline(args: argparse.Namespace) -> int:
    """Classify ``--input`` with the export in ``--model``, in-process."""
    from tritoncls.cli_common import quiet_paddlenlp, resolve_device

    quiet_paddlenlp()
    from tritoncls.common.offline import OfflineConfig, predict_file

    device = resolve_device(args.device) if args.device != "auto" else "cpu"
    config = config_from_args(OfflineConfig, args, sort_by_length=not args.keep_order, device=device)
    done = predict_file(config, args.input or Path(args.dataset_dir) / args.data_file, args.output)
    log.info("Wrote %d predictions to %s in %.2f s (%.1f texts/s; %s, %s)", done.texts, done.output, done.seconds,
             done.texts_per_s, args.backend, args.precision)
    return 0
