"""Labelled text files (``label<TAB>text``, CSV), their labels, and paths under the data dir."""

from __future__ import annotations

import csv
import gzip
import logging
import os
import re
from pathlib import Path

import numpy as np

from softdistill.data.base import DataError

log = logging.getLogger(__name__)


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


def _resolve_path(arg: str, data_dir: Path | None) -> Path:
    """A path as given if it exists, else relative to the data directory."""
    p = Path(arg).expanduser()
    if p.exists() or p.is_absolute() or data_dir is None:
        return p
    return Path(data_dir) / p
