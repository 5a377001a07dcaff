"""The tokenizer and the vocabularies: text -> tokens -> ids ``(N, maxlen)``."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

TOKENIZER_VERSION = 2  # bump when tokenize() or the cache layout changes: invalidates caches
PAD, UNK = "<pad>", "<unk>"

# --------------------------------------------------------------------------- tokenizer
_ESCAPES = (
    ("<br />", " "),
    ("<br/>", " "),
    ("<br>", " "),
    ("-lrb-", "("),
    ("-rrb-", ")"),
    ("-lsb-", "["),
    ("-rsb-", "]"),
    ("-lcb-", "{"),
    ("-rcb-", "}"),
    ("``", '"'),
    ("''", '"'),
    ("\\/", "/"),
)
# "do" before "n't"; clitics 's 're 've 'd 'll 'm; words; any other single non-space character
_TOKEN = re.compile(r"\w+(?=n't\b)|n't\b|'(?:s|re|ve|d|ll|m)\b|\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens of ``text`` (see the module docstring)."""
    text = text.lower()
    for old, new in _ESCAPES:
        text = text.replace(old, new)
    return _TOKEN.findall(text)


# --------------------------------------------------------------------------- vocabulary
class Vocab:
    """Words <-> ids; id 0 is ``<pad>`` and id 1 is ``<unk>``."""

    def __init__(self, words: Sequence[str], *, pad: str = PAD, unk: str = UNK) -> None:
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            dup = next(w for w, c in Counter(self.words).items() if c > 1)
            raise ValueError(f"vocabulary lists {dup!r} twice")
        for special in (pad, unk):
            if special not in self.index:
                raise ValueError(f"vocabulary lacks the special token {special!r}")
        self.pad_id, self.unk_id = self.index[pad], self.index[unk]

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Ids of ``tokens`` (unknown ones -> ``<unk>``)."""
        return [self.index.get(t, self.unk_id) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.words[i] for i in ids]


class WordPieceVocab(Vocab):
    """A BERT-style WordPiece vocabulary (``vocab.txt``): each word is split greedily into the
    longest pieces in the vocabulary, continuation pieces prefixed ``##``; a word that cannot be
    split is ``[UNK]``."""

    def __init__(self, words: Sequence[str]) -> None:
        super().__init__(words, pad="[PAD]", unk="[UNK]")

    def encode(self, tokens: Iterable[str]) -> list[int]:
        out: list[int] = []
        for word in tokens:
            pieces, start = [], 0
            while start < len(word):
                end = len(word)
                while end > start:
                    piece = word[start:end] if start == 0 else "##" + word[start:end]
                    if piece in self.index:
                        break
                    end -= 1
                if end == start:  # no piece fits
                    pieces = [self.unk_id]
                    break
                pieces.append(self.index[piece])
                start = end
            out.extend(pieces)
        return out


def build_vocab(texts: Iterable[list[str]], ntoken: int) -> Vocab:
    """``<pad>``, ``<unk>`` and the ``ntoken`` most frequent tokens (ties alphabetical)."""
    if ntoken < 1:
        raise ValueError(f"ntoken must be >= 1, got {ntoken}")
    counts = Counter(t for tokens in texts for t in tokens)
    counts.pop(PAD, None)
    counts.pop(UNK, None)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:ntoken]
    return Vocab([PAD, UNK, *(w for w, _ in ranked)])


def encode(token_lists: Sequence[list[str]], vocab: Vocab, maxlen: int) -> np.ndarray:
    """``(N, maxlen)`` ids (int16, or int32 for vocabularies over 32,767): the first ``maxlen`` ids
    of each text, padded with ``<pad>``."""
    if maxlen < 1:
        raise ValueError(f"maxlen must be >= 1, got {maxlen}")
    dtype = np.int16 if len(vocab) <= np.iinfo(np.int16).max else np.int32  # halves the cache
    out = np.full((len(token_lists), maxlen), vocab.pad_id, dtype=dtype)
    for i, tokens in enumerate(token_lists):
        ids = vocab.encode(tokens)[:maxlen]
        out[i, : len(ids)] = ids
    return out
