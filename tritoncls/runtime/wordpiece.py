"""Tokenizers: HF ``tokenizers`` WordPiece, the same algorithm in plain Python (the reference
deployments' cost), and PaddleNLP's own tokenizer.

Two rule sets decide how text becomes words (``TOKENIZER_RULES`` in the contract):

* ``paddlenlp``: PaddleNLP's BasicTokenizer, what our own and PaddleNLP's models are trained with:
  punctuation, Unicode symbols (category S, e.g. ``°``, ``×``, ``～``) and CJK characters are words
  of their own;
* ``hf-bert``: Hugging Face's BertNormalizer + BertPreTokenizer, what models imported from the
  Hugging Face format were pretrained with: punctuation (category P) and CJK characters are words
  of their own, symbols stay inside their word, and the CJK ranges differ in one block. Only
  ``WordPieceTokenizer`` follows them, with the ``tokenizers`` library's own normalizer and
  pre-tokenizer (their Unicode tables are that library's, not this Python's).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .contract import TOKENIZER_RULES
from .errors import ModelLoadError, OptionError
from .text import read_vocab

# PaddleNLP (tokenizer_utils._is_symbol) isolates these besides Unicode category S.
_EXTRA_SYMBOLS = (0x00AD, 0x00B2, 0x00BA, 0x3007, 0x00B5, 0x00D8, 0x014B, 0x01B1)
# PaddleNLP's BasicTokenizer._is_chinese_char ranges.
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
               (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))
# HF tokenizers' BertNormalizer ranges: the sixth block starts at U+2B920, not U+2B820.
_HF_CJK_RANGES = (*_CJK_RANGES[:5], (0x2B920, 0x2CEAF), *_CJK_RANGES[6:])
PADDLENLP_RULES, HF_BERT_RULES = TOKENIZER_RULES


def _is_ascii_punct(cp: int) -> bool:
    return 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126


def _is_cjk(cp: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return cp >= 0x3400 and any(lo <= cp <= hi for lo, hi in ranges)


def _is_split_char(cp: int, category: str) -> bool:
    """Punctuation, symbol or CJK character: PaddleNLP makes each of them a word of its own."""
    return _is_ascii_punct(cp) or category[0] in "PS" or cp in _EXTRA_SYMBOLS or _is_cjk(cp, _CJK_RANGES)


def _ranges(code_points: Iterable[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for cp in code_points:
        if out and out[-1][1] == cp - 1:
            out[-1] = (out[-1][0], cp)
        else:
            out.append((cp, cp))
    return out


def _onig_class(ranges: list[tuple[int, int]]) -> str:
    return "[" + "".join(f"\\x{{{a:X}}}" + ("" if a == b else f"-\\x{{{b:X}}}") for a, b in ranges) + "]"


@dataclass(frozen=True)
class CharTables:
    """Character classes of PaddleNLP's BasicTokenizer, computed from this Python's unicodedata."""

    marks: dict[int, None]  # category Mn: deleted after NFD when accents are stripped
    split_class: str  # Oniguruma class for tokenizers' Split: punctuation, symbols, CJK


@functools.lru_cache(maxsize=1)
def char_tables() -> CharTables:
    """Scan every code point once (a second or two) and cache the classes."""
    category = unicodedata.category
    marks: dict[int, None] = {}
    split: list[int] = []
    for cp in range(0x110000):
        cat = category(chr(cp))
        if cat == "Mn":
            marks[cp] = None
        if _is_split_char(cp, cat):
            split.append(cp)
    return CharTables(marks=marks, split_class=_onig_class(_ranges(split)))


def check_rules(rules: str) -> str:
    if rules not in TOKENIZER_RULES:
        raise OptionError(f"tokenizer rules {rules!r} are not one of {TOKENIZER_RULES}")
    return rules


def clean_text(text: str) -> str:
    """PaddleNLP's ``_clean_text``: delete U+0000, U+FFFD and category C* but tab/newline/return;
    make every other whitespace (Zs, tab, newline, return) a space."""
    if text.isprintable() and "\ufffd" not in text:
        return text  # fast path: isprintable() is False for any C* or Z* character but the space
    category = unicodedata.category
    out = []
    for ch in text:
        cat = category(ch)
        if ch in "\t\n\r" or cat == "Zs":
            out.append(" ")
        elif cat[0] != "C" and ch != "\ufffd":
            out.append(ch)
    return "".join(out)


#: Raw characters before which a word always ends: those clean_text turns into a space (\t \n \r and
#: category Zs) and CJK ideographs (each a word of its own under both rule sets: the ranges they share).
#: Tokens of ``text[:k] + text[k:]`` are the tokens of each part, one after the other, when ``text[k]``
#: is one of them.
_WORD_BOUNDARY = re.compile("[ \t\n\r\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000"
                            + "".join(f"\\U{lo:08X}-\\U{hi:08X}" for lo, hi in _HF_CJK_RANGES) + "]")


class _WordPieceBase:
    """Vocabulary, special tokens in the text, truncation and [CLS]/[SEP]: what both WordPiece
    tokenizers share. Subclasses turn plain text segments into ids."""

    def __init__(self, vocab_file: str | Path, do_lower_case: bool, special_tokens: dict[str, str],
                 max_seq_length: int, rules: str = PADDLENLP_RULES) -> None:
        self.rules = check_rules(rules)
        self.vocab = read_vocab(vocab_file)
        missing = [t for t in special_tokens.values() if t not in self.vocab]
        if missing:
            raise ModelLoadError(f"{vocab_file}: special tokens {missing} are not in the vocabulary. Re-export the model "
                                 f"with the vocabulary it was trained with (`tritoncls export`).")
        self.do_lower_case = do_lower_case
        self.max_seq_length = max_seq_length
        self.unk_token = special_tokens["unk_token"]
        self.cls_id = self.vocab[special_tokens["cls_token"]]
        self.sep_id = self.vocab[special_tokens["sep_token"]]
        specials = sorted(set(special_tokens.values()), key=len, reverse=True)
        self._special_re = re.compile("(" + "|".join(re.escape(t) for t in specials) + ")")
        self._tables = char_tables()
        # A long text is tokenized from its head: the characters up to the first word boundary after
        # ``head_chars`` (more when that head gives fewer tokens than the budget), never all of a
        # 1 MB text for 128 tokens. Exact, unless a special token could straddle the cut.
        self.head_chars = max(64, 8 * max_seq_length)
        self._can_cut = not any(_WORD_BOUNDARY.search(t) for t in specials)

    def normalize(self, text: str) -> str:
        """PaddleNLP's BasicTokenizer before splitting: clean, then lowercase and strip accents."""
        text = clean_text(text)
        if self.do_lower_case:
            # PaddleNLP lowercases one character at a time: no final-sigma rule: capital sigma always becomes σ.
            text = text.replace("\u03a3", "\u03c3").lower()
            if not text.isascii():
                text = unicodedata.normalize("NFD", text).translate(self._tables.marks)
        return text

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text: [CLS] ... [SEP], truncated to max_seq_length.

        Special tokens written in the text ("[MASK]") are kept whole, as PaddleNLP does.
        """
        return self.encode_marked(texts)[0]

    def encode_marked(self, texts: Sequence[str]) -> tuple[list[list[int]], list[bool]]:
        """:meth:`encode`'s ids, and for each text whether it was cut at max_seq_length."""
        budget = self.max_seq_length - 2
        rows: list[list[int]] = [[] for _ in texts]
        cut = [False] * len(texts)
        todo, limit = list(range(len(texts))), self.head_chars
        while todo:
            heads = [self._head(texts[i], limit) for i in todo]
            again = []
            for i, head, ids in zip(todo, heads, self._encode_untruncated(heads)):
                if len(ids) < budget and len(head) < len(texts[i]):
                    again.append(i)  # this head does not settle the first `budget` tokens: take a longer one
                else:
                    rows[i] = [self.cls_id, *ids[:budget], self.sep_id]
                    cut[i] = len(ids) > budget or (len(ids) == budget and len(head) < len(texts[i])
                                                   and not texts[i][len(head):].isspace())
            todo, limit = again, limit * 8
        return rows, cut

    def _head(self, text: str, limit: int) -> str:
        """``text`` up to the first word boundary at or after ``limit`` characters (all of it if none)."""
        if len(text) <= limit or not self._can_cut:
            return text
        boundary = _WORD_BOUNDARY.search(text, limit)
        return text[:boundary.start()] if boundary else text

    def _encode_untruncated(self, texts: Sequence[str]) -> list[list[int]]:
        segments: list[str] = []
        layouts: list[list[int | None]] = []  # per text: a special token's id, or None for the next segment
        for text in texts:
            layout: list[int | None] = []
            for i, part in enumerate(self._special_re.split(text)):
                if i % 2:
                    layout.append(self.vocab[part])
                elif part:
                    segments.append(self.normalize(part))
                    layout.append(None)
            layouts.append(layout)
        encoded = iter(self._encode_segments(segments))
        rows = []
        for layout in layouts:
            ids: list[int] = []
            for item in layout:
                ids.extend(next(encoded) if item is None else (item,))
            rows.append(ids)
        return rows

    def _encode_segments(self, segments: list[str]) -> list[list[int]]:
        raise NotImplementedError


