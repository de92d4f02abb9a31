"""``tritoncls build-repo`` and the standalone ``build-repo`` command: parse options, call build_repository."""

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
from tritoncls.cli_common import flag, setup_logging
from tritoncls.errors import TritonclsError
from tritoncls.runtime import PADDINGS

log = logging.getLogger(__name__)

DESCRIPTION = (
    "Render a validated, self-contained Triton model repository from a `tritoncls export` directory: an "
    "ensemble (text -> label, confidence) of a tokenizer, the model and a postprocess step. Every "
    "config.pbtxt is parsed with Triton's protobuf and every ensemble mapping is checked before the "
    "repository is moved into place."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    flag(p, "model", required=True, help="export directory written by `tritoncls export` (holds manifest.json)")
    flag(p, "output", required=True, help="model repository directory to write")
    flag(p, "force", action="store_true", help="replace an existing repository at --output")
    flag(p, "name", default="seqcls", help="ensemble name; other names prefix every step")
    flag(p, "profile", default="default", choices=tuple(PROFILES),
         help="'reference' renders the PaddleNLP-style deployment (PaddleNLP tokenizer, no dynamic batching) for benchmarks")
    model = p.add_argument_group("model step")
    flag(model, "backend", default="python", choices=BACKENDS,
         help="python runs anywhere (incl. nvidia-pytriton's server); onnxruntime and paddle need NVIDIA's Triton container")
    flag(model, "runtime", default=None, choices=RUNTIMES, help="inside --backend python (default: onnxruntime)")
    flag(model, "device", default="cpu", choices=DEVICES, help="where the model step runs")
    accelerators = sorted({a for choices in ACCELERATORS.values() for a in choices})
    flag(model, "accelerator", default="none", choices=accelerators,
         help="onnxruntime: openvino (cpu), cuda or tensorrt (gpu); paddle: mkldnn (cpu) or tensorrt (gpu)")
    flag(model, "precision", default="fp32", choices=PRECISIONS, help="fp16 with --accelerator tensorrt; int8: ONNX Runtime dynamic quantization "
              "on CPU, done in the repository (the export is not changed)")
    flag(model, "trt_cache_dir", default="/tmp/tritoncls_trt_cache", help="TensorRT engine cache folder on the server")
    flag(model, "instances", type=int, default=1, help="model step instances")
    flag(model, "instance_kind", default="auto", choices=tuple(INSTANCE_KINDS), help="auto: gpu with --device gpu, else cpu")
    flag(model, "intra_op_threads", type=int, default=0, help="threads inside an operator (0: the runtime decides)")
    flag(model, "inter_op_threads", type=int, default=0, help="threads across operators (0: the runtime decides)")
    flag(model, "no_merge_requests", action="store_true",
         help="python backend: run each request of a dynamic batch separately instead of as one merged batch")
    flag(model, "no_trim_padding", action="store_true",
         help="python backend: run every position a request is padded to, instead of dropping all-padding "
              "columns and running a merged batch in groups of similar length (the reference profile's choice)")
    batching = p.add_argument_group("batching")
    flag(batching, "max_batch_size", type=int, default=64, help="texts per batch, for every model")
    flag(batching, "no_dynamic_batching", action="store_true", help="turn dynamic batching off")
    flag(batching, "max_queue_delay_us", type=int, default=2000, help="model step: how long a batch may wait to fill")
    flag(batching, "preferred_batch_sizes", type=int, nargs="*", default=[], help="model step: preferred batch sizes")
    tokenizer = p.add_argument_group("tokenizer and outputs")
    flag(tokenizer, "buckets", type=int, nargs="+", default=list(DEFAULT_BUCKETS),
         help="token-length buckets a request is padded to; clipped to the export's max_seq_length")
    flag(tokenizer, "padding", default=None, choices=PADDINGS, help="buckets (default profile), longest or max_length")
    flag(tokenizer, "tokenizer", default=None, choices=TOKENIZERS, help="wordpiece (HF tokenizers, default), python (PaddleNLP's algorithm in plain Python: the reference's "
              "cost) or paddlenlp (the library itself; the server's Python must import it)")
    flag(tokenizer, "top_k", type=int, default=0, help="also return the k most probable labels and probabilities")


def config_from_args(args: argparse.Namespace) -> BuildConfig:
    return BuildConfig(
        model=args.model, output=args.output, name=args.name, profile=args.profile, backend=args.backend,
        runtime=args.runtime, device=args.device, accelerator=args.accelerator, precision=args.precision,
        trt_cache_dir=args.trt_cache_dir, instances=args.instances, instance_kind=args.instance_kind,
        max_batch_size=args.max_batch_size, dynamic_batching=False if args.no_dynamic_batching else None,
        max_queue_delay_us=args.max_queue_delay_us, preferred_batch_sizes=tuple(args.preferred_batch_sizes),
        intra_op_threads=args.intra_op_threads, inter_op_threads=args.inter_op_threads, buckets=tuple(args.buckets),
        padding=args.padding, tokenizer=args.tokenizer, merge_requests=not args.no_merge_requests,
        trim_padding=False if args.no_trim_padding else None, top_k=args.top_k, force=args.force,
    )


def run_build(args: argparse.Namespace) -> int:
    from tritoncls.builder.build import build_repository

    path = build_repository(config_from_args(args))
    print(f"model repository: {path}\nserve it with: tritoncls serve --model-repository {path}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("build-repo", help="render a validated Triton model repository from an export",
                       description=DESCRIPTION)
    add_arguments(p)
    p.set_defaults(handler=run_build)


def main(argv: list[str] | None = None) -> int:
    """The ``build-repo`` console script."""
    parser = argparse.ArgumentParser(prog="build-repo", description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_arguments(parser)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        return run_build(args)
    except TritonclsError as exc:
        log.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
