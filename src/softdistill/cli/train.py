"""``softdistill train``: train a pool of networks for the attack and adaptation settings.

Writes one safetensors file per net and, once all are done, ``manifest.json``. Re-running the
same command continues an interrupted pool (finished nets are kept); with a larger ``--n_nets``
it grows the pool (net ``i``'s seed depends only on ``i``). Under
``torchrun --nproc-per-node N -m softdistill train ...`` net ``i`` is trained by rank ``i % N``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from datetime import timedelta
from pathlib import Path

from softdistill.cli.common import UsageError, add_dataclass_flags, pick_device, pick_threads
from softdistill.config import ConfigError
from softdistill.train_config import TrainConfig

log = logging.getLogger("softdistill")

TRAIN_CONFIG = "train_config.json"
# The original code's flag names for the same settings.
_ALIASES = {"decay_epochs": "decay_every", "phase": "split"}


def register(sub, parents) -> None:
    t = sub.add_parser(
        "train",
        parents=parents,
        help="train a pool of networks (for nets: pool:PATH)",
        description="Train N networks of an architecture on a dataset (Adam, betas 0.5/0.999, "
        "step-decay schedule) and save them as a pool folder: one safetensors file per net and "
        "manifest.json with seeds and test accuracies. Make separate pools for distillation "
        "(--split train) and held-out evaluation (--split test); their seeds never overlap. "
        "Defaults: the original recipe for MNIST with LeNet (40 epochs, lr 2e-4, decay at 20); "
        "USPS: --epochs 130 --decay_every 40; CIFAR-10 AlexCifarNet: --epochs 50 "
        "--decay_every 7 --lr 1e-3.",
    )
    t.add_argument("--out", metavar="POOL_DIR", required=True, help="pool folder to write")
    t.add_argument(
        "--overwrite", action="store_true", help="replace a pool folder made with other settings"
    )
    add_dataclass_flags(t, TrainConfig, _ALIASES, title="training settings")
    t.set_defaults(func=run)


def _train_config(args: argparse.Namespace):
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in names}).validate()


def _check_folder(out: Path, cfg, overwrite: bool) -> None:
    """Refuse to mix nets of different settings in one folder; ``--overwrite`` clears it."""
    import shutil

    from softdistill import io
    from softdistill.distributed import MACHINE_KEYS

    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a folder")
    saved_path = out / TRAIN_CONFIG
    if out.exists() and any(out.iterdir()):
        if overwrite:
            shutil.rmtree(out)
        elif not saved_path.is_file():
            raise UsageError(
                f"{out} already exists and is not a pool started by `softdistill train`; pass "
                "--overwrite to replace it or choose another --out"
            )
        else:  # an interrupted (or finished) pool: continue it if the settings are the same
            # (n_nets may change: net i's seed depends only on i, so a pool can grow; parallel
            # changes how fast, not what)
            now = cfg.to_dict()
            # keys added since the pool was started count as their defaults
            saved = {**type(cfg)().to_dict(), **io.read_json(saved_path)}
            diff = [
                f"{k} {saved.get(k)!r} -> {now.get(k)!r}"
                for k in sorted(set(saved) | set(now))
                if k not in (*MACHINE_KEYS, "n_nets", "parallel") and saved.get(k) != now.get(k)
            ]
            if diff:
                raise UsageError(
                    f"pool folder {out} was started with other settings ({'; '.join(diff)}); "
                    "pass --overwrite to replace it or choose another --out"
                )
    io.prepare_run_dir(out, resume=True)
    io.save_json(saved_path, cfg.to_dict())


def run(args: argparse.Namespace) -> int:
    from softdistill import distributed

    cfg = _train_config(args)
    log.info(pick_threads(0))
    device = pick_device(cfg.device)
    # One barrier at the end waits for the slowest rank's nets: allow a long wait.
    with distributed.process_group(device, timeout=timedelta(days=7)) as device:
        return _run(args, cfg, device)


def _run(args: argparse.Namespace, cfg, device) -> int:
    import torch

    from softdistill import distributed
    from softdistill.data import load_config
    from softdistill.models import build
    from softdistill.pool import train_pool, write_manifest

    rank, world_size = distributed.rank_world()
    distributed.check_same_config(cfg.to_dict(), what="training configuration")
    out = Path(args.out)
    if rank == 0:
        _check_folder(out, cfg, args.overwrite)
    distributed.barrier()
    data = load_config(cfg)  # text datasets: with its maxlen, ntoken, embeddings
    try:
        model = build(cfg.arch, data.sample_shape, data.n_classes, **cfg.arch_args)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    torch.manual_seed(cfg.seed)
    log.info(
        "training %d %s nets on %s (%s split, %d epochs) on %s%s; pool folder %s",
        cfg.n_nets,
        cfg.arch,
        cfg.dataset,
        cfg.split,
        cfg.epochs,
        device,
        f" and {world_size - 1} more process(es)" if world_size > 1 else "",
        out,
    )
    train_pool(
        cfg,
        data,
        model,
        out,
        device=device,
        rank=rank,
        world_size=world_size,
        progress=log.info if rank == 0 else None,
    )
    distributed.barrier()
    if rank != 0:
        return 0
    manifest = write_manifest(cfg, data, out)
    print(
        f"pool of {manifest['n_nets']} {cfg.arch} nets on {data.name} ({cfg.split}): test "
        f"accuracy {100 * manifest['test_acc_mean']:.2f}% mean, "
        f"{100 * manifest['test_acc_min']:.2f}% min; {out}"
    )
    return 0
