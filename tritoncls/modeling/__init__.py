"""The Paddle model layer: build, load and save ERNIE classifiers (:mod:`.ernie`), checkpoints
that are whole or absent (:mod:`.checkpoint`), the dynamic graph's inference loop (:mod:`.dynamic`),
the training loop's pieces shared by train and prune (:mod:`.loop`), and the writer of the export
artifact (:mod:`.export`). Training, pruning and the benchmarks use it; serving never does."""

from tritoncls.modeling.ernie import (
    HEAD_DIM_FIELD,
    NAMED_MODELS,
    SPECIAL_TOKENS,
    architecture,
    attention_head_dim,
    build_vocab,
    check_label_count,
    hub_tokenizer,
    load_checkpoint_model,
    load_tokenizer,
    model_architecture_summary,
    named_architecture,
    pretrained_model,
    scratch_model,
    scratch_tokenizer,
    set_attention_width,
    write_vocab,
)

__all__ = [
    "HEAD_DIM_FIELD", "NAMED_MODELS", "SPECIAL_TOKENS", "architecture", "attention_head_dim", "build_vocab", "check_label_count",
    "hub_tokenizer", "load_checkpoint_model", "load_tokenizer", "model_architecture_summary", "named_architecture",
    "pretrained_model", "scratch_model", "scratch_tokenizer", "set_attention_width", "write_vocab",
]
