"""Every decision about the repository: which models, which tensors, which files, which settings.

Input: the resolved :class:`BuildConfig` and the export (its manifest). Output: a
:class:`RepositoryPlan` of typed specs that the templates render without deciding anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tritoncls import runtime as rt
from tritoncls.builder.config import DEFAULT_LOW_CONFIDENCE, INSTANCE_KINDS, BuildConfig
from tritoncls.builder.specs import (
    TRITON_DTYPES,
    Accelerator,
    AcceleratorGroup,
    DynamicBatching,
    EnsembleSpec,
    InstanceGroup,
    Mapping,
    ModelSpec,
    Parameter,
    Step,
    Tensor,
)
from tritoncls.errors import BuildError
from tritoncls.runtime.manifest import Manifest, OnnxGraph, PaddleGraph, TensorSpec, TokenizerSpec
from tritoncls.runtime.metrics import Reference

DEFAULT_NAME = "seqcls"
VERSION = "1"
ONNX_FILE = rt.contract.REPO_ONNX_FILE
PADDLE_MODEL_FILE = rt.contract.REPO_PADDLE_MODEL_FILE  # Paddle 3 (PIR) program
PADDLE_PARAMS_FILE = rt.contract.REPO_PADDLE_PARAMS_FILE
TRT_WORKSPACE_BYTES = 1 << 30


# ---------------------------------------------------------------------------------------------
# The export
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportInfo:
    """An export directory and its manifest, checked for what the repository needs."""

    directory: Path
    manifest: Manifest
    labels: tuple[str, ...]
    reference: Reference | None = None  # the dev data's distribution, where the export recorded one

    @classmethod
    def load(cls, directory: str | Path, graph: str | None = None) -> ExportInfo:
        """The export at ``directory``; with ``graph`` ("onnx" or "paddle") only that graph's files must be there
        (a repository copies one graph: an export can travel without the other, e.g. to a GPU machine)."""
        directory = Path(directory)
        try:
            manifest = Manifest.load(directory)
        except rt.ManifestError as exc:
            raise BuildError(str(exc)) from None
        for i, label in enumerate(manifest.labels):
            if "\n" in label or "\r" in label:
                raise BuildError(f"{directory / rt.MANIFEST_FILE}: labels[{i}] {label!r} contains a line break; "
                                 f"label.txt holds one label a line, so it cannot be served. Rename the label, "
                                 f"then retrain or re-export.")
        label_file = directory / manifest.label_file
        try:
            labels = tuple(rt.read_labels(label_file))
        except FileNotFoundError:
            raise BuildError(f"{label_file}: not found (manifest.json field 'label_file'); re-run `tritoncls export`.") from None
        except UnicodeDecodeError as exc:
            raise BuildError(f"{label_file}: not UTF-8 text ({exc.reason} at byte {exc.start}); re-run `tritoncls export`.") from None
        info = cls(directory, manifest, labels)
        info._check(graph)
        if manifest.reference_file:
            try:
                info = replace(info, reference=Reference.load(directory / manifest.reference_file))
            except rt.ManifestError as exc:
                raise BuildError(str(exc)) from None
        return info

    @property
    def max_seq_length(self) -> int:
        return self.manifest.max_seq_length

    @property
    def num_labels(self) -> int:
        return self.manifest.num_labels

    @property
    def tokenizer(self) -> TokenizerSpec:
        return self.manifest.tokenizer

    def path(self, name: str) -> Path:
        return self.directory / name

    def graph(self, section: str) -> OnnxGraph | PaddleGraph:
        """The ``onnx`` or ``paddle`` graph: file names and input/output names, dtypes, shapes."""
        return {"onnx": self.manifest.onnx, "paddle": self.manifest.paddle}[section]

    def _check(self, graph: str | None) -> None:
        where = self.path(rt.MANIFEST_FILE)
        if self.labels != self.manifest.labels:
            raise BuildError(f"{self.path(self.manifest.label_file)}: labels differ from {where} field 'labels'; re-export the model.")
        m = self.manifest
        needed = m.files if graph is None else (m.label_file, *self.graph(graph).files, *m.tokenizer.files.values())
        missing = [name for name in needed if not self.path(name).is_file()]
        if missing:
            raise BuildError(f"{self.directory}: files {missing} named in {where} are missing; re-run `tritoncls export`.")
        if graph in (None, "onnx"):
            _check_onnx(self.path(self.manifest.onnx.file))
        vocab_path = self.path(self.tokenizer.vocab_file)
        try:
            vocab = rt.read_vocab(vocab_path)
        except UnicodeDecodeError as exc:
            raise BuildError(f"{vocab_path}: not UTF-8 text ({exc.reason} at byte {exc.start}); the file is corrupt: "
                             f"re-run `tritoncls export`.") from None
        absent = [t for t in self.tokenizer.special_tokens.values() if t not in vocab]
        if absent:
            raise BuildError(f"{vocab_path}: special tokens {absent} (manifest field tokenizer.special_tokens) are not "
                             f"in the vocabulary; re-export the model.")


def _check_onnx(path: Path) -> None:
    """A truncated or corrupt model.onnx fails here, naming the file, rather than at serve time."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
        if not model.graph.node or not model.graph.output:
            raise ValueError("it holds no graph")
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001 - protobuf and onnx raise several types for a bad file
        raise BuildError(f"{path}: not a valid ONNX model ({type(exc).__name__}: {str(exc).strip()[:200] or 'empty'}); "
                         f"the file is truncated or corrupt: re-run `tritoncls export`.") from None


