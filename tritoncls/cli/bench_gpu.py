"""``tritoncls bench-gpu``: the ensemble served with its model step on the GPU against in-process CUDA."""

from __future__ import annotations

import argparse

from tritoncls.builder.config import INSTANCE_KINDS
from tritoncls.cli._args import add_input, add_model, add_output, config_from_args, flag

NAME = "bench-gpu"
STAGE = "tritoncls.benchmarks"
HELP = "benchmark the ensemble with its model step on the GPU (FP32 and FP16) against in-process CUDA"
DESCRIPTION = (
    "Serve --model with its model step on the GPU (FP32, and FP16 converted at build time), classify --input "
    "through it, and compare with in-process ONNX Runtime CUDA on the same texts: texts/s at 32-text requests, "
    "GPU memory, and label agreement. Writes gpu_served.json/.md into --output. Needs onnxruntime-gpu and a "
    "GPU that Triton sees; `--instance_kind cpu` rehearses the flow where Triton sees none."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """bench-gpu's options (``bench --device gpu`` before it was its own command)."""
    add_model(parser, detail="the export to serve", required=True)
    add_input(parser, "data", detail="texts, optionally text<TAB>label lines", required=True)
    add_output(parser, "the report directory (gpu_served.json, gpu_served.md; work/ holds repositories and logs)",
               required=True)
    flag(parser, "max_texts", type=int, default=None, help="use only the first N texts of --input")
    flag(parser, "instance_kind", default="auto", choices=tuple(INSTANCE_KINDS),
         help="the model step's instance kind, as build-repo's (auto: KIND_GPU); cpu keeps the CUDA session in a "
              "KIND_CPU instance, so the flow can be rehearsed where Triton sees no GPU")


def run(args: argparse.Namespace) -> int:
    """Benchmark on the GPU; 1 if a precision's measurement failed."""
    from tritoncls.cli_common import quiet_paddlenlp

    quiet_paddlenlp()
    from tritoncls.benchmarks.gpu_served import REPORT_MD, GpuBenchConfig, markdown, run_gpu_bench

    config = config_from_args(GpuBenchConfig, args, **({} if args.max_texts else {"max_texts": GpuBenchConfig.max_texts}))
    report = run_gpu_bench(config)
    print(markdown(report))
    print(f"report: {args.output}/{REPORT_MD}")
    return 1 if any(r["errors"] for r in report["precisions"]) else 0
