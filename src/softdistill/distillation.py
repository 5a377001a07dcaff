"""The outer loop: learn a synthetic set by gradient descent on the hypergradient.

Per outer step: draw a real batch (indexing tensors already in memory), take the inner nets
(``fixed``: the same inits every step; ``random``: fresh inits; ``pool:PATH``: pretrained nets
drawn from a pool), compute the hypergradient of each (averaged, across processes too when run
under ``torchrun``), take an Adam step (betas 0.5, 0.999) and a step-decay schedule step.

The outer objective (``cfg.objective``) is what the trained nets should do on real data:
``basic`` and ``adapt`` classify the real batch correctly (``adapt`` starts from nets pretrained
on another dataset); ``attack`` classifies ``attack_class`` as ``target_class`` and every other
class correctly.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from softdistill import distributed, hypergrads, io, objectives
from softdistill.callbacks import (
    Callback,
    Checkpoints,
    Evaluate,
    Metrics,
    Progress,
    Snapshots,
    StepEvent,
)
from softdistill.config import Config, ConfigError
from softdistill.core import (
    ChunkedLoss,
    SyntheticSet,
    auto_keep_every,
    batched_hypergradient,
    forward,
    hypergradient,
    inner_graph_bytes,
    random_inner_steps,
    sample_truncation,
)
from softdistill.data import Dataset, Split
from softdistill.nets import NetSource, NetSpec, eval_nets
from softdistill.scoring import random_real_steps
from softdistill.seeds import stream
from softdistill.typing import OuterLoss, Params

__all__ = [
    "DistillResult",
    "DivergenceError",
    "LoopState",
    "OuterLoop",
    "OuterStep",
    "RealBatches",
    "AUTO_GRAPH_BYTES",
    "choose_hypergrad",
    "distill",
    "holdout",
    "hypergrad_options",
    "make_outer_loss",
    "make_synthetic",
    "outer_chunk",
    "outer_grads",
    "outer_param_groups",
]

log = logging.getLogger(__name__)


class DivergenceError(RuntimeError):
    """The outer loss or its gradient became NaN/inf."""


class RealBatches:
    """Shuffled minibatches of a split held in memory (one permutation per pass)."""

    def __init__(self, split: Split, batch_size: int, generator: torch.Generator) -> None:
        self.split = split
        self.batch_size = min(batch_size, len(split))
        self.generator = generator
        self.perm = torch.randperm(len(split), generator=generator)
        self.pos = 0

    def next(self, size: int | None = None) -> tuple[Tensor, Tensor]:
        """The next ``size`` examples (default ``batch_size``) of the pass; a new permutation
        when fewer are left."""
        size = self.batch_size if size is None else min(size, len(self.split))
        if self.pos + size > len(self.perm):
            self.perm = torch.randperm(len(self.split), generator=self.generator)
            self.pos = 0
        idx = self.perm[self.pos : self.pos + size].to(self.split.x.device)
        self.pos += size
        return self.split.x[idx], self.split.y[idx]

    def state_dict(self) -> dict[str, Any]:
        return {"perm": self.perm, "pos": self.pos, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.perm, self.pos = state["perm"], int(state["pos"])
        self.generator.set_state(state["generator"])


def load_label_file(path: str) -> Tensor:
    """Label parameters from a ``.npy``, ``.pt`` (tensor only) or whitespace ``.txt`` file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"label_init file not found: {p}")
    if p.suffix == ".npy":
        return torch.from_numpy(np.load(p, allow_pickle=False))
    if p.suffix == ".pt":
        t = torch.load(p, weights_only=True)
        if not isinstance(t, Tensor):
            raise ConfigError(f"{p} must hold a single tensor of label parameters")
        return t
    return torch.from_numpy(np.loadtxt(p, ndmin=2))


def make_synthetic(
    cfg: Config, data: Dataset, generator: torch.Generator, *, device, dtype
) -> SyntheticSet:
    """The initial synthetic set described by ``cfg`` for ``data``."""
    classes = cfg.label_classes(data.n_classes)
    label_init: str | Tensor = cfg.label_init
    if cfg.label_init.startswith("file:"):
        label_init = load_label_file(cfg.label_init[5:])
    x_init = None
    if cfg.x_init == "real":
        lrs = torch.zeros(cfg.n_batches)
        steps = random_real_steps(
            data.train, classes, cfg.per_class, cfg.n_batches, lrs, data.n_classes, generator
        )
        x_init = torch.stack([x for x, _, _ in steps]).cpu()
    try:
        syn = SyntheticSet.create(
            data.sample_shape,
            data.n_classes,
            per_class=cfg.per_class,
            n_batches=cfg.n_batches,
            n_epochs=cfg.n_epochs,
            init_lr=cfg.init_lr,
            label_classes=classes,
            label_init=label_init,
            label_mode=cfg.label_mode,
            learn_labels=cfg.learn_labels,
            learn_lrs=cfg.learn_lrs,
            freeze_data=cfg.freeze_data,
            x_init=x_init,
            generator=generator,
            dtype=dtype,
        )
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return syn.to(device)