# ---------------------------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepNames:
    ensemble: str
    tokenizer: str
    model: str
    postprocess: str

    @classmethod
    def for_name(cls, name: str) -> StepNames:
        """The PaddleNLP reference's names for the default ``seqcls``; any other name prefixes every
        step, so two classifiers can share one server."""
        if name == DEFAULT_NAME:
            return cls(name, "tokenizer", "seqcls_model", "seqcls_postprocess")
        return cls(name, f"{name}_tokenizer", f"{name}_model", f"{name}_postprocess")


@dataclass(frozen=True)
class ModelDir:
    """One model folder: its config spec and what goes into its version folder."""

    spec: ModelSpec | EnsembleSpec
    files: tuple[tuple[Path, str], ...] = ()  # (source, name inside <model>/1/)
    python_model: str = ""  # python_models/<file> copied as <model>/1/model.py, with the runtime beside it
    quantize: bool = False  # --precision int8: the model.onnx copied in is replaced by its INT8 quantization
    fp16: bool = False  # --precision fp16 without TensorRT: ... by its FP16 conversion (FP32 inputs and outputs)


@dataclass(frozen=True)
class RepositoryPlan:
    config: BuildConfig
    export: ExportInfo
    names: StepNames
    buckets: tuple[int, ...]
    models: tuple[ModelDir, ...]
    roles: tuple[tuple[str, str], ...] = ()  # (model name, what it does) for the README

    def model(self, name: str) -> ModelDir:
        return next(m for m in self.models if m.spec.name == name)


def plan_repository(config: BuildConfig, export: ExportInfo) -> RepositoryPlan:
    config = config.resolved()
    buckets = clip_buckets(config.buckets, export.max_seq_length)
    if config.top_k > export.num_labels:
        raise BuildError(f"--top_k {config.top_k} is more than the model's {export.num_labels} labels; lower it.")
    task = export.manifest.task
    if config.top_k and task.multi_label:
        raise BuildError(f"--top_k: this export is a {task.task} model, whose repository returns every label's "
                         f"probability (output `{rt.PROBS}`) beside each text's label set; drop --top_k.")
    rules = export.tokenizer.rules
    if config.tokenizer != "wordpiece" and rules != "paddlenlp":
        raise BuildError(f"--tokenizer {config.tokenizer}: only the wordpiece tokenizer splits text by the {rules!r} "
                         f"rules this model was trained with (manifest field tokenizer.rules); the {config.tokenizer} "
                         f"tokenizer would give other ids. Use --tokenizer wordpiece.")
    return LAYOUTS[config.layout](config, export, buckets)


