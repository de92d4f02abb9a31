"""The three python models' work: one call per dynamic batch, one result or exception per request.

Each ``model.py`` of a repository only moves tensors between Triton and these classes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .batching import length_groups, merge_requests, pad_rows, padded_width, split_rows, trim_padding
from .contract import (
    DEFAULT_GROUP_PADDING,
    PADDINGS,
    FusedParameters,
    LabelSetParameters,
    ModelParameters,
    PostprocessParameters,
    TokenizerParameters,
    postprocess_parameters,
)
from .errors import OptionError, ParameterError, RequestError, TaskError
from .metrics import MALFORMED, MetricsSettings, Recorder
from .postprocess import Classified, LabelSets, classify_probs, label_sets_of
from .runners import OnnxRunner, PaddleRunner, Runner
from .task import Head, TaskSpec
from .text import decode_texts, read_labels
from .wordpiece import PADDLENLP_RULES, PaddleNLPTokenizer, PythonWordPieceTokenizer, WordPieceTokenizer


class TokenizeStep:
    """Texts of every request in one tokenizer call; each request padded to its own width."""

    def __init__(self, tokenizer, padding: str, buckets: Sequence[int], max_seq_length: int,
                 pad_token_id: int, pad_token_type_id: int = 0) -> None:
        if padding not in PADDINGS:
            raise OptionError(f"padding {padding!r} is not one of {PADDINGS}")
        self.tokenizer = tokenizer
        self.padding = padding
        self.buckets = tuple(buckets) or (max_seq_length,)
        self.max_seq_length = max_seq_length
        self.pad_token_id = pad_token_id
        self.pad_token_type_id = pad_token_type_id
        self.metrics: MetricsSettings | None = None  # what to record, where the repository asks for metrics
        self.recorder = Recorder()

    @classmethod
    def from_parameters(cls, params: Mapping[str, str], version_dir: str | Path) -> TokenizeStep:
        """The step a repository's tokenizer config describes; its files are in ``version_dir``."""
        return cls.from_typed(TokenizerParameters.from_strings(params), version_dir)

    @classmethod
    def from_typed(cls, p: TokenizerParameters, version_dir: str | Path) -> TokenizeStep:
        """The step of typed parameters ``p``."""
        directory = Path(version_dir)
        if p.implementation != "wordpiece" and p.rules != PADDLENLP_RULES:
            raise ParameterError(f"tokenizer step: the {p.implementation} tokenizer does not follow the {p.rules!r} "
                                 f"rules this model was trained with; rebuild with --tokenizer wordpiece")
        if p.implementation == "paddlenlp":
            tokenizer = PaddleNLPTokenizer(directory, p.max_seq_length)
        else:
            kind = {"wordpiece": WordPieceTokenizer, "python": PythonWordPieceTokenizer}[p.implementation]
            tokenizer = kind(directory / p.vocab_file, p.do_lower_case, p.special_tokens, p.max_seq_length, p.rules)
        step = cls(tokenizer, p.padding, p.buckets, p.max_seq_length, p.pad_token_id, p.pad_token_type_id)
        if p.metrics:
            step.metrics = MetricsSettings(p.metrics_model, max_seq_length=p.max_seq_length)
        return step

    def __call__(self, columns: Sequence[np.ndarray | Exception]) -> list[tuple[np.ndarray, np.ndarray] | Exception]:
        results: list = list(columns)
        texts: dict[int, list[str]] = {}
        for i, column in enumerate(columns):
            if isinstance(column, Exception):
                self.recorder.refused(getattr(column, "reason", MALFORMED))
                continue
            try:
                texts[i] = decode_texts(column)
            except RequestError as exc:
                results[i] = exc
                self.recorder.refused(exc.reason)
        try:
            rows, cut = self._encode([t for i in texts for t in texts[i]])
        except Exception as exc:  # noqa: BLE001 - every request of the call gets the error
            return [exc if i in texts else r for i, r in enumerate(results)]
        start, lengths, cuts = 0, [], []
        for i, mine in texts.items():
            batch = rows[start:start + len(mine)]
            try:
                width = padded_width(batch, self.padding, self.buckets, self.max_seq_length)
            except RequestError as exc:
                results[i] = exc
                self.recorder.refused(exc.reason)
            else:
                results[i] = pad_rows(batch, width, self.pad_token_id, self.pad_token_type_id)
                lengths += [len(row) for row in batch]
                cuts += cut[start:start + len(mine)]
            start += len(mine)
        if lengths:
            self.recorder.tokens(lengths, cuts)
        return results

    def _encode(self, texts: list[str]) -> tuple[list[list[int]], list[bool]]:
        """Ids, and which texts were cut (only worked out when metrics are recorded)."""
        if self.recorder.enabled:
            return self.tokenizer.encode_marked(texts)
        return self.tokenizer.encode(texts), []