# outer_chunk None: the real batch in chunks of this many examples on a CPU (where one LeNet
# forward+backward of 1024 MNIST images in chunks of 256 takes 0.14 s of CPU against 0.21 s at
# once, one thread: the activations stay in cache), whole on an accelerator
CPU_OUTER_CHUNK = 256


def outer_chunk(cfg: Config, device: torch.device | str) -> int:
    """Real examples per forward/backward of the outer loss (0: the whole batch)."""
    if cfg.outer_chunk is not None:
        return cfg.outer_chunk
    return CPU_OUTER_CHUNK if torch.device(device).type == "cpu" else 0


def basic_outer_loss(model: nn.Module, x: Tensor, y: Tensor, chunk: int = 0) -> OuterLoss:
    """``L(theta_T)``: cross-entropy of the trained net on a real batch (taken ``chunk``
    examples at a time when ``0 < chunk < len(x)``: a :class:`~softdistill.core.ChunkedLoss`)."""
    if 0 < chunk < len(x):

        def chunk_sum(params: Params, a: int, b: int) -> Tensor:
            return F.cross_entropy(forward(model, params, x[a:b]), y[a:b], reduction="sum")

        return ChunkedLoss(chunk_sum, len(x), chunk)
    return lambda params: F.cross_entropy(forward(model, params, x), y)


def make_outer_loss(
    cfg: Config, model: nn.Module, x: Tensor, y: Tensor, chunk: int = 0
) -> OuterLoss:
    """The outer objective of ``cfg`` on the real batch ``(x, y)``, ``chunk`` examples at a
    time (0: all at once; see :func:`outer_chunk`).

    Cross-entropy against the objective's targets (:mod:`softdistill.objectives`): ``basic``
    and ``adapt`` the true labels; ``attack`` the labels with ``attack_class`` relabelled
    ``target_class``, so the trained nets learn to misclassify that one class while keeping the
    others.
    """
    return basic_outer_loss(model, x, objectives.get(cfg.objective).targets(y, cfg), chunk)


def outer_grads(
    model: nn.Module,
    nets: list[Params],
    syn: SyntheticSet,
    outer_loss: OuterLoss,
    *,
    method: str = "reverse",
    batched: bool = False,
    **options: Any,
) -> tuple[Tensor, list[Tensor]]:
    """Mean outer loss and mean hypergradient over ``nets``.

    Args:
        batched: all nets at once with ``torch.func.vmap`` over their stacked weights
            (:func:`~softdistill.core.batched_hypergradient`); else a loop over the nets (the
            reference). Same gradients up to floating-point rounding.
        options: passed to :func:`~softdistill.core.hypergradient` (``keep_every``,
            ``window``, ``n_steps``).

    Returns:
        ``(loss, grads)`` with one gradient per learnable tensor of ``syn`` (those with
        ``requires_grad``, in ``syn.parameters()`` order).
    """
    if batched:
        res = batched_hypergradient(model, nets, syn, outer_loss, method=method, **options)
        return res.loss, [g for g in res.grads if g is not None]
    leaves = [p for p in syn.parameters() if p.requires_grad]
    grads = [torch.zeros_like(p) for p in leaves]
    loss = torch.zeros((), device=leaves[0].device, dtype=leaves[0].dtype)
    for params0 in nets:
        res = hypergradient(model, params0, syn, outer_loss, method=method, **options)
        loss += res.loss / len(nets)
        for acc, g in zip(grads, (g for g in res.grads if g is not None)):
            acc.add_(g, alpha=1.0 / len(nets))
    return loss, grads


def outer_param_groups(cfg: Config, syn: SyntheticSet) -> list[dict[str, Any]]:
    """Adam's parameter groups: the learned tensors of ``syn``, the labels and the inner lrs at
    ``lr_factor_labels`` and ``lr_factor_lrs`` times ``cfg.lr`` (both 1: one group's lr)."""
    factors = {
        id(syn.x_syn): 1.0,
        id(syn.label_params): cfg.lr_factor_labels,
        id(syn.raw_lrs): cfg.lr_factor_lrs,
    }
    groups: dict[float, list[Tensor]] = {}
    for p in syn.parameters():
        if p.requires_grad:
            groups.setdefault(factors[id(p)], []).append(p)
    return [{"params": ps, "lr": cfg.lr * f, "lr_factor": f} for f, ps in groups.items()]