def _ensemble_layout(config: BuildConfig, export: ExportInfo, buckets: tuple[int, ...]) -> RepositoryPlan:
    """The default layout: an ensemble of three steps (tokenizer, model step, postprocess)."""
    names = StepNames.for_name(config.name)
    model_step = MODEL_STEPS[config.backend](config, export, names.model)
    models = (
        _tokenizer(config, export, names.tokenizer, buckets),
        model_step,
        _postprocess(config, export, names.postprocess),
    )
    ensemble = ModelDir(_ensemble(config, names, models))
    roles = (
        (names.ensemble, f"ensemble: input `text` (one string per batch row) -> {_outputs_role(export)}"),
        (names.tokenizer, f"python: WordPiece ids, each request padded to a length bucket ({', '.join(map(str, buckets))})"),
        (names.model, f"{config.backend}: token ids -> logits"),
        (names.postprocess, f"python: {_postprocess_role(export)}"),
    )
    return RepositoryPlan(config, export, names, buckets, (ensemble, *models), roles)


def _fused_layout(config: BuildConfig, export: ExportInfo, buckets: tuple[int, ...]) -> RepositoryPlan:
    """One python model under the ensemble's name, with the ensemble's inputs and outputs, doing all three
    steps in one execution (``--layout fused``)."""
    name = config.name
    names = StepNames(name, name, name, name)
    model = _fused(config, export, name, buckets)
    roles = ((name, f"python: input `text` (one string per batch row) -> {_outputs_role(export)}; tokenizes "
                    f"(length buckets {', '.join(map(str, buckets))}), runs the model and postprocesses in one "
                    "execution (fused layout)"),)
    return RepositoryPlan(config, export, names, buckets, (model,), roles)


def _outputs_role(export: ExportInfo) -> str:
    if export.manifest.task.multi_label:
        return f"`{rt.LABELS}`, `{rt.LABEL_PROBS}`, `{rt.LABEL_COUNT}`, `{rt.PROBS}` ({export.manifest.task.task})"
    return f"`{rt.LABEL}`, `{rt.CONFIDENCE}`"


def _postprocess_role(export: ExportInfo) -> str:
    task = export.manifest.task
    if task.hierarchical:
        return ("a sigmoid per label, each label's threshold, a path only with its parent; label names from "
                "`label.txt`")
    if task.multi_label:
        return "a sigmoid per label and each label's threshold; label names from `label.txt`"
    return "softmax, label names from `label.txt`, top-k"


def _fused(config: BuildConfig, export: ExportInfo, name: str, buckets: tuple[int, ...]) -> ModelDir:
    tok = export.tokenizer
    section = _python_graph_section(config)
    graph = export.graph(section)
    _graph_tensors(export, section, ragged=True)  # the graph has the classifier's two inputs and one output
    graph_files = _python_graph_files(config)
    label_file = export.manifest.label_file
    files = (tuple((export.path(f), f) for f in tok.files.values())
             + tuple((export.path(source), target) for source, target in zip(graph.files, graph_files))
             + ((export.path(label_file), label_file),))
    parameters = rt.FusedParameters(
        tokenizer=_tokenizer_parameters(config, export, buckets), model=_model_parameters(config, export),
        graph=rt.FusedGraphParameters(group_padding=config.group_padding,
                                      graph_inputs=",".join(t.name for t in graph.inputs),
                                      graph_output=graph.outputs[0].name),
        postprocess=_postprocess_parameters(config, export))
    spec = ModelSpec(
        name=name, backend="python", max_batch_size=config.max_batch_size,
        inputs=(Tensor(rt.TEXT, "TYPE_STRING", (1,)),), outputs=_postprocess_outputs(config, export),
        instance_group=_instance_group(config),
        dynamic_batching=_batching(config, config.max_queue_delay_us, config.preferred_batch_sizes),
        parameters=_params(parameters),
    )
    return ModelDir(spec, files, "fused.py", config.precision == "int8", config.fp16_graph)