class ModelStep:
    """All requests of a dynamic batch together: rows stacked, then run in groups of similar length
    (padding trimmed per group), logits split back per request.

    ``trim=False`` runs every position a request was padded to, and a merged batch as one run padded
    to its longest request: what the reference deployments compute, for benchmarking them as a peer.
    """

    def __init__(self, runner, pad_token_id: int, merge: bool = True, trim: bool = True,
                 group_padding: float = DEFAULT_GROUP_PADDING) -> None:
        self.runner = runner
        self.pad_token_id = pad_token_id
        self.merge = merge
        self.trim = trim
        self.group_padding = group_padding

    @classmethod
    def from_parameters(cls, params: Mapping[str, str], version_dir: str | Path, input_names: Sequence[str],
                        output_name: str) -> ModelStep:
        """The step a repository's model config describes; its graph files are in ``version_dir``."""
        return cls.from_typed(ModelParameters.from_strings(params), version_dir, input_names, output_name)

    @classmethod
    def from_typed(cls, p: ModelParameters, version_dir: str | Path, input_names: Sequence[str], output_name: str,
                   group_padding: float = DEFAULT_GROUP_PADDING) -> ModelStep:
        """The step of typed parameters ``p`` (the model config's, or the fused model's share)."""
        directory = Path(version_dir)
        runner: Runner
        if p.runtime == "paddle_inference":
            runner = PaddleRunner(directory / p.model_file, directory / p.params_file, input_names, output_name,
                                  p.intra_op_threads, p.device)
        else:
            runner = OnnxRunner(directory / p.model_file, input_names, output_name, p.intra_op_threads,
                                p.inter_op_threads, p.device)
        return cls(runner, p.pad_token_id, p.merge_requests, p.trim_padding, group_padding)

    def __call__(self, inputs: Sequence[tuple[np.ndarray, np.ndarray] | Exception]) -> list[np.ndarray | Exception]:
        results: list = list(inputs)
        good = [i for i, item in enumerate(inputs) if not isinstance(item, Exception)]
        if not good:
            return results
        try:
            if self.merge:
                logits = self._run_merged([inputs[i] for i in good])
            else:
                logits = [self._run(*inputs[i]) for i in good]
        except Exception as exc:  # noqa: BLE001 - a failed run fails the requests in it
            logits = [exc] * len(good)
        for i, value in zip(good, logits):
            results[i] = value
        return results

    def _run(self, input_ids: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        if not self.trim:
            return self.runner.run(input_ids, token_type_ids)
        return self.runner.run(*trim_padding(input_ids, token_type_ids, self.pad_token_id))

    def _run_merged(self, inputs: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        ids = merge_requests([item[0] for item in inputs], self.pad_token_id)
        types = merge_requests([item[1] for item in inputs], 0)
        lengths = (ids != self.pad_token_id).sum(axis=1)
        groups = length_groups(lengths, self.group_padding) if self.trim else [np.arange(len(ids))]
        logits = np.concatenate([self._run(ids[rows], types[rows]) for rows in groups])
        out = np.empty_like(logits)
        out[np.concatenate(groups)] = logits
        return split_rows(out, [item[0].shape[0] for item in inputs])


class PostprocessStep:
    """Logits of every request through the task's head at once (softmax or sigmoid and thresholds); label
    names from the repository's label file. Each request gets its own result: multi-class
    :class:`~.postprocess.Classified`, or :class:`~.postprocess.LabelSets` padded to its own largest set."""

    def __init__(self, labels: Sequence[str], top_k: int = 0, task: TaskSpec | None = None) -> None:
        self.head: Head = (task or TaskSpec()).head(labels)
        self.top_k = top_k
        self.metrics: MetricsSettings | None = None
        self.recorder = Recorder()

    @property
    def labels(self) -> list[str]:
        return list(self.head.labels)

    @classmethod
    def from_parameters(cls, params: Mapping[str, str], version_dir: str | Path) -> PostprocessStep:
        """The step a repository's postprocess config describes; its label file is in ``version_dir``."""
        return cls.from_typed(postprocess_parameters(params), version_dir)

    @classmethod
    def from_typed(cls, p: PostprocessParameters | LabelSetParameters, version_dir: str | Path) -> PostprocessStep:
        """The step of typed parameters ``p``."""
        path = Path(version_dir) / p.label_file
        labels = read_labels(path)
        if len(labels) != p.num_labels:
            raise ParameterError(f"{path}: {len(labels)} labels, but the model gives {p.num_labels} logits")
        if isinstance(p, PostprocessParameters):
            step = cls(labels, p.top_k)
        else:
            try:
                step = cls(labels, task=TaskSpec(p.task, p.thresholds, p.hierarchy_separator))
            except TaskError as exc:
                raise ParameterError(f"postprocess step parameters: {exc}; rebuild with `tritoncls build-repo`") from None
        if p.metrics:
            step.metrics = MetricsSettings(p.metrics_model, labels=tuple(labels), low_confidence=p.low_confidence,
                                           multi_label=step.head.spec.multi_label)
        return step

    def __call__(self, inputs: Sequence[np.ndarray | Exception]) -> list[Classified | LabelSets | Exception]:
        results: list = list(inputs)
        good = [i for i, item in enumerate(inputs) if not isinstance(item, Exception)]
        if not good:
            return results
        try:
            probs, mask = self.head.predict(np.concatenate([inputs[i] for i in good]))
            merged = None if self.head.spec.multi_label else classify_probs(probs, self.head.labels, self.top_k)
        except Exception as exc:  # noqa: BLE001
            return [exc if i in good else r for i, r in enumerate(results)]
        self.recorder.predictions(probs, mask)
        start = 0
        for i in good:
            stop = start + inputs[i].shape[0]
            results[i] = (merged.rows(start, stop) if merged is not None
                          else label_sets_of(probs[start:stop], mask[start:stop], self.head.labels))
            start = stop
        return results


class FusedStep:
    """The fused layout: texts -> labels in one python model execution, through the same three steps.

    One execution instead of three python-backend round trips (about 1 ms each): what matters for
    small models, whose GEMMs take about as long as that overhead. Each request still fails alone.
    """

    def __init__(self, tokenize: TokenizeStep, model: ModelStep, postprocess: PostprocessStep) -> None:
        self.tokenize = tokenize
        self.model = model
        self.postprocess = postprocess

    @property
    def metrics(self) -> MetricsSettings | None:
        if self.tokenize.metrics is None or self.postprocess.metrics is None:
            return None
        return self.tokenize.metrics.merged(self.postprocess.metrics)

    @property
    def recorder(self) -> Recorder:
        return self.postprocess.recorder

    @recorder.setter
    def recorder(self, recorder: Recorder) -> None:
        self.tokenize.recorder = self.postprocess.recorder = recorder

    @classmethod
    def from_parameters(cls, params: Mapping[str, str], version_dir: str | Path) -> FusedStep:
        """The step a repository's fused config describes; every file is in ``version_dir``."""
        p = FusedParameters.from_strings(params)
        inputs = [name for name in p.graph.graph_inputs.split(",") if name]
        return cls(TokenizeStep.from_typed(p.tokenizer, version_dir),
                   ModelStep.from_typed(p.model, version_dir, inputs, p.graph.graph_output, p.graph.group_padding),
                   PostprocessStep.from_typed(p.postprocess, version_dir))

    def __call__(self, columns: Sequence[np.ndarray | Exception]) -> list[Classified | LabelSets | Exception]:
        return self.postprocess(self.model(self.tokenize(columns)))
