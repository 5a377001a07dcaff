"""Pools of pretrained networks: train them, save them, load them.

A pool is a folder::

    manifest.json          arch, dataset, split, training settings, and per net: file, seed,
                           test accuracy
    net_0000.safetensors   the weights of net 0 (``state_dict`` names), with its seed and
    net_0001.safetensors   accuracy in the file's metadata too
    ...

Loading a pool never executes code: JSON and safetensors only. Pools for distillation and for
held-out evaluation are separate folders (``split: train`` / ``test``) whose nets never share a
seed. The nets of a pool are trained the way the original dataset-distillation code trained its
pools: Adam (betas 0.5, 0.999), a step-decay schedule, shuffled minibatches, cross-entropy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from softdistill import __version__
from softdistill.data import Dataset, Split
from softdistill.errors import ConfigError
from softdistill.fit import FitSettings, fit, step_decay
from softdistill.io import atomic_write, read_safetensors, save_json
from softdistill.models import init_params
from softdistill.progress import task
from softdistill.scoring import accuracy
from softdistill.seeds import seed_of
from softdistill.train_config import TrainConfig
from softdistill.typing import Params

__all__ = [
    "MANIFEST",
    "POOL_FORMAT_VERSION",
    "Pool",
    "PoolError",
    "TrainConfig",
    "check_params",
    "load_pool",
    "net_seed",
    "train_nets",
    "train_pool",
    "write_manifest",
]

POOL_FORMAT_VERSION = 1
MANIFEST = "manifest.json"


class PoolError(RuntimeError):
    """A pool folder is missing, incomplete, corrupt, or does not fit the model."""


def net_seed(seed: int, split: str, index: int) -> int:
    """The seed of net ``index`` of a pool: train and test pools of one base seed never meet."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return seed_of(seed, f"pool_{split}", index)


def _net_file(index: int) -> str:
    return f"net_{index:04d}.safetensors"


# ----------------------------------------------------------------------------- training
def train_nets(
    model: nn.Module,
    params0: Sequence[Params],
    train: Split,
    cfg: TrainConfig,
    generators: Sequence[torch.Generator],
) -> list[tuple[Params, float]]:
    """Ordinary minibatch training of nets from ``params0`` (:func:`softdistill.fit.fit`: Adam
    with betas (0.5, 0.999), the lr decayed by ``cfg.decay_factor`` every ``cfg.decay_every``
    epochs); several nets are trained at once, stacked. Net ``k`` draws its batch order from
    ``generators[k]``.

    Returns:
        ``(params, last_epoch_loss)`` per net: the trained weights (detached, on the weights'
        device) and the mean training loss of the last epoch.
    """
    settings = FitSettings(
        epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, betas=(0.5, 0.999)
    )
    res = fit(
        model,
        params0[0] if len(params0) == 1 else list(params0),
        train.x,
        train.y,
        settings,
        generator=list(generators),
        lr_at=step_decay(cfg.lr, cfg.decay_every, cfg.decay_factor),
    )
    last = [losses[-1] for losses in res.epoch_losses]
    if res.diverged:
        raise PoolError(
            f"training diverged (losses {last}) at epoch {len(res.epoch_losses[0]) - 1}; try a "
            f"lower lr (now {cfg.lr})"
        )
    return list(zip(res.params, last))


def train_pool(
    cfg: TrainConfig,
    data: Dataset,
    model: nn.Module,
    out: str | Path,
    *,
    device: torch.device | str = "cpu",
    rank: int = 0,
    world_size: int = 1,
    progress: Callable[[str], None] | None = None,
) -> list[int]:
    """Train the nets of a pool that this rank owns and write one safetensors file per net.

    Net ``i`` belongs to rank ``i % world_size``. Nets whose file already exists (a resumed
    pool) are skipped. ``cfg.parallel`` nets are trained at once (:func:`train_nets`). The
    manifest is written separately (:func:`write_manifest`) once every rank is done.

    Returns:
        The indices of the nets trained by this call.
    """
    from safetensors.torch import save_file

    out = Path(out)
    device = torch.device(device)
    model = model.to(device)
    train = data.train.to(device)
    test = data.test.to(device)
    todo = []
    for i in range(rank, cfg.n_nets, world_size):
        path = out / _net_file(i)
        if path.exists():
            try:
                _read_net(path)
                continue
            except PoolError:
                pass  # a corrupt file from a crash: train the net again
        todo.append(i)
    done = []
    with task("train pool", len(todo), unit="net") as t:
        for start in range(0, len(todo), cfg.parallel):
            chunk = todo[start : start + cfg.parallel]
            t0 = time.perf_counter()
            seeds = [net_seed(cfg.seed, cfg.split, i) for i in chunk]
            gens = [torch.Generator().manual_seed(seed) for seed in seeds]
            params0 = [
                init_params(model, cfg.init, cfg.init_param, generator=g, device=device)
                for g in gens
            ]
            results = train_nets(model, params0, train, cfg, gens)
            seconds = (time.perf_counter() - t0) / len(chunk)
            for i, seed, (params, loss) in zip(chunk, seeds, results):
                acc = accuracy(model, params, test, batch_size=2048)
                meta = {
                    "index": str(i),
                    "seed": str(seed),
                    "test_acc": repr(acc),
                    "train_loss": repr(loss),
                    "seconds": f"{seconds:.2f}",
                }
                tensors = {k: v.detach().cpu().contiguous() for k, v in params.items()}
                atomic_write(
                    out / _net_file(i), lambda tmp, t=tensors, m=meta: save_file(t, tmp, metadata=m)
                )
                done.append(i)
                t.update()
                if progress is not None:
                    progress(
                        f"net {i + 1}/{cfg.n_nets}: test accuracy {100 * acc:.2f}%, "
                        f"last-epoch loss "
                        f"{loss:.4f}, {seconds:.1f}s"
                        + (f" (one of {len(chunk)} trained at once)" if len(chunk) > 1 else "")
                    )
    return done