class WordPieceTokenizer(_WordPieceBase):
    """Ids identical to PaddleNLP's ErnieTokenizer (``paddlenlp`` rules) or to HF ``tokenizers``
    loading a BERT ``tokenizer.json`` (``hf-bert`` rules), at HF ``tokenizers`` speed.

    Under ``paddlenlp`` rules Python does what depends on Unicode tables (cleaning, lowercasing,
    accent stripping) exactly as PaddleNLP does; under ``hf-bert`` rules HF's own BertNormalizer and
    BertPreTokenizer do. Special tokens in the text are kept whole in Python either way; the Rust
    tokenizer does the splitting and the WordPiece lookup, which is where the time goes.
    """

    def __init__(self, vocab_file: str | Path, do_lower_case: bool, special_tokens: dict[str, str],
                 max_seq_length: int, rules: str = PADDLENLP_RULES) -> None:
        from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
        from tokenizers.models import WordPiece

        super().__init__(vocab_file, do_lower_case, special_tokens, max_seq_length, rules)
        self._tokenizer = Tokenizer(WordPiece(self.vocab, unk_token=self.unk_token, max_input_chars_per_word=100))
        if rules == HF_BERT_RULES:
            self._tokenizer.normalizer = normalizers.BertNormalizer(
                clean_text=True, handle_chinese_chars=True, strip_accents=do_lower_case, lowercase=do_lower_case)
            self._tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        else:
            self._tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
                pre_tokenizers.WhitespaceSplit(),
                pre_tokenizers.Split(Regex(self._tables.split_class), behavior="isolated"),
            ])

    def normalize(self, text: str) -> str:
        return text if self.rules == HF_BERT_RULES else super().normalize(text)

    def _encode_segments(self, segments: list[str]) -> list[list[int]]:
        return [e.ids for e in self._tokenizer.encode_batch(segments, add_special_tokens=False)]


