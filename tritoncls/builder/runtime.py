"""Serving-time code shared by the python-backend models of a tritoncls model repository.

``build-repo`` copies this file into every python model's version folder as ``tritoncls_runtime.py``,
so a repository is self-contained: copied to another machine it serves the same predictions. It
imports numpy at the top and tokenizers, onnxruntime, paddle or paddlenlp only where a model needs
them. It must never import tritoncls: the server's Python may not have it.

The functions are plain and testable without Triton; each ``model.py`` only moves tensors between
Triton and these functions.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FILE_NAME = "tritoncls_runtime.py"
PADDINGS = ("buckets", "longest", "max_length")

# Tensor names of the repository's contract (the builder renders its configs from these).
TEXT = "text"
INPUT_IDS = "input_ids"
TOKEN_TYPE_IDS = "token_type_ids"
LOGITS = "logits"
LABEL = "label"
CONFIDENCE = "confidence"
TOP_K_LABELS = "top_k_labels"
TOP_K_PROBS = "top_k_probs"


class RequestError(ValueError):
    """One request's data is bad; that request alone gets an error response."""


# ---------------------------------------------------------------------------------------------
# Text input
# ---------------------------------------------------------------------------------------------


def decode_texts(column: np.ndarray) -> list[str]:
    """The texts of one request's BYTES tensor (shape [batch, 1]), decoded as UTF-8.

    Raises RequestError for bytes that are not UTF-8 and for empty or blank texts.
    """
    texts = []
    for row, value in enumerate(column.reshape(-1)):
        raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = raw[exc.start:exc.start + 4]
            raise RequestError(
                f"text {row}: bytes {bad!r} at offset {exc.start} are not valid UTF-8; send UTF-8 encoded text"
            ) from None
        if not text.strip():
            raise RequestError(f"text {row}: the text is empty; send at least one non-blank character")
        texts.append(text)
    return texts


# ---------------------------------------------------------------------------------------------
# Tokenizer: HF tokenizers WordPiece with PaddleNLP's BasicTokenizer rules
# ---------------------------------------------------------------------------------------------

# PaddleNLP (tokenizer_utils._is_symbol) isolates these besides Unicode category S.
_EXTRA_SYMBOLS = (0x00AD, 0x00B2, 0x00BA, 0x3007, 0x00B5, 0x00D8, 0x014B, 0x01B1)
# PaddleNLP's BasicTokenizer._is_chinese_char ranges (HF's BertNormalizer differs in one range).
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
               (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def _is_split_char(cp: int, category: str) -> bool:
    """Punctuation, symbol or CJK character: PaddleNLP makes each of them a word of its own."""
    ascii_punct = 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126
    cjk = cp >= 0x3400 and any(lo <= cp <= hi for lo, hi in _CJK_RANGES)
    return ascii_punct or category[0] in "PS" or cp in _EXTRA_SYMBOLS or cjk


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
#: category Zs) and CJK ideographs (each a word of its own). Tokens of ``text[:k] + text[k:]`` are the
#: tokens of each part, one after the other, when ``text[k]`` is one of them.
_WORD_BOUNDARY = re.compile("[ \t\n\r\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000"
                            + "".join(f"\\U{lo:08X}-\\U{hi:08X}" for lo, hi in _CJK_RANGES) + "]")


def read_vocab(path: str | Path) -> dict[str, int]:
    """token -> id, one token a line; a repeated token keeps its last line (as PaddleNLP's Vocab)."""
    vocab: dict[str, int] = {}
    with open(path, encoding="utf-8") as handle:
        for index, line in enumerate(handle):
            vocab[line.rstrip("\n")] = index
    return vocab


class _WordPieceBase:
    """Vocabulary, special tokens in the text, truncation and [CLS]/[SEP]: what both WordPiece
    tokenizers share. Subclasses turn plain text segments into ids."""

    def __init__(self, vocab_file: str | Path, do_lower_case: bool, special_tokens: dict[str, str],
                 max_seq_length: int) -> None:
        self.vocab = read_vocab(vocab_file)
        missing = [t for t in special_tokens.values() if t not in self.vocab]
        if missing:
            raise ValueError(f"{vocab_file}: special tokens {missing} are not in the vocabulary")
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
        budget = self.max_seq_length - 2
        rows: list[list[int]] = [[] for _ in texts]
        todo, limit = list(range(len(texts))), self.head_chars
        while todo:
            heads = [self._head(texts[i], limit) for i in todo]
            again = []
            for i, head, ids in zip(todo, heads, self._encode_untruncated(heads)):
                if len(ids) < budget and len(head) < len(texts[i]):
                    again.append(i)  # this head does not settle the first `budget` tokens: take a longer one
                else:
                    rows[i] = [self.cls_id, *ids[:budget], self.sep_id]
            todo, limit = again, limit * 8
        return rows

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
    """Ids identical to PaddleNLP's ErnieTokenizer, at HF ``tokenizers`` speed.

    Python does what depends on Unicode tables (cleaning, lowercasing, accent stripping, special
    tokens in the text) exactly as PaddleNLP does; the Rust tokenizer does the splitting and the
    WordPiece lookup, which is where the time goes.
    """

    def __init__(self, vocab_file: str | Path, do_lower_case: bool, special_tokens: dict[str, str],
                 max_seq_length: int) -> None:
        from tokenizers import Regex, Tokenizer, pre_tokenizers
        from tokenizers.models import WordPiece

        super().__init__(vocab_file, do_lower_case, special_tokens, max_seq_length)
        self._tokenizer = Tokenizer(WordPiece(self.vocab, unk_token=self.unk_token, max_input_chars_per_word=100))
        self._tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Split(Regex(self._tables.split_class), behavior="isolated"),
        ])

    def _encode_segments(self, segments: list[str]) -> list[list[int]]:
        return [e.ids for e in self._tokenizer.encode_batch(segments, add_special_tokens=False)]


