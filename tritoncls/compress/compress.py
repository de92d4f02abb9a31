"""``tritoncls compress``: from a fine-tuned checkpoint to the fastest served variant within an accuracy budget.

Flow: checks (a fine-tuned teacher for the data's labels, the data read with file:line errors, the tools) ->
structures (the teacher and prune's (depth, width) students, distilled from it and exported; each also exported
at the train texts' length quantile when that is shorter than the trained length) -> candidates (structure x
precision) measured one by one as they will run (build-repo, serve, the served dev score through the ensemble,
perf_analyzer at batched requests and at single texts) beside the reference-style deployment of the unpruned
model -> the fastest candidate within ``--max_drop`` points of the unpruned FP32 default's served score ->
compress_report.md/.json, compress.png, compress.json. Exit status 3 when no candidate is within the budget.

The measuring function and the structure maker are parameters of :func:`run_compress`, so the loop, the choice
and the outputs are tested without Paddle or tritonserver.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tritoncls.compress.config import (
    BASELINE_STRUCTURE,
    OPTIONS_FILE,
    SERVINGS,
    Candidate,
    CandidateResult,
    CompressConfig,
    CompressError,
    CompressOutcome,
    NoCandidateWithinBudget,
    Structure,
)
from tritoncls.compress.report import write_outputs
from tritoncls.compress.search import Measure, choose, closest, length_bucket, run_candidates
from tritoncls.errors import ConfigError
from tritoncls.measure.served import REFERENCE_OPTIONS, reference_options

if TYPE_CHECKING:
    from tritoncls.common.data import Example

log = logging.getLogger(__name__)

DEFAULT_MAX_SEQ_LENGTH = 128  # a checkpoint without training_config.json (an imported classifier)
TEACHER_DIR = "teacher"  # OUTPUT/teacher: a Hugging Face classifier's import


@dataclass(frozen=True)
class Inputs:
    """The checked teacher and data."""

    teacher: Path
    task: str
    labels: tuple[str, ...]
    trained_length: int
    train_texts: tuple[str, ...]
    dev_texts: tuple[str, ...]
    dev_fields: tuple[str, ...]  # each dev text's label field, as the task writes it
    test_texts: tuple[str, ...] = ()  # scored beside dev, reported, never used to choose
    test_fields: tuple[str, ...] = ()


#: make_structures(config, inputs, deadline) -> (structures, facts): the teacher first, at its trained length.
#: ``deadline`` (a time.monotonic() value or None): students not started by then are not distilled (facts
#: "not_distilled").
MakeStructures = Callable[[CompressConfig, Inputs, float | None], tuple[list[Structure], dict[str, Any]]]


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------


def finetune_command(config: CompressConfig) -> str:
    """The command that fine-tunes ``--checkpoint`` on ``--dataset_dir``, whose output compress then takes."""
    return (f"tritoncls train --model_name {config.checkpoint} --dataset_dir {config.dataset_dir} "
            f"--output {str(config.checkpoint).rstrip('/')}-finetuned")


def check_teacher(config: CompressConfig) -> Path:
    """The checkpoint directory, refused with the command that fine-tunes it unless it holds a classifier trained
    for the data's labels (a label.txt equal to the dataset's, not an imported encoder with a new head)."""
    from tritoncls.common import data
    from tritoncls.modeling import checkpoint as ckpt
    from tritoncls.modeling import hf

    fix = f"Fine-tune it first: `{finetune_command(config)}`, then pass that --output as --checkpoint."
    source = _import_hf_classifier(config, fix) if hf.is_hf_folder(config.checkpoint) else \
        ckpt.resolve_checkpoint(config.checkpoint)
    saved = ckpt.saved_labels(source)
    report = source / hf.REPORT_FILE
    fresh_head = (report.is_file() and not ckpt.read_json(report).get("kept_classifier")
                  and not (source / "training_config.json").is_file())
    if saved is None or fresh_head:
        why = "no label.txt" if saved is None else "its classifier is new (import_report.json: kept_classifier false)"
        raise CompressError(f"--checkpoint {source}: not a fine-tuned classifier ({why}: a bare encoder, e.g. an "
                            f"imported pretrained model), so there is nothing to compress against. {fix}")
    task = ckpt.saved_task(source).task
    labels = data.read_labels(config.dataset / config.label_file, task)
    if saved != labels:
        raise CompressError(f"--checkpoint {source}: its classifier predicts {saved[:8]} but "
                            f"{config.dataset / config.label_file} lists {labels[:8]}: it was fine-tuned for other "
                            f"labels. {fix}")
    return source


def _import_hf_classifier(config: CompressConfig, fix: str) -> Path:
    """A Hugging Face folder whose classifier was fine-tuned on the label file's labels, imported into
    ``OUTPUT/teacher`` (as ``prune`` does); one without such a classifier is refused with ``fix``."""
    from tritoncls.common import data
    from tritoncls.modeling import hf

    target = config.output_dir / TEACHER_DIR
    labels = data.read_labels(config.dataset / config.label_file)
    try:
        report = hf.import_hf(config.checkpoint, target, labels=labels)
    except ConfigError as exc:  # a classifier of other labels: its message names import-hf's flags, not the fix here
        raise CompressError(f"--checkpoint {config.checkpoint}: a Hugging Face classifier, but not of the labels "
                            f"{config.dataset / config.label_file} lists ({str(exc).split('. ')[0]}). {fix}") from None
    if not report.kept_classifier:
        shutil.rmtree(target)
        raise CompressError(f"--checkpoint {config.checkpoint}: a Hugging Face model without a classifier fine-tuned "
                            f"on these labels (a bare encoder), so there is nothing to compress against. {fix}")
    log.info("imported the Hugging Face classifier %s as the teacher: %s", config.checkpoint, target)
    return target


def check_inputs(config: CompressConfig) -> Inputs:
    """The teacher and the data; a data error names file:line (the readers of :mod:`tritoncls.common.data`)."""
    from tritoncls.common import data
    from tritoncls.modeling import checkpoint as ckpt

    teacher = check_teacher(config)
    task = ckpt.saved_task(teacher).task
    labels = data.read_labels(config.dataset / config.label_file, task)
    train = data.read_examples(config.dataset / config.train_file, labels, task)
    dev_path = config.dataset / config.dev_file
    dev = data.read_examples(dev_path, labels, task)[:config.max_dev_texts]  # every label known, or file:line
    if not dev:
        raise CompressError(f"{dev_path}: no dev texts; compress scores every candidate on them through the server.")
    test = _read_test(config, labels, task)
    return Inputs(teacher, task, tuple(labels), trained_length(teacher), tuple(e.text for e in train),
                  tuple(e.text for e in dev), tuple(e.label for e in dev), tuple(e.text for e in test),
                  tuple(e.label for e in test))


def _read_test(config: CompressConfig, labels: Sequence[str], task: str) -> list[Example]:
    """The test examples (none without a test file); a missing --test_file or an unknown label is refused with its
    path (and line)."""
    from tritoncls.common import data

    path = config.test_path
    if path is None:
        log.info("no test file (%s): candidates are scored on dev only", "--no_test" if not config.score_test else
                 f"no {config.dataset / 'test.txt'}")
        return []
    if not path.is_file():
        raise CompressError(f"--test_file {path}: no such file. Give a test file of the dataset (text<TAB>label "
                            f"lines), or --no_test to score on dev only.")
    return data.read_examples(path, labels, task)  # every label known, or DataError at file:line


def trained_length(teacher: Path) -> int:
    """The max_seq_length the teacher was fine-tuned at (training_config.json); for an imported classifier
    :data:`DEFAULT_MAX_SEQ_LENGTH`, at most its position table."""
    from tritoncls.modeling import checkpoint as ckpt

    training = teacher / "training_config.json"
    trained = ckpt.read_json(training).get("max_seq_length") if training.is_file() else None
    if trained:
        return int(trained)
    positions = ckpt.read_json(teacher / "config.json").get("max_position_embeddings") \
        if (teacher / "config.json").is_file() else None
    return min(DEFAULT_MAX_SEQ_LENGTH, int(positions or DEFAULT_MAX_SEQ_LENGTH))


# ---------------------------------------------------------------------------------------------
# Structures: the teacher and the pruned students, each exported (and at the corpus length)
# ---------------------------------------------------------------------------------------------


def student_widths(config: CompressConfig) -> list[str]:
    """The widths prune trains: without --depths, width 1 is the teacher itself and not a student."""
    if config.depths:
        return list(config.widths)
    return [w for w in config.widths if Fraction(str(w)) < 1]


def make_structures(config: CompressConfig, inputs: Inputs, deadline: float | None = None
                    ) -> tuple[list[Structure], dict[str, Any]]:
    """The teacher and prune's students at the trained length (those started before ``deadline``), then each again
    at the corpus length bucket."""
    from tritoncls.measure.inprocess import token_rows

    out = config.output_dir
    skipped: list[str] = []
    if config.depths or student_widths(config):
        rows, skipped = _pruned_rows(config, inputs, deadline)
    else:
        rows = [_teacher_row(config, inputs)]
    structures = [Structure(r["name"], r["export_dir"], inputs.trained_length, r.get("num_hidden_layers"),
                            str(r.get("width", "1")), r.get("parameters")) for r in rows]
    lengths = [len(row) for row in token_rows(Path(structures[0].export_dir), inputs.train_texts)]
    short = length_bucket(lengths, config.length_quantile, inputs.trained_length)
    facts = {"train_token_quantiles": _quantiles(lengths), "length_quantile": config.length_quantile,
             "trained_length": inputs.trained_length, "corpus_length": short, "not_distilled": skipped}
    if short < inputs.trained_length and not config.corpus_length:
        log.info("the corpus length bucket is %d (< the trained %d); not exported (--no_corpus_length)", short,
                 inputs.trained_length)
    elif short < inputs.trained_length:
        log.info("p%g of the train texts' token lengths rounds up to %d (< the trained %d): each structure is also "
                 "exported at %d", 100 * config.length_quantile, short, inputs.trained_length, short)
        for row, structure in zip(rows, list(structures)):
            target = out / "structures" / f"{row['name']}-L{short}" / "export"
            _export(Path(row["checkpoint_dir"] or inputs.teacher), target, short, config.resume)
            structures.append(Structure(structure.name, str(target), short, structure.num_hidden_layers,
                                        structure.width, structure.parameters))
    return structures, facts


def _quantiles(lengths: Sequence[int]) -> dict[str, int]:
    import numpy as np

    if not lengths:
        return {}
    return {f"p{int(q * 100)}": int(np.quantile(np.asarray(lengths), q)) for q in (0.5, 0.9, 0.95, 0.99)} | {
        "max": int(max(lengths))}


def _export(checkpoint: Path, target: Path, max_seq_length: int, resume: bool) -> Path:
    from tritoncls.modeling.export import ExportConfig, export
    from tritoncls.runtime.contract import MANIFEST_FILE

    if resume and (target / MANIFEST_FILE).is_file():
        log.info("%s: kept from the earlier run (--resume)", target)
        return target
    return export(ExportConfig(checkpoint=str(checkpoint), output=str(target), max_seq_length=max_seq_length))


def _teacher_row(config: CompressConfig, inputs: Inputs) -> dict[str, Any]:
    """The teacher alone (no width or depth to prune), exported at its trained length."""
    target = config.output_dir / "structures" / f"{BASELINE_STRUCTURE}-L{inputs.trained_length}" / "export"
    _export(inputs.teacher, target, inputs.trained_length, config.resume)
    return {"name": BASELINE_STRUCTURE, "export_dir": str(target), "checkpoint_dir": None, "width": "1"}


def _pruned_rows(config: CompressConfig, inputs: Inputs, deadline: float | None = None
                 ) -> tuple[list[dict[str, Any]], list[str]]:
    """prune's report rows (the unpruned baseline first) and the students it did not distil (``deadline``
    passed), from a run made now or, with --resume, an earlier one that distilled the same students, all of them."""
    from tritoncls.prune.prune import PruneConfig, earlier_report, prune

    prune_config = PruneConfig(
        dataset_dir=config.dataset_dir, checkpoint=str(inputs.teacher), output=str(config.output_dir / "prune"),
        width_mult_list=student_widths(config) or ["1"], depth_list=list(config.depths), epochs=config.epochs,
        learning_rate=config.learning_rate, batch_size=config.batch_size, max_seq_length=inputs.trained_length,
        latency_repeats=1, seed=config.seed, label_file=config.label_file, train_file=config.train_file,
        dev_file=config.dev_file, layer_selection=config.layer_selection, temperature=config.temperature,
        soft_label_weight=config.soft_label_weight, hidden_loss_weight=config.hidden_loss_weight,
        augment_copies=config.augment_copies, augment_rate=config.augment_rate, resume=config.resume)
    record = earlier_report(prune_config) if config.resume else None
    if record is not None:
        log.info("pruned students kept from the earlier run (--resume): %s", prune_config.output)
        return record["rows"], []
    log.info("pruning and distilling: widths %s, depths %s, %d epoch(s) each", prune_config.width_mult_list,
             prune_config.depth_list or "the teacher's", config.epochs)
    result = prune(prune_config, deadline)
    return [{"name": r.name, "export_dir": r.export_dir, "checkpoint_dir": r.checkpoint_dir, "width": r.width,
             "num_hidden_layers": r.num_hidden_layers, "parameters": r.parameters} for r in result.rows], result.skipped


# ---------------------------------------------------------------------------------------------
# Candidates and their served measurement
# ---------------------------------------------------------------------------------------------


def plan_candidates(structures: Sequence[Structure], config: CompressConfig) -> list[Candidate]:
    """The unpruned FP32 default first (the baseline), the reference-style peer second, then every structure x
    precision."""
    teacher = structures[0]
    baseline = Candidate(teacher, "fp32")
    peer = Candidate(teacher, "fp32", tuple(REFERENCE_OPTIONS.items()), peer=True)  # served_measure fits it to the model
    rest = [Candidate(s, p, precision_options(p, config) + serving_options(v), serving=v)
            for s in structures for p in config.precisions for v in config.servings]
    return [baseline, peer] + [c for c in rest if c.name != baseline.name]


def serving_options(serving: str, cores: int | None = None) -> tuple[tuple[str, Any], ...]:
    """build-repo options of a --servings value, "cores" resolved to the cores this process may use."""
    from tritoncls.runtime.runners import usable_cores

    return tuple((key, (cores or usable_cores()) if value == "cores" else value)
                 for key, value in SERVINGS[serving].items())


def precision_options(precision: str, config: CompressConfig) -> tuple[tuple[str, Any], ...]:
    """build-repo options of a --precisions value beyond ``precision`` itself: static INT8 is ``precision int8``
    calibrated on the train texts (build-repo's default sample of them)."""
    if precision != "int8_static":
        return ()
    train = (config.dataset / config.train_file).resolve()
    return (("precision", "int8"), ("int8_mode", "static"), ("calibration_data", str(train)))


def speed_texts(texts: Sequence[str], request_texts: int) -> list[str]:
    """The dev texts, repeated until they fill at least one request of ``request_texts`` (perf_analyzer's data)."""
    out = list(texts)
    while len(out) < request_texts:
        out += list(texts)
    return out


def served_measure(config: CompressConfig, inputs: Inputs, analyzer) -> Measure:
    """The measuring function of a real run: build-repo, serve, score the dev texts through the ensemble, then
    perf_analyzer at --request_texts texts a request and at single texts."""
    from tritoncls.measure import served
    from tritoncls.measure.answers import score, served_answers, truth
    from tritoncls.measure.served import SweepPoint
    from tritoncls.runtime import Manifest

    texts = speed_texts(inputs.dev_texts, config.request_texts)
    sweep = [SweepPoint("ensemble", config.request_texts, config.batch_concurrency),
             SweepPoint("ensemble", 1, config.single_concurrency)]

    def measure(candidate: Candidate, folder: Path) -> CandidateResult:
        export_dir = Path(candidate.structure.export_dir)
        manifest = Manifest.load(export_dir)
        gold = truth(manifest, list(inputs.dev_fields))
        test_gold = truth(manifest, list(inputs.test_fields)) if inputs.test_texts else None
        if gold is None or (inputs.test_texts and test_gold is None):
            raise CompressError(f"{config.dataset}: dev or test labels the export {export_dir} does not have.")
        options = reference_options(export_dir) if candidate.peer else candidate.build_options()
        repo = served.build(export_dir, folder / "repository", **options)
        measured, predictions = served.measure(candidate.name, repo, texts, [], sweep, folder / "perf", analyzer,
                                               config.min_requests, config.max_trials, config.stability_pct,
                                               label_texts=inputs.dev_texts + inputs.test_texts)
        answers = served_answers(predictions or [])
        dev_count = len(inputs.dev_texts)
        result = CandidateResult.for_candidate(candidate)
        result.measured = measured.to_dict()
        result.score = score(manifest, gold, answers[:dev_count])
        result.scored_texts = len(answers[:dev_count])
        if test_gold is not None and len(answers) == dev_count + len(inputs.test_texts):
            result.test_score = score(manifest, test_gold, answers[dev_count:])
            result.test_texts = len(answers[dev_count:])
        for point in measured.points:
            if point["batch_size"] == config.request_texts and point["concurrency"] == config.batch_concurrency:
                result.batch_texts_per_s, result.batch_p99_ms = point["inferences_per_s"], point["p99_us"] / 1e3
            if point["batch_size"] == 1 and point["concurrency"] == config.single_concurrency:
                result.single_texts_per_s, result.single_p99_ms = point["inferences_per_s"], point["p99_us"] / 1e3
        if result.batch_texts_per_s is None or result.single_texts_per_s is None:
            result.error = "; ".join(e.splitlines()[0] for e in measured.errors) or "perf_analyzer measured nothing"
        shutil.rmtree(folder / "repository", ignore_errors=True)  # compress.json rebuilds the chosen one
        return result

    return measure


def _check_tools():
    from tritoncls.measure.perf_analyzer import PerfAnalyzer
    from tritoncls.server.install import find_tritonserver

    analyzer = PerfAnalyzer.find()
    find_tritonserver()
    return analyzer


def measuring_machine() -> dict[str, Any]:
    """What compress.json says measured it (as tune.json does)."""
    from tritoncls.measure.machine import cpu_flags, cpu_model

    return {"cpu": cpu_model(), "cpu_flags": cpu_flags(), "usable_cpus": len(os.sched_getaffinity(0)),
            "usable_cpus_source": "os.sched_getaffinity(0) when compress ran", "logical_cores": os.cpu_count(),
            "load_average_1m_at_start": round(os.getloadavg()[0], 2), "hostname": os.uname().nodename,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


# ---------------------------------------------------------------------------------------------
# The action
# ---------------------------------------------------------------------------------------------


def run_compress(config: CompressConfig, measure: Measure | None = None,
                 structures_of: MakeStructures | None = None,
                 machine: dict[str, Any] | None = None) -> CompressOutcome:
    """Run compress; the outcome holds the choice (None when no candidate is within the budget: ``closest`` then
    lists the nearest). ``measure`` and ``structures_of`` replace the served measurement and the pruning (tests)."""
    from tritoncls.common.metrics import default_metric

    started = time.monotonic()
    inputs = check_inputs(config)
    analyzer = _check_tools() if measure is None else None
    config.output_dir.mkdir(parents=True, exist_ok=True)
    deadline = started + 60 * config.budget_minutes if config.budget_minutes else None
    structures, facts = (structures_of or make_structures)(config, inputs, deadline)
    measure = measure or served_measure(config, inputs, analyzer)
    candidates = plan_candidates(structures, config)
    log.info("%d candidates (%d structures x %s x servings %s) beside the reference-style deployment",
             len(candidates) - 1, len(structures), " ".join(config.precisions), " ".join(config.servings))
    results = run_candidates(candidates, measure, config.output_dir, config.resume, deadline, always=2)
    baseline, reference = results[0], results[1]
    facts |= {"teacher": str(inputs.teacher), "task": inputs.task, "dev_texts": len(inputs.dev_texts),
              "test_file": str(config.test_path) if inputs.test_texts else None, "test_texts": len(inputs.test_texts),
              "seconds": round(time.monotonic() - started, 1)}
    outcome = CompressOutcome(config, results, baseline if baseline.ok else None, reference if reference.ok else None,
                              None, default_metric(inputs.task), facts=facts)
    error: CompressError | None = None
    if outcome.baseline is None:
        error = CompressError(f"the unpruned FP32 default ({baseline.name}) could not be measured, so no candidate "
                              f"can be compared with it: {baseline.error}")
        outcome.closest = closest(results[2:])
    else:
        try:  # the unpruned FP32 default is the yardstick, not an answer: the choice is a compressed variant
            outcome.chosen = choose(results[2:], baseline.score, config.max_drop)
        except NoCandidateWithinBudget as exc:
            error, outcome.closest = exc, closest(results[2:])
    outcome.files = write_outputs(outcome, machine if machine is not None else measuring_machine())
    if error is not None:
        raise error
    log.info("chosen: %s (%.1f texts/s at %d-text requests); rebuild it with `tritoncls build-repo --model %s "
             "--output REPO --options %s`", outcome.chosen.name, outcome.chosen.batch_texts_per_s,
             config.request_texts, outcome.chosen.export_dir, config.output_dir / OPTIONS_FILE)
    return outcome