def outer_lr_factor(cfg: Config, step: int) -> float:
    """The outer lr after ``step`` outer steps, as a multiple of ``cfg.lr``.

    ``step``: ``decay_factor ** (step // decay_every)``; ``cosine``: ``(1 + cos(pi * s / S)) / 2``
    with ``s`` the steps after the warm-up and ``S`` the steps from the warm-up to
    ``outer_steps`` (0 at the end). ``warmup_steps`` W > 0 multiplies either by ``(step + 1) / W``
    for the first W steps.
    """
    warm = cfg.warmup_steps
    if cfg.lr_schedule == "cosine":
        span = max(cfg.outer_steps - warm, 1)
        after = min(max(step - warm, 0), span)
        factor = 0.5 * (1.0 + math.cos(math.pi * after / span))
    else:
        factor = cfg.decay_factor ** (step // cfg.decay_every)
    if step < warm:
        factor *= (step + 1) / warm
    return factor


def outer_lr_scheduler(cfg: Config, opt: torch.optim.Optimizer) -> Any:
    """The outer loop's lr schedule (:func:`outer_lr_factor`), stepped once per outer step.

    The original schedule (``step``, no warm-up) is ``torch``'s ``StepLR``, bitwise as before.
    """
    if cfg.lr_schedule == "step" and not cfg.warmup_steps:
        return torch.optim.lr_scheduler.StepLR(
            opt, step_size=cfg.decay_every, gamma=cfg.decay_factor
        )
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: outer_lr_factor(cfg, step))


# hypergrad auto: plain autograd while the whole unroll's graph (T inner steps, times the nets
# run at once) is at most this many bytes, else reverse
AUTO_GRAPH_BYTES = 256 * 2**20


def choose_hypergrad(
    cfg: Config, model: nn.Module, syn: SyntheticSet, params0: Params
) -> tuple[str, str]:
    """``cfg.hypergrad``, with ``auto`` resolved; and why (a phrase for the log).

    ``auto`` is ``autograd`` when keeping the whole inner graph is cheap: ``keep_every`` 1 and
    T x (the measured graph of one inner step, :func:`~softdistill.core.inner_graph_bytes`) x
    (nets run at once) <= :data:`AUTO_GRAPH_BYTES`. It is then faster than ``reverse``, which
    recomputes every inner step's forward and gradient in its backward sweep (same gradients up to
    rounding). Otherwise ``reverse``, whose memory does not grow with the activations of T steps.
    A model whose inner steps draw dropout masks (``arch_args`` ``dropout``) takes ``autograd``:
    the other methods recompute steps, which would draw other masks.

    Raises:
        ConfigError: dropout in inner steps with another ``hypergrad`` than ``autograd``/``auto``,
            or with ``batched_nets``.
    """
    if random_inner_steps(model):
        if cfg.batched_nets:
            raise ConfigError(
                "arch_args dropout draws masks in the inner steps, which batched_nets (vmap) "
                "does not support; set batched_nets: false"
            )
        if cfg.hypergrad not in ("auto", "autograd"):
            raise ConfigError(
                f"hypergrad {cfg.hypergrad!r} recomputes inner steps, and arch_args dropout "
                "draws other masks each time; use hypergrad autograd (or auto)"
            )
        return "autograd", "the inner steps draw dropout masks: only autograd keeps them"
    if cfg.hypergrad != "auto":
        return cfg.hypergrad, "as configured"
    if cfg.keep_every != 1:
        return "reverse", f"keep_every {cfg.keep_every} asks for reverse's memory savings"
    at_once = cfg.n_nets if cfg.batched_nets else 1
    graph = inner_graph_bytes(model, params0, syn) * syn.n_steps * at_once
    mib = f"{graph / 2**20:.1f} MiB"
    limit = f"{AUTO_GRAPH_BYTES / 2**20:.0f} MiB"
    if graph <= AUTO_GRAPH_BYTES:
        return "autograd", f"the inner graph of T = {syn.n_steps} steps is {mib} <= {limit}"
    return "reverse", f"the inner graph of T = {syn.n_steps} steps would be {mib} > {limit}"


def hypergrad_options(cfg: Config, n_steps: int, generator: torch.Generator) -> dict[str, Any]:
    """The hypergradient's keyword arguments for one outer step of ``cfg`` (T = ``n_steps``),
    from the method's registry entry (:mod:`softdistill.hypergrads`).

    ``random_truncated`` draws its unroll length from ``generator`` (RaT-BPTT: uniform on
    ``[window, T]``, the last ``window`` steps differentiated); the other methods draw nothing.
    """
    return hypergrads.get(cfg.hypergrad).options(
        n_steps,
        window=cfg.window,
        keep_every=cfg.keep_every,
        draw_length=lambda T, window: sample_truncation(T, window, generator),
        auto_keep_every=auto_keep_every,
    )


