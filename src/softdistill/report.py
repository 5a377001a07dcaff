"""Reports of finished runs: what was learned, how it evolved, how well it trains a network.

``write_report([run_dir, ...])`` writes ``report/index.html`` (self-contained: every image is
inlined, it opens from disk) and ``report/summary.md`` (with the figures as files beside it).
Sections (HTML ids): ``evaluation`` (table with baselines), ``curves`` (outer loss and test
accuracy from ``metrics.jsonl``), ``schedule`` (the learned learning rates), then per run
``examples`` (the synthetic examples of every inner step with their top-3 soft labels), ``labels``
(heat map of the soft-label matrix), ``evolution`` (an animated GIF from the run's snapshots) and
``config`` (the resolved configuration). Several runs share the table, curves and schedule plots.

How examples are shown depends on the modality: :data:`EXAMPLE_VIEWS` maps ``image``/``text`` to
a function; text runs show decoded nearest words when a decoder is available.
"""

from __future__ import annotations

import base64
import html
import io as _io
import json
import math
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from softdistill import io
from softdistill.io import atomic_write, save_png
from softdistill.results import Score
from softdistill.sections import group_by_section
from softdistill.text import decode_nearest, save_text_report

__all__ = [
    "EXAMPLE_VIEWS",
    "ARTEFACT_WRITERS",
    "Report",
    "RunData",
    "Section",
    "TextDecoder",
    "denormalise",
    "evolution_gif",
    "load_run_data",
    "save_artefacts",
    "save_image_artefacts",
    "save_synthetic_grid",
    "to_uint8_images",
    "top_labels",
    "write_report",
]

MAX_EXAMPLES_SHOWN = 2000  # examples drawn per run in the HTML grid
MAX_HEATMAP_ROWS = 200  # rows of the soft-label heat map
TOP = 3  # soft labels shown per example

# decode(x (n, max_len, embed_dim)) -> one string of words per example
TextDecoder = Callable[[Tensor], list[str]]


