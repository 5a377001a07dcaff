"""``softdistill evaluate RUN_DIR``: re-evaluate a finished run and rewrite its eval.json."""

from __future__ import annotations

import argparse
from pathlib import Path

from softdistill.cli.common import (
    add_config_flags,
    add_eval_flags,
    check_eval_config,
    config_from_args,
    format_summary,
    log,
    pick_device,
)
from softdistill.config import Config


def register(sub, parents) -> None:
    e = sub.add_parser(
        "evaluate",
        parents=parents,
        help="re-evaluate a finished run",
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

    from softdistill import io
    from softdistill.data import load
    from softdistill.evaluate import evaluate_config
    from softdistill.models import build

    run_dir = Path(args.run_dir)
    saved = io.load_run(run_dir)
    base = Config.from_dict(saved.config, source=str(run_dir / io.CONFIG))
    cfg = config_from_args(args, base=base)
    device = pick_device(cfg.device)
    data = load(cfg.dataset, cfg.data_dir)
    model = build(cfg.arch, data.sample_shape, data.n_classes, **cfg.arch_args)
    check_eval_config(cfg, saved.syn.n_batches * saved.syn.per_batch)
    torch.manual_seed(cfg.seed)  # augmentation draws from the global RNG
    progress = None if args.quiet else log.info
    ev = evaluate_config(cfg, data, model, saved.syn, saved.init_params, device, progress)
    if saved.eval and "protocol" in saved.eval:  # keep the distillation timing of the run
        for k in ("outer_steps", "seconds", "seconds_per_step"):
            if k in saved.eval["protocol"]:
                ev["protocol"][k] = saved.eval["protocol"][k]
    io.save_json(run_dir / io.EVAL, ev)
    print(format_summary(ev))
    return 0
