"""Argument parsers for train, evaluate, predict and export; each calls one typed function."""

from __future__ import annotations

import argparse
import json
import logging

from tritoncls.cli_common import flag, launched_processes, quiet_paddlenlp, resolve_device

log = logging.getLogger(__name__)

DEVICE_CHOICES = ("auto", "cpu", "gpu", "xpu", "npu")


def _device(p) -> None:
    flag(p, "device", default="auto", choices=DEVICE_CHOICES,
         help="where to run; 'auto' picks gpu when this Paddle build has CUDA and a GPU, else cpu")


def _dataset(p, required: bool = True) -> None:
    flag(p, "dataset_dir", required=required, default=None,
         help="directory holding train.txt, dev.txt, label.txt (and data.txt for predict)")
    flag(p, "label_file", default="label.txt", help="label file name inside --dataset_dir")


def _parse_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if not _:
            raise argparse.ArgumentTypeError(f"--arch {item!r}: expected KEY=VALUE, e.g. num_hidden_layers=2")
        out[key] = json.loads(value) if value[:1].isdigit() or value in ("true", "false") else value
    return out


def register(sub) -> None:
    _register_train(sub)
    _register_evaluate(sub)
    _register_predict(sub)
    _register_export(sub)
    _register_analyze(sub)


def _register_analyze(sub) -> None:
    p = sub.add_parser("analyze", help="label balance, token lengths, truncation, duplicates, leakage",
                       description="Analyze a dataset before training: label counts and imbalance, text "
                                   "lengths in tokens, the share truncated at --max_seq_length, duplicate "
                                   "texts (and those with conflicting labels), dev texts that also appear in "
                                   "train, and a suggested --max_seq_length.")
    _dataset(p)
    flag(p, "max_seq_length", type=int, default=128, help="length to measure truncation against")
    flag(p, "train_file", default="train.txt", help="training file name inside --dataset_dir")
    flag(p, "dev_file", default="dev.txt", help="dev file name inside --dataset_dir")
    flag(p, "vocab_file", default=None, help="count tokens with this vocab.txt (default: one built from train)")
    flag(p, "report_json", default=None, help="also write the analysis as JSON here")
    p.set_defaults(handler=run_analyze)


def run_analyze(args) -> int:
    from tritoncls.training.analysis import AnalyzeConfig, analyze

    analyze(AnalyzeConfig(dataset_dir=args.dataset_dir, max_seq_length=args.max_seq_length,
                          train_file=args.train_file, dev_file=args.dev_file, label_file=args.label_file,
                          vocab_file=args.vocab_file, report_json=args.report_json))
    return 0


def _register_train(sub) -> None:
    p = sub.add_parser("train", help="fine-tune a classifier; keeps the best checkpoint on dev",
                       description="Fine-tune an ERNIE classifier on text<TAB>label files. Evaluates on dev "
                                   "every epoch and writes the best checkpoint atomically to --save_dir. "
                                   "For data-parallel training run it under "
                                   "`python -m paddle.distributed.launch --nproc_per_node N [--backend gloo]`.")
    _device(p)
    _dataset(p)
    flag(p, "save_dir", default="./checkpoint", help="where the best checkpoint is written")
    flag(p, "max_seq_length", type=int, default=128, help="tokens per text after truncation, [CLS]/[SEP] included")
    flag(p, "model_name", default="ernie-3.0-medium-zh",
         help="an ERNIE name (ernie-3.0-{xbase,base,medium,mini,micro,nano}-zh, ernie-2.0-{base,large}-en, "
              "ernie-1.0-large-zh-cw) or a local checkpoint directory")
    flag(p, "from_scratch", action="store_true",
         help="random weights in --model_name's architecture and a vocabulary built from the training texts "
              "(works offline; no pretrained download)")
    flag(p, "arch", nargs="*", default=[], metavar="KEY=VALUE",
         help="with --from_scratch: override architecture fields, e.g. num_hidden_layers=2 hidden_size=128")
    flag(p, "batch_size", type=int, default=32, help="texts per training step (per process)")
    flag(p, "learning_rate", type=float, default=3e-5, help="peak learning rate of AdamW")
    flag(p, "epochs", type=int, default=10, help="maximum number of epochs")
    flag(p, "early_stop", action="store_true", help="stop when dev accuracy has not improved for --early_stop_nums epochs")
    flag(p, "early_stop_nums", type=int, default=4, help="patience of --early_stop, in epochs")
    flag(p, "logging_steps", type=int, default=5, help="log loss, lr and speed every this many steps")
    flag(p, "weight_decay", type=float, default=0.0, help="AdamW weight decay (not applied to biases and norms)")
    flag(p, "warmup", action="store_true", help="linear warmup over --warmup_steps, then linear decay to 0")
    flag(p, "warmup_steps", type=int, default=0, help="warmup length in steps, with --warmup")
    flag(p, "init_from_ckpt", default=None,
         help="checkpoint directory (or its model_state.pdparams) to start from; resumes optimizer and "
              "epoch when it was written by tritoncls train")
    flag(p, "seed", type=int, default=3, help="random seed")
    flag(p, "train_file", default="train.txt", help="training file name inside --dataset_dir")
    flag(p, "dev_file", default="dev.txt", help="dev file name inside --dataset_dir")
    p.set_defaults(handler=run_train)


