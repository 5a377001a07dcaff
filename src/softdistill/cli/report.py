"""``softdistill report RUN_DIR [RUN_DIR ...]``: an HTML page and a markdown summary of runs."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub, parents) -> None:
    r = sub.add_parser(
        "report",
        parents=parents,
        help="write report/index.html and report/summary.md for one or several runs",
        description="Write a self-contained report/index.html (opens from disk) and "
        "report/summary.md: the evaluation table with baselines, loss and accuracy curves, the "
        "learned lr schedule, the synthetic examples of every inner step with their top-3 soft "
        "labels, the soft-label heat map, an animation of the synthetic set during training, "
        "and the resolved config. Several runs are compared side by side.",
    )
    r.add_argument("run_dirs", metavar="RUN_DIR", nargs="+", help="run folder(s)")
    r.add_argument(
        "--out",
        metavar="DIR",
        help="report folder (default: RUN_DIR/report for one run, ./report for several)",
    )
    r.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from softdistill.report import write_report

    rep = write_report([Path(p) for p in args.run_dirs], args.out)
    print(f"report: {rep.html}\nsummary: {rep.md}")
    return 0