@dataclass
class DistillResult:
    """What :func:`distill` learned and how long it took."""

    syn: SyntheticSet
    nets: list[Params] | None  # the fixed inits (nets=fixed), else None
    outer_steps: int
    seconds: float
    final_loss: float
    selected: dict[str, Any] | None = None  # val_size: the outer step kept, its val accuracy
    # restarts: outer steps of the starts not continued (their time is in seconds)
    other_steps: int = 0

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / max(1, self.outer_steps + self.other_steps)


@dataclass
class LoopState:
    """Everything an outer step changes: the checkpoint (with the callbacks' states).

    ``state_dict()``/``load_state_dict()`` keep the checkpoint format of every release (old
    checkpoints resume); entries a checkpoint lacks (written before their feature) keep their
    fresh values.
    """

    syn: SyntheticSet
    opt: torch.optim.Optimizer
    sched: Any
    batches: RealBatches
    source: NetSource
    truncation: torch.Generator  # random_truncated's unroll lengths
    noise: torch.Generator  # input_noise
    syn_ema: SyntheticSet | None = None  # ema_decay: the Polyak average of the set
    # clip_ratio: the running mean of the (clipped) hypergradient norms, and how many were clipped
    clip: dict[str, Any] = field(default_factory=lambda: {"mean": None, "count": 0})
    step: int = 0  # outer steps done
    seconds: float = 0.0  # loop time before this process's start (resume: the checkpoint's)
    t0: float = field(default=0.0, repr=False)

    @property
    def result_syn(self) -> SyntheticSet:
        """What is evaluated and returned: the Polyak average when there is one, else the set."""
        return self.syn_ema if self.syn_ema is not None else self.syn

    def elapsed(self) -> float:
        """Seconds in the loop so far, runs before a resume included."""
        return time.perf_counter() - self.t0

    def state_dict(self, seconds: float | None = None) -> dict[str, Any]:
        state = {
            "step": self.step,
            "seconds": self.elapsed() if seconds is None else seconds,
            "syn": self.syn.state_dict(),
            "opt": self.opt.state_dict(),
            "sched": self.sched.state_dict(),
            "batches": self.batches.state_dict(),
            "nets": self.source.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "truncation": self.truncation.get_state(),
            "noise": self.noise.get_state(),
            "clip": self.clip,
        }
        if self.syn_ema is not None:
            state["syn_ema"] = self.syn_ema.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.syn.load_state_dict(state["syn"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        self.batches.load_state_dict(state["batches"])
        self.source.load_state_dict(state["nets"])
        torch.set_rng_state(state["torch_rng"])
        if "truncation" in state:
            self.truncation.set_state(state["truncation"])
        if self.syn_ema is not None:
            self.syn_ema.load_state_dict(state["syn_ema"])
        if "noise" in state:
            self.noise.set_state(state["noise"])
        if "clip" in state:
            self.clip = state["clip"]
        self.step, self.seconds = int(state["step"]), float(state["seconds"])


class OuterStep:
    """One outer step of a :class:`LoopState`: a real batch, the hypergradient over this
    rank's nets (averaged over every rank), clipping, the Adam step and its schedule, the
    Polyak average."""

    def __init__(
        self, cfg: Config, model: nn.Module, method: str, chunk: int, ckpt_path: Path | None
    ) -> None:
        self.cfg, self.model, self.chunk, self.ckpt_path = cfg, model, chunk, ckpt_path
        self.loop_cfg = cfg.replace(hypergrad=method)  # what every outer step runs

    def __call__(self, state: LoopState) -> StepEvent:
        cfg, syn = self.cfg, state.syn
        x_real, y_real = state.batches.next(cfg.batch_size_at(state.step))
        outer_loss = make_outer_loss(cfg, self.model, x_real, y_real, self.chunk)
        options = hypergrad_options(self.loop_cfg, syn.n_steps, state.truncation)
        clean_x = perturb_(syn.x_syn, cfg.input_noise, state.noise) if cfg.input_noise else None
        # bf16 autocast: the inner/outer networks' matmuls and convolutions in bfloat16, every
        # tensor that is kept (synthetic set, weights, gradients) in float32
        device_type = syn.x_syn.device.type
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=cfg.amp == "bf16"):
            loss, grads = outer_grads(
                self.model,
                state.source.draw(),
                syn,
                outer_loss,
                batched=cfg.batched_nets,
                **options,
            )
        if clean_x is not None:  # the hypergradient was taken at the perturbed point
            with torch.no_grad():
                syn.x_syn.copy_(clean_x)
        loss, grads = distributed.all_reduce_mean(loss, grads, state.source.n_local, cfg.n_nets)
        grad_norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))
        loss_value, grad_norm_value = torch.stack([loss, grad_norm]).tolist()  # one host sync
        if not (math.isfinite(loss_value) and math.isfinite(grad_norm_value)):
            raise DivergenceError(
                f"the outer loss became {loss_value} (gradient norm {grad_norm_value}) at outer "
                f"step {state.step}"
                + (f"; the last good state is in {self.ckpt_path}" if self.ckpt_path else "")
                + f". Try a lower lr (now {cfg.lr}) or init_lr (now {cfg.init_lr}; the original "
                "code's distill_lr)."
            )
        if cfg.clip_ratio:
            grads = clip_grads(grads, grad_norm_value, cfg.clip_ratio, state.clip)
        for p, g in zip([p for p in syn.parameters() if p.requires_grad], grads):
            p.grad = g
        state.opt.step()
        state.sched.step()
        step = state.step + 1
        if state.syn_ema is not None:
            # warm-up so early steps are not dominated by the initial values
            decay = min(cfg.ema_decay, step / (step + 10))
            with torch.no_grad():
                torch._foreach_lerp_(
                    list(state.syn_ema.parameters()), list(syn.parameters()), 1 - decay
                )
        return StepEvent(
            step=step,
            loss=loss_value,
            grad_norm=grad_norm_value,
            last=step == cfg.outer_steps,
            n_steps=options.get("n_steps"),
            info={"loss": loss_value},
        )


