"""Text datasets as ``Dataset``s of embedded sequences: the built-in ones (TREC-6/50, SST-5,
IMDB, AG News), ``tsv:PATH`` and ``hf:`` datasets; each registered in the dataset registry."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from softdistill.data.base import DataError, Dataset, DatasetInfo, Split, cache_dir, register
from softdistill.data.text.cache import _cache_key, _file_stamp, _load_npz, _save_npz
from softdistill.data.text.embeddings import (
    _hf_files,
    _hf_vocab,
    _resolve_embeddings,
    _table_files,
    embedding_table,
    parse_embeddings,
)
from softdistill.data.text.files import (
    _find_split_file,
    _label_ids,
    _resolve_path,
    read_labelled_file,
)
from softdistill.data.text.tokens import EmbeddedTokens
from softdistill.data.text.vocab import (
    TOKENIZER_VERSION,
    Vocab,
    WordPieceVocab,
    build_vocab,
    encode,
    tokenize,
)
from softdistill.progress import task

log = logging.getLogger(__name__)

EAGER_LIMIT_BYTES = 1 << 30  # embed a split up front when its floats take at most this

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
