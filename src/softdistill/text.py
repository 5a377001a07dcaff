"""Reading distilled sentences: nearest vocabulary words per position, as text and a heat map.

A synthetic sentence is a ``(maxlen, dim)`` matrix in the frozen embedding space; it is not made of
words. :func:`decode_nearest` shows, for each position, the vocabulary words whose embeddings are
closest to it (cosine similarity) and how close they are. The report (``softdistill report``) and
``softdistill show`` both use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from softdistill import io
from softdistill.io import atomic_write, save_png

__all__ = [
    "NearestWords",
    "decode_nearest",
    "format_synthetic_text",
    "save_nearest_heatmap",
    "save_text_report",
]


@dataclass
class NearestWords:
    """Nearest vocabulary words of every position of some synthetic sentences.

    Attributes:
        words: nested lists with the leading shape of the input, then ``maxlen``, then ``k``.
        ids: ``(..., maxlen, k)`` vocabulary ids.
        similarity: ``(..., maxlen, k)`` cosine similarities, best first.
        norm: ``(..., maxlen)`` Euclidean norm of each position's vector (a position far smaller
            than real words is close to ``<pad>``, whose vector is zero).
    """

    words: list
    ids: Tensor
    similarity: Tensor
    norm: Tensor

    def top(self) -> list:
        """The best word per position (nested lists with the input's leading shape)."""

        def first(x):
            return x[0] if x and isinstance(x[0], str) else [first(v) for v in x]

        return first(self.words)


def _nest(flat: list, shape: Sequence[int]) -> list:
    if len(shape) <= 1:
        return flat
    step = len(flat) // shape[0]
    return [_nest(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


@torch.no_grad()
def decode_nearest(
    x_syn: Tensor,
    embedding: Tensor,
    vocab: Sequence[str],
    k: int = 3,
    *,
    skip: Sequence[str] = (),
    chunk: int = 4096,
) -> NearestWords:
    """The ``k`` vocabulary words with the highest cosine similarity to each position.

    Args:
        x_syn: ``(..., maxlen, dim)`` synthetic sentences (any leading shape, e.g.
            ``(n_batches, per_batch)``), in the space of ``embedding``.
        embedding: ``(len(vocab), dim)`` the frozen table the real text is looked up in.
        vocab: the word of each table row.
        k: words per position.
        skip: words never returned (e.g. ``["<pad>"]``); the zero ``<pad>`` vector has similarity
            0 to everything anyway.
        chunk: positions compared at a time (bounds memory for large vocabularies).

    Returns:
        :class:`NearestWords`.
    """
    if embedding.dim() != 2 or embedding.shape[0] != len(vocab):
        raise ValueError(
            f"embedding must be (len(vocab), dim) = ({len(vocab)}, dim), got "
            f"{tuple(embedding.shape)}"
        )
    if x_syn.shape[-1] != embedding.shape[1]:
        raise ValueError(
            f"x_syn has dimension {x_syn.shape[-1]} but the embedding table has "
            f"{embedding.shape[1]}"
        )
    k = min(k, len(vocab) - len(set(skip) & set(vocab)))
    if k < 1:
        raise ValueError(f"k must be >= 1 and the vocabulary non-empty, got k={k}")
    lead = tuple(x_syn.shape[:-1])
    x = x_syn.detach().reshape(-1, x_syn.shape[-1]).to(torch.float64)
    table = F.normalize(embedding.detach().to(device=x.device, dtype=torch.float64), dim=-1)
    banned = torch.tensor([w in set(skip) for w in vocab], device=x.device)
    sims, ids = [], []
    for i in range(0, x.shape[0], chunk):
        cos = F.normalize(x[i : i + chunk], dim=-1) @ table.T  # (chunk, V)
        cos[:, banned] = -float("inf")
        s, j = cos.topk(k, dim=-1)
        sims.append(s)
        ids.append(j)
    sim = torch.cat(sims).to(x_syn.dtype).cpu()
    idx = torch.cat(ids).cpu()
    words = [[vocab[j] for j in row] for row in idx.tolist()]
    return NearestWords(
        words=_nest(words, lead),
        ids=idx.view(*lead, k),
        similarity=sim.view(*lead, k),
        norm=x.norm(dim=-1).to(x_syn.dtype).cpu().view(lead),
    )


def _label_text(y: Tensor, class_names: Sequence[str], top: int) -> str:
    vals, idx = y.topk(min(top, y.numel()))
    return ", ".join(f"{class_names[i]} {v:+.3f}" for i, v in zip(idx.tolist(), vals.tolist()))


def format_synthetic_text(
    nearest: NearestWords,
    y_soft: Tensor,
    class_names: Sequence[str],
    *,
    lrs: Tensor | None = None,
    top_labels: int = 3,
    trim_pad: str | None = "<pad>",
) -> str:
    """A plain-text listing: for each synthetic sentence its soft label and, per position, the
    nearest words with their cosine similarities.

    Args:
        nearest: :func:`decode_nearest` of ``x_syn (n_batches, per_batch, maxlen, dim)``.
        y_soft: ``(n_batches, per_batch, n_classes)`` label vectors.
        class_names: names of the classes.
        lrs: the learned per-step learning rates (shown in the header), optional.
        top_labels: classes shown per soft label (the whole vector follows).
        trim_pad: trailing positions whose nearest word is this are summarised in one line.
    """
    y = y_soft.detach().float().cpu()
    lines = []
    if lrs is not None:
        lines.append("learned learning rates: " + " ".join(f"{v:.4g}" for v in lrs.tolist()))
    for b, batch in enumerate(nearest.words):
        for i, sentence in enumerate(batch):
            label = y[b, i]
            lines.append("")
            lines.append(
                f"== batch {b}, sentence {i}: {_label_text(label, class_names, top_labels)}"
            )
            lines.append(
                "   label vector: "
                + " ".join(f"{n}={v:+.3f}" for n, v in zip(class_names, label.tolist()))
            )
            lines.append(
                "   top words: " + " ".join(pos[0] for pos in sentence).rstrip()
                if sentence
                else "   (empty)"
            )
            end = len(sentence)
            while trim_pad and end > 0 and sentence[end - 1][0] == trim_pad:
                end -= 1
            sims = nearest.similarity[b, i]
            for p in range(end):
                cands = "  ".join(f"{w} ({s:.2f})" for w, s in zip(sentence[p], sims[p].tolist()))
                lines.append(f"   {p:3d}  |x|={nearest.norm[b, i, p]:6.2f}  {cands}")
            if end < len(sentence):
                lines.append(f"   {end:3d}-{len(sentence) - 1}: nearest word {trim_pad}")
    return "\n".join(lines).lstrip("\n") + "\n"


def save_nearest_heatmap(
    nearest: NearestWords,
    y_soft: Tensor,
    class_names: Sequence[str],
    path: str | Path,
    *,
    max_positions: int = 40,
) -> Path:
    """A PNG: one row per synthetic sentence, one cell per position coloured by the cosine
    similarity of its nearest word and labelled with that word; beside it, the soft labels.

    Args:
        nearest: :func:`decode_nearest` of ``x_syn (n_batches, per_batch, maxlen, dim)``.
        y_soft: ``(n_batches, per_batch, n_classes)``.
        class_names: names of the classes.
        path: output file.
        max_positions: show at most this many leading positions.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sim = nearest.similarity[..., 0].flatten(0, -2)[:, :max_positions].float()  # (rows, L)
    words = [s for batch in nearest.words for s in batch]
    y = y_soft.detach().float().cpu().flatten(0, -2)  # (rows, C)
    rows, L = sim.shape
    C = y.shape[1]
    width = min(2 + 0.55 * L + 0.5 * C, 60)
    fig, (ax, axl) = plt.subplots(
        1,
        2,
        figsize=(width, 1.0 + 0.45 * rows),
        gridspec_kw={"width_ratios": [max(L, 1), max(C, 1) * 1.2]},
        squeeze=True,
    )
    im = ax.imshow(sim.numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for r in range(rows):
        for p in range(L):
            ax.text(p, r, words[r][p][0][:10], ha="center", va="center", fontsize=5, color="w")
    ax.set_xlabel("position (cell: nearest word, colour: its cosine similarity)")
    ax.set_yticks(range(rows))
    ax.set_yticklabels([f"sentence {r}" for r in range(rows)], fontsize=6)
    fig.colorbar(im, ax=ax, fraction=0.02, pad=0.01)
    lim = float(y.abs().max()) or 1.0
    axl.imshow(y.numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    for r in range(rows):
        for c in range(C):
            axl.text(c, r, f"{y[r, c]:.2f}", ha="center", va="center", fontsize=5)
    axl.set_xticks(range(C))
    axl.set_xticklabels([n[:10] for n in class_names], rotation=60, ha="right", fontsize=6)
    axl.set_yticks([])
    axl.set_title("soft labels", fontsize=8)
    fig.tight_layout()
    return save_png(fig, path, dpi=120)


def save_text_report(out: str | Path, syn, data) -> None:
    """What a text run adds to its folder: ``embedding.safetensors`` (the table and vocabulary,
    so the run decodes without its dataset), the nearest-word listing ``report/synthetic.txt``
    and its heat map ``report/nearest.png``.

    Args:
        out: the run folder.
        syn: the learned :class:`~softdistill.core.SyntheticSet`.
        data: the text :class:`~softdistill.data.Dataset` (``extra`` has the table and vocab).
    """
    out = Path(out)
    table, vocab = data.extra["embedding"], data.extra["vocab"]
    io.save_embedding(
        out / io.EMBEDDING,
        table,
        vocab,
        {"embeddings": data.extra.get("embeddings"), "maxlen": data.extra.get("maxlen")},
    )
    nearest = decode_nearest(syn.x_syn.detach().cpu(), table, vocab, 3)
    y = syn.y_soft.detach().cpu()
    text = format_synthetic_text(nearest, y, data.class_names, lrs=syn.lrs.detach().cpu())
    atomic_write(out / "report" / "synthetic.txt", lambda tmp: Path(tmp).write_text(text))
    save_nearest_heatmap(nearest, y, data.class_names, out / "report" / "nearest.png")
