"""``softdistill distill``: learn a synthetic set, save the run folder, evaluate it.

Under ``torchrun --nproc-per-node N -m softdistill distill ...`` every process runs this command;
they share the inner nets and average hypergradients (see :mod:`softdistill.distributed`), and
rank 0 alone writes the run folder and evaluates.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from softdistill.cli.common import (
    Progress,
    UsageError,
    add_config_flags,
    config_from_args,
    format_summary,
    pick_device,
)
from softdistill.config import Config, ConfigError

log = logging.getLogger("softdistill")

# Settings a resumed run may change (they do not alter the result's definition).
RESUMABLE_CHANGES = {
    "outer_steps",
    "device",
    "log_every",
    "checkpoint_every",
    "eval_every",
    "data_dir",
    "test_pool",
}


def register(sub, parents) -> None:
    d = sub.add_parser(
        "distill",
        parents=parents,
        help="learn a synthetic set",
        description="Learn a synthetic set (x_syn, soft labels, per-step lrs), write the run "
        "folder, then evaluate it beside a random-real baseline.",
    )
    d.add_argument("--config", metavar="FILE", help="YAML/JSON/TOML config file")
    d.add_argument(
        "--out", metavar="RUN_DIR", help="run folder (default runs/<dataset>_<arch>_<time>)"
    )
    d.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    d.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    add_config_flags(d)
    d.set_defaults(func=run)


def _resumed_config(args: argparse.Namespace, out: Path) -> Config:
    from softdistill import io

    saved = Config.from_dict(io.read_json(out / io.CONFIG), source=str(out / io.CONFIG))
    cfg = config_from_args(args, base=saved)
    changed = {k for k in Config.field_names() if getattr(cfg, k) != getattr(saved, k)}
    if changed - RESUMABLE_CHANGES:
        raise UsageError(
            f"--resume cannot change {sorted(changed - RESUMABLE_CHANGES)} of the saved run; "
            f"only {sorted(RESUMABLE_CHANGES)} may differ"
        )
    return cfg


def run(args: argparse.Namespace) -> int:
    from softdistill import distributed

    cfg = _config(args)
    with distributed.process_group(pick_device(cfg.device)) as device:
        return _run(args, cfg, device)


def _config(args: argparse.Namespace) -> Config:
    out = Path(args.out) if args.out else None
    if args.resume:
        if out is None:
            raise UsageError("--resume needs --out RUN_DIR (the run to continue)")
        return _resumed_config(args, out)
    return config_from_args(args)


def _run(args: argparse.Namespace, cfg: Config, device) -> int:
    import torch

    from softdistill import distributed, io
    from softdistill.data import load
    from softdistill.distill import distill
    from softdistill.evaluate import evaluate_config
    from softdistill.models import build
    from softdistill.report import save_synthetic_grid

    rank, world_size = distributed.rank_world()
    main = rank == 0
    distributed.check_same_config(cfg.to_dict())
    out = Path(args.out) if args.out else None
    if out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"{cfg.dataset.replace(':', '_')}_{cfg.arch}_{stamp}"
    # Fail before the long work: folder exists / unwritable / disk full.
    if main:
        io.prepare_run_dir(out, overwrite=args.overwrite, resume=args.resume)
    torch.manual_seed(cfg.seed)
    log.info("loading dataset %s", cfg.dataset)
    data = load(cfg.dataset, cfg.data_dir)
    try:
        model = build(cfg.arch, data.sample_shape, data.n_classes, **cfg.arch_args)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if main:
        io.save_json(out / io.CONFIG, cfg.to_dict())
    per_batch = len(cfg.label_classes(data.n_classes)) * cfg.per_class
    log.info(
        "distilling %s into %d batch(es) of %d examples, T = %d, on %s%s; run folder %s",
        cfg.dataset,
        cfg.n_batches,
        per_batch,
        cfg.n_steps,
        device,
        f" and {world_size - 1} more process(es)" if world_size > 1 else "",
        out,
    )
    start = int(io.load_checkpoint(out / io.CHECKPOINT)["step"]) if args.resume else 0
    progress = Progress(cfg.outer_steps, start, enabled=not args.quiet and main)
    try:
        result = distill(
            cfg, data, model, device=device, run_dir=out, resume=args.resume, progress=progress
        )
    finally:
        progress.close()
    if not main:
        return 0
    meta = {
        "dataset": data.name,
        "classes": data.class_names,
        "modality": data.modality,
        "mean": list(data.mean),
        "std": list(data.std),
        "arch": cfg.arch,
        "outer_steps": result.outer_steps,
        "seconds": result.seconds,
        "seconds_per_step": result.seconds_per_step,
    }
    io.save_synthetic(out / io.SYNTHETIC, result.syn, meta)
    if result.nets is not None:
        io.save_params(out / io.INIT, result.nets)
    if data.modality == "image":
        save_synthetic_grid(
            result.syn.x_syn,
            result.syn.y_soft,
            data.class_names,
            out / "report" / "synthetic.png",
            mean=data.mean,
            std=data.std,
        )
    log.info("evaluating")
    ev = evaluate_config(cfg, data, model, result.syn, result.nets, device)
    ev["protocol"].update(
        outer_steps=result.outer_steps,
        seconds=round(result.seconds, 2),
        seconds_per_step=round(result.seconds_per_step, 4),
    )
    io.save_json(out / io.EVAL, ev)
    print(format_summary(ev))
    print(
        f"{result.outer_steps} outer steps in {result.seconds:.1f}s "
        f"({result.seconds_per_step:.3f} s/step); run folder: {out}"
    )
    return 0