class PythonWordPieceTokenizer(_WordPieceBase):
    """PaddleNLP's BasicTokenizer + WordpieceTokenizer algorithm in plain Python: the ids and the
    cost of the reference deployments' Python tokenizer, without importing paddlenlp (which the
    Python embedded in nvidia-pytriton's stub cannot import: its ``ssl`` does not load there)."""

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


# ---------------------------------------------------------------------------------------------
# Padding and length buckets
# ---------------------------------------------------------------------------------------------


def parse_ints(value: str) -> tuple[int, ...]:
    """``"16,32,64"`` -> (16, 32, 64); an empty string gives ()."""
    return tuple(int(v) for v in value.replace(" ", "").split(",") if v)


def bucket_width(longest: int, buckets: Sequence[int]) -> int:
    """The smallest bucket that holds ``longest`` tokens (the last bucket is max_seq_length)."""
    for width in buckets:
        if longest <= width:
            return width
    raise ValueError(f"{longest} tokens exceed the largest bucket {buckets[-1]}")


def padded_width(rows: Sequence[Sequence[int]], padding: str, buckets: Sequence[int], max_seq_length: int) -> int:
    """Width of one request's batch: its bucket, its longest row, or max_seq_length."""
    longest = max(len(r) for r in rows)
    if padding == "buckets":
        return bucket_width(longest, buckets)
    if padding == "longest":
        return longest
    if padding == "max_length":
        return max_seq_length
    raise ValueError(f"padding {padding!r} is not one of {PADDINGS}")