def clip_buckets(buckets: tuple[int, ...], max_seq_length: int) -> tuple[int, ...]:
    """Buckets below max_seq_length, then max_seq_length itself (every text fits the last one)."""
    return tuple(sorted({b for b in buckets if b < max_seq_length} | {max_seq_length}))


def _params(typed: rt.TokenizerParameters | rt.ModelParameters | rt.PostprocessParameters | rt.FusedParameters,
            ) -> tuple[Parameter, ...]:
    """A python step's typed parameters as config entries (the runtime reads them back with the same class)."""
    return tuple(Parameter(key, value) for key, value in typed.to_strings().items())


def _backend_params(**values: Any) -> tuple[Parameter, ...]:
    """Parameters of Triton's own backends and accelerators (their keys are Triton's, not ours)."""
    return tuple(Parameter(key, _param_text(value)) for key, value in values.items())


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value)


def _batching(config: BuildConfig, delay_us: int, preferred: tuple[int, ...] = ()) -> DynamicBatching | None:
    return DynamicBatching(delay_us, preferred) if config.dynamic_batching else None


def _cpu_instance() -> InstanceGroup:
    return InstanceGroup(1, "KIND_CPU")


def _tokenizer(config: BuildConfig, export: ExportInfo, name: str, buckets: tuple[int, ...]) -> ModelDir:
    tok = export.tokenizer
    files = tuple((export.path(f), f) for f in tok.files.values())
    # No queue delay: the tokenizer batches what queued while it was busy and adds no latency.
    spec = ModelSpec(
        name=name, backend="python", max_batch_size=config.max_batch_size,
        inputs=(Tensor(rt.TEXT, "TYPE_STRING", (1,)),),
        outputs=(Tensor(rt.INPUT_IDS, "TYPE_INT64", (-1,)), Tensor(rt.TOKEN_TYPE_IDS, "TYPE_INT64", (-1,))),
        instance_group=InstanceGroup(config.tokenizer_instances, "KIND_CPU"), dynamic_batching=_batching(config, 0),
        parameters=_params(_tokenizer_parameters(config, export, buckets)),
    )
    return ModelDir(spec, files, "tokenizer.py")


def _tokenizer_parameters(config: BuildConfig, export: ExportInfo, buckets: tuple[int, ...]) -> rt.TokenizerParameters:
    tok = export.tokenizer
    return rt.TokenizerParameters(
        implementation=config.tokenizer, rules=tok.rules, vocab_file=tok.vocab_file, do_lower_case=tok.do_lower_case,
        special_tokens=tok.special_tokens, max_seq_length=export.max_seq_length, padding=config.padding,
        buckets=buckets, pad_token_id=tok.pad_token_id, pad_token_type_id=tok.pad_token_type_id,
        metrics=config.metrics, metrics_model=config.name)


def _graph_tensors(export: ExportInfo, section: str, ragged: bool) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    """The model step's tensors as the graph names them; the batch dimension is Triton's."""
    graph = export.graph(section)

    def tensor(item: TensorSpec, allow_ragged: bool) -> Tensor:
        dtype = TRITON_DTYPES.get(item.dtype)
        if dtype is None:
            raise BuildError(f"{export.path(rt.MANIFEST_FILE)}: {section} tensor {item.name!r} has dtype "
                             f"{item.dtype!r}, which Triton configs cannot express; re-export the model.")
        return Tensor(item.name, dtype, tuple(item.shape[1:]), allow_ragged)

    if len(graph.inputs) != 2 or len(graph.outputs) != 1:
        raise BuildError(f"{export.path(rt.MANIFEST_FILE)}: field '{section}' lists {len(graph.inputs)} inputs and "
                         f"{len(graph.outputs)} outputs; a classifier export has 2 (input_ids, token_type_ids) and 1.")
    return (tuple(tensor(i, ragged) for i in graph.inputs), tuple(tensor(o, False) for o in graph.outputs))