# ============================================================================ small helpers
def denormalise(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Undo the dataset normalisation of images ``(..., C, H, W)`` and clip to [0, 1]."""
    c = x.shape[-3]
    m = torch.tensor(list(mean) or [0.0] * c, dtype=x.dtype).view(c, 1, 1)
    s = torch.tensor(list(std) or [1.0] * c, dtype=x.dtype).view(c, 1, 1)
    return (x * s + m).clamp(0, 1)


def to_uint8_images(x: Tensor) -> np.ndarray:
    """``(N, C, H, W)`` in [0, 1] -> ``(N, H, W)`` (C=1) or ``(N, H, W, C)`` uint8 arrays."""
    a = (x.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    a = a.permute(0, 2, 3, 1).numpy()
    return a[..., 0] if a.shape[-1] == 1 else a


def top_labels(y: Tensor, class_names: Sequence[str], k: int = 3) -> list[list[tuple[str, float]]]:
    """For each row of ``y (n, n_classes)``, its ``k`` largest entries as ``(name, value)``."""
    vals, idx = y.topk(min(k, y.shape[-1]), dim=-1)
    return [
        [(class_names[i], v) for i, v in zip(ii, vv)] for ii, vv in zip(idx.tolist(), vals.tolist())
    ]


def _png(arr: np.ndarray, scale: int = 1) -> bytes:
    from PIL import Image

    img = Image.fromarray(arr)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = _io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _fig_png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = _io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buf.getvalue()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ============================================================================ run data
@dataclass
class RunData:
    """A run folder loaded for reporting."""

    name: str
    run: io.Run
    snapshots: list[io.Snapshot]

    @property
    def modality(self) -> str:
        return str(self.run.meta.get("modality", "image"))

    @property
    def class_names(self) -> list[str]:
        names = self.run.meta.get("classes")
        return [str(c) for c in names] if names else [str(i) for i in range(self.n_classes)]

    @property
    def n_classes(self) -> int:
        return self.run.syn.n_classes

    @property
    def mean(self) -> list[float]:
        return list(self.run.meta.get("mean", []))

    @property
    def std(self) -> list[float]:
        return list(self.run.meta.get("std", []))


def load_run_data(run_dirs: Sequence[str | Path]) -> list[RunData]:
    """Load runs for a report; names are folder names, made unique with their parents."""
    paths = [Path(p) for p in run_dirs]
    if not paths:
        raise ValueError("no run folders given")
    names = [p.resolve().name for p in paths]
    for i, p in enumerate(paths):
        if names.count(names[i]) > 1:
            names[i] = "/".join(p.resolve().parts[-2:])
    return [RunData(n, io.load_run(p), io.load_snapshots(p)) for n, p in zip(names, paths)]


# ============================================================================ sections
@dataclass
class Section:
    """A part of the report, in HTML and in markdown, and the files it wants written."""

    html: str
    md: str = ""
    files: dict[str, bytes] = field(default_factory=dict)  # name in report/ -> bytes


def _img_tag(data: bytes, mime: str, alt: str, cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<img{c} alt="{html.escape(alt)}" src="{_data_uri(data, mime)}">'


def _label_caption(labels: list[tuple[str, float]]) -> str:
    return "<br>".join(f"{html.escape(n)} <b>{v:+.2f}</b>" for n, v in labels)


def _batch_heading(rd: RunData, b: int) -> str:
    syn = rd.run.syn
    steps = list(range(b, syn.n_steps, syn.n_batches))
    lrs = syn.lrs.detach()
    parts = ", ".join(f"t={t} (lr {lrs[t].item():.4g})" for t in steps)
    return f"batch {b}: inner step{'s' if len(steps) > 1 else ''} {parts}"


def image_examples(rd: RunData, prefix: str, **_: Any) -> Section:
    """A grid per synthetic batch: each image with its top-3 soft labels."""
    syn = rd.run.syn
    x = denormalise(syn.x_syn.detach().float().cpu(), rd.mean, rd.std)
    y = syn.y_soft.detach().float().cpu()
    h = x.shape[-2]
    scale = max(1, 56 // h)
    shown = 0
    parts = []
    for b in range(syn.n_batches):
        if shown >= MAX_EXAMPLES_SHOWN:
            parts.append(f"<p class=note>{syn.n_batches - b} more batch(es) not shown.</p>")
            break
        imgs = to_uint8_images(x[b])
        labels = top_labels(y[b], rd.class_names, TOP)
        cells = []
        for i, (img, lab) in enumerate(zip(imgs, labels)):
            if shown >= MAX_EXAMPLES_SHOWN:
                break
            shown += 1
            cells.append(
                "<figure>"
                + _img_tag(_png(img, scale), "image/png", f"batch {b} example {i}", "px")
                + f"<figcaption>{_label_caption(lab)}</figcaption></figure>"
            )
        parts.append(f"<h4>{html.escape(_batch_heading(rd, b))}</h4><div class=grid>")
        parts.append("".join(cells) + "</div>")
    real = io.load_real_examples(rd.run.path / io.REAL)
    if real is not None and len(real[0]):
        xr = to_uint8_images(denormalise(real[0], rd.mean, rd.std))
        cells = [
            "<figure>"
            + _img_tag(_png(img, scale), "image/png", f"real {rd.class_names[int(c)]}", "px")
            + f"<figcaption>{html.escape(rd.class_names[int(c)])}</figcaption></figure>"
            for img, c in zip(xr, real[1])
        ]
        parts.append("<h4>Real training examples, for comparison</h4><div class=grid>")
        parts.append("".join(cells) + "</div>")
    # a PNG grid for the markdown summary (and anyone who wants a file)
    grid_name = f"{prefix}synthetic.png"
    grid = _grid_png_bytes(syn.x_syn, syn.y_soft, rd.class_names, rd.mean, rd.std)
    md = f"![synthetic examples of {rd.name}]({grid_name})\n"
    return Section("".join(parts), md, {grid_name: grid})


def _decoded(rd: RunData, decode: TextDecoder | None, x: Tensor) -> list[str] | None:
    if decode is None:
        return None
    return decode(x)


def text_examples(rd: RunData, prefix: str, text_decoder=None, **_: Any) -> Section:
    """A table per synthetic batch: decoded nearest words (when a decoder is available) and the
    top-3 soft labels of each synthetic sentence."""
    syn = rd.run.syn
    decode = text_decoder(rd) if text_decoder is not None else None
    y = syn.y_soft.detach().float().cpu()
    parts, md = [], []
    if decode is None:
        note = (
            "No word decoder is available for this dataset, so synthetic sentences are shown "
            "by their labels only (a sentence is a matrix of word embeddings)."
        )
        parts.append(f"<p class=note>{html.escape(note)}</p>")
        md.append(f"_{note}_\n")
    for b in range(syn.n_batches):
        words = _decoded(rd, decode, syn.x_syn[b].detach().float().cpu())
        labels = top_labels(y[b], rd.class_names, TOP)
        head = _batch_heading(rd, b)
        parts.append(f"<h4>{html.escape(head)}</h4><table class=text><tr><th>#</th>")
        parts.append(("<th>nearest words</th>" if words else "") + "<th>top soft labels</th></tr>")
        md.append(f"**{head}**\n\n| # | {'nearest words | ' if words else ''}top soft labels |")
        md.append(f"|---|{'---|' if words else ''}---|")
        for i, lab in enumerate(labels):
            lab_txt = ", ".join(f"{n} {v:+.2f}" for n, v in lab)
            w = f"<td class=words>{html.escape(words[i])}</td>" if words else ""
            parts.append(f"<tr><td>{i}</td>{w}<td>{_label_caption(lab)}</td></tr>")
            wmd = f" {words[i].replace('|', '¦')} |" if words else ""
            md.append(f"| {i} |{wmd} {lab_txt} |")
        parts.append("</table>")
        md.append("")
    real = io.load_real_examples(rd.run.path / io.REAL)
    if real is not None and decode is not None and len(real[0]):
        texts = [re.sub(r"(\s*<pad>)+\s*$", "", t) for t in decode(real[0])]
        parts.append("<h4>Real training sentences, for comparison</h4><table class=text>")
        parts.append("<tr><th>class</th><th>words</th></tr>")
        md.append("**Real training sentences, for comparison**\n\n| class | words |\n|---|---|")
        for c, t in zip(real[1].tolist(), texts):
            name = rd.class_names[int(c)]
            parts.append(
                f"<tr><td>{html.escape(name)}</td><td class=words>{html.escape(t)}</td></tr>"
            )
            md.append(f"| {name} | {t.replace('|', '¦')} |")
        parts.append("</table>")
        md.append("")
    return Section("".join(parts), "\n".join(md) + "\n")


# modality -> view(rd, prefix, text_decoder=...) -> Section. Add a modality by adding a view.
EXAMPLE_VIEWS: dict[str, Callable[..., Section]] = {
    "image": image_examples,
    "text": text_examples,
}


def default_text_decoder(rd: RunData) -> TextDecoder | None:
    """Nearest-word decoding of a text run, or None when it is not available.

    Uses the run folder's embedding table (``embedding.safetensors``, written by text runs) and
    ``softdistill.text.decode_nearest``: each position of a synthetic sentence becomes the
    vocabulary word with the most similar embedding (trailing ``<pad>`` words are dropped).
    """
    path = rd.run.path / io.EMBEDDING
    if not path.is_file():
        return None
    table, vocab, _ = io.load_embedding(path)

    def decode(x: Tensor) -> list[str]:
        sentences = decode_nearest(x, table, vocab, 1).top()  # (n, maxlen) words
        out = []
        for words in sentences:
            while words and words[-1] == "<pad>":
                words = words[:-1]
            out.append(" ".join(words))
        return out

    return decode


def _grid_png_bytes(x_syn, y_soft, class_names, mean, std) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        p = save_synthetic_grid(x_syn, y_soft, class_names, Path(d) / "g.png", mean=mean, std=std)
        return p.read_bytes()


def label_heatmap(rd: RunData, prefix: str) -> Section:
    """The soft-label matrix: one row per synthetic example, one column per class."""
    plt = _pyplot()
    syn = rd.run.syn
    y = syn.y_soft.detach().float().cpu().flatten(0, 1)  # (n_batches * per_batch, n_classes)
    n = y.shape[0]
    y = y[:MAX_HEATMAP_ROWS]
    init = syn.classes.cpu().repeat(syn.n_batches)[: y.shape[0]].tolist()
    rows = [f"b{i // syn.per_batch}:{rd.class_names[c]}" for i, c in enumerate(init)]
    vmax = float(y.abs().max()) or 1.0
    negative = bool((y < 0).any())
    fig_h = min(2 + 0.18 * y.shape[0], 30)
    fig, ax = plt.subplots(figsize=(min(2 + 0.5 * rd.n_classes, 16), fig_h))
    im = ax.imshow(
        y.numpy(),
        aspect="auto",
        cmap="RdBu_r" if negative else "viridis",
        vmin=-vmax if negative else 0,
        vmax=vmax,
        interpolation="nearest",
    )
    ax.set_xticks(range(rd.n_classes), [c[:10] for c in rd.class_names], rotation=60, fontsize=7)
    if len(rows) <= 60:
        ax.set_yticks(range(len(rows)), rows, fontsize=6)
    ax.set_xlabel("class")
    ax.set_ylabel("synthetic example (batch:initial class)")
    fig.colorbar(im, ax=ax, fraction=0.04)
    ax.set_title(f"soft labels ({syn.label_mode})")
    png = _fig_png(fig)
    name = f"{prefix}labels.png"
    note = f"<p class=note>first {MAX_HEATMAP_ROWS} of {n} rows</p>" if n > MAX_HEATMAP_ROWS else ""
    body = _img_tag(png, "image/png", f"soft labels of {rd.name}", "fig") + note
    return Section(body, f"![soft-label heat map of {rd.name}]({name})\n", {name: png})


# ============================================================================ evolution
def _frame(s: io.Snapshot, rd: RunData, cols: int, scale: int) -> np.ndarray:
    """One animation frame: the snapshot's images in a grid, upscaled ``scale`` times."""
    imgs = to_uint8_images(denormalise(s.x.float(), rd.mean, rd.std))  # (n, H, W[, C])
    n, h, w = imgs.shape[:3]
    rows = math.ceil(n / cols)
    pad = 1
    shape = (rows * (h + pad) + pad, cols * (w + pad) + pad, *imgs.shape[3:])
    canvas = np.full(shape, 255, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        y0, x0 = pad + r * (h + pad), pad + c * (w + pad)
        canvas[y0 : y0 + h, x0 : x0 + w] = imgs[i]
    return canvas.repeat(scale, axis=0).repeat(scale, axis=1)


def _gif(frames: list[np.ndarray], steps: list[int], frame_ms: int) -> bytes:
    """Frames (grayscale or RGB arrays) with an "outer step N" caption above each."""
    from PIL import Image, ImageDraw

    header = 14
    mode = "L" if frames[0].ndim == 2 else "RGB"
    images = []
    for arr, step in zip(frames, steps):
        img = Image.new(mode, (max(arr.shape[1], 110), arr.shape[0] + header), "white")
        img.paste(Image.fromarray(arr), (0, header))
        ImageDraw.Draw(img).text((2, 1), f"outer step {step}", fill="black")
        images.append(img if mode == "L" else img.quantize(colors=255))
    buf = _io.BytesIO()
    images[0].save(
        buf,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=[frame_ms] * (len(images) - 1) + [1500],
        loop=0,
    )
    return buf.getvalue()


def evolution_gif(rd: RunData, frame_ms: int = 150) -> bytes | None:
    """An animated GIF of the snapshots of an image run (None without snapshots)."""
    snaps = rd.snapshots
    if not snaps or snaps[0].x.dim() != 4:
        return None
    n, h = snaps[0].x.shape[0], snaps[0].x.shape[-2]
    cols = min(10, n)
    scale = max(1, 64 // h)  # cells of about 64 px (28x28 -> x2)
    frames = [_frame(s, rd, cols, scale) for s in snaps]
    return _gif(frames, [s.step for s in snaps], frame_ms)


def label_evolution_gif(rd: RunData, frame_ms: int = 150) -> bytes | None:
    """An animated GIF of the snapshots' label matrices (any modality): red positive, blue
    negative, one row per example, one column per class."""
    snaps = rd.snapshots
    if not snaps:
        return None
    vmax = max(float(s.y_soft.abs().max()) for s in snaps) or 1.0
    n, n_classes = snaps[0].y_soft.shape
    cell = int(min(24, max(4, 240 // max(n, n_classes))))
    frames = []
    for s in snaps:
        y = (s.y_soft.float() / vmax).clamp(-1, 1).numpy()  # (n, n_classes)
        red = np.where(y > 0, 255, 255 * (1 + y))
        blue = np.where(y < 0, 255, 255 * (1 - y))
        green = 255 * (1 - np.abs(y))
        img = np.stack([red, green, blue], -1).astype(np.uint8)
        frames.append(img.repeat(cell, 0).repeat(cell, 1))
    return _gif(frames, [s.step for s in snaps], frame_ms)


def evolution(rd: RunData, prefix: str, text_decoder=None) -> Section:
    if not rd.snapshots:
        note = (
            "No snapshots in this run folder (snapshot_every: 0, or a run made before "
            "snapshots existed)."
        )
        return Section(f"<p class=note>{note}</p>", f"_{note}_\n")
    steps = [s.step for s in rd.snapshots]
    gif = evolution_gif(rd) if rd.modality == "image" else None
    what = "synthetic examples"
    if gif is None:
        gif = label_evolution_gif(rd)
        what = "soft labels (red positive, blue negative; a row per example, a column per class)"
    name = f"{prefix}evolution.gif"
    n = rd.snapshots[0].x.shape[0]
    cap = (
        f"The {what} of the first {n} examples at {len(steps)} snapshots, outer steps "
        f"{steps[0]}–{steps[-1]}."
    )
    body = f"<p>{html.escape(cap)}</p>" + _img_tag(gif, "image/gif", f"evolution of {rd.name}")
    md = f"{cap}\n\n![evolution of {rd.name}]({name})\n"
    decode = text_decoder(rd) if (text_decoder and rd.modality == "text") else None
    if decode is not None:  # the first synthetic sentence, decoded, over training
        pick = sorted({round(i * (len(steps) - 1) / 5) for i in range(6)})
        rows = [(rd.snapshots[i].step, decode(rd.snapshots[i].x[:1])[0]) for i in pick]
        body += "<h4>The first synthetic sentence during training (nearest words)</h4>"
        body += "<table class=text><tr><th>outer step</th><th>nearest words</th></tr>"
        body += "".join(
            f"<tr><td>{st}</td><td class=words>{html.escape(w)}</td></tr>" for st, w in rows
        )
        body += "</table>"
        md += "\n| outer step | first sentence (nearest words) |\n|---|---|\n"
        md += "".join(f"| {st} | {w.replace('|', '¦')} |\n" for st, w in rows)
    return Section(body, md, {name: gif})


# ============================================================================ shared sections
# Baselines in the order a reader compares them: random real examples first.
BASELINE_ORDER = ("random", "kmeans", "average", "knn", "knn_random", "knn_kmeans", "knn_average")
BASELINE_NAMES = {
    "random": "random real examples",
    "kmeans": "k-means centroids",
    "average": "class averages",
    "knn": "kNN, synthetic set as reference",
    "knn_random": "kNN, random real as reference",
    "knn_kmeans": "kNN, k-means as reference",
    "knn_average": "kNN, class averages as reference",
}


def _acc_cell(r: Score | None) -> str:
    """``96.17 ± 0.32`` over several nets; ``96.17 (1 net)``: no ± of a single number."""
    return r.cell() if r is not None else "–"


def _same_kmeans_average(rd: RunData) -> bool:
    """k-means with one centroid per class in all is the class average (one batch, per_class
    1): the two rows are the same set."""
    base = rd.run.report.baselines if rd.run.eval else {}
    syn = rd.run.syn
    return (
        "kmeans" in base
        and "average" in base
        and syn.n_batches == 1
        and syn.per_batch == len(set(syn.classes.tolist()))
        and base["kmeans"].per_net == base["average"].per_net
    )


def _table(head: list[str], rows: list[list[str]]) -> tuple[str, str]:
    h = "<table class=eval><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr>"
    for r in rows:
        h += "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
    md = "| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n"
    md += "".join("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |\n" for r in rows)
    return h + "</table>", md


def evaluation_table(runs: list[RunData]) -> Section:
    """Methods as rows (the distilled set, before training, the reference numbers, each
    baseline), runs as columns; then the runs' settings, timing and provenance."""
    evs = [rd.run.report for rd in runs]  # None: not evaluated
    bases = [ev.baselines if ev else {} for ev in evs]
    present = {b for base in bases for b in base}
    names = [b for b in BASELINE_ORDER if b in present] + sorted(present - set(BASELINE_ORDER))
    merge_km = "kmeans" in names and all(
        _same_kmeans_average(rd) for rd, base in zip(runs, bases) if "kmeans" in base
    )
    head = ["test accuracy (%)", *[rd.name for rd in runs]]
    rows = [
        [
            "distilled set",
            *[_acc_cell(ev.distilled) if ev else "not evaluated" for ev in evs],
        ],
        ["before training", *[_acc_cell(ev.before if ev else None) for ev in evs]],
    ]
    for key, label in (("published_acc", "published"), ("full_data_acc", "full data, same model")):
        vals = [rd.run.config.get(key) for rd in runs]
        if any(v is not None for v in vals):
            rows.append([label, *[f"{100 * v:.2f}" if v is not None else "–" for v in vals]])
    for b in names:
        if merge_km and b == "average":
            continue
        label = (
            "k-means = class averages" if merge_km and b == "kmeans" else BASELINE_NAMES.get(b, b)
        )
        cells = []
        for base in bases:
            r = base.get(b)
            lr = f", lr {r.lr:g}" if r is not None and r.lr is not None else ""
            cells.append(_acc_cell(r)[:-1] + f"{lr})" if lr else _acc_cell(r))
        rows.append([f"baseline: {label}", *cells])
    h, md = _table(head, rows)
    notes = [
        "Mean ± std over the trained networks (their number in brackets). Baselines have the "
        "synthetic set's shape with one-hot labels and the same steps, at the lr chosen on "
        "training data; random real examples are the best draws on training data."
    ]
    if merge_km:
        notes.append(
            "k-means and class averages coincide here: with one example per class in one batch, "
            "the single k-means centroid of a class is its mean."
        )
    if "knn" in names:
        low = [
            rd.name
            for rd, base in zip(runs, bases)
            if "knn" in base and base["knn"].mean < 1 / max(rd.n_classes, 1)
        ]
        if low:
            notes.append(
                f"kNN with the synthetic set as reference is below chance in {', '.join(low)}: "
                "synthetic examples are learned to train a network in a few steps, not to be "
                "class prototypes in input space, and their soft labels need not point to their "
                "own class; it measures how far the set is from real-looking data."
            )
    for rd, ev in zip(runs, evs):
        if ev and ev.protocol.on_training_nets:
            notes.append(f"{rd.name} is evaluated on the nets it was distilled on (no test_pool).")
    h += "".join(f"<p class=note>{html.escape(n)}</p>" for n in notes)
    md += "\n" + "\n".join(f"_{n}_\n" for n in notes)

    # the runs: settings, timing, provenance
    def info(rd: RunData, key: str, fmt=str) -> str:
        v = (rd.run.info or {}).get(key)
        return fmt(v) if v is not None else "–"

    def wall(v) -> str:
        return f"{v:.0f} s" if v < 600 else f"{v / 60:.1f} min"

    prow = [
        [
            "dataset",
            *[str(rd.run.meta.get("dataset", rd.run.config.get("dataset"))) for rd in runs],
        ],
        ["arch", *[str(rd.run.config.get("arch")) for rd in runs]],
        ["nets", *[str(rd.run.config.get("nets")) for rd in runs]],
        ["batches × per batch", *[f"{rd.run.syn.n_batches}×{rd.run.syn.per_batch}" for rd in runs]],
        ["inner steps T", *[str(rd.run.syn.n_steps) for rd in runs]],
        [
            "outer steps",
            *[
                str(rd.run.meta.get("outer_steps", ev.protocol.get("outer_steps", "–")))
                if ev
                else str(rd.run.meta.get("outer_steps", "–"))
                for rd, ev in zip(runs, evs)
            ],
        ],
        [
            "s per outer step",
            *[
                f"{ev.protocol.get('seconds_per_step'):.3g}"
                if ev and ev.protocol.get("seconds_per_step") is not None
                else "–"
                for ev in evs
            ],
        ],
        ["wall time (command)", *[info(rd, "wall_seconds", wall) for rd in runs]],
        ["threads / CPUs", *[f"{info(rd, 'threads')} / {info(rd, 'cpus')}" for rd in runs]],
        ["device, hardware", *[f"{info(rd, 'device')}, {info(rd, 'hardware')}" for rd in runs]],
        ["seed", *[str(rd.run.config.get("seed")) for rd in runs]],
        ["torch, softdistill", *[f"{info(rd, 'torch')}, {info(rd, 'softdistill')}" for rd in runs]],
        ["command", *[info(rd, "command") for rd in runs]],
    ]
    h2, md2 = _table(["run", *[rd.name for rd in runs]], prow)
    return Section(h + "<h4>The runs</h4>" + h2, md + "\n" + md2)


def per_class(rd: RunData, prefix: str) -> Section:
    """Per-class test accuracy of the distilled set and its confusion matrix (summed over the
    evaluation nets)."""
    conf = rd.run.report.confusion if rd.run.eval else None
    if not conf:
        note = "No confusion matrix in eval.json (evaluate the run again to get one)."
        return Section(f"<p class=note>{note}</p>", f"_{note}_\n")
    m = np.array(conf, dtype=float)
    totals = m.sum(1)
    acc = np.divide(np.diag(m), totals, out=np.zeros_like(totals), where=totals > 0)
    names = rd.class_names
    rows = [[names[c], f"{100 * acc[c]:.2f}", str(int(totals[c]))] for c in range(len(names))]
    h, md = _table(["class", "test accuracy (%)", "test examples x nets"], rows)
    files = {}
    if len(names) <= 30:
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(1.2 + 0.35 * len(names), 1.0 + 0.35 * len(names)))
        norm = m / np.maximum(totals[:, None], 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        ax.set(xlabel="predicted", ylabel="true", title="confusion (row-normalised)")
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        png = _fig_png(fig)
        name = f"{prefix}confusion.png"
        files[name] = png
        h = (
            "<div style='display:flex;gap:2em;align-items:flex-start'>"
            + h
            + _img_tag(png, "image/png", "confusion matrix", "fig")
            + "</div>"
        )
        md += f"\n![confusion matrix]({name})\n"
    return Section(h, md, files)


def curves(runs: list[RunData]) -> Section:
    plt = _pyplot()
    have_acc = any("test_acc" in m for rd in runs for m in rd.run.metrics)
    if not any(rd.run.metrics for rd in runs):
        note = "No metrics.jsonl lines in these runs."
        return Section(f"<p class=note>{note}</p>", f"_{note}_\n")
    note = ""
    for rd in runs:
        n_acc = sum("test_acc" in m for m in rd.run.metrics)
        if n_acc == 1:
            every, steps = rd.run.config.get("eval_every"), rd.run.config.get("outer_steps")
            note += (
                f"<p class=note>{html.escape(rd.name)}: test accuracy was measured once, at the "
                f"last step (eval_every {every} >= outer_steps {steps}): no curve to show; set "
                "eval_every lower for one.</p>"
            )
    fig, axes = plt.subplots(1, 2 if have_acc else 1, figsize=(11 if have_acc else 6, 3.6))
    axes = np.atleast_1d(axes)
    for rd in runs:
        ms = [m for m in rd.run.metrics if "loss" in m]
        axes[0].plot([m["step"] for m in ms], [m["loss"] for m in ms], label=rd.name)
        if have_acc:
            acc = [m for m in rd.run.metrics if "test_acc" in m]
            axes[1].plot(
                [m["step"] for m in acc], [100 * m["test_acc"] for m in acc], "o-", label=rd.name
            )
    axes[0].set(xlabel="outer step", ylabel="outer loss", title="outer loss")
    if have_acc:
        axes[1].set(xlabel="outer step", ylabel="test accuracy (%)", title="test accuracy")
    for ax in axes:
        ax.grid(alpha=0.3)
        if len(runs) > 1:
            ax.legend(fontsize=7)
    png = _fig_png(fig)
    return Section(
        _img_tag(png, "image/png", "training curves", "fig") + note,
        "![outer loss and test accuracy](curves.png)\n"
        + re.sub(r"<[^>]+>", "", note.replace("</p>", "\n")),
        {"curves.png": png},
    )


def schedule(runs: list[RunData]) -> Section:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for rd in runs:
        lrs = rd.run.syn.lrs.detach().cpu().tolist()
        ax.plot(range(len(lrs)), lrs, "o-", label=rd.name)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="inner step t", ylabel="learning rate", title="learned learning rates")
    ax.grid(alpha=0.3)
    if len(runs) > 1:
        ax.legend(fontsize=7)
    png = _fig_png(fig)
    table = ""
    md = "![learned learning rates](lrs.png)\n\n"
    for rd in runs:
        lrs = rd.run.syn.lrs.detach().cpu().tolist()
        if len(lrs) <= 40:
            vals = ", ".join(f"{v:.4g}" for v in lrs)
            table += f"<p><b>{html.escape(rd.name)}</b>: {vals}</p>"
            md += f"- {rd.name}: {vals}\n"
    body = _img_tag(png, "image/png", "learned learning rates", "fig") + table
    return Section(body, md, {"lrs.png": png})


def config_section(runs: list[RunData]) -> Section:
    if len(runs) == 1:
        # grouped by section: a valid config file as it stands (.json, or .yaml)
        text = json.dumps(group_by_section(runs[0].run.config), indent=2)
        return Section(f"<pre>{html.escape(text)}</pre>", f"```json\n{text}\n```\n")
    keys = sorted({k for rd in runs for k in rd.run.config})
    diff = [k for k in keys if len({json.dumps(rd.run.config.get(k)) for rd in runs}) > 1]
    h = "<p>Keys that differ between the runs:</p><table class=cfg><tr><th>key</th>"
    h += "".join(f"<th>{html.escape(rd.name)}</th>" for rd in runs) + "</tr>"
    md = "| key | " + " | ".join(rd.name for rd in runs) + " |\n|" + "---|" * (len(runs) + 1)
    md += "\n"
    for k in diff:
        vals = [json.dumps(rd.run.config.get(k)) for rd in runs]
        h += f"<tr><td>{html.escape(k)}</td>"
        h += "".join(f"<td>{html.escape(v)}</td>" for v in vals) + "</tr>"
        md += f"| {k} | " + " | ".join(vals) + " |\n"
    h += "</table>"
    for rd in runs:
        text = json.dumps(group_by_section(rd.run.config), indent=2)
        h += (
            f"<details><summary>{html.escape(rd.name)}: full config</summary>"
            f"<pre>{html.escape(text)}</pre></details>"
        )
    return Section(h, md)


# ============================================================================ the page
CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;margin-top:1.6em}h4{margin:.8em 0 .3em}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}.note{color:#666;font-size:.9em}
table.eval td{max-width:34em;overflow-wrap:anywhere}
.grid{display:flex;flex-wrap:wrap;gap:6px}
figure{margin:0;width:76px;text-align:center;font-size:10px;line-height:1.2}
img.px{width:56px;height:56px;image-rendering:pixelated;border:1px solid #ddd}
img.fig{max-width:100%}td.words{font-family:monospace}
pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:.85em}
nav a{margin-right:1em}
"""


@dataclass
class Report:
    """Where :func:`write_report` wrote the report."""

    html: Path
    md: Path
    folder: Path


def write_report(
    run_dirs: Sequence[str | Path],
    out: str | Path | None = None,
    *,
    text_decoder: Callable[[RunData], TextDecoder | None] | None = default_text_decoder,
) -> Report:
    """Write ``index.html`` and ``summary.md`` (plus figure files) for one or several runs.

    Args:
        run_dirs: run folders written by ``softdistill distill``.
        out: the report folder; default ``RUN_DIR/report`` for one run, ``report`` for several.
        text_decoder: given a text run, returns a function decoding synthetic sentences to
            nearest words (or None); default: the text data module's decoder, when installed.
    """
    runs = load_run_data(run_dirs)
    if out is None:
        out = Path(run_dirs[0]) / "report" if len(runs) == 1 else Path("report")
    out = Path(out)
    title = "softdistill report: " + ", ".join(rd.name for rd in runs)
    shared = [
        ("evaluation", "Evaluation", evaluation_table(runs)),
        ("curves", "Outer loss and test accuracy", curves(runs)),
        ("schedule", "Learned learning-rate schedule", schedule(runs)),
    ]
    per_run = []
    for rd in runs:
        prefix = "" if len(runs) == 1 else f"{_slug(rd.name)}_"
        view = EXAMPLE_VIEWS.get(rd.modality)
        if view is None:
            raise ValueError(
                f"no report view for modality {rd.modality!r} of {rd.name}; "
                f"known: {sorted(EXAMPLE_VIEWS)}"
            )
        per_run.append(
            (
                rd,
                [
                    (
                        "examples",
                        "Synthetic examples and their top-3 soft labels, per inner step",
                        view(rd, prefix, text_decoder=text_decoder),
                    ),
                    ("labels", "Soft-label matrix", label_heatmap(rd, prefix)),
                    ("perclass", "Per-class test accuracy", per_class(rd, prefix)),
                    (
                        "evolution",
                        "How the synthetic set evolved",
                        evolution(rd, prefix, text_decoder),
                    ),
                ],
            )
        )
    config = ("config", "Resolved configuration", config_section(runs))

    # ---- html
    nav = [("evaluation", "evaluation"), ("curves", "curves"), ("schedule", "schedule")]
    nav += [("examples", "examples"), ("labels", "labels"), ("perclass", "per class")]
    nav += [("evolution", "evolution")]
    nav += [("config", "config")]
    body = [f"<h1>{html.escape(title)}</h1>"]
    body.append("<nav>" + "".join(f'<a href="#{a}">{t}</a>' for a, t in nav) + "</nav>")
    for sid, head, sec in shared:
        body.append(f'<section id="{sid}"><h2>{html.escape(head)}</h2>{sec.html}</section>')
    for kind in ("examples", "labels", "perclass", "evolution"):
        parts = []
        for rd, secs in per_run:
            _, head, sec = next(s for s in secs if s[0] == kind)
            sub = f"<h3>{html.escape(rd.name)}</h3>" if len(runs) > 1 else ""
            parts.append((head, sub + sec.html))
        body.append(
            f'<section id="{kind}"><h2>{html.escape(parts[0][0])}</h2>'
            + "".join(p for _, p in parts)
            + "</section>"
        )
    body.append(f'<section id="config"><h2>{html.escape(config[1])}</h2>{config[2].html}</section>')
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )

    # ---- markdown
    md = [f"# {title}\n"]
    for _, head, sec in shared:
        md.append(f"## {head}\n\n{sec.md}")
    for kind, head in (
        ("examples", "Synthetic examples and their top-3 soft labels"),
        ("labels", "Soft-label matrix"),
        ("perclass", "Per-class test accuracy"),
        ("evolution", "How the synthetic set evolved"),
    ):
        md.append(f"## {head}\n")
        for rd, secs in per_run:
            sec = next(s for s in secs if s[0] == kind)[2]
            md.append((f"### {rd.name}\n\n" if len(runs) > 1 else "") + sec.md)
    md.append(f"## {config[1]}\n\n{config[2].md}")

    # ---- files
    files: dict[str, bytes] = {}
    for sec in [s for _, _, s in shared] + [s for _, secs in per_run for _, _, s in secs]:
        files.update(sec.files)
    for name, data in files.items():
        atomic_write(out / name, lambda tmp, data=data: Path(tmp).write_bytes(data))
    html_path = atomic_write(out / "index.html", lambda tmp: Path(tmp).write_text(page))
    md_path = atomic_write(out / "summary.md", lambda tmp: Path(tmp).write_text("\n".join(md)))
    return Report(html_path, md_path, out)


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


# ============================================================================ PNG grid
def save_synthetic_grid(
    x_syn: Tensor,
    y_soft: Tensor,
    class_names: Sequence[str],
    path: str | Path,
    *,
    mean: Sequence[float] = (),
    std: Sequence[float] = (),
    top: int = TOP,
    max_cols: int = 10,
) -> Path:
    """A PNG grid: one block of rows per synthetic batch, each image titled with its top labels.

    Args:
        x_syn: ``(n_batches, per_batch, C, H, W)`` images in normalised space.
        y_soft: ``(n_batches, per_batch, n_classes)`` label vectors.
    """
    plt = _pyplot()
    x = denormalise(x_syn.detach().float().cpu(), mean, std)
    y = y_soft.detach().float().cpu()
    n_batches, per_batch = x.shape[:2]
    cols = min(max_cols, per_batch)
    rows_per_batch = math.ceil(per_batch / cols)
    rows = n_batches * rows_per_batch
    fig, axes = plt.subplots(
        rows, cols, figsize=(1.3 * cols, (1.2 + 0.2 * top) * rows), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for b in range(n_batches):
        labels = top_labels(y[b], class_names, top)
        for i in range(per_batch):
            ax = axes[b * rows_per_batch + i // cols, i % cols]
            img = x[b, i].permute(1, 2, 0).numpy()
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
            ax.set_title("\n".join(f"{n[:8]} {v:.2f}" for n, v in labels[i]), fontsize=6)
        axes[b * rows_per_batch, 0].text(
            -0.15,
            0.5,
            f"batch {b}",
            transform=axes[b * rows_per_batch, 0].transAxes,
            rotation=90,
            va="center",
            ha="right",
            fontsize=7,
        )
    fig.tight_layout()
    return save_png(fig, path, dpi=110)


def save_image_artefacts(out: str | Path, syn, data) -> None:
    """What an image run adds to its folder: ``report/synthetic.png``, the learned images with
    their top labels."""
    save_synthetic_grid(
        syn.x_syn,
        syn.y_soft,
        data.class_names,
        Path(out) / "report" / "synthetic.png",
        mean=data.mean,
        std=data.std,
    )


# modality -> writer(run_dir, syn, data): the files a finished run of that modality adds to its
# folder (beside EXAMPLE_VIEWS, how the report shows them). Add a modality by adding both.
ARTEFACT_WRITERS: dict[str, Callable[..., None]] = {
    "image": save_image_artefacts,
    "text": save_text_report,
}


def save_artefacts(out: str | Path, syn, data) -> None:
    """The modality's own files of a finished run (:data:`ARTEFACT_WRITERS`; none if unknown)."""
    writer = ARTEFACT_WRITERS.get(data.modality)
    if writer is not None:
        writer(out, syn, data)