def write_manifest(cfg: TrainConfig, data: Dataset, out: str | Path) -> dict[str, Any]:
    """Collect the per-net files of a finished pool into ``manifest.json`` (rank 0 only)."""
    out = Path(out)
    nets = []
    for i in range(cfg.n_nets):
        _, meta = _read_net(out / _net_file(i))
        nets.append(
            {
                "file": _net_file(i),
                "seed": int(meta["seed"]),
                "test_acc": float(meta["test_acc"]),
                "train_loss": float(meta["train_loss"]),
                "seconds": float(meta.get("seconds", "nan")),
            }
        )
    accs = [n["test_acc"] for n in nets]
    manifest = {
        "format_version": POOL_FORMAT_VERSION,
        "arch": cfg.arch,
        "arch_args": cfg.arch_args,
        "dataset": data.name,
        "sample_shape": list(data.sample_shape),
        "n_classes": data.n_classes,
        "mean": list(data.mean),
        "std": list(data.std),
        "split": cfg.split,
        "n_nets": cfg.n_nets,
        "test_acc_mean": sum(accs) / len(accs),
        "test_acc_min": min(accs),
        "test_acc_max": max(accs),
        "train_config": cfg.to_dict(),
        "softdistill_version": __version__,
        "torch_version": torch.__version__,
        "nets": nets,
    }
    save_json(out / MANIFEST, manifest)
    return manifest


# ----------------------------------------------------------------------------- loading
def _read_net(path: Path) -> tuple[Params, dict[str, str]]:
    return read_safetensors(path, PoolError)


def check_params(model: nn.Module, params: Params, where: str) -> None:
    """Raise PoolError unless ``params`` has exactly the names and shapes of ``model``."""
    want = {k: tuple(v.shape) for k, v in model.named_parameters()}
    have = {k: tuple(v.shape) for k, v in params.items()}
    if want != have:
        missing = sorted(set(want) - set(have))
        extra = sorted(set(have) - set(want))
        shapes = sorted(k for k in set(want) & set(have) if want[k] != have[k])
        raise PoolError(
            f"{where} does not fit the model: missing {missing}, unexpected {extra}, "
            f"other shapes for {[(k, have[k], want[k]) for k in shapes]}"
        )


@dataclass
class Pool:
    """A pool folder, opened: its manifest; nets are read on demand with :meth:`load`."""

    path: Path
    manifest: dict[str, Any]

    @property
    def n_nets(self) -> int:
        return len(self.manifest["nets"])

    @property
    def arch(self) -> str:
        return self.manifest["arch"]

    @property
    def dataset(self) -> str:
        return self.manifest["dataset"]

    def load(self, indices: Sequence[int], *, device=None, dtype=None) -> list[Params]:
        """The weights of nets ``indices`` (names as ``model.named_parameters()``)."""
        nets = []
        for i in indices:
            if not 0 <= i < self.n_nets:
                raise PoolError(f"pool {self.path} has nets 0..{self.n_nets - 1}, asked for {i}")
            params, _ = _read_net(self.path / self.manifest["nets"][i]["file"])
            nets.append({k: v.to(device=device, dtype=dtype) for k, v in params.items()})
        return nets

    def check_fits(
        self,
        arch: str,
        arch_args: dict,
        sample_shape: Sequence[int],
        n_classes: int | None,
        key: str,
    ) -> None:
        """ConfigError unless the pool was trained for this arch and input/output shape."""
        m = self.manifest
        if m["arch"] != arch or (m.get("arch_args") or {}) != (arch_args or {}):
            raise ConfigError(
                f"{key} {self.path} holds {m['arch']} nets (arch_args {m.get('arch_args') or {}})"
                f" but the config asks for arch {arch} (arch_args {arch_args or {}}); pass "
                f"--arch {m['arch']}"
            )
        if list(m["sample_shape"]) != list(sample_shape) or (
            n_classes is not None and m["n_classes"] != n_classes
        ):
            raise ConfigError(
                f"{key} {self.path} was trained on {m['dataset']} inputs of shape "
                f"{tuple(m['sample_shape'])} with {m['n_classes']} classes; this dataset has "
                f"{tuple(sample_shape)} and {n_classes}"
            )


def load_pool(path: str | Path) -> Pool:
    """Open a pool folder written by ``softdistill train`` (checks the manifest and files)."""
    path = Path(path)
    if not path.is_dir():
        raise PoolError(
            f"pool folder not found: {path} (make one with `softdistill train --out {path}`)"
        )
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise PoolError(
            f"{path} has no {MANIFEST}: not a pool, or its training has not finished "
            "(re-run the same `softdistill train` command to complete it)"
        )
    try:
        manifest = json.loads(mpath.read_text())
    except json.JSONDecodeError as e:
        raise PoolError(f"{mpath} is not valid JSON: {e}") from None
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if version != POOL_FORMAT_VERSION:
        raise PoolError(
            f"{mpath} has pool format version {version!r}; this softdistill reads version "
            f"{POOL_FORMAT_VERSION}"
        )
    missing = [n["file"] for n in manifest["nets"] if not (path / n["file"]).is_file()]
    if missing:
        raise PoolError(f"pool {path} lacks {len(missing)} net file(s), e.g. {missing[0]}")
    if not manifest["nets"]:
        raise PoolError(f"pool {path} holds no nets")
    return Pool(path, manifest)