def clip_grads(
    grads: list[Tensor], norm: float, ratio: float, stats: dict[str, Any]
) -> list[Tensor]:
    """Clip the hypergradient's norm at ``ratio`` x the running mean of earlier norms.

    Each norm enters the mean clipped (``stats``: ``mean``, ``count`` of clipped steps, updated
    in place): a rare huge gradient would otherwise move Adam up to ~1 / sqrt(1 - beta2) times
    its usual step.
    """
    typical = stats["mean"]
    if typical is not None and norm > ratio * typical:
        scale = ratio * typical / norm
        grads = [g * scale for g in grads]
        stats["count"] += 1
    kept = norm if typical is None else min(norm, ratio * typical)
    stats["mean"] = kept if typical is None else 0.99 * typical + 0.01 * kept
    return grads


class OuterLoop:
    """A :class:`LoopState`, the step that advances it and the callbacks around each step."""

    def __init__(
        self, state: LoopState, take_step: Callable[[LoopState], StepEvent], callbacks: list
    ) -> None:
        self.state, self.take_step, self.callbacks = state, take_step, callbacks

    def state_dict(self, seconds: float | None = None) -> dict[str, Any]:
        """The checkpoint: the loop state and each stateful callback's (under its key)."""
        state = self.state.state_dict(seconds)
        for cb in self.callbacks:
            if cb.state_key is not None:
                state[cb.state_key] = cb.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state.load_state_dict(state)
        for cb in self.callbacks:
            if cb.state_key is not None and cb.state_key in state:
                cb.load_state_dict(state[cb.state_key])

    def start(self) -> None:
        for cb in self.callbacks:
            cb.on_start(self)

    def resume(self, path: Path) -> None:
        """Continue from the checkpoint at ``path``: one load, then the callbacks tidy up."""
        self.load_state_dict(io.load_checkpoint(path, map_location="cpu"))
        for cb in self.callbacks:
            cb.on_resume(self)
        log.info("resumed from %s at outer step %d", path, self.state.step)

    def run(self, outer_steps: int) -> StepEvent | None:
        """Outer steps until ``outer_steps`` are done or a callback stops the run; the last
        step's event (None: no step was left to take)."""
        state = self.state
        state.t0 = time.perf_counter() - state.seconds
        event = None
        while state.step < outer_steps:
            event = self.take_step(state)
            state.step = event.step
            for cb in self.callbacks:
                cb.on_step(self, event)
            if event.stop is not None:
                log.info(
                    "stopped early at outer step %d of %d: %s", event.step, outer_steps, event.stop
                )
                break
        return event


