"""Where a model step's time goes, by operator: ONNX Runtime's own profiler over real batches.

The useful-FLOP/s target compares the served model with the best FP32 GEMM the machine measured. When the
ratio falls short, this says where the rest of the model step goes, in numbers rather than guesses:

- the products with the layer weights (Q/K/V, output, feed-forward, pooler, classifier), with the FLOPs they
  execute (padded rows included) and the rate they reach;
- the attention products (Q·Kᵀ, weights x V), the same way;
- every other operator kind (softmax, GELU, LayerNorm, adds, transposes, embeddings' gathers, ...);
- the session's own time outside the operators;

plus the padding: the FLOPs the products execute on padded positions beyond the useful ones (real tokens).
The same products are then measured alone, at the model's own sizes, as a one-node ONNX Runtime graph: the
limit at those sizes, against the large-GEMM limit of :mod:`.machine`.

Batches are the texts sorted by length, cut into batches of the served point's mean texts per model execution,
each padded to its longest row: what the served model step runs after grouping and trimming.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tritoncls.errors import BenchmarkError

log = logging.getLogger(__name__)

PRODUCTS = ("MatMul", "FusedMatMul", "Gemm", "FusedGemm")
#: Operator kinds reported under one name: what each does in an encoder.
KINDS = {"Softmax": "softmax", "BiasGelu": "GELU", "Gelu": "GELU", "FastGelu": "GELU", "Erf": "GELU",
         "SkipLayerNormalization": "LayerNorm", "LayerNormalization": "LayerNorm",
         "SkipSimplifiedLayerNormalization": "LayerNorm", "Gather": "embeddings (Gather)"}
WEIGHTS, ATTENTION, SESSION = "products with weights", "attention products", "session, outside the operators"


@dataclass
class OpShare:
    """One kind of operator: its time over the profiled run, its share, and for products the FLOPs executed."""

    kind: str
    us: float
    share: float
    nodes: int
    flops: float = 0.0  # executed (padded positions included); products only

    @property
    def gflops_per_s(self) -> float | None:
        return self.flops / self.us / 1e3 if self.flops and self.us else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"gflops_per_s": self.gflops_per_s}


@dataclass
class OpProfile:
    """One profiled run of an export's ONNX graph."""

    batch_size: int
    batches: int
    threads: int
    total_us: float  # the session runs, end to end
    kinds: list[OpShare]
    useful_flops: float  # the products' FLOPs on real tokens only (tritoncls.measure.flops' count)
    executed_product_flops: float
    product_limits: list[dict[str, Any]] = field(default_factory=list)  # the weight products measured alone

    def to_dict(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size, "batches": self.batches, "threads": self.threads,
                "total_us": self.total_us, "kinds": [k.to_dict() for k in self.kinds],
                "useful_flops": self.useful_flops, "executed_product_flops": self.executed_product_flops,
                "padding_flops_share": 1 - self.useful_flops / self.executed_product_flops
                if self.executed_product_flops else None,
                "product_limits": self.product_limits}


def _shape(entry: dict[str, Any]) -> list[int]:
    return list(next(iter(entry.values())))


def product_flops(event: dict[str, Any]) -> tuple[str, float, tuple[int, int, int]]:
    """(kind, FLOPs, (rows, inner, columns)) of one product node's profile event. A constant right-hand matrix
    (a layer's weights) was packed at load, so ONNX Runtime lists only the left input; two inputs of rank 3 or
    more are an attention product."""
    args = event["args"]
    inputs = [_shape(entry) for entry in args.get("input_type_shape", [])]
    out = _shape(args["output_type_shape"][0])
    if not inputs or not out:
        raise BenchmarkError(f"ONNX Runtime's profile has no shapes for {event.get('name')}")
    inner = int(inputs[0][-1])
    columns = int(out[-1])
    rows = int(np.prod(out)) // max(columns, 1)
    kind = WEIGHTS if len(inputs) == 1 or len(inputs[1]) <= 2 else ATTENTION
    return kind, 2.0 * rows * inner * columns, (rows, inner, columns)


def summarize(events: Sequence[dict[str, Any]]) -> tuple[list[OpShare], float, float, dict[tuple[int, int, int], int]]:
    """Operator kinds of a profile's events, largest first (shares of the session runs' total time), the runs'
    total time, the products' executed FLOPs and how often each weight-product size ran."""
    total = sum(e["dur"] for e in events if e.get("name") == "model_run")
    time: dict[str, float] = defaultdict(float)
    flops: dict[str, float] = defaultdict(float)
    nodes: dict[str, int] = defaultdict(int)
    sizes: dict[tuple[int, int, int], int] = defaultdict(int)
    for event in events:
        if event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time"):
            continue
        op = event["args"].get("op_name", "?")
        if op in PRODUCTS:
            kind, count, size = product_flops(event)
            flops[kind] += count
            if kind == WEIGHTS:
                sizes[size] += 1
        else:
            kind = KINDS.get(op, f"other: {op}")
        time[kind] += event["dur"]
        nodes[kind] += 1
    kinds = [OpShare(kind, us, us / total if total else 0.0, nodes[kind], flops.get(kind, 0.0))
             for kind, us in time.items()]
    small = [k for k in kinds if k.kind.startswith("other: ") and k.share < 0.01]
    kinds = [k for k in kinds if k not in small]
    if small:
        us = sum(k.us for k in small)
        kinds.append(OpShare(f"other ({len(small)} kinds, each < 1%)", us, us / total if total else 0.0,
                             sum(k.nodes for k in small)))
    outside = total - sum(time.values())
    kinds.append(OpShare(SESSION, outside, outside / total if total else 0.0, 0))
    return sorted(kinds, key=lambda k: -k.us), total, sum(flops.values()), dict(sizes)


