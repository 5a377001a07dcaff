"""What the outer loop does around its steps: callbacks.

:func:`softdistill.distillation.distill` advances a :class:`~softdistill.distillation.LoopState`
one outer step at a time and hands each step's :class:`StepEvent` to its callbacks, in order:

1. :class:`Evaluate`: every ``eval_every`` steps, train the watched nets on the set and score
   them on the held-out split (keeping the best set: model selection; early stop) and on the
   test split (for the metrics only);
   then the caller's own callbacks (``distill(callbacks=...)``), then the writers:
2. :class:`Metrics`: a ``metrics.jsonl`` line (and the ``on_record`` hook, e.g. TensorBoard);
3. :class:`Snapshots`: small copies of ``x_syn`` for the report's animation;
4. :class:`Checkpoints`: the whole loop state, for ``--resume``;
5. :class:`Progress`: the caller's progress function.

A callback that keeps state (the best set so far) names it by ``state_key``: the loop saves it in
the same checkpoint as its own state and gives it back on resume. Callbacks take plain values,
not the settings object: :func:`~softdistill.distillation.distill` builds them from it.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from softdistill import distributed, io
from softdistill.data import Split
from softdistill.scoring import EvalResult, accuracy, replay
from softdistill.typing import Params

if TYPE_CHECKING:  # typing only: the loop imports this module
    from softdistill.distillation import OuterLoop

__all__ = [
    "Callback",
    "Checkpoints",
    "Evaluate",
    "Metrics",
    "Progress",
    "Snapshots",
    "StepEvent",
]

log = logging.getLogger(__name__)


@dataclass
class StepEvent:
    """One outer step as the callbacks see it; they fill in what they measure."""

    step: int  # outer steps done (1 after the first)
    loss: float
    grad_norm: float
    last: bool  # the last step of the run (also set by an early stop)
    n_steps: int | None = None  # random_truncated: the unroll length of this step
    evaluated: bool = False  # Evaluate ran this step
    val_acc: float | None = None
    test_acc: float | None = None
    new_best: bool = False  # the held-out score of this step is the best so far
    stop: str | None = None  # why the run stops early after this step (see request_stop)
    info: dict[str, float] = field(default_factory=dict)  # what the progress function gets

    def request_stop(self, reason: str) -> None:
        """End the run after this step: the writers that follow treat it as the last one (a
        metrics line, a snapshot and a checkpoint, so a resume continues from here)."""
        self.stop, self.last = reason, True


class Callback:
    """Hooks of the outer loop (every one optional)."""

    state_key: str | None = None  # the checkpoint entry of this callback's state

    def on_start(self, loop: OuterLoop) -> None:
        """Before the first outer step of a new run."""

    def on_resume(self, loop: OuterLoop) -> None:
        """After a resume loaded the checkpoint of step ``loop.state.step``."""

    def on_step(self, loop: OuterLoop, event: StepEvent) -> None:
        """After each outer step (the set updated, ``loop.state.step == event.step``)."""

    def state_dict(self) -> Any:
        return None

    def load_state_dict(self, state: Any) -> None:
        pass


class Evaluate(Callback):
    """Score the set every ``every`` steps and at the last: held-out selection and early stop.

    The watched nets (``watch()``, taken when the loop starts or resumes) are trained on the
    set once per evaluation (``replay``) and scored on ``val`` (the held-out training examples;
    the best set is kept) and, where ``score_test``, on ``test`` every ``test_every`` steps, at
    the last and at each new best held-out score (for the metrics; never used to choose). Only
    rank 0 evaluates; the decision to stop early is broadcast to every rank.
    """

    state_key = "best"

    def __init__(
        self,
        model: nn.Module,
        watch: Callable[[], list[Params]],
        *,
        every: int,
        test_every: int | None,
        val: Split | None,
        test: Split | None,
        heldout: bool,
        score_test: bool,
        stop_at_val_acc: float | None = None,
        patience: int = 0,
        main: bool = True,
    ) -> None:
        self.model, self.make_watch = model, watch
        self.watch: list[Params] = []
        self.every, self.test_every = every, test_every or every
        self.val, self.test = val, test
        self.heldout = heldout  # val_size > 0 (on every rank; val is rank 0's only)
        self.score_test = score_test
        self.stop_at_val_acc, self.patience = stop_at_val_acc, patience
        self.main = main
        self.best: dict[str, Any] = {"step": None, "acc": -math.inf, "syn": None}

    def on_start(self, loop: OuterLoop) -> None:
        self.watch = self.make_watch()

    def on_resume(self, loop: OuterLoop) -> None:
        self.watch = self.make_watch()  # after the load: the fixed inits come from the checkpoint

    def state_dict(self) -> dict[str, Any]:
        return self.best

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state

    def on_step(self, loop: OuterLoop, event: StepEvent) -> None:
        if not (self.every and (event.step % self.every == 0 or event.last)):
            return
        event.evaluated = True
        step, best = event.step, self.best
        result_syn = loop.state.result_syn
        trained = replay(self.model, self.watch, result_syn.detached_steps()) if self.main else []
        if trained and self.val is not None:
            event.val_acc = EvalResult([accuracy(self.model, p, self.val) for p in trained]).mean
            if event.val_acc > best["acc"]:
                best = {
                    "step": step,
                    "acc": event.val_acc,
                    "syn": copy.deepcopy(result_syn.state_dict()),
                }
            best["evals"] = best.get("evals", 0) + 1
            best["since"] = 0 if best["step"] == step else best.get("since", 0) + 1
            self.best = best
            event.new_best = best["step"] == step
        if self.heldout and not event.last:
            stop = None
            if (
                self.stop_at_val_acc is not None
                and self.main
                and best["acc"] >= self.stop_at_val_acc
            ):
                stop = f"held-out accuracy {best['acc']:.4f} reached stop_at_val_acc"
            elif self.patience and self.main and best.get("since", 0) >= self.patience:
                stop = f"no better held-out accuracy in {self.patience} evaluations (patience)"
            if distributed.broadcast_flag(stop is not None) and stop is None:
                stop = "rank 0 stopped early"
            if stop is not None:
                event.request_stop(stop)
        if self.score_test and (step % self.test_every == 0 or event.last or event.new_best):
            event.test_acc = EvalResult([accuracy(self.model, p, self.test) for p in trained]).mean

    def kept(self, syn, steps_done: int, outer_steps: int, val_size: int):
        """The set to return (the best held-out one, if any) and what ``selected`` records."""
        best = self.best
        if best["syn"] is None:
            return syn, None
        syn = copy.deepcopy(syn)
        syn.load_state_dict(best["syn"])
        # held-out evaluations: every eval_every steps and at the last one
        n_evals = steps_done // self.every + bool(steps_done % self.every)
        selected = {
            "step": best["step"],
            "val_acc": best["acc"],
            "val_size": val_size,
            "evaluations": n_evals,
        }
        if steps_done < outer_steps:
            selected["stopped_early"] = steps_done
        if n_evals > 1:
            log.info(
                "kept the set of outer step %d, the best of %d held-out evaluations: accuracy "
                "%.4f on %d held-out training examples",
                best["step"],
                n_evals,
                best["acc"],
                val_size,
            )
        else:
            log.info(
                "one held-out evaluation only, at the last step (eval_every %d >= outer_steps "
                "%d), so no selection: the last set is kept (accuracy %.4f on %d held-out "
                "training examples)",
                self.every,
                steps_done,
                best["acc"],
                val_size,
            )
        return syn, selected


class Metrics(Callback):
    """A ``metrics.jsonl`` line every ``log_every`` steps, at the first, the last and every
    evaluation; each record also goes to ``on_record``. Rank 0 only."""

    def __init__(
        self,
        path: Path | None,
        on_record: Callable[[dict[str, Any]], None] | None,
        *,
        log_every: int,
        clipping: bool,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.path, self.on_record = path, on_record
        self.log_every, self.clipping = log_every, clipping
        self.extra = extra or {}  # entries of every record (restarts: which start)

    def on_resume(self, loop: OuterLoop) -> None:
        truncate_metrics(self.path, loop.state.step)

    def on_step(self, loop: OuterLoop, event: StepEvent) -> None:
        step = event.step
        if not (step % self.log_every == 0 or event.last or step == 1 or event.evaluated):
            return
        state = loop.state
        lrs = state.syn.lrs.detach()
        group = state.opt.param_groups[0]
        record = {
            **self.extra,
            "step": step,
            "loss": event.loss,
            "grad_norm": event.grad_norm,
            "outer_lr": group["lr"] / group.get("lr_factor", 1.0),
            "lr_mean": lrs.mean().item(),
            "lr_min": lrs.min().item(),
            "lr_max": lrs.max().item(),
            "seconds": state.elapsed(),
        }
        if event.n_steps is not None:
            record["n_steps"] = event.n_steps
        if self.clipping:
            record["clipped"] = state.clip["count"]  # outer steps clipped so far
        if event.test_acc is not None:
            record["test_acc"] = event.info["test_acc"] = event.test_acc
        if event.val_acc is not None:
            record["val_acc"] = event.info["val_acc"] = event.val_acc
        if self.path is not None:
            io.append_jsonl(self.path, record)
        if self.on_record is not None:
            self.on_record(record)


class Snapshots(Callback):
    """``x_syn`` at step 0, every ``every`` steps and at the last (``snapshots/``)."""

    def __init__(self, run_dir: Path, every: int) -> None:
        self.run_dir, self.every = run_dir, every  # every 0: none (a resume still tidies up)

    def on_start(self, loop: OuterLoop) -> None:
        if self.every:
            io.save_snapshot(self.run_dir, 0, loop.state.syn)

    def on_resume(self, loop: OuterLoop) -> None:
        io.remove_snapshots_after(self.run_dir, loop.state.step)

    def on_step(self, loop: OuterLoop, event: StepEvent) -> None:
        if self.every and (event.step % self.every == 0 or event.last):
            io.save_snapshot(self.run_dir, event.step, loop.state.syn)


class Checkpoints(Callback):
    """The whole loop state (``loop.state_dict()``) at step 0, every ``every`` steps and at the
    last, written atomically to ``path``."""

    def __init__(self, path: Path, every: int, metrics_path: Path | None = None) -> None:
        self.path, self.every, self.metrics_path = path, every, metrics_path

    def on_start(self, loop: OuterLoop) -> None:
        io.save_checkpoint(self.path, loop.state_dict(seconds=0.0))

    def on_resume(self, loop: OuterLoop) -> None:
        paths = [self.path] + ([self.metrics_path] if self.metrics_path is not None else [])
        remove_partial_writes(*paths)

    def on_step(self, loop: OuterLoop, event: StepEvent) -> None:
        if event.step % self.every == 0 or event.last:
            io.save_checkpoint(self.path, loop.state_dict())


class Progress(Callback):
    """``fn(step, info)`` after every outer step (info: loss, and test/val accuracy when
    measured and logged)."""

    def __init__(self, fn: Callable[[int, dict[str, float]], None]) -> None:
        self.fn = fn

    def on_step(self, loop: OuterLoop, event: StepEvent) -> None:
        self.fn(event.step, event.info)


def remove_partial_writes(*paths: Path) -> None:
    """Delete the temporary files of atomic writes cut short by a crash (they can be large)."""
    for path in paths:
        for tmp in path.parent.glob(f".{path.name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def truncate_metrics(path: Path | None, step: int) -> None:
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