def run_train(args) -> int:
    quiet_paddlenlp()
    from tritoncls.training.train import TrainConfig, train

    config = TrainConfig(
        dataset_dir=args.dataset_dir, device=resolve_device(args.device), save_dir=args.save_dir,
        max_seq_length=args.max_seq_length, model_name=args.model_name, from_scratch=args.from_scratch,
        batch_size=args.batch_size, learning_rate=args.learning_rate, epochs=args.epochs,
        early_stop=args.early_stop, early_stop_nums=args.early_stop_nums, logging_steps=args.logging_steps,
        weight_decay=args.weight_decay, warmup=args.warmup, warmup_steps=args.warmup_steps,
        init_from_ckpt=args.init_from_ckpt, seed=args.seed, train_file=args.train_file,
        dev_file=args.dev_file, label_file=args.label_file, arch_overrides=_parse_overrides(args.arch),
    )
    result = train(config)
    log.info("Best dev accuracy %.4f at epoch %d (%d epochs, %.1f s/epoch) -> %s",
             result.best_accuracy, result.best_epoch, result.epochs_run, result.seconds_per_epoch, result.save_dir)
    if launched_processes() > 1:
        _exit_worker()
    return 0


def _exit_worker() -> None:
    """End a finished multi-process worker at once, skipping interpreter teardown.

    Every rank has passed the final barrier and rank 0's checkpoint is on disk (fsynced and renamed)
    by now. What is left is the C++ teardown of the gloo/NCCL communicators and the TCP store, which
    races between ranks (one rank's sockets close while another still tears down) and can abort a
    worker whose training succeeded, failing the whole launch. So flush and leave with status 0.
    """
    import os
    import sys

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)


def _register_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="accuracy, top-k, per-class P/R/F1, bad cases, confusion matrix",
                       description="Evaluate a checkpoint on train and dev: accuracy, top-2/top-3 accuracy, "
                                   "per-class counts, precision, recall and F1; writes bad cases and a "
                                   "confusion-matrix PNG.")
    _device(p)
    _dataset(p)
    flag(p, "params_path", default="./checkpoint", help="checkpoint directory written by train")
    flag(p, "max_seq_length", type=int, default=128, help="tokens per text after truncation")
    flag(p, "batch_size", type=int, default=32, help="texts per forward pass")
    flag(p, "train_file", default="train.txt", help="training file name inside --dataset_dir")
    flag(p, "dev_file", default="dev.txt", help="dev file name inside --dataset_dir")
    flag(p, "bad_case_path", default="./bad_case.txt", help="where misclassified dev texts are written")
    flag(p, "confusion_matrix", default="./confusion_matrix.png", help="confusion-matrix PNG path ('' to skip)")
    flag(p, "report_json", default=None, help="also write every number as JSON here")
    p.set_defaults(handler=run_evaluate)


def run_evaluate(args) -> int:
    quiet_paddlenlp()
    from tritoncls.training.evaluate import EvaluateConfig, evaluate

    evaluate(EvaluateConfig(
        dataset_dir=args.dataset_dir, params_path=args.params_path, device=resolve_device(args.device),
        max_seq_length=args.max_seq_length, batch_size=args.batch_size, train_file=args.train_file,
        dev_file=args.dev_file, label_file=args.label_file, bad_case_path=args.bad_case_path,
        confusion_matrix_path=args.confusion_matrix or None, report_json=args.report_json,
    ))
    return 0


