"""``tritoncls build-repo`` and the standalone ``build-repo`` command: render a Triton model repository."""

from __future__ import annotations

import argparse
import logging
import sys

from tritoncls.builder.config import (
    ACCELERATORS,
    BACKENDS,
    DEFAULT_BUCKETS,
    DEVICES,
    INSTANCE_KINDS,
    PRECISIONS,
    PROFILES,
    RUNTIMES,
    TOKENIZERS,
    BuildConfig,
)
from tritoncls.cli._args import add_model, add_output, config_from_args, explicit_flags, flag, shared, track_explicit
from tritoncls.common.onnx import DEFAULT_CALIBRATION_TEXTS, INT8_MODES
from tritoncls.runtime import DEFAULT_GROUP_PADDING, LAYOUTS, PADDINGS

log = logging.getLogger(__name__)

NAME = "build-repo"
STAGE = "tritoncls.builder"
HELP = "render a validated Triton model repository from an export"
DESCRIPTION = (
    "Render a validated, self-contained Triton model repository from a `tritoncls export` directory: an "
    "ensemble (text -> label, confidence) of a tokenizer, the model and a postprocess step. Every "
    "config.pbtxt is parsed with Triton's protobuf and every ensemble mapping is checked before the "
    "repository is moved into place."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """build-repo's options: the repository layout, the model step, batching, tokenizer and outputs."""
    add_model(parser, required=True)
    add_output(parser, "the model repository directory", required=True)
    flag(parser, "force", action="store_true", help="replace an existing repository at --output")
    shared(parser, "name", detail="it prefixes the names of the other steps", default="seqcls")
    flag(parser, "profile", default="default", choices=tuple(PROFILES),
         help="'reference' renders the PaddleNLP-style deployment (PaddleNLP tokenizer, no dynamic batching) "
              "for benchmarks")
    flag(parser, "layout", default="ensemble", choices=LAYOUTS,
         help="ensemble: three python steps (tokenizer, model, postprocess); fused: one python model doing all "
              "three in one execution (same inputs and outputs; saves about 1 ms per step, which matters for small "
              "models)")
    _add_model_step(parser.add_argument_group("model step"))
    _add_batching(parser.add_argument_group("batching"))
    _add_tokenizer(parser.add_argument_group("tokenizer and outputs"))
    flag(parser, "options", default=None,
         help="build options file (tune.json written by `tritoncls tune`): its options apply where no flag is given")
    track_explicit(parser)


def _add_model_step(group: argparse._ArgumentGroup) -> None:
    flag(group, "backend", default="python", choices=BACKENDS,
         help="python runs anywhere (incl. nvidia-pytriton's server); onnxruntime and paddle need NVIDIA's "
              "Triton container")
    flag(group, "runtime", default=None, choices=RUNTIMES, help="inside --backend python (default: onnxruntime)")
    shared(group, "device", detail="the model step", default="cpu", choices=DEVICES)
    accelerators = sorted({a for choices in ACCELERATORS.values() for a in choices})
    flag(group, "accelerator", default="none", choices=accelerators,
         help="onnxruntime: openvino (cpu), cuda or tensorrt (gpu); paddle: mkldnn (cpu) or tensorrt (gpu)")
    flag(group, "precision", default="fp32", choices=PRECISIONS,
         help="fp16 with --accelerator tensorrt; int8: ONNX Runtime quantization on CPU (see --int8_mode), done in "
              "the repository (the export is not changed)")
    flag(group, "int8_mode", default=None, choices=INT8_MODES,
         help="with --precision int8: dynamic (activation scales computed at run time for every batch; the default) "
              "or static (activation scales fixed at build time from --calibration_data)")
    flag(group, "calibration_data", default=None,
         help="--int8_mode static: a file of texts to calibrate on, one a line (text<TAB>label lines work too, "
              "e.g. the model's train.txt)")
    flag(group, "calibration_texts", type=int, default=DEFAULT_CALIBRATION_TEXTS,
         help="--int8_mode static: how many texts of --calibration_data to calibrate on (a seeded random sample "
              "where the file holds more)")
    flag(group, "trt_cache_dir", default="/tmp/tritoncls_trt_cache", help="TensorRT engine cache folder on the server")
    shared(group, "instances", type=int, default=1)
    flag(group, "tokenizer_instances", type=int, default=1, help="tokenizer step instances (ensemble layout)")
    flag(group, "instance_kind", default="auto", choices=tuple(INSTANCE_KINDS),
         help="auto: gpu with --device gpu, else cpu")
    shared(group, "intra_op_threads", type=int, default=0)
    flag(group, "inter_op_threads", type=int, default=0, help="threads across operators (0: the runtime decides)")
    flag(group, "no_merge_requests", action="store_true",
         help="python backend: run each request of a dynamic batch separately instead of as one merged batch")
    flag(group, "no_trim_padding", action="store_true",
         help="python backend: run every position a request is padded to, instead of dropping all-padding "
              "columns and running a merged batch in groups of similar length (the reference profile's choice)")
    flag(group, "group_padding", type=float, default=DEFAULT_GROUP_PADDING,
         help="fused layout: a length group's padded tokens may be at most this many times its real tokens")


def _add_batching(group: argparse._ArgumentGroup) -> None:
    flag(group, "max_batch_size", type=int, default=64, help="texts per batch, for every model")
    flag(group, "no_dynamic_batching", action="store_true", help="turn dynamic batching off")
    flag(group, "max_queue_delay_us", type=int, default=2000, help="model step: how long a batch may wait to fill")
    flag(group, "preferred_batch_sizes", type=int, nargs="*", default=[], help="model step: preferred batch sizes")


def _add_tokenizer(group: argparse._ArgumentGroup) -> None:
    flag(group, "buckets", type=int, nargs="+", default=list(DEFAULT_BUCKETS),
         help="token-length buckets a request is padded to; clipped to the export's max_seq_length")
    flag(group, "padding", default=None, choices=PADDINGS, help="buckets (default profile), longest or max_length")
    flag(group, "tokenizer", default=None, choices=TOKENIZERS,
         help="wordpiece (HF tokenizers, default), python (PaddleNLP's algorithm in plain Python: the "
              "reference's cost) or paddlenlp (the library itself; the server's Python must import it)")
    flag(group, "top_k", type=int, default=0, help="also return the k most probable labels and probabilities")
    flag(group, "no_metrics", action="store_true",
         help="export no label, confidence and length metrics from the python steps (Triton's own remain)")
    flag(group, "low_confidence", type=float, default=None,
         help="texts whose top probability is below this count as low-confidence (default: the threshold the "
              "export recorded on dev data, under which 5%% of dev texts fall; 0.5 without one)")


#: BuildConfig field -> the flags that set it, where they differ (the ``--no_*`` switches)
SWITCHES = {"dynamic_batching": "no_dynamic_batching", "merge_requests": "no_merge_requests",
            "trim_padding": "no_trim_padding", "metrics": "no_metrics"}


def build_config(args: argparse.Namespace) -> BuildConfig:
    """The :class:`BuildConfig` of ``args`` (the ``--no_*`` switches inverted, lists as tuples), with the
    options of ``--options FILE`` where no flag was given."""
    config = config_from_args(
        BuildConfig, args, dynamic_batching=False if args.no_dynamic_batching else None,
        preferred_batch_sizes=tuple(args.preferred_batch_sizes), buckets=tuple(args.buckets),
        merge_requests=not args.no_merge_requests, trim_padding=False if args.no_trim_padding else None,
        metrics=not args.no_metrics)
    if not getattr(args, "options", None):
        return config
    from tritoncls.builder.options import apply_options, read_options

    explicit = explicit_flags(args)
    explicit |= {field for field, switch in SWITCHES.items() if switch in explicit}
    values = apply_options(config.to_dict(), read_options(args.options), explicit)
    return BuildConfig(**values)


def run(args: argparse.Namespace) -> int:
    """Build the repository described by ``args``."""
    from tritoncls.builder.build import build_repository

    path = build_repository(build_config(args))
    print(f"model repository: {path}\nserve it with: tritoncls serve --model-repository {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """The standalone ``build-repo`` console script: ``tritoncls build-repo`` under another name."""
    from tritoncls.cli import launch

    parser = argparse.ArgumentParser(prog="build-repo", description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_arguments(parser)
    parser.set_defaults(handler=run, usage_error=parser.error)
    return launch(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