def _instance_group(config: BuildConfig) -> InstanceGroup:
    kind = INSTANCE_KINDS[config.instance_kind] or ("KIND_GPU" if config.device == "gpu" else "KIND_CPU")
    return InstanceGroup(config.instances, kind)


def _python_graph_section(config: BuildConfig) -> str:
    """The export's graph a python model step runs: ``paddle`` for Paddle Inference, else ``onnx``."""
    return "paddle" if config.runtime == "paddle_inference" else "onnx"


def _python_graph_files(config: BuildConfig) -> tuple[str, ...]:
    """The graph's file names inside a python model step's version folder."""
    return (PADDLE_MODEL_FILE, PADDLE_PARAMS_FILE) if config.runtime == "paddle_inference" else (ONNX_FILE,)


def _model_parameters(config: BuildConfig, export: ExportInfo) -> rt.ModelParameters:
    names = _python_graph_files(config)
    return rt.ModelParameters(
        runtime=config.runtime, model_file=names[0], params_file=names[1] if len(names) > 1 else "",
        device=config.device, intra_op_threads=config.intra_op_threads, inter_op_threads=config.inter_op_threads,
        pad_token_id=export.tokenizer.pad_token_id, merge_requests=config.merge_requests,
        trim_padding=config.trim_padding)


def _python_model_step(config: BuildConfig, export: ExportInfo, name: str) -> ModelDir:
    section = _python_graph_section(config)
    inputs, outputs = _graph_tensors(export, section, ragged=True)
    names = _python_graph_files(config)
    files = tuple((export.path(source), name) for source, name in zip(export.graph(section).files, names))
    spec = ModelSpec(
        name=name, backend="python", max_batch_size=config.max_batch_size, inputs=inputs, outputs=outputs,
        instance_group=_instance_group(config),
        dynamic_batching=_batching(config, config.max_queue_delay_us, config.preferred_batch_sizes),
        parameters=_params(_model_parameters(config, export)),
    )
    return ModelDir(spec, files, "model.py", config.precision == "int8", config.fp16_graph)


def _shape_list(inputs: tuple[Tensor, ...], rows: int, width: int) -> str:
    """ONNX Runtime's TensorRT shape syntax: ``input_ids:1x1,token_type_ids:1x1``."""
    return ",".join(f"{t.name}:{rows}x{width}" for t in inputs)


