"""``softdistill evaluate RUN_DIR``: re-evaluate a finished run and rewrite its eval.json."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from softdistill.cli.common import (
    add_config_flags,
    add_eval_flags,
    config_from_args,
    format_summary,
    pick_threads,
)
from softdistill.config import Config


def register(sub, parents) -> None:
    e = sub.add_parser(
        "evaluate",
        parents=parents,
        help="re-evaluate a finished run",
        usage="softdistill evaluate RUN_DIR [--baseline NAME ...] [--protocol NAME ...] "
        "[any config key as --key VALUE ...]",
        description="Replay a run's learned steps on its evaluation nets, evaluate real-data\n"
        "baselines and, with --protocol scratch, the standard from-scratch protocol; rewrite\n"
        "eval.json. Flags override the run's config for this evaluation only (config.json\n"
        "is left as it is; eval.json records the settings used).",
        epilog="examples:\n"
        "  softdistill evaluate runs/demo --baseline random kmeans average knn\n"
        "  softdistill evaluate runs/demo --baseline random --baseline_lr learned\n"
        "  softdistill evaluate runs/demo --baseline knn --knn_k 3 --knn_p 1\n"
        "  softdistill evaluate runs/demo --protocol scratch --epochs 300 "
        "--archs convnet,mlp --augment",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    e.add_argument("run_dir", metavar="RUN_DIR")
    add_eval_flags(e)
    add_config_flags(e)
    e.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from softdistill import api, io

    run_dir = Path(args.run_dir)
    saved = io.load_run(run_dir)
    base = Config.from_dict(saved.config, source=str(run_dir / io.CONFIG))
    cfg = config_from_args(args, base=base)
    torch.manual_seed(cfg.seed)
    logging.getLogger("softdistill").info(pick_threads(cfg.threads))
    ev = api.evaluate(
        saved, save=True, command=getattr(args, "command_line", None), **dataclasses.asdict(cfg)
    )
    print(format_summary(ev))
    return 0
