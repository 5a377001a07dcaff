"""The standard evaluation protocol: train fresh networks from scratch on a (synthetic) set.

Replaying the learned steps (``evaluate.evaluate_steps``) is the method's own protocol. Newer
dataset-distillation papers instead train a fresh network on the distilled examples for many
epochs with SGD and momentum, often with differentiable augmentation, and on architectures other
than the one distilled with. :func:`evaluate_scratch` does that for any number of training sets
(the synthetic set and, optionally, baseline sets) and architectures, ``n_nets`` networks each,
and returns a cross-architecture table of mean ± std test accuracies.

Defaults follow the DC/DSA evaluation: lr 0.01, momentum 0.9, weight decay 5e-4, batch 256, the
lr divided by 10 after half the epochs. The loss is the soft-label cross-entropy against
``y_soft`` (``labels="soft"``) or against its argmax (``labels="hard"``).

Nothing here depends on the modality: architectures that do not accept the sample shape are
skipped with the reason recorded. Only augmentation needs images ``(C, H, W)``; it uses
``kornia`` (the ``augment`` extra), imported when asked for.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from softdistill.core import soft_cross_entropy
from softdistill.data import Split
from softdistill.fit import FitSettings, fit
from softdistill.models import build, init_params
from softdistill.progress import task
from softdistill.scoring import EvalResult, accuracy
from softdistill.seeds import stream
from softdistill.typing import Params

__all__ = [
    "AUGMENTS",
    "AUGMENT_PRESETS",
    "SCRATCH_LABELS",
    "ScratchSettings",
    "evaluate_scratch",
    "format_scratch_table",
    "make_augment",
    "parse_augment",
    "train_scratch",
]

# DSA's differentiable augmentations (Zhao & Bilen 2021), in the order they are applied.
AUGMENTS = ("color", "crop", "cutout", "flip", "scale", "rotate")
# "dsa" leaves out flip, which changes the meaning of digits; add it for natural images.
AUGMENT_PRESETS = {"dsa": ("color", "crop", "cutout", "scale", "rotate")}
SCRATCH_LABELS = ("soft", "hard")


@dataclass
class ScratchSettings:
    """How each network is trained from scratch.

    Attributes:
        epochs: passes over the training set.
        lr, momentum, weight_decay: SGD settings.
        batch_size: examples per SGD step.
        n_nets: networks trained per architecture and training set.
        labels: ``soft`` (the label vectors as they are) or ``hard`` (their argmax, one-hot).
        augment: comma-separated names of :data:`AUGMENTS` or :data:`AUGMENT_PRESETS`, or None.
        init, init_param: weight initialisation (see ``models.init_params``).
        decay_at: fraction of the epochs after which the lr is divided by 10 (1: never).
    """

    epochs: int = 300
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    n_nets: int = 5
    labels: str = "soft"
    augment: str | None = None
    init: str = "xavier"
    init_param: float = 1.0
    decay_at: float = 0.5
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if min(self.epochs, self.batch_size, self.n_nets) < 1:
            raise ValueError(
                f"epochs, batch_size and n_nets must be >= 1, got "
                f"{self.epochs}, {self.batch_size}, {self.n_nets}"
            )
        if not self.lr > 0 or self.momentum < 0 or self.weight_decay < 0:
            raise ValueError(
                f"need lr > 0, momentum >= 0, weight_decay >= 0; got "
                f"{self.lr}, {self.momentum}, {self.weight_decay}"
            )
        if self.labels not in SCRATCH_LABELS:
            raise ValueError(f"labels must be one of {SCRATCH_LABELS}, got {self.labels!r}")
        if not 0 < self.decay_at <= 1:
            raise ValueError(f"decay_at must be in (0, 1], got {self.decay_at}")
        if self.augment:
            parse_augment(self.augment)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(d.pop("extra"))
        return d


# ----------------------------------------------------------------------------- augmentation
def parse_augment(spec: str) -> tuple[str, ...]:
    """``"dsa,flip"`` -> the augmentation names, in :data:`AUGMENTS` order, without repeats."""
    names: set[str] = set()
    for part in filter(None, (s.strip() for s in spec.split(","))):
        if part in AUGMENT_PRESETS:
            names.update(AUGMENT_PRESETS[part])
        elif part in AUGMENTS:
            names.add(part)
        else:
            raise ValueError(
                f"unknown augmentation {part!r} in {spec!r}; expected names of "
                f"{list(AUGMENTS)} or presets {list(AUGMENT_PRESETS)}, comma-separated"
            )
    if not names:
        raise ValueError(f"empty augmentation spec {spec!r}")
    return tuple(a for a in AUGMENTS if a in names)


class _Color(nn.Module):
    """DSA's colour jitter on normalised inputs: brightness shift, saturation and contrast.

    Differentiable plain tensor ops (kornia's colour ops clamp to [0, 1], which would destroy
    normalised inputs).
    """

    def forward(self, x: Tensor) -> Tensor:  # x: (N, C, H, W)
        n = x.shape[0]

        def rand() -> Tensor:
            return torch.rand(n, 1, 1, 1, dtype=x.dtype, device=x.device)

        x = x + (rand() - 0.5)  # brightness
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (rand() * 2.0) + mean  # saturation (no-op on one channel)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) * (rand() + 0.5) + mean  # contrast


def make_augment(spec: str, sample_shape: Sequence[int]) -> Callable[[Tensor], Tensor]:
    """A random, differentiable augmentation of image batches ``(N, C, H, W)``.

    Uses ``kornia`` (``pip install 'softdistill[augment]'``) for the geometric parts; the random
    draws come from torch's global RNG (seeded by the CLI).

    Raises:
        ValueError: unknown names, or samples that are not images ``(C, H, W)``.
        ImportError: kornia is not installed.
    """
    names = parse_augment(spec)
    if len(sample_shape) != 3:
        raise ValueError(
            f"augmentation {spec!r} needs image samples (C, H, W), got sample shape "
            f"{tuple(sample_shape)}; leave augmentation off for this data"
        )
    try:
        import kornia.augmentation as K
    except ImportError as e:
        raise ImportError(
            f"augmentation {spec!r} needs kornia, which is not installed ({e}); install it "
            "with: pip install 'softdistill[augment]'  (or: pip install kornia)"
        ) from None
    ops: dict[str, nn.Module] = {
        "color": _Color(),
        "crop": K.RandomAffine(degrees=0.0, translate=(0.125, 0.125), p=1.0),
        "cutout": K.RandomErasing(scale=(0.25, 0.25), ratio=(1.0, 1.0), value=0.0, p=1.0),
        "flip": K.RandomHorizontalFlip(p=0.5),
        "scale": K.RandomAffine(degrees=0.0, scale=(0.8, 1.2, 0.8, 1.2), p=1.0),
        "rotate": K.RandomRotation(degrees=15.0, p=1.0),
    }
    return nn.Sequential(*(ops[n] for n in names))


# ----------------------------------------------------------------------------- training
def train_scratch(
    model: nn.Module,
    params0: Params,
    x: Tensor,
    y: Tensor,
    settings: ScratchSettings,
    *,
    generator: torch.Generator,
    augment: Callable[[Tensor], Tensor] | None = None,
) -> tuple[Params, dict]:
    """Train ``f(.; params0)`` on ``(x, y)`` with SGD + momentum for ``settings.epochs`` epochs.

    Args:
        model: stateless template network (never modified).
        params0: initial weights (copied, not modified).
        x: ``(n, *sample_shape)`` training inputs.
        y: ``(n, n_classes)`` label vectors (``settings.labels`` says how they are used).
        settings: optimiser settings.
        generator: CPU RNG of the batch order.
        augment: applied to every batch of inputs (see :func:`make_augment`).

    Returns:
        ``(params, info)``: the trained weights (detached) and ``{"diverged": bool, "loss":
        float}``; training stops at the first non-finite loss and keeps the last finite weights.
    """
    if x.shape[0] != y.shape[0] or y.dim() != 2:
        raise ValueError(
            f"need x (n, ...) and label vectors y (n, n_classes); got {tuple(x.shape)}, "
            f"{tuple(y.shape)}"
        )
    if settings.labels == "hard":
        y = F.one_hot(y.argmax(-1), y.shape[-1]).to(x.dtype)
    decay_epoch = math.ceil(settings.epochs * settings.decay_at)
    res = fit(
        model,
        params0,
        x.detach(),
        y.detach(),
        FitSettings(
            epochs=settings.epochs,
            batch_size=settings.batch_size,
            lr=settings.lr,
            optimizer="sgd",
            momentum=settings.momentum,
            weight_decay=settings.weight_decay,
            check_every_step=True,
        ),
        generator=generator,
        loss_fn=soft_cross_entropy,
        lr_at=lambda epoch: settings.lr * 0.1 if epoch >= decay_epoch else settings.lr,
        augment=augment,
    )
    return res.params[0], {"diverged": res.diverged, "loss": res.last_loss[0]}


def evaluate_scratch(
    sets: Mapping[str, tuple[Tensor, Tensor]],
    test: Split,
    archs: Sequence[str],
    settings: ScratchSettings,
    *,
    arch_args: Mapping[str, dict] | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Train ``settings.n_nets`` fresh networks of each of ``archs`` on each of ``sets``.

    Args:
        sets: name -> ``(x (n, *sample_shape), y (n, n_classes))``, e.g. ``{"distilled":
            (x_syn flattened, y_soft flattened), "random": ...}``. All share a sample shape.
        test: where the accuracies are measured (its device and dtype are used).
        archs: architecture names (``models.ARCHS``); those that cannot take the sample shape
            are skipped, with the reason under ``"skipped"``.
        settings: training settings.
        arch_args: keyword arguments per architecture name.
        seed: seeds the initialisations and batch orders (the same inits for every set, so the
            sets are compared on the same networks).
        progress: called with a line of text after every trained network.

    Returns:
        ``{**settings, "archs": {arch: {set: {"mean", "std", "per_net", "diverged",
        "seconds"}}}, "skipped": {arch: reason}}``.
    """

    if not sets:
        raise ValueError("no training sets to evaluate")
    shapes = {name: tuple(x.shape[1:]) for name, (x, _) in sets.items()}
    sample_shape = next(iter(shapes.values()))
    if any(s != sample_shape for s in shapes.values()):
        raise ValueError(f"training sets differ in sample shape: {shapes}")
    n_classes = next(iter(sets.values()))[1].shape[-1]
    device, dtype = test.x.device, test.x.dtype
    augment = make_augment(settings.augment, sample_shape) if settings.augment else None
    arch_args = dict(arch_args or {})
    out: dict = {**settings.to_dict(), "archs": {}, "skipped": {}}
    for arch in archs:
        try:
            model = build(arch, sample_shape, n_classes, **arch_args.get(arch, {}))
        except ValueError as e:
            out["skipped"][arch] = str(e)
            continue
        model = model.to(device=device, dtype=dtype)
        g_init = stream(seed, "scratch_init", arch)  # the same nets in any order of archs
        inits = [
            init_params(
                model,
                settings.init,
                settings.init_param,
                generator=g_init,
                device=device,
                dtype=dtype,
            )
            for _ in range(settings.n_nets)
        ]
        table: dict = {}
        for name, (x, y) in sets.items():
            x, y = x.to(device=device, dtype=dtype), y.to(device=device, dtype=dtype)
            g_order = stream(seed, "scratch_order", arch)  # the same orders for every set
            accs, diverged, t0 = [], 0, time.perf_counter()
            with task(f"scratch {arch} on {name}", len(inits), unit="net") as t:
                for i, params0 in enumerate(inits):
                    params, info = train_scratch(
                        model, params0, x, y, settings, generator=g_order, augment=augment
                    )
                    accs.append(accuracy(model, params, test))
                    diverged += info["diverged"]
                    t.update()
                    if progress:
                        progress(
                            f"scratch {arch} on {name}: net {i + 1}/{len(inits)} "
                            f"{100 * accs[-1]:.2f}% ({time.perf_counter() - t0:.1f}s)"
                        )
            seconds = round(time.perf_counter() - t0, 2)
            table[name] = EvalResult(accs, {"diverged": diverged, "seconds": seconds}).to_dict()
        out["archs"][arch] = table
    return out


def format_scratch_table(scratch: dict) -> str:
    """The cross-architecture table of :func:`evaluate_scratch` as markdown (% mean ± std)."""
    archs = scratch.get("archs", {})
    names = list(dict.fromkeys(n for table in archs.values() for n in table))
    lines = [
        "| arch | " + " | ".join(names) + " |",
        "| --- | " + " | ".join("---" for _ in names) + " |",
    ]
    for arch, table in archs.items():
        cells = [
            f"{100 * table[n]['mean']:.2f} ± {100 * table[n]['std']:.2f}" if n in table else "-"
            for n in names
        ]
        lines.append(f"| {arch} | " + " | ".join(cells) + " |")
    for arch, reason in scratch.get("skipped", {}).items():
        lines.append(f"| {arch} | skipped: {reason.splitlines()[0]} |")
    return "\n".join(lines)
