"""``tritoncls export``: static graph, ONNX, tokenizer, labels and manifest.json of a checkpoint, for serving."""

from __future__ import annotations

import argparse

from tritoncls.cli._args import (
    add_checkpoint,
    add_max_seq_length,
    add_output,
    add_thresholds,
    config_from_args,
    flag,
)

NAME = "export"
STAGE = "tritoncls.modeling"
HELP = "static graph + ONNX + tokenizer + manifest.json for serving"
DESCRIPTION = (
    "Export a checkpoint: Paddle static graph (float32.json/.pdiparams), ONNX (model.onnx), tokenizer files, "
    "label.txt and manifest.json. The exported graphs are checked against the dynamic graph before the "
    "export is kept."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Export's options; the reference's ``--params_path`` / ``--output_path`` work too."""
    add_checkpoint(parser, "params_path")
    add_output(parser, "the export directory (replaced atomically)", "output_path", default="./export")
    add_max_seq_length(parser, "serving truncation length (default: the one the checkpoint was trained with)",
                       default=None)
    add_thresholds(parser, detail="recorded in the manifest and served")
    flag(parser, "reference_data", default=None,
         help="labeled dev data (a text<TAB>label file, or a dataset folder with dev.txt) whose predictions are "
              "recorded as the reference distribution that `tritoncls monitor` compares served traffic with "
              "(default: the dev.txt the checkpoint was trained on, where it exists)")
    flag(parser, "no_reference", action="store_true", help="record no reference distribution")


def run(args: argparse.Namespace) -> int:
    """Export the checkpoint named in ``args``."""
    from tritoncls.cli_common import quiet_paddlenlp

    quiet_paddlenlp()
    from tritoncls.modeling.export import ExportConfig, export

    export(config_from_args(ExportConfig, args))
    return 0
