"""Check a rendered repository the way Triton will see it, before it replaces anything.

* every ``config.pbtxt`` parses with Triton's own ``ModelConfig`` protobuf;
* every ensemble ``input_map``/``output_map`` names tensors that exist, with matching dtypes and dims;
* the model step's names, dtypes and dims match the graph it serves (the repository's own
  ``model.onnx``, or the export manifest's Paddle section for Paddle graphs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tritoncls.builder.specs import TRITON_DTYPES
from tritoncls.errors import BuildError
from tritoncls.runtime.contract import REPO_ONNX_FILE, REPO_PADDLE_MODEL_FILE
from tritoncls.runtime.manifest import Graph

CONFIG = "config.pbtxt"
FUSED_GRAPH_KEYS = {"graph_inputs", "graph_output"}  # rt.FusedParameters' names of the graph's tensors


def parse_config(path: Path):
    """``path`` parsed into ``tritonclient.grpc.model_config_pb2.ModelConfig``."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    try:
        return text_format.Parse(path.read_text(encoding="utf-8"), model_config_pb2.ModelConfig())
    except text_format.ParseError as exc:
        raise BuildError(f"{path}:{exc}: not a valid Triton model config; fix the template that rendered it.") from None


def load_configs(root: Path) -> dict[str, Any]:
    """Every model folder's parsed config, by model name; the name must match the folder."""
    configs = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        path = folder / CONFIG
        if not path.is_file():
            raise BuildError(f"{folder}: a model folder without {CONFIG}; Triton would refuse to load it.")
        config = parse_config(path)
        if config.name != folder.name:
            raise BuildError(f"{path}: field 'name' is {config.name!r} but the folder is {folder.name!r}; they must match.")
        if not any(p.is_dir() and p.name.isdigit() for p in folder.iterdir()):
            raise BuildError(f"{folder}: no numeric version folder (e.g. 1/); Triton would find no model version.")
        configs[config.name] = config
    if not configs:
        raise BuildError(f"{root}: no model folders rendered.")
    return configs


def validate_repository(root: str | Path, paddle_graph: Graph | None = None) -> dict[str, Any]:
    """Parse and cross-check every config under ``root``; returns the parsed configs by name.

    ``paddle_graph`` (the manifest's ``paddle`` section) checks models that serve model.json.
    """
    root = Path(root)
    configs = load_configs(root)
    for name, config in configs.items():
        path = root / name / CONFIG
        if config.platform == "ensemble":
            check_ensemble(path, config, configs)
        version_dir = root / name / "1"
        onnx_file = version_dir / REPO_ONNX_FILE
        check = check_fused_graph if is_fused(config) else check_against_graph
        if onnx_file.is_file():
            check(path, config, onnx_graph(onnx_file), onnx_file)
        elif (version_dir / REPO_PADDLE_MODEL_FILE).is_file() and paddle_graph is not None:
            check(path, config, paddle_graph, Path("manifest.json (paddle section)"))
    return configs


def is_fused(config) -> bool:
    """A fused-layout model: one python model whose graph's tensor names are parameters, not its inputs."""
    return FUSED_GRAPH_KEYS <= set(config.parameters)


# ---------------------------------------------------------------------------------------------
# Tensors
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorInfo:
    dtype: str  # Triton enum name, e.g. TYPE_INT64
    dims: tuple[int, ...]  # without the batch dimension
    source: str  # where it comes from, for messages


def _dtype_name(value: int) -> str:
    from tritonclient.grpc import model_config_pb2

    return model_config_pb2.DataType.Name(value)


def _io(tensors) -> dict[str, TensorInfo]:
    return {t.name: TensorInfo(_dtype_name(t.data_type), tuple(t.dims), "") for t in tensors}