class PythonWordPieceTokenizer(_WordPieceBase):
    """PaddleNLP's BasicTokenizer + WordpieceTokenizer algorithm in plain Python: the ids and the
    cost of the reference deployments' Python tokenizer, without importing paddlenlp (which the
    Python embedded in nvidia-pytriton's stub cannot import: its ``ssl`` does not load there).
    ``paddlenlp`` rules only: HF's BERT rules come from the Unicode tables compiled into the
    ``tokenizers`` library (an older Unicode than this Python's: it keeps unassigned code points that
    Python's tables call category Cn), which plain Python cannot reproduce exactly."""

    def __init__(self, vocab_file: str | Path, do_lower_case: bool, special_tokens: dict[str, str],
                 max_seq_length: int, rules: str = PADDLENLP_RULES) -> None:
        if rules != PADDLENLP_RULES:
            raise OptionError(f"the python tokenizer follows the {PADDLENLP_RULES!r} rules only, not {rules!r}; "
                             f"use the wordpiece tokenizer")
        super().__init__(vocab_file, do_lower_case, special_tokens, max_seq_length, rules)

    def _encode_segments(self, segments: list[str]) -> list[list[int]]:
        return [[i for word in self._words(text) for i in self._wordpiece(word)] for text in segments]

    def _words(self, text: str) -> list[str]:
        """Whitespace-split words of normalized text, with punctuation, symbols and CJK on their own."""
        words = []
        for token in text.split():
            current = ""
            for ch in token:
                if _is_split_char(ord(ch), unicodedata.category(ch)):
                    words.extend(w for w in (current, ch) if w)
                    current = ""
                else:
                    current += ch
            if current:
                words.append(current)
        return words

    def _wordpiece(self, word: str) -> list[int]:
        """Greedy longest-match-first; a word with an unknown piece (or over 100 chars) is one [UNK]."""
        if len(word) > 100:
            return [self.vocab[self.unk_token]]
        ids, start = [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    ids.append(self.vocab[piece])
                    start = end
                    break
            else:
                return [self.vocab[self.unk_token]]
        return ids


class PaddleNLPTokenizer:
    """The training tokenizer itself; needs a server Python that can import paddlenlp."""

    def __init__(self, directory: str | Path, max_seq_length: int) -> None:
        from paddlenlp.transformers import AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(str(directory))
        self.max_seq_length = max_seq_length

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        out = self._tokenizer(list(texts), max_length=self.max_seq_length, truncation=True, padding=False)
        return out["input_ids"]

    def encode_marked(self, texts: Sequence[str]) -> tuple[list[list[int]], list[bool]]:
        """:meth:`encode`'s ids; a text is counted as cut when it fills max_seq_length (a text of exactly that
        many tokens counts too: this tokenizer does not say whether it dropped any)."""
        rows = self.encode(texts)
        return rows, [len(row) >= self.max_seq_length for row in rows]

