"""``softdistill distill``: learn a synthetic set, save the run folder, evaluate it.

Under ``torchrun --nproc-per-node N -m softdistill distill ...`` every process runs this command;
they share the inner nets and average hypergradients (see :mod:`softdistill.distributed`), and
rank 0 alone writes the run folder, evaluates and prints.
"""

from __future__ import annotations

import argparse
import logging
from datetime import timedelta
from pathlib import Path

from softdistill.cli.common import (
    Progress,
    UsageError,
    add_config_flags,
    changes_from_args,
    config_from_args,
    format_summary,
    pick_device,
    pick_threads,
)

log = logging.getLogger("softdistill")


def register(sub, parents) -> None:
    d = sub.add_parser(
        "distill",
        parents=parents,
        help="learn a synthetic set",
        usage="softdistill distill [--config FILE] [--out RUN_DIR] [--overwrite | --resume] "
        "[any config key as --key VALUE ...]",
        description="Learn a synthetic set (x_syn, soft labels, per-step lrs), write the run "
        "folder, then evaluate it beside real-data baselines. Every config key is a flag; the "
        "original code's flags (--distill_steps, --static_labels 0, --epochs, ...) are accepted "
        "too and say what they become (README: Flags of the original code).",
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


def run(args: argparse.Namespace) -> int:
    import torch

    from softdistill import api, distributed

    out = Path(args.out) if args.out else None
    if args.resume:
        if out is None:
            raise UsageError("--resume needs --out RUN_DIR (the run to continue)")
        # the saved config, changed only by --config/flags in RESUMABLE_CHANGES
        cfg = api.resumed_config(out, changes_from_args(args))
        start = None  # the checkpoint's step: the progress learns it from the first step
    else:
        cfg = config_from_args(args)
        start = 0
        out = out or api.default_run_dir(cfg)
    args.run_dir = out  # named by the messages of an interrupted or failed run
    torch.manual_seed(cfg.seed)  # the checkpoint restores the RNG state of a resumed run
    log.info(pick_threads(cfg.threads))
    # torchrun: join the process group for this command (one GPU per process on CUDA)
    # the other ranks wait for rank 0's final evaluation in one barrier: allow a long wait
    with distributed.process_group(pick_device(cfg.device), timeout=timedelta(hours=12)):
        main = distributed.is_main()
        progress = Progress(cfg.outer_steps, start, enabled=not args.quiet and main)
        try:
            run_ = api.distill(
                cfg,
                out=out,
                overwrite=args.overwrite,
                resume=args.resume,
                progress=progress,
                command=getattr(args, "command_line", None),
            )
        finally:
            progress.close()
    if run_ is None:  # not rank 0: rank 0 writes and reports
        return 0
    if run_.eval:
        print(format_summary(run_.eval))
    m = run_.meta
    others = f" (+{m['other_steps']} of the starts not continued)" if m.get("other_steps") else ""
    print(
        f"{m['outer_steps']} outer steps{others} in {m['seconds']:.1f}s "
        f"({m['seconds_per_step']:.3f} s/step); run folder: {run_.path}"
    )
    print(f"next: softdistill report {run_.path}   softdistill export {run_.path} --format npz")
    return 0
