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
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from softdistill import distributed, io
from softdistill.config import Config, ConfigError
from softdistill.core import (
    ChunkedLoss,
    SyntheticSet,
    auto_keep_every,
    batched_hypergradient,
    forward,
    hypergradient,
    inner_graph_bytes,
    sample_truncation,
)
from softdistill.data import Dataset, Split
from softdistill.nets import NetSource, eval_nets, stream
from softdistill.scoring import EvalResult, accuracy, random_real_steps, replay
from softdistill.typing import OuterLoss, Params

__all__ = [
    "DistillResult",
    "DivergenceError",
    "RealBatches",
    "AUTO_GRAPH_BYTES",
    "attack_labels",
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

    def next(self) -> tuple[Tensor, Tensor]:
        if self.pos + self.batch_size > len(self.perm):
            self.perm = torch.randperm(len(self.split), generator=self.generator)
            self.pos = 0
        idx = self.perm[self.pos : self.pos + self.batch_size].to(self.split.x.device)
        self.pos += self.batch_size
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


def attack_labels(y: Tensor, attack_class: int, target_class: int) -> Tensor:
    """``y`` with every ``attack_class`` replaced by ``target_class`` (the attack's goal)."""
    return torch.where(y == attack_class, torch.full_like(y, target_class), y)


def make_outer_loss(
    cfg: Config, model: nn.Module, x: Tensor, y: Tensor, chunk: int = 0
) -> OuterLoss:
    """The outer objective of ``cfg`` on the real batch ``(x, y)``, ``chunk`` examples at a
    time (0: all at once; see :func:`outer_chunk`).

    ``basic``/``adapt``: cross-entropy against the true labels. ``attack``: against the labels
    with ``attack_class`` relabelled ``target_class``, so the trained nets learn to misclassify
    that one class while keeping the others.
    """
    if cfg.objective == "attack":
        y = attack_labels(y, cfg.attack_class, cfg.target_class)
        return basic_outer_loss(model, x, y, chunk)
    if cfg.objective in ("basic", "adapt"):
        return basic_outer_loss(model, x, y, chunk)
    raise ConfigError(f"unknown objective {cfg.objective!r}; expected basic, attack or adapt")


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
    """
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
    """The hypergradient's keyword arguments for one outer step of ``cfg`` (T = ``n_steps``).

    ``random_truncated`` draws its unroll length from ``generator`` (RaT-BPTT: uniform on
    ``[window, T]``, the last ``window`` steps differentiated); the other methods draw nothing.
    """
    method = "truncated" if cfg.hypergrad == "random_truncated" else cfg.hypergrad
    options: dict[str, Any] = {"method": method}
    if method != "autograd":
        span = n_steps if cfg.window is None else min(cfg.window, n_steps)
        options["keep_every"] = cfg.keep_every or auto_keep_every(span)
    if cfg.window is not None:
        options["window"] = cfg.window
    if cfg.hypergrad == "random_truncated":
        options["n_steps"] = sample_truncation(n_steps, cfg.window, generator)
    return options


@dataclass
class DistillResult:
    """What :func:`distill` learned and how long it took."""

    syn: SyntheticSet
    nets: list[Params] | None  # the fixed inits (nets=fixed), else None
    outer_steps: int
    seconds: float
    final_loss: float
    selected: dict[str, Any] | None = None  # val_size: the outer step kept, its val accuracy

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / max(1, self.outer_steps)


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

    With ``run_dir``, small snapshots of ``x_syn`` go to ``snapshots/`` every
    ``cfg.snapshot_interval`` outer steps (and at steps 0 and the last) for the report.

    In a process group (``torchrun``), every rank calls this with the same ``cfg`` (checked);
    the nets are sharded across ranks, loss and hypergradient averaged over all of them, and
    only rank 0 writes ``run_dir`` and computes the test accuracy of ``eval_every``.

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
    syn = make_synthetic(cfg, data, stream(cfg.seed, "syn"), device=device, dtype=dtype)
    batches = RealBatches(train, cfg.batch_size, stream(cfg.seed, "data"))
    source = NetSource(
        model,
        cfg,
        device=device,
        dtype=dtype,
        sample_shape=data.sample_shape,
        n_classes=data.n_classes,
        rank=rank,
        world_size=world_size,
    )
    method, why = choose_hypergrad(cfg, model, syn, dict(model.named_parameters()))
    if cfg.hypergrad == "auto" and main:
        log.info("hypergrad auto: %s (%s)", method, why)
    loop_cfg = cfg.replace(hypergrad=method)  # what every outer step runs
    chunk = outer_chunk(cfg, device)
    if main and 0 < chunk < batches.batch_size:
        log.info("outer loss in chunks of %d real examples (outer_chunk)", chunk)
    truncation = stream(cfg.seed, "truncation")  # random_truncated's unroll lengths
    noise = stream(cfg.seed, "input_noise")
    leaves = [p for p in syn.parameters() if p.requires_grad]
    # Polyak averaging: an exponential moving average of the learned tensors, evaluated and
    # returned instead of the last iterate when ema_decay > 0.
    syn_ema = copy.deepcopy(syn).requires_grad_(False) if cfg.ema_decay else None
    result_syn = syn_ema if syn_ema is not None else syn  # what is evaluated and returned
    opt = torch.optim.Adam(outer_param_groups(cfg, syn), lr=cfg.lr, betas=(cfg.adam_beta1, 0.999))
    sched = outer_lr_scheduler(cfg, opt)
    run_dir = Path(run_dir) if run_dir is not None else None
    ckpt_path = run_dir / io.CHECKPOINT if run_dir else None
    metrics_path = run_dir / io.METRICS if run_dir and main else None
    snapshot_every = cfg.snapshot_interval if run_dir and main else 0

    clip: dict[str, Any] = {"mean": None, "count": 0}  # clip_ratio: running mean gradient norm
    # val_size: the best set so far on the held-out examples (rank 0)
    best: dict[str, Any] = {"step": None, "acc": -math.inf, "syn": None}
    start, elapsed = 0, 0.0
    if resume:
        if ckpt_path is None:
            raise ValueError("resume needs a run_dir")
        state = io.load_checkpoint(ckpt_path, map_location="cpu")
        syn.load_state_dict(state["syn"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        batches.load_state_dict(state["batches"])
        source.load_state_dict(state["nets"])
        torch.set_rng_state(state["torch_rng"])
        if "truncation" in state:
            truncation.set_state(state["truncation"])
        if syn_ema is not None:
            syn_ema.load_state_dict(state["syn_ema"])
        if "noise" in state:
            noise.set_state(state["noise"])
        if "best" in state:
            best = state["best"]
        if "clip" in state:
            clip = state["clip"]
        start, elapsed = int(state["step"]), float(state["seconds"])
        _truncate_metrics(metrics_path, start)
        if main:
            _remove_partial_writes(ckpt_path, metrics_path)
            io.remove_snapshots_after(run_dir, start)
        log.info("resumed from %s at outer step %d", ckpt_path, start)
    # test accuracy in metrics: on the fixed inits, or on a few never-trained-on nets
    watch = (
        eval_nets(
            model,
            cfg,
            source.fixed,
            min(cfg.test_n_nets, 4),
            device=device,
            dtype=dtype,
            sample_shape=data.sample_shape,
            n_classes=data.n_classes,
        )
        if cfg.eval_every and main
        else []
    )

    def checkpoint(step: int, seconds: float) -> None:
        if ckpt_path is None or not main:
            return
        state = {
            "step": step,
            "seconds": seconds,
            "syn": syn.state_dict(),
            "opt": opt.state_dict(),
            "sched": sched.state_dict(),
            "batches": batches.state_dict(),
            "nets": source.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "truncation": truncation.get_state(),
            "noise": noise.get_state(),
            "best": best,
            "clip": clip,
        }
        if syn_ema is not None:
            state["syn_ema"] = syn_ema.state_dict()
        io.save_checkpoint(ckpt_path, state)

    if start == 0:
        checkpoint(0, 0.0)
        if snapshot_every:
            io.save_snapshot(run_dir, 0, syn)
    loss_value = math.nan
    t0 = time.perf_counter() - elapsed
    for outer_step in range(start, cfg.outer_steps):
        x_real, y_real = batches.next()
        outer_loss = make_outer_loss(cfg, model, x_real, y_real, chunk)
        options = hypergrad_options(loop_cfg, syn.n_steps, truncation)
        clean_x = perturb_(syn.x_syn, cfg.input_noise, noise) if cfg.input_noise else None
        # bf16 autocast: the inner/outer networks' matmuls and convolutions in bfloat16, every
        # tensor that is kept (synthetic set, weights, gradients) in float32
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp == "bf16"):
            loss, grads = outer_grads(
                model, source.draw(), syn, outer_loss, batched=cfg.batched_nets, **options
            )
        if clean_x is not None:  # the hypergradient was taken at the perturbed point
            with torch.no_grad():
                syn.x_syn.copy_(clean_x)
        loss, grads = distributed.all_reduce_mean(loss, grads, source.n_local, cfg.n_nets)
        grad_norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))
        loss_value, grad_norm_value = torch.stack([loss, grad_norm]).tolist()  # one host sync
        if not (math.isfinite(loss_value) and math.isfinite(grad_norm_value)):
            raise DivergenceError(
                f"the outer loss became {loss_value} (gradient norm {grad_norm_value}) at outer "
                f"step {outer_step}"
                + (f"; the last good state is in {ckpt_path}" if ckpt_path else "")
                + f". Try a lower lr (now {cfg.lr}) or init_lr (now {cfg.init_lr}; the original "
                "code's distill_lr)."
            )
        if cfg.clip_ratio:
            # clip the hypergradient's norm at clip_ratio x the running mean of earlier norms
            # (each taken clipped): a rare huge gradient would otherwise move Adam up to
            # ~1 / sqrt(1 - beta2) times its usual step
            typical = clip["mean"]
            if typical is not None and grad_norm_value > cfg.clip_ratio * typical:
                scale = cfg.clip_ratio * typical / grad_norm_value
                grads = [g * scale for g in grads]
                clip["count"] += 1
            kept = (
                grad_norm_value
                if typical is None
                else min(grad_norm_value, cfg.clip_ratio * typical)
            )
            clip["mean"] = kept if typical is None else 0.99 * typical + 0.01 * kept
        for p, g in zip(leaves, grads):
            p.grad = g
        opt.step()
        sched.step()
        step = outer_step + 1
        if syn_ema is not None:
            # warm-up so early steps are not dominated by the initial values
            decay = min(cfg.ema_decay, step / (step + 10))
            with torch.no_grad():
                torch._foreach_lerp_(list(syn_ema.parameters()), list(syn.parameters()), 1 - decay)
        info = {"loss": loss_value}
        last = step == cfg.outer_steps
        want_eval = cfg.eval_every and (step % cfg.eval_every == 0 or last)
        logging_on = main and (metrics_path is not None or on_record is not None)
        # the watched nets trained once per evaluation, scored on the held-out and test splits
        trained = replay(model, watch, result_syn.detached_steps()) if want_eval and main else []
        val_acc = None
        if trained and val is not None:
            val_acc = EvalResult([accuracy(model, p, val) for p in trained]).mean
            if val_acc > best["acc"]:
                best = {"step": step, "acc": val_acc, "syn": copy.deepcopy(result_syn.state_dict())}
            best["evals"] = best.get("evals", 0) + 1
            best["since"] = 0 if best["step"] == step else best.get("since", 0) + 1
        stop = None  # early stop (val_size): a held-out target reached, or no gain for a while
        if want_eval and val is not None and not last:
            if cfg.stop_at_val_acc is not None and main and best["acc"] >= cfg.stop_at_val_acc:
                stop = f"held-out accuracy {best['acc']:.4f} reached stop_at_val_acc"
            elif cfg.patience and main and best.get("since", 0) >= cfg.patience:
                stop = f"no better held-out accuracy in {cfg.patience} evaluations (patience)"
            if distributed.broadcast_flag(stop is not None) and stop is None:
                stop = "rank 0 stopped early"
            if stop is not None:
                last = True
        if logging_on and (step % cfg.log_every == 0 or last or step == 1 or want_eval):
            lrs = syn.lrs.detach()
            record = {
                "step": step,
                "loss": loss_value,
                "grad_norm": grad_norm_value,
                "outer_lr": opt.param_groups[0]["lr"] / opt.param_groups[0].get("lr_factor", 1.0),
                "lr_mean": lrs.mean().item(),
                "lr_min": lrs.min().item(),
                "lr_max": lrs.max().item(),
                "seconds": time.perf_counter() - t0,
            }
            if "n_steps" in options:
                record["n_steps"] = options["n_steps"]
            if cfg.clip_ratio:
                record["clipped"] = clip["count"]  # outer steps clipped so far
            every = cfg.test_every or cfg.eval_every
            new_best = val_acc is not None and best["step"] == step
            if want_eval and (step % every == 0 or last or new_best):
                acc = EvalResult([accuracy(model, p, test) for p in trained]).mean
                record["test_acc"] = info["test_acc"] = acc
            if val_acc is not None:
                record["val_acc"] = info["val_acc"] = val_acc
            if metrics_path is not None:
                io.append_jsonl(metrics_path, record)
            if on_record is not None:
                on_record(record)
        if snapshot_every and (step % snapshot_every == 0 or last):
            io.save_snapshot(run_dir, step, syn)
        if step % cfg.checkpoint_every == 0 or last:
            checkpoint(step, time.perf_counter() - t0)
        if progress is not None:
            progress(step, info)
        if stop is not None:
            log.info("stopped early at outer step %d of %d: %s", step, cfg.outer_steps, stop)
            break
    seconds = time.perf_counter() - t0
    steps_done = step if cfg.outer_steps > start else start
    selected = None
    if best["syn"] is not None:
        result_syn = copy.deepcopy(result_syn)
        result_syn.load_state_dict(best["syn"])
        # held-out evaluations: every eval_every steps and at the last one
        n_evals = steps_done // cfg.eval_every + bool(steps_done % cfg.eval_every)
        selected = {
            "step": best["step"],
            "val_acc": best["acc"],
            "val_size": cfg.val_size,
            "evaluations": n_evals,
        }
        if steps_done < cfg.outer_steps:
            selected["stopped_early"] = steps_done
        if n_evals > 1:
            log.info(
                "kept the set of outer step %d, the best of %d held-out evaluations: accuracy "
                "%.4f on %d held-out training examples",
                best["step"],
                n_evals,
                best["acc"],
                cfg.val_size,
            )
        else:
            log.info(
                "one held-out evaluation only, at the last step (eval_every %d >= outer_steps "
                "%d), so no selection: the last set is kept (accuracy %.4f on %d held-out "
                "training examples)",
                cfg.eval_every,
                steps_done,
                best["acc"],
                cfg.val_size,
            )
    return DistillResult(result_syn, source.fixed, steps_done, seconds, loss_value, selected)


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


def _remove_partial_writes(*paths: Path) -> None:
    """Delete the temporary files of atomic writes cut short by a crash (they can be large)."""
    for path in paths:
        for tmp in path.parent.glob(f".{path.name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def _truncate_metrics(path: Path | None, step: int) -> None:
    """Drop metrics lines logged after ``step`` (written before a crash, redone on resume)."""
    if path is None or not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line)
        except (ValueError, KeyError):
            break
    io.atomic_write(path, lambda tmp: Path(tmp).write_text("".join(k + "\n" for k in keep)))
