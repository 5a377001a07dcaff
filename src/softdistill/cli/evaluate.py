"""``softdistill evaluate RUN_DIR``: re-evaluate a finished run and rewrite its eval.json."""

from __future__ import annotations

import argparse
from pathlib import Path

from softdistill.cli.common import add_config_flags, config_from_args, format_summary, pick_device
from softdistill.config import Config


def register(sub, parents) -> None:
    e = sub.add_parser(
        "evaluate",
        parents=parents,
        help="re-evaluate a finished run",
        description="Replay a run's learned steps on its evaluation nets and rewrite eval.json "
        "(flags such as --test_n_nets, --baselines, --data-dir override the run's config).",
    )
    e.add_argument("run_dir", metavar="RUN_DIR")
    add_config_flags(e)
    e.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from softdistill import io
    from softdistill.data import load
    from softdistill.evaluate import evaluate_config
    from softdistill.models import build

    run_dir = Path(args.run_dir)
    saved = io.load_run(run_dir)
    base = Config.from_dict(saved.config, source=str(run_dir / io.CONFIG))
    cfg = config_from_args(args, base=base)
    device = pick_device(cfg.device)
    data = load(cfg.dataset, cfg.data_dir, download=cfg.download)
    model = build(cfg.arch, data.sample_shape, data.n_classes, **cfg.arch_args)
    ev = evaluate_config(cfg, data, model, saved.syn, saved.init_params, device)
    if saved.eval and "protocol" in saved.eval:  # keep the distillation timing of the run
        for k in ("outer_steps", "seconds", "seconds_per_step"):
            if k in saved.eval["protocol"]:
                ev["protocol"][k] = saved.eval["protocol"][k]
    io.save_json(run_dir / io.EVAL, ev)
    print(format_summary(ev))
    return 0
