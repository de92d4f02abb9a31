"""The training tokenizer of a model imported from the Hugging Face format.

Such a model was pretrained on Hugging Face's BERT word splitting (BertNormalizer + BertPreTokenizer),
not PaddleNLP's: PaddleNLP also makes every Unicode symbol (``°``, ``×``, ``～``) a word of its own, so
its tokenizer gives other ids on texts that hold one (5 of the 8,886 KUAKE-QIC texts with the MiniLM
vocabulary). Training, evaluation, export and serving of an imported model therefore all use the
serving runtime's ``WordPieceTokenizer`` under the ``hf-bert`` rules, wrapped here in the slice of
PaddleNLP's tokenizer interface that training uses (``__call__``, ``save_pretrained``, the special
tokens and padding ids). ``tokenizer_config.json`` records the rules (key ``tokenizer_rules``), which
is how :func:`tritoncls.modeling.load_tokenizer` knows to return this class.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tritoncls.runtime import HF_BERT_RULES, WordPieceTokenizer, read_vocab

#: tokenizer_config.json key naming the rule set; absent means PaddleNLP's own tokenizer.
RULES_KEY = "tokenizer_rules"
_SPECIAL_KEYS = ("pad_token", "cls_token", "sep_token", "mask_token", "unk_token")


class HfBertTokenizer:
    """WordPiece under Hugging Face's BERT rules, called like a PaddleNLP tokenizer."""

    rules = HF_BERT_RULES

    def __init__(self, vocab_file: str | Path, do_lower_case: bool, special_tokens: dict[str, str]) -> None:
        self.vocab_file = Path(vocab_file)
        self.vocab = read_vocab(self.vocab_file)
        self.do_lower_case = do_lower_case
        self.special_tokens = {key: special_tokens[key] for key in _SPECIAL_KEYS}
        for key, token in self.special_tokens.items():
            setattr(self, key, token)
        self.pad_token_id = self.vocab[self.pad_token]
        self.mask_token_id = self.vocab[self.mask_token]
        self.all_special_ids = sorted({self.vocab[t] for t in self.special_tokens.values() if t in self.vocab})
        self.pad_token_type_id = 0
        self._by_length: dict[int, WordPieceTokenizer] = {}

    @classmethod
    def from_config(cls, directory: Path, config: dict[str, Any]) -> HfBertTokenizer:
        """The tokenizer saved in ``directory`` whose ``tokenizer_config.json`` is ``config``."""
        return cls(directory / "vocab.txt", bool(config.get("do_lower_case", True)),
                   {key: str(config[key]) for key in _SPECIAL_KEYS})

    def _runtime(self, max_length: int) -> WordPieceTokenizer:
        if max_length not in self._by_length:
            self._by_length[max_length] = WordPieceTokenizer(self.vocab_file, self.do_lower_case, self.special_tokens,
                                                             max_length, self.rules)
        return self._by_length[max_length]

    def __call__(self, texts: Sequence[str] | str, max_length: int = 512, truncation: bool = True,
                 padding: bool = False) -> dict[str, list]:
        """``input_ids`` ([CLS] ... [SEP], cut to ``max_length``) and ``token_type_ids`` of each text."""
        if not truncation or padding:
            raise ValueError("HfBertTokenizer truncates and never pads (the batching code pads)")
        single = isinstance(texts, str)
        ids = self._runtime(max_length).encode([texts] if single else list(texts))
        types = [[0] * len(row) for row in ids]
        if single:
            return {"input_ids": ids[0], "token_type_ids": types[0]}
        return {"input_ids": ids, "token_type_ids": types}

    def save_pretrained(self, directory: str | Path) -> None:
        """``vocab.txt``, ``tokenizer_config.json`` (with the rules) and ``special_tokens_map.json``."""
        directory = Path(directory)
        if self.vocab_file.resolve() != (directory / "vocab.txt").resolve():
            shutil.copyfile(self.vocab_file, directory / "vocab.txt")
        config = {"tokenizer_class": "BertTokenizer", RULES_KEY: self.rules, "do_lower_case": self.do_lower_case,
                  **self.special_tokens}
        _write_json(directory / "tokenizer_config.json", config)
        _write_json(directory / "special_tokens_map.json", self.special_tokens)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def saved_rules(directory: Path) -> tuple[str | None, dict[str, Any]]:
    """The rule set recorded in ``directory/tokenizer_config.json`` (None: PaddleNLP's) and the config."""
    path = directory / "tokenizer_config.json"
    if not path.is_file():
        return None, {}
    config = json.loads(path.read_text(encoding="utf-8"))
    return config.get(RULES_KEY), config