def dims_compatible(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """Same rank, and each pair of sizes equal or one of them variable (-1)."""
    return len(a) == len(b) and all(x == y or -1 in (x, y) for x, y in zip(a, b))


def _check_same(where: str, what: str, have: TensorInfo, want: TensorInfo) -> None:
    if have.dtype != want.dtype or not dims_compatible(have.dims, want.dims):
        raise BuildError(
            f"{where}: {what} is {have.dtype} {list(have.dims)} ({have.source}) but {want.source} expects "
            f"{want.dtype} {list(want.dims)}; make the two models agree.")


# ---------------------------------------------------------------------------------------------
# Ensembles
# ---------------------------------------------------------------------------------------------


def check_ensemble(path: Path, ensemble, configs: dict[str, Any]) -> None:
    """Walk the steps in order, tracking which ensemble tensors exist and what they hold."""
    tensors = {name: TensorInfo(t.dtype, t.dims, "ensemble input") for name, t in _io(ensemble.input).items()}
    for i, step in enumerate(ensemble.ensemble_scheduling.step):
        field = f"ensemble_scheduling.step[{i}]"
        model = configs.get(step.model_name)
        if model is None:
            raise BuildError(f"{path}: {field}.model_name {step.model_name!r} names no model in {path.parent.parent}; "
                             f"known models: {sorted(configs)}.")
        if model.max_batch_size < ensemble.max_batch_size:
            raise BuildError(f"{path}: max_batch_size {ensemble.max_batch_size} exceeds {step.model_name!r}'s "
                             f"{model.max_batch_size}; Triton refuses such an ensemble. Use one --max_batch_size for all.")
        _check_inputs(path, field, step, _io(model.input), tensors)
        _add_outputs(path, field, step, _io(model.output), tensors)
    for name, want in _io(ensemble.output).items():
        if name not in tensors:
            raise BuildError(f"{path}: ensemble output {name!r} is produced by no step's output_map; map a step output to it.")
        _check_same(str(path), f"ensemble output {name!r}", tensors[name], TensorInfo(want.dtype, want.dims, "the ensemble output"))


def _check_inputs(path: Path, field: str, step, inputs: dict[str, TensorInfo], tensors: dict[str, TensorInfo]) -> None:
    for key, value in step.input_map.items():
        if key not in inputs:
            raise BuildError(f"{path}: {field}.input_map key {key!r} is not an input of {step.model_name!r} "
                             f"(its inputs: {sorted(inputs)}); use one of those names.")
        if value not in tensors:
            raise BuildError(f"{path}: {field}.input_map value {value!r} is neither an ensemble input nor an "
                             f"earlier step's output (known: {sorted(tensors)}).")
        want = TensorInfo(inputs[key].dtype, inputs[key].dims, f"{step.model_name!r} input {key!r}")
        _check_same(f"{path}: {field}.input_map", f"tensor {value!r}", tensors[value], want)
    unmapped = sorted(set(inputs) - set(step.input_map))
    if unmapped:
        raise BuildError(f"{path}: {field} leaves inputs {unmapped} of {step.model_name!r} unmapped; add input_map entries.")


def _add_outputs(path: Path, field: str, step, outputs: dict[str, TensorInfo], tensors: dict[str, TensorInfo]) -> None:
    for key, value in step.output_map.items():
        if key not in outputs:
            raise BuildError(f"{path}: {field}.output_map key {key!r} is not an output of {step.model_name!r} "
                             f"(its outputs: {sorted(outputs)}); use one of those names.")
        tensors[value] = TensorInfo(outputs[key].dtype, outputs[key].dims, f"{step.model_name!r} output {key!r}")


# ---------------------------------------------------------------------------------------------
# The model step against its graph
# ---------------------------------------------------------------------------------------------


def onnx_graph(path: Path) -> Graph:
    from tritoncls.common.onnx import onnx_io

    return onnx_io(path)


def check_fused_graph(path: Path, config, graph: Graph, graph_file: Path) -> None:
    """A fused model's parameters name the graph's inputs (in order) and output as the graph does."""
    inputs = config.parameters["graph_inputs"].string_value.split(",")
    output = config.parameters["graph_output"].string_value
    actual_inputs, actual_outputs = [i.name for i in graph.inputs], [o.name for o in graph.outputs]
    if inputs != actual_inputs or [output] != actual_outputs:
        raise BuildError(f"{path}: parameters graph_inputs {inputs} / graph_output {output!r} differ from "
                         f"{graph_file}'s inputs {actual_inputs} / outputs {actual_outputs}; the manifest and the "
                         f"graph disagree: re-export the model, then rebuild.")
    for item in graph.inputs:
        if item.shape[:1] != (-1,):
            raise BuildError(f"{graph_file}: input {item.name!r} has a fixed batch dimension {item.shape[0]}; export "
                             f"with a dynamic batch dimension so Triton can batch.")


def check_against_graph(path: Path, config, graph: Graph, graph_file: Path) -> None:
    """Config inputs/outputs == the graph's, by name, dtype and dims (batch dimension excluded)."""
    for kind, tensors, items in (("input", config.input, graph.inputs), ("output", config.output, graph.outputs)):
        declared = _io(tensors)
        actual = {item.name: item for item in items}
        if set(declared) != set(actual):
            raise BuildError(f"{path}: {kind} names {sorted(declared)} differ from {graph_file}'s {sorted(actual)}; "
                             f"the manifest and the graph disagree: re-export the model, then rebuild.")
        for name, info in declared.items():
            shape = actual[name].shape
            dtype = TRITON_DTYPES.get(actual[name].dtype, actual[name].dtype)
            if shape[:1] != (-1,):
                raise BuildError(f"{graph_file}: {kind} {name!r} has a fixed batch dimension {shape[0]}; export with a "
                                 f"dynamic batch dimension so Triton can batch.")
            _check_same(f"{path}: {kind} {name!r}", "the config", TensorInfo(info.dtype, info.dims, "config.pbtxt"),
                        TensorInfo(dtype, shape[1:], str(graph_file)))
