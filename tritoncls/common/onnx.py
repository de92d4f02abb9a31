"""ONNX graph tools shared by export, the builder, the offline predictor and the benchmarks:
reading a graph's inputs and outputs, ONNX Runtime's INT8 quantization (dynamic, or static with
calibration texts) and its FP16 conversion."""

from __future__ import annotations

import logging
import random
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tritoncls.common.data import read_text_column
from tritoncls.common.files import produce_file
from tritoncls.errors import DataError
from tritoncls.runtime.batching import pad_rows
from tritoncls.runtime.contract import INT8_ONNX_FILE
from tritoncls.runtime.manifest import Graph, Manifest, TensorSpec
from tritoncls.runtime.predictor import export_tokenizer, length_batches

log = logging.getLogger(__name__)

INT8_MODES = ("dynamic", "static")
#: Texts a static quantization calibrates on: on the KUAKE-QIC model of docs/benchmarks.md ("Static INT8"),
#: 64 texts gave FP32's label on 99.74% of dev, 256 on 99.90%, 1024 on 99.95% (calibration time grows with the count).
DEFAULT_CALIBRATION_TEXTS = 256
CALIBRATION_BATCH_SIZE = 32  # texts per calibration batch, sorted by length and padded per batch like the runtime
CALIBRATION_SEED = 0  # which texts a file with more than the count gives: a seeded random sample, the same each build

#: What :func:`quantize_int8` does, as tritoncls_build.json and derived manifests record it.
DYNAMIC_INT8 = {"tool": "onnxruntime quantize_dynamic", "weights": "int8, per tensor",
                "activations": "uint8, scale and zero point computed at run time for every batch",
                "operators": "MatMul with a constant weight (the attention products stay FP32)"}
#: What :func:`quantize_int8_static` does. Each choice was measured on a trained KUAKE-QIC export against the
#: alternatives (docs/benchmarks.md, "Static INT8"): int8 activations ran 0.6x as fast as uint8 at the same
#: agreement; quantizing the products' outputs too (the tool's default) was slower and agreed less with FP32;
#: INT8 attention products, per-channel weights and the Percentile and Entropy calibrators gained nothing (the
#: latter two also need every calibration batch padded to one length in ONNX Runtime 1.32, and keep every
#: calibrated activation in memory, where MinMax reduces each to its min and max inside the graph).
STATIC_INT8 = {"tool": "onnxruntime quantize_static, QDQ format, after quant_pre_process",
               "weights": "int8, per tensor, symmetric",
               "activations": "uint8, per tensor, scale and zero point fixed at build time from the calibration texts",
               "calibration_method": "MinMax",
               "operators": "MatMul with a constant weight, its output kept FP32; the attention products stay FP32 "
                            "as dynamic leaves them, and so do the pooler and classifier (Gemm after the preparation)"}

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
    """ONNX Runtime dynamic INT8 quantization of ``source`` into ``target`` (see :data:`DYNAMIC_INT8`; CPU).
    ``target`` is whole or absent."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    def quantize(tmp: Path) -> None:
        quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8, per_channel=False)

    with _quiet_root_logger():
        return produce_file(target, quantize)


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """ONNX Runtime's quantization tools log every tensor (and advice) through the root logger."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
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


# ---------------------------------------------------------------------------------------------
# Static INT8: activation scales calibrated on texts at build time
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationTexts:
    """The texts a static quantization calibrates on, and the file they came from."""

    path: Path
    texts: tuple[str, ...]
    available: int  # texts in the file (``texts`` is a sample of them where the file holds more)

    @classmethod
    def read(cls, path: str | Path, count: int = DEFAULT_CALIBRATION_TEXTS) -> CalibrationTexts:
        """Up to ``count`` texts of a file of ``text`` or ``text<TAB>label`` lines (a data set's train.txt or
        dev.txt, or data.txt), a seeded random sample where it holds more, in file order."""
        path = Path(path)
        if count < 1:
            raise DataError(f"{path}: {count} calibration texts asked for; ask for at least 1 "
                            f"(default {DEFAULT_CALIBRATION_TEXTS}).")
        if not path.is_file():
            hint = "it is a directory" if path.is_dir() else "it does not exist"
            raise DataError(f"{path}: calibration texts file not found ({hint}). Pass a file of texts, one a line "
                            f"(text<TAB>label lines work too), e.g. the train.txt the model was trained on.")
        texts, _ = read_text_column(path)
        chosen = sorted(random.Random(CALIBRATION_SEED).sample(range(len(texts)), count)) if len(texts) > count \
            else range(len(texts))
        return cls(path, tuple(texts[i] for i in chosen), len(texts))

    def to_dict(self) -> dict[str, Any]:
        return {"file": str(self.path.resolve()), "texts": len(self.texts), "texts_in_file": self.available,
                "sample": f"seeded random sample (seed {CALIBRATION_SEED})" if len(self.texts) < self.available
                else "every text"}


