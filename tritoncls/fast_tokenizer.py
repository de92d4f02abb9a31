"""A fast WordPiece tokenizer (HF ``tokenizers``) that gives the same ids as PaddleNLP's ErnieTokenizer.

This module imports nothing from tritoncls: the builder copies it into each Triton model
repository, so a repository stays self-contained.

PaddleNLP's basic tokenizer differs from BERT's in one way that matters: it splits every Unicode
symbol (category ``S*``, e.g. ``°``, ``€``, emoji) and a few listed code points into a word of its
own, where BERT keeps them inside the word. ``39°`` is ``39 °`` for PaddleNLP. The pre-tokenizer
below isolates the same characters after BERT's whitespace/punctuation split.
"""

from __future__ import annotations

from pathlib import Path

# Code points PaddleNLP treats as symbols besides category S (tokenizer_utils._is_symbol).
_EXTRA_SYMBOLS = "\u00ad\u00b2\u00ba\u3007\u00b5\u00d8\u014b\u01b1"
SYMBOL_PATTERN = r"[\p{S}" + "".join(f"\\x{{{ord(c):04x}}}" for c in _EXTRA_SYMBOLS) + "]"


def build_tokenizer(vocab_file: str | Path, lowercase: bool = True, max_length: int = 128,
                    unk_token: str = "[UNK]", cls_token: str = "[CLS]", sep_token: str = "[SEP]"):
    """A ``tokenizers.Tokenizer`` truncating to ``max_length`` ids ([CLS] and [SEP] included)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = _read_vocab(Path(vocab_file))
    for token in (unk_token, cls_token, sep_token):
        if token not in vocab:
            raise ValueError(f"{vocab_file}: special token {token!r} missing from the vocabulary")
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token=unk_token, max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.BertPreTokenizer(),
        pre_tokenizers.Split(Regex(SYMBOL_PATTERN), behavior="isolated"),
    ])
    tokenizer.post_processor = processors.BertProcessing(
        (sep_token, vocab[sep_token]), (cls_token, vocab[cls_token]))
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.enable_truncation(max_length)
    tokenizer.no_padding()
    return tokenizer


def _read_vocab(path: Path) -> dict[str, int]:
    vocab: dict[str, int] = {}
    with path.open(encoding="utf-8") as handle:
        for index, line in enumerate(handle):
            token = line.rstrip("\n").rstrip("\r")
            if token and token not in vocab:
                vocab[token] = index
    return vocab
