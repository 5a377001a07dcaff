"""``softdistill export RUN_DIR --format npz|png|pt``: the synthetic set outside its run folder."""

from __future__ import annotations

import argparse
from pathlib import Path

# softdistill.export.FORMATS (not imported: building the parser must not import torch)
FORMATS = ("npz", "png", "pt")


def register(sub, parents) -> None:
    e = sub.add_parser(
        "export",
        parents=parents,
        help="export a run's synthetic set as .npz, a PNG folder tree, or a torch file",
        description="Export the synthetic set of a run: npz (numpy arrays x, y_soft, lrs, "
        "step_batch, ...; no pickle), pt (a dict of tensors for torch.load(weights_only=True) "
        "and TensorDataset), or png (a folder of images per batch and class with labels.csv and "
        "lrs.csv). Train any nn.Module on an npz/pt export with softdistill.train_on.",
    )
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument("--format", choices=FORMATS, default="npz", help="default: npz")
    e.add_argument(
        "--out",
        metavar="PATH",
        help="file (npz, pt) or folder (png) to write; default RUN_DIR/export/...",
    )
    e.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from softdistill.export import export_run

    path = export_run(Path(args.run_dir), args.format, args.out)
    print(f"exported: {path}")
    return 0