def _opt_width(config: BuildConfig, export: ExportInfo) -> int:
    """The middle length bucket: TensorRT tunes its kernels for this width."""
    buckets = clip_buckets(config.buckets, export.max_seq_length)
    return buckets[(len(buckets) - 1) // 2]


def _trt_profile(config: BuildConfig, export: ExportInfo, inputs: tuple[Tensor, ...]) -> dict[str, str]:
    """Optimization-profile shapes covering every batch size and length, so engines are built once."""
    mbs, max_len, opt = config.max_batch_size, export.max_seq_length, _opt_width(config, export)
    return {
        "trt_profile_min_shapes": _shape_list(inputs, 1, 1),
        "trt_profile_opt_shapes": _shape_list(inputs, mbs, opt),
        "trt_profile_max_shapes": _shape_list(inputs, mbs, max_len),
    }


def _ort_accelerators(config: BuildConfig, export: ExportInfo, name: str, inputs: tuple[Tensor, ...]) -> tuple[AcceleratorGroup, ...]:
    if config.accelerator == "openvino":
        return (AcceleratorGroup("cpu_execution_accelerator", (Accelerator("openvino"),)),)
    if config.accelerator == "cuda":
        return (AcceleratorGroup("gpu_execution_accelerator", (Accelerator("cuda"),)),)
    if config.accelerator == "tensorrt":
        params = _backend_params(
            precision_mode=config.precision.upper(), max_workspace_size_bytes=TRT_WORKSPACE_BYTES,
            trt_engine_cache_enable=True, trt_engine_cache_path=f"{config.trt_cache_dir.rstrip('/')}/{name}",
            **_trt_profile(config, export, inputs))
        return (AcceleratorGroup("gpu_execution_accelerator", (Accelerator("tensorrt", params),)),)
    return ()


def _onnxruntime_model_step(config: BuildConfig, export: ExportInfo, name: str) -> ModelDir:
    inputs, outputs = _graph_tensors(export, "onnx", ragged=False)
    spec = ModelSpec(
        name=name, backend="onnxruntime", max_batch_size=config.max_batch_size, inputs=inputs, outputs=outputs,
        instance_group=_instance_group(config), default_model_filename=ONNX_FILE,
        dynamic_batching=_batching(config, config.max_queue_delay_us, config.preferred_batch_sizes),
        execution_accelerators=_ort_accelerators(config, export, name, inputs),
        parameters=_backend_params(intra_op_thread_count=config.intra_op_threads, inter_op_thread_count=config.inter_op_threads),
    )
    files = ((export.path(export.manifest.onnx.file), ONNX_FILE),)
    return ModelDir(spec, files, quantize=config.precision == "int8", fp16=config.fp16_graph)


def _paddle_accelerators(config: BuildConfig, export: ExportInfo, inputs: tuple[Tensor, ...]) -> tuple[AcceleratorGroup, ...]:
    if config.accelerator == "mkldnn":
        params = _backend_params(cpu_threads=config.intra_op_threads or 1)
        return (AcceleratorGroup("cpu_execution_accelerator", (Accelerator("mkldnn", params),)),)
    if config.accelerator == "tensorrt":
        mbs, max_len, opt = config.max_batch_size, export.max_seq_length, _opt_width(config, export)
        engine = Accelerator("tensorrt", _backend_params(
            precision=f"trt_{config.precision}", min_graph_size=5, workspace_size=TRT_WORKSPACE_BYTES,
            max_batch_size=mbs, is_dynamic=1))
        shapes = tuple(Accelerator(kind, tuple(Parameter(t.name, f"{rows} {width}") for t in inputs))
                       for kind, rows, width in (("min_shape", 1, 1), ("max_shape", mbs, max_len), ("opt_shape", mbs, opt)))
        return (AcceleratorGroup("gpu_execution_accelerator", (engine, *shapes)),)
    return ()


def _paddle_model_step(config: BuildConfig, export: ExportInfo, name: str) -> ModelDir:
    inputs, outputs = _graph_tensors(export, "paddle", ragged=False)
    graph = export.graph("paddle")
    spec = ModelSpec(
        name=name, backend="paddle", max_batch_size=config.max_batch_size, inputs=inputs, outputs=outputs,
        instance_group=_instance_group(config),
        dynamic_batching=_batching(config, config.max_queue_delay_us, config.preferred_batch_sizes),
        execution_accelerators=_paddle_accelerators(config, export, inputs),
    )
    files = ((export.path(graph.model_file), PADDLE_MODEL_FILE), (export.path(graph.params_file), PADDLE_PARAMS_FILE))
    return ModelDir(spec, files)


#: --backend -> the model step it renders
MODEL_STEPS: dict[str, Callable[[BuildConfig, ExportInfo, str], ModelDir]] = {
    "python": _python_model_step,
    "onnxruntime": _onnxruntime_model_step,
    "paddle": _paddle_model_step,
}


def _postprocess_outputs(config: BuildConfig, export: ExportInfo) -> tuple[Tensor, ...]:
    """Multi-class: label and confidence (and the top-k). Multi-label and hierarchical: each text's label set
    (as many labels as pass their thresholds, so the width varies), their probabilities, the count, and every
    label's probability (a client gets it by asking for ``probs``)."""
    if export.manifest.task.multi_label:
        return (Tensor(rt.LABELS, "TYPE_STRING", (-1,)), Tensor(rt.LABEL_PROBS, "TYPE_FP32", (-1,)),
                Tensor(rt.LABEL_COUNT, "TYPE_INT32", (1,)), Tensor(rt.PROBS, "TYPE_FP32", (export.num_labels,)))
    outputs = (Tensor(rt.LABEL, "TYPE_STRING", (1,)), Tensor(rt.CONFIDENCE, "TYPE_FP32", (1,)))
    if config.top_k:
        outputs += (Tensor(rt.TOP_K_LABELS, "TYPE_STRING", (config.top_k,)),
                    Tensor(rt.TOP_K_PROBS, "TYPE_FP32", (config.top_k,)))
    return outputs


def _postprocess_parameters(config: BuildConfig, export: ExportInfo) -> rt.PostprocessParameters | rt.LabelSetParameters:
    """The postprocess keys: the thresholds and the hierarchy come from the export's manifest, never a flag."""
    label_file, task = export.manifest.label_file, export.manifest.task
    metrics = {"metrics": config.metrics, "metrics_model": config.name,
               "low_confidence": low_confidence(config, export) if config.metrics else 0.0}
    if task.multi_label:
        return rt.LabelSetParameters(task=task.task, label_file=label_file, num_labels=export.num_labels,
                                     thresholds=task.thresholds, hierarchy_separator=task.hierarchy_separator,
                                     **metrics)
    return rt.PostprocessParameters(label_file=label_file, num_labels=export.num_labels, top_k=config.top_k, **metrics)


def low_confidence(config: BuildConfig, export: ExportInfo) -> float:
    """The low-confidence metric's threshold: --low_confidence, else the one recorded on the export's dev data."""
    if config.low_confidence is not None:
        return config.low_confidence
    return export.reference.low_confidence_threshold if export.reference else DEFAULT_LOW_CONFIDENCE


def _postprocess(config: BuildConfig, export: ExportInfo, name: str) -> ModelDir:
    label_file = export.manifest.label_file
    spec = ModelSpec(
        name=name, backend="python", max_batch_size=config.max_batch_size,
        inputs=(Tensor(rt.LOGITS, "TYPE_FP32", (export.num_labels,)),), outputs=_postprocess_outputs(config, export),
        instance_group=_cpu_instance(), dynamic_batching=_batching(config, 0),
        parameters=_params(_postprocess_parameters(config, export)),
    )
    return ModelDir(spec, ((export.path(label_file), label_file),), "postprocess.py")


def _ensemble(config: BuildConfig, names: StepNames, models: tuple[ModelDir, ...]) -> EnsembleSpec:
    tokenizer, model, postprocess = (m.spec for m in models)
    ids_in, types_in = model.inputs
    steps = (
        Step(tokenizer.name, (Mapping(rt.TEXT, rt.TEXT),),
             (Mapping(rt.INPUT_IDS, rt.INPUT_IDS), Mapping(rt.TOKEN_TYPE_IDS, rt.TOKEN_TYPE_IDS))),
        Step(model.name, (Mapping(ids_in.name, rt.INPUT_IDS), Mapping(types_in.name, rt.TOKEN_TYPE_IDS)),
             (Mapping(model.outputs[0].name, rt.LOGITS),)),
        Step(postprocess.name, (Mapping(rt.LOGITS, rt.LOGITS),),
             tuple(Mapping(t.name, t.name) for t in postprocess.outputs)),
    )
    return EnsembleSpec(names.ensemble, config.max_batch_size, (Tensor(rt.TEXT, "TYPE_STRING", (1,)),),
                        postprocess.outputs, steps)


#: --layout -> the plan of that layout
LAYOUTS: dict[str, Callable[[BuildConfig, ExportInfo, tuple[int, ...]], RepositoryPlan]] = {
    "ensemble": _ensemble_layout,
    "fused": _fused_layout,
}
