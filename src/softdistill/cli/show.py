"""``softdistill show RUN_DIR``: print what a run learned (soft labels; nearest words for text)."""

from __future__ import annotations

import argparse
from pathlib import Path

from softdistill.cli.common import UsageError


def register(sub, parents) -> None:
    s = sub.add_parser(
        "show",
        parents=parents,
        help="print a run's synthetic set (text: nearest words per position)",
        description="Print each synthetic example's soft label and learning-rate schedule. For "
        "text runs, also the nearest vocabulary words (cosine similarity) of every position of "
        "every synthetic sentence; writes report/synthetic.txt and the heat map "
        "report/nearest.png into the run folder.",
    )
    s.add_argument("run_dir", metavar="RUN_DIR")
    s.add_argument("-k", "--k", type=int, default=3, help="nearest words per position (3)")
    s.add_argument(
        "--no-files", action="store_true", help="print only; write nothing into the run folder"
    )
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from softdistill import io

    if args.k < 1:
        raise UsageError(f"--k must be >= 1, got {args.k}")
    run_dir = Path(args.run_dir)
    saved = io.load_run(run_dir)
    modality = saved.meta.get("modality", "image")
    show = SHOW.get(modality)
    if show is None:
        raise UsageError(f"softdistill show knows {', '.join(SHOW)} runs, not {modality!r} ones")
    return show(saved, args)


def _classes(saved) -> list[str]:
    return saved.meta.get("classes") or [str(i) for i in range(saved.syn.n_classes)]


def show_image(saved, args: argparse.Namespace) -> int:
    """The learned lrs and each example's top soft labels; where the image grid is."""
    from softdistill.report import top_labels

    syn = saved.syn
    lines = ["learned learning rates: " + " ".join(f"{v:.4g}" for v in syn.lrs.tolist())]
    y = syn.y_soft.detach()
    for b in range(syn.n_batches):
        for i, labels in enumerate(top_labels(y[b], _classes(saved), 3)):
            top = ", ".join(f"{n} {v:+.3f}" for n, v in labels)
            lines.append(f"batch {b}, example {i}: {top}")
    grid = saved.path / "report" / "synthetic.png"
    if grid.exists():
        lines.append(f"images: {grid}")
    print("\n".join(lines))
    return 0


def show_text(saved, args: argparse.Namespace) -> int:
    """The nearest words of every position of every sentence (and the files, unless
    ``--no-files``)."""
    from softdistill import io
    from softdistill.text import decode_nearest, format_synthetic_text, save_nearest_heatmap

    syn, run_dir, classes = saved.syn, saved.path, _classes(saved)
    emb_path = run_dir / io.EMBEDDING
    if not emb_path.exists():
        raise io.RunDirError(
            f"{emb_path} is missing: this text run was written without its embedding table, "
            "so its sentences cannot be decoded"
        )
    table, vocab, _ = io.load_embedding(emb_path)
    nearest = decode_nearest(syn.x_syn.detach(), table, vocab, args.k)
    text = format_synthetic_text(nearest, syn.y_soft.detach(), classes, lrs=syn.lrs.detach())
    print(text, end="")
    if not args.no_files:
        out = run_dir / "report"
        io.atomic_write(out / "synthetic.txt", lambda tmp: Path(tmp).write_text(text))
        save_nearest_heatmap(nearest, syn.y_soft.detach(), classes, out / "nearest.png")
        print(f"\nwrote {out / 'synthetic.txt'} and {out / 'nearest.png'}")
    return 0


# modality -> how `softdistill show` prints a run of it (as report.EXAMPLE_VIEWS shows it)
SHOW = {"image": show_image, "text": show_text}