def batches_of(rows: Sequence[Sequence[int]], batch_size: int, pad_id: int) -> list[np.ndarray]:
    """The rows sorted by length in batches of ``batch_size``, each padded to its longest row."""
    ordered = sorted(rows, key=len)
    out = []
    for start in range(0, len(ordered), batch_size):
        chunk = ordered[start:start + batch_size]
        ids = np.full((len(chunk), max(len(r) for r in chunk)), pad_id, dtype=np.int64)
        for i, row in enumerate(chunk):
            ids[i, :len(row)] = row
        out.append(ids)
    return out


def profile_export(export_dir: Path, rows: Sequence[Sequence[int]], batch_size: int, useful_flops: float,
                   threads: int | None = None, limit_repeats: int = 5) -> OpProfile:
    """Run ``rows`` through the export's ONNX graph once untimed, then once more, profiled by ONNX Runtime, in one
    session, and measure its most frequent weight-product sizes alone. ``useful_flops``: the products' FLOPs on
    the rows' real tokens (:func:`tritoncls.measure.flops.total_flops`)."""
    import onnxruntime as ort

    from tritoncls.runtime import Manifest
    from tritoncls.runtime.runners import usable_cores

    manifest = Manifest.load(export_dir)
    threads = threads or usable_cores()
    batches = batches_of(rows, max(1, batch_size), manifest.tokenizer.pad_token_id)
    with tempfile.TemporaryDirectory(prefix="tritoncls-opprofile-") as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(tmp, "profile")
        session = ort.InferenceSession(str(export_dir / manifest.onnx.file), options, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        for ids in batches + batches:  # the first pass grows the session's arena to every shape; only the second counts
            session.run(None, dict(zip(names, (ids, np.zeros_like(ids)))))
        events = json.loads(Path(session.end_profiling()).read_text(encoding="utf-8"))
    events = second_pass(events, len(batches))
    kinds, total, executed, sizes = summarize(events)
    limits = [_product_limit(size, threads, limit_repeats) for size in typical_products(sizes)]
    return OpProfile(batch_size, len(batches), threads, total, kinds, useful_flops, executed, limits)


def second_pass(events: list[dict], warm_runs: int) -> list[dict]:
    """The profile ``events`` after the first ``warm_runs`` runs (``model_run`` events) of the session ended."""
    runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
    if not 0 < warm_runs < len(runs):
        return events
    last = runs[warm_runs - 1]
    return [e for e in events if e.get("ts", 0) >= last["ts"] + last["dur"]]


def typical_products(sizes: dict[tuple[int, int, int], int], count: int = 3) -> list[tuple[int, int, int]]:
    """The weight products that carry the most FLOPs, by (inner, columns) (H x H, H x FFN, FFN x H), each at
    its mean number of rows over the run (rows = texts x padded length, which varies by batch)."""
    flops: dict[tuple[int, int], float] = defaultdict(float)
    rows: dict[tuple[int, int], float] = defaultdict(float)
    runs: dict[tuple[int, int], int] = defaultdict(int)
    for (m, k, n), times in sizes.items():
        flops[(k, n)] += 2.0 * m * k * n * times
        rows[(k, n)] += m * times
        runs[(k, n)] += times
    top = sorted(flops, key=lambda kn: -flops[kn])[:count]
    return [(max(1, round(rows[kn] / runs[kn])), *kn) for kn in top]


def _product_limit(size: tuple[int, int, int], threads: int, repeats: int) -> dict[str, Any]:
    """One weight product alone, at the model's size: ONNX Runtime's MatMul with constant weights."""
    from tritoncls.measure.machine import onnxruntime_matmul_seconds

    rows, inner, columns = size
    try:
        seconds = onnxruntime_matmul_seconds(rows, inner, columns, repeats, threads)
    except Exception as exc:  # noqa: BLE001 - a kernel that fails is reported, the profile stands
        return {"size": list(size), "error": str(exc).splitlines()[0]}
    return {"size": list(size), "gflops_per_s": 2.0 * rows * inner * columns / seconds / 1e9,
            "kernel": "onnxruntime MatMul (MLAS), constant weights"}