def distill(
    cfg: Config,
    data: Dataset,
    model: nn.Module,
    *,
    device: torch.device | str = "cpu",
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: Callable[[int, dict[str, float]], None] | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    callbacks: Sequence[Callback] = (),
) -> DistillResult:
    """Learn a synthetic set for ``data`` and ``model`` as configured by ``cfg``.

    Args:
        cfg: validated configuration.
        data: the dataset (normalised tensors).
        model: template network (never modified).
        device: where to compute.
        run_dir: if given, metrics go to ``metrics.jsonl`` and checkpoints to ``checkpoints/``.
        resume: continue from ``run_dir/checkpoints/last.pt``.
        progress: called after every outer step with ``(step, {"loss": ...})``.
        on_record: called with every record written to ``metrics.jsonl`` (e.g. TensorBoard).
        callbacks: more :class:`~softdistill.callbacks.Callback` objects, run at every step
            after the evaluation (held-out selection, early stop) and before the writers
            (metrics, snapshots, checkpoints, progress); one may end the run with
            ``event.request_stop("why")``, which the writers record as its last step. With
            ``restarts`` they join the kept start's loop after the choice (``on_start`` then).

    With ``run_dir``, small snapshots of ``x_syn`` go to ``snapshots/`` every
    ``cfg.snapshot_interval`` outer steps (and at steps 0 and the last) for the report.

    In a process group (``torchrun``), every rank calls this with the same ``cfg`` (checked);
    the nets are sharded across ranks, loss and hypergradient averaged over all of them, and
    only rank 0 writes ``run_dir`` and computes the test accuracy of ``eval_every``.

    This function assembles the loop (:class:`LoopState`, :class:`OuterStep` and the callbacks
    of :mod:`softdistill.callbacks`) from ``cfg`` and runs it.

    Raises:
        DivergenceError: the loss became NaN/inf; the last good checkpoint is kept.
    """
    dtype = getattr(torch, cfg.dtype)
    device = torch.device(device)
    rank, world_size = distributed.rank_world()
    distributed.check_same_config(cfg.to_dict())
    cfg.check_classes(data.n_classes)
    main = rank == 0
    model = model.to(device=device, dtype=dtype)
    train = data.train.to(device, dtype)
    val = None
    if cfg.val_size:
        train, val = holdout(train, cfg.val_size, stream(cfg.seed, "val"))
        val = val if main else None
    test = data.test.to(device, dtype) if cfg.eval_every and main else None
    spec = NetSpec.of(cfg)

    def new_state(syn_generator: torch.Generator) -> LoopState:
        # a start of the loop: the set from syn_generator; nets, batch order, Adam and the other
        # streams from the run's seed (every start of a restarts run sees the same ones)
        syn = make_synthetic(cfg, data, syn_generator, device=device, dtype=dtype)
        opt = torch.optim.Adam(
            outer_param_groups(cfg, syn), lr=cfg.lr, betas=(cfg.adam_beta1, 0.999)
        )
        return LoopState(
            syn=syn,
            opt=opt,
            sched=outer_lr_scheduler(cfg, opt),
            batches=RealBatches(train, cfg.batch_size, stream(cfg.seed, "data")),
            source=NetSource(
                model,
                spec,
                device=device,
                dtype=dtype,
                sample_shape=data.sample_shape,
                n_classes=data.n_classes,
                rank=rank,
                world_size=world_size,
            ),
            truncation=stream(cfg.seed, "truncation"),
            noise=stream(cfg.seed, "input_noise"),
            # Polyak averaging: an exponential moving average of the learned tensors, evaluated
            # and returned instead of the last iterate when ema_decay > 0
            syn_ema=copy.deepcopy(syn).requires_grad_(False) if cfg.ema_decay else None,
        )

    state = new_state(stream(cfg.seed, "syn"))
    method, why = choose_hypergrad(cfg, model, state.syn, dict(model.named_parameters()))
    if cfg.hypergrad == "auto" and main:
        log.info("hypergrad auto: %s (%s)", method, why)
    chunk = outer_chunk(cfg, device)
    if main and 0 < chunk < state.batches.batch_size:
        log.info("outer loss in chunks of %d real examples (outer_chunk)", chunk)
    run_dir = Path(run_dir) if run_dir is not None else None
    ckpt_path = run_dir / io.CHECKPOINT if run_dir else None
    metrics_path = run_dir / io.METRICS if run_dir and main else None
    if resume and ckpt_path is None:
        raise ValueError("resume needs a run_dir")
    logging_on = main and (metrics_path is not None or on_record is not None)

    def evaluator(source: NetSource, *, stops: bool = True) -> Evaluate:
        def watch() -> list[Params]:
            # test accuracy in metrics: on the fixed inits, or on a few never-trained-on nets
            if not (cfg.eval_every and main):
                return []
            return eval_nets(
                model,
                spec,
                source.fixed,
                min(cfg.test_n_nets, 4),
                device=device,
                dtype=dtype,
                sample_shape=data.sample_shape,
                n_classes=data.n_classes,
            )

        return Evaluate(
            model,
            watch,
            every=cfg.eval_every,
            test_every=cfg.test_every,
            val=val,
            test=test,
            heldout=bool(cfg.val_size),
            score_test=logging_on,
            stop_at_val_acc=cfg.stop_at_val_acc if stops else None,
            patience=cfg.patience if stops else 0,
            main=main,
        )

    # restarts: the steps of the starts not continued come before the kept start's (progress)
    offset = (cfg.restarts - 1) * cfg.restart_steps

    def shifted(by: int) -> Callable[[int, dict[str, float]], None]:
        return lambda step, info: progress(step + by, info)

    take_step = OuterStep(cfg, model, method, chunk, ckpt_path)
    restarts = Restarts()
    choose = cfg.restarts > 1 and not (resume and ckpt_path is not None and ckpt_path.exists())
    if choose:  # the starts, then the loop of the best one from where it stands
        state, evaluate = run_starts(
            cfg, state, new_state, evaluator, take_step, restarts, run_dir, metrics_path,
            shifted if progress is not None else None,
        )  # fmt: skip
    else:
        evaluate = evaluator(state.source)
    hooks: list[Callback] = [evaluate, *callbacks]
    if logging_on:
        hooks.append(
            Metrics(metrics_path, on_record, log_every=cfg.log_every, clipping=bool(cfg.clip_ratio))
        )
    if run_dir is not None and main:
        hooks.append(Snapshots(run_dir, cfg.snapshot_interval))
        hooks.append(Checkpoints(ckpt_path, cfg.checkpoint_every, metrics_path))
    if progress is not None:
        hooks.append(Progress(shifted(offset) if offset else progress))
    if cfg.restarts > 1:
        hooks.append(restarts)
    loop = OuterLoop(state, take_step, hooks)
    if choose:
        for cb in callbacks:  # the caller's callbacks start with the kept start's loop
            cb.on_start(loop)
        if ckpt_path is not None and main:  # from here on, a resume continues the kept start
            io.save_checkpoint(ckpt_path, loop.state_dict(seconds=state.seconds))
    elif resume:
        loop.resume(ckpt_path)
    else:
        loop.start()
    start = state.step
    event = loop.run(cfg.outer_steps)
    seconds = state.elapsed()
    steps_done = state.step if cfg.outer_steps > start else start
    loss_value = event.loss if event is not None else math.nan
    result_syn, selected = evaluate.kept(
        state.result_syn, steps_done, cfg.outer_steps, cfg.val_size
    )
    if selected is not None and restarts.outcome is not None:
        selected["restarts"] = restarts.outcome
    return DistillResult(
        result_syn, state.source.fixed, steps_done, seconds, loss_value, selected, offset
    )