class TextCalibrationReader:
    """ONNX Runtime's calibration data reader over texts: the export's own tokenizer, batches of texts sorted by
    length and padded to their longest (what the runtime feeds the graph), int64 ``input_ids`` and
    ``token_type_ids`` under the graph's input names from the manifest.

    ONNX Runtime's ``CalibrationDataReader`` recognises any class with ``get_next`` as one of its own
    (``__subclasshook__``), so onnxruntime is not imported until a quantization runs.
    """

    def __init__(self, texts: Sequence[str], export_dir: str | Path, manifest: Manifest | None = None,
                 batch_size: int = CALIBRATION_BATCH_SIZE) -> None:
        if not texts:
            raise DataError(f"{export_dir}: no calibration texts; pass at least one text.")
        manifest = manifest or Manifest.load(export_dir)
        rows = export_tokenizer(export_dir, manifest).encode(list(texts))
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        names = manifest.onnx.input_names
        spec = manifest.tokenizer
        self.batches: list[dict[str, np.ndarray]] = []
        for batch in length_batches(lengths, batch_size):
            selected = [rows[i] for i in batch]
            ids, types = pad_rows(selected, max(len(r) for r in selected), spec.pad_token_id, spec.pad_token_type_id)
            self.batches.append(dict(zip(names, (ids, types))))
        self._next = iter(self.batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._next, None)

    def rewind(self) -> None:
        self._next = iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def quantize_int8_static(source: Path, target: Path, reader: TextCalibrationReader) -> Path:
    """ONNX Runtime static INT8 quantization of ``source`` into ``target`` (see :data:`STATIC_INT8`; CPU), its
    activation ranges calibrated on ``reader``'s batches. ``target`` is whole or absent."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    def quantize(tmp: Path) -> None:
        with tempfile.TemporaryDirectory(prefix=".quantize-", dir=target.parent) as work:
            prepared = Path(work) / "prepared.onnx"
            # ONNX Runtime's recommended preparation (constant folding, shape inference); its symbolic shape
            # inference cannot resolve the Paddle graphs' dynamic reshapes, and the quantizer does not need it
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            model = onnx.load(str(prepared))
            activation_products = _products_of_activations(model)
            onnx.save(model, str(prepared))
            reader.rewind()
            quantize_static(str(prepared), str(tmp), reader, quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=["MatMul"], nodes_to_exclude=activation_products,
                            per_channel=False, reduce_range=False, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                            extra_options={"OpTypesToExcludeOutputQuantization": ["MatMul"]})

    with _quiet_root_logger():
        return produce_file(target, quantize)


def _products_of_activations(model: Any) -> list[str]:
    """Names of the MatMul nodes whose right operand is not a weight (attention's Q·Kᵀ and weights x V), naming
    every unnamed node of ``model`` first (the quantizer excludes nodes by name; an empty name would match every
    unnamed node). ONNX Runtime's ``MatMulConstBOnly`` option does this for its QOperator format only, not QDQ."""
    graph = model.graph
    taken = {node.name for node in graph.node}
    for i, node in enumerate(graph.node):
        if not node.name:
            name, k = f"{node.op_type}_{i}", 0
            while name in taken:
                k += 1
                name = f"{node.op_type}_{i}_{k}"
            node.name = name
            taken.add(name)
    weights = {init.name for init in graph.initializer}
    return [node.name for node in graph.node if node.op_type == "MatMul" and node.input[1] not in weights]


def static_quantized_onnx(export_dir: str | Path, calibration: CalibrationTexts, target: str | Path,
                          manifest: Manifest | None = None) -> Path:
    """The export's ONNX graph statically quantized to INT8 at ``target``, calibrated on ``calibration``'s texts
    tokenized by the export's own tokenizer."""
    export_dir = Path(export_dir)
    manifest = manifest or Manifest.load(export_dir)
    source = export_dir / manifest.onnx.file
    log.info("Quantizing %s to INT8 (ONNX Runtime static quantization, %d calibration texts from %s)",
             source, len(calibration.texts), calibration.path)
    return quantize_int8_static(source, Path(target), TextCalibrationReader(calibration.texts, export_dir, manifest))


def int8_record(mode: str, calibration: CalibrationTexts | None = None) -> dict[str, Any]:
    """What an INT8 graph's quantization was, for tritoncls_build.json and derived manifests."""
    if mode == "dynamic":
        return {"mode": "dynamic", **DYNAMIC_INT8}
    if calibration is None:
        raise ValueError("static INT8 quantization records its calibration texts")
    return {"mode": "static", **STATIC_INT8, "calibration": calibration.to_dict()}