def pad_rows(rows: Sequence[Sequence[int]], width: int, pad_id: int, pad_type_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """int64 input_ids and token_type_ids [len(rows), width] (single-sentence: real types are 0)."""
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    types = np.full((len(rows), width), pad_type_id, dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = row
        types[i, :len(row)] = 0
    return ids, types


# ---------------------------------------------------------------------------------------------
# Model step: merge the requests of a dynamic batch into one run
# ---------------------------------------------------------------------------------------------


def merge_requests(batches: Sequence[np.ndarray], pad_value: int) -> np.ndarray:
    """Stack requests' [n_i, w_i] arrays into one [sum n_i, max w_i] array, padding on the right."""
    width = max(b.shape[1] for b in batches)
    out = np.full((sum(b.shape[0] for b in batches), width), pad_value, dtype=batches[0].dtype)
    start = 0
    for b in batches:
        out[start:start + b.shape[0], :b.shape[1]] = b
        start += b.shape[0]
    return out


def trim_padding(input_ids: np.ndarray, token_type_ids: np.ndarray, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Drop trailing columns that are padding in every row; ERNIE masks [PAD] so logits do not change."""
    real = np.flatnonzero((input_ids != pad_id).any(axis=0))
    width = int(real[-1]) + 1 if real.size else 1
    return np.ascontiguousarray(input_ids[:, :width]), np.ascontiguousarray(token_type_ids[:, :width])


def split_rows(array: np.ndarray, counts: Sequence[int]) -> list[np.ndarray]:
    """Inverse of stacking: consecutive slices of ``counts`` rows."""
    return np.split(array, np.cumsum(counts)[:-1])


class OnnxRunner:
    """ONNX Runtime session over the repository's model.onnx."""

    def __init__(self, model_file: str | Path, input_names: Sequence[str], output_name: str,
                 intra_op_threads: int = 0, inter_op_threads: int = 0, device: str = "cpu") -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = inter_op_threads
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "gpu" else ["CPUExecutionProvider"]
        self._session = ort.InferenceSession(str(model_file), options, providers=providers)
        self._inputs = list(input_names)
        self._output = output_name

    def run(self, input_ids: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        feed = dict(zip(self._inputs, (input_ids, token_type_ids)))
        return self._session.run([self._output], feed)[0]


class PaddleRunner:
    """Paddle Inference predictor over the repository's static graph (model.json + model.pdiparams)."""

    def __init__(self, model_file: str | Path, params_file: str | Path, input_names: Sequence[str],
                 output_name: str, intra_op_threads: int = 0, device: str = "cpu") -> None:
        from paddle import inference

        config = inference.Config(str(model_file), str(params_file))
        if device == "gpu":
            config.enable_use_gpu(256, 0)
        else:
            config.disable_gpu()
            config.set_cpu_math_library_num_threads(intra_op_threads or 1)
        config.disable_glog_info()
        self._predictor = inference.create_predictor(config)
        self._inputs = list(input_names)
        self._output = output_name

    def run(self, input_ids: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        for name, array in zip(self._inputs, (input_ids, token_type_ids)):
            self._predictor.get_input_handle(name).copy_from_cpu(np.ascontiguousarray(array))
        self._predictor.run()
        return self._predictor.get_output_handle(self._output).copy_to_cpu()


# ---------------------------------------------------------------------------------------------
# Postprocess
# ---------------------------------------------------------------------------------------------


def read_labels(path: str | Path) -> list[str]:
    """Label names, one a line in logit order; read like training reads label.txt."""
    text = Path(path).read_bytes().decode("utf-8-sig")
    return [line.rstrip("\r").strip() for line in text.split("\n") if line.strip()]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float32) - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def top_k(probs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and probabilities of the k most probable labels per row, best first (ties: lower id)."""
    order = np.argsort(-probs, axis=-1, kind="stable")[:, :k]
    return order, np.take_along_axis(probs, order, axis=-1)


def label_bytes(labels: Sequence[str], indices: np.ndarray) -> np.ndarray:
    """A BYTES (object) array of UTF-8 label names shaped like ``indices``."""
    encoded = np.array([label.encode("utf-8") for label in labels], dtype=np.object_)
    return encoded[indices]


@dataclass(frozen=True)
class Classified:
    """Postprocess outputs for a batch of rows."""

    label: np.ndarray  # BYTES [n, 1]
    confidence: np.ndarray  # FP32 [n, 1]
    top_k_labels: np.ndarray  # BYTES [n, k]
    top_k_probs: np.ndarray  # FP32 [n, k]


def classify(logits: np.ndarray, labels: Sequence[str], k: int) -> Classified:
    """Softmax, best label and confidence, and the top-k labels with their probabilities."""
    if logits.shape[-1] != len(labels):
        raise ValueError(f"the model gives {logits.shape[-1]} logits but the label file has {len(labels)} labels")
    probs = softmax(logits)
    order, best = top_k(probs, max(k, 1))
    return Classified(
        label=label_bytes(labels, order[:, :1]),
        confidence=best[:, :1].astype(np.float32),
        top_k_labels=label_bytes(labels, order[:, :k]),
        top_k_probs=best[:, :k].astype(np.float32),
    )


# ---------------------------------------------------------------------------------------------
# Steps: one call per dynamic batch; one result or exception per request
# ---------------------------------------------------------------------------------------------


def string_parameters(model_config: dict) -> dict[str, str]:
    """The ``parameters`` of a Triton model config (as the python backend passes it) as a str dict."""
    return {key: value["string_value"] for key, value in model_config.get("parameters", {}).items()}


class TokenizeStep:
    """Texts of every request in one tokenizer call; each request padded to its own width."""

    def __init__(self, tokenizer, padding: str, buckets: Sequence[int], max_seq_length: int,
                 pad_token_id: int, pad_token_type_id: int = 0) -> None:
        if padding not in PADDINGS:
            raise ValueError(f"padding {padding!r} is not one of {PADDINGS}")
        self.tokenizer = tokenizer
        self.padding = padding
        self.buckets = tuple(buckets) or (max_seq_length,)
        self.max_seq_length = max_seq_length
        self.pad_token_id = pad_token_id
        self.pad_token_type_id = pad_token_type_id

    @classmethod
    def from_parameters(cls, params: dict[str, str], version_dir: str | Path) -> TokenizeStep:
        directory = Path(version_dir)
        max_len = int(params["max_seq_length"])
        if params["implementation"] == "paddlenlp":
            tokenizer = PaddleNLPTokenizer(directory, max_len)
        else:
            kind = {"wordpiece": WordPieceTokenizer, "python": PythonWordPieceTokenizer}[params["implementation"]]
            tokenizer = kind(directory / params["vocab_file"], params["do_lower_case"] == "true",
                             json.loads(params["special_tokens"]), max_len)
        return cls(tokenizer, params["padding"], parse_ints(params["buckets"]), max_len,
                   int(params["pad_token_id"]), int(params["pad_token_type_id"]))

    def __call__(self, columns: Sequence[np.ndarray | Exception]) -> list[tuple[np.ndarray, np.ndarray] | Exception]:
        results: list = list(columns)
        texts: dict[int, list[str]] = {}
        for i, column in enumerate(columns):
            if isinstance(column, Exception):
                continue
            try:
                texts[i] = decode_texts(column)
            except RequestError as exc:
                results[i] = exc
        try:
            rows = self.tokenizer.encode([t for i in texts for t in texts[i]])
        except Exception as exc:  # noqa: BLE001 - every request of the call gets the error
            return [exc if i in texts else r for i, r in enumerate(results)]
        start = 0
        for i, mine in texts.items():
            batch = rows[start:start + len(mine)]
            start += len(mine)
            width = padded_width(batch, self.padding, self.buckets, self.max_seq_length)
            results[i] = pad_rows(batch, width, self.pad_token_id, self.pad_token_type_id)
        return results


def length_groups(lengths: np.ndarray, max_padding: float = 1.2, max_rows: int = 64) -> list[np.ndarray]:
    """Row indices sorted by length, cut into groups whose padded size stays within ``max_padding``
    times their real tokens (and at most ``max_rows`` rows each).

    A dynamic batch merges requests of every length; padded to its longest row it computes 2-3x
    the real tokens. Runs over groups of similar length bring that close to 1x, as sorting does offline.
    """
    order = np.argsort(lengths, kind="stable")
    groups: list[np.ndarray] = []
    start, real = 0, 0
    for end, row in enumerate(order):
        width = int(lengths[row])
        rows = end - start + 1
        if rows > 1 and (rows * width > max_padding * (real + width) or rows > max_rows):
            groups.append(order[start:end])
            start, real = end, 0
        real += width
    groups.append(order[start:])
    return groups


class ModelStep:
    """All requests of a dynamic batch together: rows stacked, then run in groups of similar length
    (padding trimmed per group), logits split back per request.

    ``trim=False`` runs every position a request was padded to, and a merged batch as one run padded
    to its longest request: what the reference deployments compute, for benchmarking them as a peer.
    """

    def __init__(self, runner, pad_token_id: int, merge: bool = True, trim: bool = True) -> None:
        self.runner = runner
        self.pad_token_id = pad_token_id
        self.merge = merge
        self.trim = trim

    @classmethod
    def from_parameters(cls, params: dict[str, str], version_dir: str | Path, input_names: Sequence[str],
                        output_name: str) -> ModelStep:
        directory = Path(version_dir)
        threads = int(params["intra_op_threads"])
        if params["runtime"] == "paddle_inference":
            runner = PaddleRunner(directory / params["model_file"], directory / params["params_file"], input_names,
                                  output_name, threads, params["device"])
        else:
            runner = OnnxRunner(directory / params["model_file"], input_names, output_name, threads,
                                int(params["inter_op_threads"]), params["device"])
        return cls(runner, int(params["pad_token_id"]), params["merge_requests"] == "true",
                   params.get("trim_padding", "true") == "true")

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
        groups = length_groups((ids != self.pad_token_id).sum(axis=1)) if self.trim else [np.arange(len(ids))]
        logits = np.concatenate([self._run(ids[rows], types[rows]) for rows in groups])
        out = np.empty_like(logits)
        out[np.concatenate(groups)] = logits
        return split_rows(out, [item[0].shape[0] for item in inputs])


class PostprocessStep:
    """Logits of every request in one softmax; label names from the repository's label file."""

    def __init__(self, labels: Sequence[str], top_k: int) -> None:
        self.labels = list(labels)
        self.top_k = top_k

    @classmethod
    def from_parameters(cls, params: dict[str, str], version_dir: str | Path) -> PostprocessStep:
        path = Path(version_dir) / params["label_file"]
        labels = read_labels(path)
        expected = int(params["num_labels"])
        if len(labels) != expected:
            raise ValueError(f"{path}: {len(labels)} labels, but the model gives {expected} logits")
        return cls(labels, int(params["top_k"]))

    def __call__(self, inputs: Sequence[np.ndarray | Exception]) -> list[Classified | Exception]:
        results: list = list(inputs)
        good = [i for i, item in enumerate(inputs) if not isinstance(item, Exception)]
        if not good:
            return results
        try:
            merged = classify(np.concatenate([inputs[i] for i in good]), self.labels, self.top_k)
        except Exception as exc:  # noqa: BLE001
            return [exc if i in good else r for i, r in enumerate(results)]
        start = 0
        for i in good:
            n = inputs[i].shape[0]
            results[i] = Classified(*(array[start:start + n] for array in (
                merged.label, merged.confidence, merged.top_k_labels, merged.top_k_probs)))
            start += n
        return results