class Restarts(Callback):
    """What the starts of a ``restarts`` run scored and which one was continued: kept in the
    checkpoint (a resume after the choice continues the kept start) and in ``selected``."""

    state_key = "restarts"

    def __init__(self) -> None:
        self.outcome: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any] | None:
        return self.outcome

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        self.outcome = state


def run_starts(
    cfg: Config,
    first: LoopState,
    new_state: Callable[[torch.Generator], LoopState],
    evaluator: Callable[..., Evaluate],
    take_step: Callable[[LoopState], StepEvent],
    restarts: Restarts,
    run_dir: Path | None,
    metrics_path: Path | None,
    shifted: Callable[[int], Callable[[int, dict[str, float]], None]] | None,
) -> tuple[LoopState, Evaluate]:
    """The ``restarts`` starts, ``restart_steps`` outer steps each; the one scoring best on the
    held-out examples (ties: the earlier start), with its evaluator.

    A start's score is the mean of its held-out accuracies over the second half of its steps
    (the evaluations after step ``restart_steps / 2``): one evaluation swings by points from one
    to the next where a set is sharp, the mean of many tells the basins apart.

    Start 0 is the run's own init (stream ``syn``), start k >= 1 draws from ``restart_syn``
    keyed k; every start sees the same nets and real batches. Their metrics go to
    ``restarts.jsonl`` (each line with its ``start``) and their snapshots to
    ``restarts/k/snapshots``; the kept start's lines and snapshots become the run's own. Only
    rank 0 scores; its choice is broadcast. Early stopping waits for the kept start.
    """
    main = distributed.is_main()
    log_path = run_dir / io.RESTARTS if metrics_path is not None else None
    if log_path is not None:
        log_path.unlink(missing_ok=True)
    if run_dir is not None and main:  # a resume before the choice runs every start again
        shutil.rmtree(run_dir / io.RESTART_DIR, ignore_errors=True)
    starts: list[tuple[LoopState, Evaluate]] = []  # every rank keeps each until the choice
    scores: list[float | None] = []
    durations: list[float] = []
    for k in range(cfg.restarts):
        state = first if k == 0 else new_state(stream(cfg.seed, "restart_syn", k))
        evaluate = evaluator(state.source, stops=False)
        heldout = HeldOutScores(after=cfg.restart_steps / 2)
        hooks: list[Callback] = [evaluate, heldout]
        if log_path is not None:
            hooks.append(
                Metrics(
                    log_path,
                    None,
                    log_every=cfg.log_every,
                    clipping=bool(cfg.clip_ratio),
                    extra={"start": k},
                )
            )
        if run_dir is not None and main:
            hooks.append(Snapshots(run_dir / io.RESTART_DIR / str(k), cfg.snapshot_interval))
        if shifted is not None:
            hooks.append(Progress(shifted(k * cfg.restart_steps)))
        loop = OuterLoop(state, take_step, hooks)
        loop.start()
        loop.run(cfg.restart_steps)
        durations.append(state.elapsed())
        score = heldout.mean()
        scores.append(score)
        starts.append((state, evaluate))
        log.info(
            "start %d of %d: mean held-out accuracy %s over outer steps %d-%d",
            k + 1,
            cfg.restarts,
            "-" if score is None else f"{score:.4f}",
            cfg.restart_steps // 2 + 1,
            cfg.restart_steps,
        )
    # rank 0 scores (the others have no held-out split); the first of equal scores wins
    ranked = [(s, -k) for k, s in enumerate(scores) if s is not None]
    chosen = distributed.broadcast_int(-max(ranked)[1] if ranked else 0)
    state, evaluate = starts[chosen]
    # the loop's clock: every start's time counts (resumes and seconds per step see it all)
    state.seconds = sum(durations)
    restarts.outcome = {"chosen": chosen, "val_acc": scores, "steps": cfg.restart_steps}
    if main:
        log.info(
            "continuing start %d (mean held-out accuracy %s) from outer step %d to %d",
            chosen + 1,
            "-" if scores[chosen] is None else f"{scores[chosen]:.4f}",
            cfg.restart_steps,
            cfg.outer_steps,
        )
    if run_dir is not None and main:
        adopt_start(run_dir, chosen, log_path, metrics_path, sum(durations[:chosen]))
    # the kept start's evaluator goes on, now with the run's early stopping
    evaluate.stop_at_val_acc, evaluate.patience = cfg.stop_at_val_acc, cfg.patience
    return state, evaluate


