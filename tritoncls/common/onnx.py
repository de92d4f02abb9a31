"""ONNX graph tools shared by export, the builder, the offline predictor and the benchmarks:
reading a graph's inputs and outputs, ONNX Runtime's dynamic INT8 quantization and its FP16 conversion."""

from __future__ import annotations

import logging
from pathlib import Path

from tritoncls.common.files import produce_file
from tritoncls.runtime.contract import INT8_ONNX_FILE
from tritoncls.runtime.manifest import Graph, Manifest, TensorSpec

log = logging.getLogger(__name__)

_ONNX_DTYPES = {1: "float32", 6: "int32", 7: "int64", 10: "float16"}


def onnx_io(path: str | Path) -> Graph:
    """Names, dtypes and shapes (-1 for dynamic) of an ONNX graph's inputs and outputs."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph

    def describe(value) -> TensorSpec:
        tensor = value.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
        return TensorSpec(value.name, _ONNX_DTYPES.get(tensor.elem_type, str(tensor.elem_type)), shape)

    initializers = {init.name for init in graph.initializer}
    return Graph(inputs=tuple(describe(v) for v in graph.input if v.name not in initializers),
                 outputs=tuple(describe(v) for v in graph.output))


def quantize_int8(source: Path, target: Path) -> Path:
    """ONNX Runtime dynamic INT8 quantization of ``source`` into ``target`` (weights int8 per tensor,
    activations quantized at run time; CPU). ``target`` is whole or absent."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    def quantize(tmp: Path) -> None:
        quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8, per_channel=False)

    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))  # quantize_dynamic logs every tensor (and advice) through the root logger
    try:
        return produce_file(target, quantize)
    finally:
        root.setLevel(level)


def float16_onnx(source: Path, target: Path) -> Path:
    """``source`` with FP16 weights and compute, its FP32 inputs and outputs kept (ONNX Runtime's
    ``float16`` converter, what its CUDA provider runs fastest); ``target`` is whole or absent."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    return produce_file(target, lambda tmp: onnx.save(model, str(tmp)))


def quantized_onnx(export_dir: str | Path, manifest: Manifest | None = None) -> Path:
    """The export's ONNX graph quantized to INT8 (see :func:`quantize_int8`), cached beside it as
    ``model.int8.onnx`` and rebuilt when the FP32 graph is newer."""
    export_dir = Path(export_dir)
    source = export_dir / (manifest or Manifest.load(export_dir)).onnx.file
    target = export_dir / INT8_ONNX_FILE
    if target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
        return target
    log.info("Quantizing %s to INT8 (ONNX Runtime dynamic quantization)", source)
    return quantize_int8(source, target)