def _register_predict(sub) -> None:
    p = sub.add_parser("predict", help="classify data.txt with a checkpoint, or an export with --model",
                       description="Classify one text per line. With --params_path (a checkpoint) it runs the "
                                   "Paddle dynamic graph; with --model EXPORT_DIR it runs the exported model "
                                   "in-process (ONNX Runtime or Paddle Inference), with no server.")
    _device(p)
    flag(p, "dataset_dir", default=None, help="directory holding data.txt and label.txt (checkpoint mode)")
    flag(p, "label_file", default="label.txt", help="label file name inside --dataset_dir")
    flag(p, "params_path", default="./checkpoint", help="checkpoint directory written by train")
    flag(p, "data_file", default="data.txt", help="file of texts inside --dataset_dir")
    flag(p, "output_file", default="output.txt", help="where text<TAB>label<TAB>confidence lines are written")
    flag(p, "max_seq_length", type=int, default=128, help="tokens per text after truncation")
    flag(p, "batch_size", type=int, default=32, help="texts per forward pass")
    g = p.add_argument_group("exported model (in-process, no server)")
    flag(g, "model", default=None, help="export directory; switches to the offline predictor")
    flag(g, "backend", default="onnxruntime", choices=("onnxruntime", "paddle_inference"), help="runtime for --model")
    flag(g, "precision", default="fp32", choices=("fp32", "fp16", "int8"),
         help="fp32; int8 = ONNX Runtime dynamic quantization (CPU); fp16 needs a GPU")
    flag(g, "num_threads", type=int, default=None, help="CPU threads for the runtime (default: all cores)")
    flag(g, "input", default=None, help="file of texts, one per line (default: --dataset_dir/--data_file)")
    flag(g, "output", default=None, help="results file (default: --output_file)")
    flag(g, "keep_order", action="store_true",
         help="batch texts in file order instead of sorted by length (results are in input order either way)")
    p.set_defaults(handler=run_predict)


def run_predict(args) -> int:
    quiet_paddlenlp()
    from tritoncls.errors import ConfigError
    from tritoncls.training.predict import PredictConfig, predict

    if args.model:
        return _run_offline(args)
    if not args.dataset_dir:
        raise ConfigError("predict needs --dataset_dir (with data.txt and label.txt), or --model EXPORT_DIR.")
    predict(PredictConfig(
        dataset_dir=args.dataset_dir, params_path=args.params_path, output_file=args.output_file,
        device=resolve_device(args.device), max_seq_length=args.max_seq_length, batch_size=args.batch_size,
        data_file=args.data_file, label_file=args.label_file,
    ))
    return 0


def _run_offline(args) -> int:
    from functools import partial
    from pathlib import Path

    from tqdm import tqdm

    from tritoncls.common.data import read_texts
    from tritoncls.common.offline import OfflineConfig, open_predictor
    from tritoncls.common.predictions import write_predictions
    from tritoncls.errors import ConfigError

    source = args.input or (str(Path(args.dataset_dir) / args.data_file) if args.dataset_dir else None)
    if not source:
        raise ConfigError("predict --model needs --input FILE (or --dataset_dir with data.txt).")
    device = resolve_device(args.device) if args.device != "auto" else "cpu"
    predictor = open_predictor(OfflineConfig(
        model=args.model, backend=args.backend, precision=args.precision, num_threads=args.num_threads,
        batch_size=args.batch_size, sort_by_length=not args.keep_order, device=device))
    texts = read_texts(source)
    result = predictor.predict_probs(texts, progress=partial(tqdm, desc="predict", unit="batch", leave=False))
    best = result.probs.argmax(1)
    out = Path(args.output or args.output_file)
    write_predictions(out, texts, [predictor.labels[i] for i in best],
                      [float(result.probs[i, j]) for i, j in enumerate(best)])
    log.info("Wrote %d predictions to %s in %.2f s (%.1f texts/s; %s, %s)", len(texts), out, result.seconds,
             len(texts) / max(result.seconds, 1e-9), args.backend, args.precision)
    return 0


def _register_export(sub) -> None:
    p = sub.add_parser("export", help="static graph + ONNX + tokenizer + manifest.json for serving",
                       description="Export a checkpoint: Paddle static graph (float32.json/.pdiparams), ONNX "
                                   "(model.onnx), tokenizer files, label.txt and manifest.json. The exported "
                                   "graphs are checked against the dynamic graph before the export is kept.")
    flag(p, "params_path", default="./checkpoint", help="checkpoint directory written by train")
    flag(p, "output_path", default="./export", help="export directory (replaced atomically)")
    flag(p, "max_seq_length", type=int, default=None,
         help="serving truncation length; default: the max_seq_length the checkpoint was trained with")
    p.set_defaults(handler=run_export)


def run_export(args) -> int:
    quiet_paddlenlp()
    from tritoncls.modeling.export import ExportConfig, export

    export(ExportConfig(params_path=args.params_path, output_path=args.output_path, max_seq_length=args.max_seq_length))
    return 0