class HeldOutScores(Callback):
    """The held-out accuracies a loop's evaluations measure after outer step ``after``."""

    def __init__(self, after: float) -> None:
        self.after, self.scores = after, []

    def on_step(self, loop: OuterLoop, event: StepEvent) -> None:
        if event.val_acc is not None and event.step > self.after:
            self.scores.append(event.val_acc)

    def mean(self) -> float | None:
        """Their mean (None where none was measured: a rank other than 0)."""
        return sum(self.scores) / len(self.scores) if self.scores else None


def adopt_start(
    run_dir: Path,
    chosen: int,
    log_path: Path | None,
    metrics_path: Path | None,
    seconds_before: float,
) -> None:
    """The kept start's lines of ``restarts.jsonl`` become ``metrics.jsonl`` (its ``seconds``
    counted from the first start's, ``seconds_before`` being the time of the starts run before
    it) and its snapshots the run's; the other starts' snapshots are deleted."""
    if log_path is not None and metrics_path is not None and log_path.exists():
        lines = []
        for line in log_path.read_text().splitlines():
            record = json.loads(line)
            if record.pop("start") == chosen:
                record["seconds"] += seconds_before
                lines.append(json.dumps(record) + "\n")
        io.atomic_write(metrics_path, lambda tmp: Path(tmp).write_text("".join(lines)))
    kept = run_dir / io.RESTART_DIR / str(chosen) / io.SNAPSHOTS
    if kept.is_dir():
        (run_dir / io.SNAPSHOTS).mkdir(exist_ok=True)
        for f in kept.glob("*.safetensors"):
            f.replace(run_dir / io.SNAPSHOTS / f.name)
    shutil.rmtree(run_dir / io.RESTART_DIR, ignore_errors=True)


def holdout(split: Split, n: int, generator: torch.Generator) -> tuple[Split, Split]:
    """``split`` minus ``n`` random examples, and those ``n`` (a validation split)."""
    if not 0 < n < len(split):
        raise ConfigError(
            f"val_size must be between 1 and {len(split) - 1} (the training split has "
            f"{len(split)} examples), got {n}"
        )
    idx = torch.randperm(len(split), generator=generator).to(split.y.device)
    return split.take(idx[n:]), split.take(idx[:n])


def perturb_(x: Tensor, std: float, generator: torch.Generator) -> Tensor:
    """Add N(0, std^2) noise to ``x`` in place; returns the clean values to restore."""
    clean = x.detach().clone()
    with torch.no_grad():
        x.add_(std * torch.randn(x.shape, generator=generator).to(x))
    return clean
