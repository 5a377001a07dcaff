"""Train fresh networks on a synthetic set and measure test accuracy; baselines.

The main protocol replays the learned steps: the same ``unroll`` as distillation, detached, with
the learned learning rates, on the training inits (``fixed``) or fresh random inits. Baselines
(:mod:`softdistill.baselines`) use the same protocol with real examples in place of the synthetic
ones. The standard from-scratch protocol (many SGD epochs, other architectures, augmentation)
is in :mod:`softdistill.protocol`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from softdistill import io
from softdistill.baselines import DEFAULT_LR_GRID, evaluate_baselines
from softdistill.core import SyntheticSet, random_inner_steps, unroll
from softdistill.data import Split
from softdistill.fit import FitSettings, fit
from softdistill.progress import task
from softdistill.protocol import ScratchSettings, evaluate_scratch
from softdistill.scoring import (
    EvalResult,
    accuracy,
    evaluate_steps,
    evaluate_synthetic,
    predict,
    random_real_steps,
    replay,
)
from softdistill.seeds import seed_of
from softdistill.typing import Params

__all__ = [
    "EvalResult",
    "accuracy",
    "attack_metrics",
    "evaluate_attack",
    "evaluate_run",
    "evaluate_steps",
    "evaluate_synthetic",
    "random_real_steps",
    "replay",
    "train_full",
]


def attack_metrics(
    pred: Tensor, y: Tensor, attack_class: int, target_class: int, n_classes: int
) -> dict[str, float | list[float]]:
    """The attack setting's numbers for one net's predictions ``pred`` of true labels ``y``.

    ``acc``: overall accuracy; ``acc_modified``: accuracy w.r.t. the attack's labels
    (``attack_class`` relabelled ``target_class``); ``per_class``: accuracy on each class;
    ``acc_others``: accuracy on the examples not of ``attack_class``; ``attacked``: the fraction
    of ``attack_class`` examples predicted as ``target_class``.
    """
    modified = torch.where(y == attack_class, torch.full_like(y, target_class), y)
    others = y != attack_class
    correct = (pred == y).double()
    per_class = [
        correct[y == c].mean().item() if (y == c).any() else float("nan") for c in range(n_classes)
    ]
    is_attack = y == attack_class
    return {
        "acc": correct.mean().item(),
        "acc_modified": (pred == modified).double().mean().item(),
        "acc_others": correct[others].mean().item() if others.any() else float("nan"),
        "attacked": (pred[is_attack] == target_class).double().mean().item()
        if is_attack.any()
        else float("nan"),
        "per_class": per_class,
    }


def evaluate_attack(
    model: nn.Module,
    nets: Sequence[Params],
    syn: SyntheticSet,
    test: Split,
    attack_class: int,
    target_class: int,
) -> dict:
    """Attack numbers of ``nets`` before and after the learned steps: per net and the mean."""
    steps = syn.detached_steps()
    out = {"attack_class": attack_class, "target_class": target_class}
    for name, trained in (
        ("before", list(nets)),
        ("distilled", [unroll(model, p, steps)[-1] for p in nets]),
    ):
        per_net = [
            attack_metrics(
                predict(model, p, test.x), test.y, attack_class, target_class, syn.n_classes
            )
            for p in trained
        ]
        summary = {
            k: statistics.fmean(m[k] for m in per_net)
            for k in ("acc", "acc_modified", "acc_others", "attacked")
        }
        summary["per_class"] = [
            statistics.fmean(m["per_class"][c] for m in per_net) for c in range(syn.n_classes)
        ]
        summary["per_net"] = per_net
        out[name] = summary
    return out


@contextlib.contextmanager
def seeded_inner_draws(model: nn.Module, seed: int, device: torch.device):
    """For a model whose inner steps draw dropout masks (from the global torch RNG): seed that
    RNG from stream ``eval_dropout`` of ``seed`` inside, and restore it after, so an evaluation
    gives the same numbers whatever ran before it (``softdistill evaluate`` repeats the run's)."""
    if not random_inner_steps(model):
        yield
        return
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed_of(seed, "eval_dropout"))
        yield


def _masks_from_the_seed(fn):
    """Run ``fn(model, nets, syn, train, test, *, seed, ...)`` inside :func:`seeded_inner_draws`."""

    @functools.wraps(fn)
    def wrapper(model, nets, syn, train, test, **kw):
        seed = kw.get("seed", inspect.signature(fn).parameters["seed"].default)
        with seeded_inner_draws(model, seed, test.y.device):
            return fn(model, nets, syn, train, test, **kw)

    return wrapper


@_masks_from_the_seed
def evaluate_run(
    model: nn.Module,
    nets: Sequence[Params],
    syn: SyntheticSet,
    train: Split,
    test: Split,
    *,
    baselines: Sequence[str] = ("random",),
    baseline_lr: str | float = "tuned",
    baseline_lrs: Sequence[float] = DEFAULT_LR_GRID,
    baseline_draws: int = 10,
    knn_k: int = 1,
    knn_p: float = 2.0,
    scratch: ScratchSettings | None = None,
    scratch_archs: Sequence[str] = (),
    scratch_arch_args: dict[str, dict] | None = None,
    scratch_baselines: bool = False,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    cache: Path | None = None,
) -> dict:
    """The ``eval.json`` of a run: before/after accuracy of ``nets``, baselines, and optionally
    the from-scratch protocol.

    ``"distilled"`` and ``"before"`` replay the learned steps on ``nets`` (the method's own
    protocol, always run). ``"baselines"`` holds each of ``baselines`` (random, kmeans, average,
    knn; see :func:`softdistill.baselines.evaluate_baselines`), learning rates per
    ``baseline_lr``: ``tuned`` (best of ``baseline_lrs`` on 2,000 training examples),
    ``learned`` (the run's lrs) or a number. ``random`` keeps the best of ``baseline_draws``
    draws scored on training data, and always averages >= 5 trainings.

    With ``scratch`` settings, ``"scratch"`` holds the standard protocol: fresh networks of
    each of ``scratch_archs`` trained from scratch on the synthetic set (and on the baseline
    sets when ``scratch_baselines``); see :func:`softdistill.protocol.evaluate_scratch`.

    With ``cache`` (a folder), the set baselines are a pure function of the data, the model,
    the evaluation nets, the synthetic set's shape and classes (and its lrs for ``learned``),
    the settings and the seed: they are read from ``cache/<key>.json`` when computed before and
    written there otherwise (not with ``scratch_baselines``, which trains their sets again);
    ``protocol.baselines_cache`` says ``hit`` or ``miss``. The nets' test accuracies before
    training (``"before"``), a function of a part of the same key, are kept in the entry too.
    kNN on the synthetic set is always computed.
    """

    cached_names = [n for n in baselines if n != "knn"]
    use_cache = cache is not None and cached_names and not (scratch and scratch_baselines)
    hit = None
    if use_cache:
        key = baseline_key(
            model, nets, syn, train, test, cached_names, baseline_lr, baseline_lrs,
            baseline_draws, knn_k, knn_p, seed,
        )  # fmt: skip
        path = Path(cache) / f"{key}.json"
        hit = _read_cached(path)
    # the nets' accuracies before training depend on what the key hashes: kept with the baselines
    cached_before = hit.get(BEFORE) if hit is not None else None
    before = list(cached_before) if cached_before and len(cached_before) == len(nets) else []
    compute_before = not before
    steps = syn.detached_steps()
    distilled = []
    C = syn.n_classes
    confusion = torch.zeros(C * C, dtype=torch.long)
    y = test.y.cpu()
    with task("evaluate: the distilled set", len(nets), unit="net") as t:
        for p in nets:
            pred = predict(model, unroll(model, p, steps)[-1], test.x).cpu()
            distilled.append((pred == y).sum().item() / len(test))
            confusion += torch.bincount(y * C + pred, minlength=C * C)
            if compute_before:
                before.append(accuracy(model, p, test))
            t.update()
    out = {
        # confusion: test examples by true class (rows) and predicted class, summed over nets
        "distilled": EvalResult(distilled, {"confusion": confusion.view(C, C).tolist()}).to_dict(),
        "before": EvalResult(before).to_dict(),
    }

    def run_baselines(names: Sequence[str]):
        return evaluate_baselines(
            model,
            nets,
            syn,
            train,
            test,
            names=names,
            lr=baseline_lr,
            lr_grid=baseline_lrs,
            draws=baseline_draws,
            knn_k=knn_k,
            knn_p=knn_p,
            seed=seed,
            progress=progress,
        )

    if use_cache:
        if hit is None:
            results, sets = run_baselines(baselines)
            entry = {k: v for k, v in results.items() if k != "knn"}
            _write_cached(path, {**entry, BEFORE: before})
        else:
            if progress:
                progress(f"baselines {', '.join(cached_names)}: reused from {path}")
            results, sets = {k: v for k, v in hit.items() if k != BEFORE}, {}
            if "knn" in baselines:  # the synthetic set's own kNN: computed, never cached
                results.update(run_baselines(["knn"])[0])
            results = {n: results[n] for n in _result_order(baselines, results)}
    else:
        results, sets = run_baselines(baselines)
    out["baselines"] = results
    out["protocol"] = {
        "name": "replay",
        "n_nets": len(nets),
        "n_steps": syn.n_steps,
        "test_examples": len(test),
        "baselines_cache": ("hit" if hit is not None else "miss") if use_cache else "off",
    }
    if scratch is not None:
        if not scratch_archs:
            raise ValueError("the scratch protocol needs at least one architecture name")
        with torch.no_grad():
            train_sets = {"distilled": (syn.x_syn.flatten(0, 1), syn.y_soft.flatten(0, 1))}
        if scratch_baselines:
            train_sets.update({name: s[0].flat() for name, s in sets.items()})
        out["scratch"] = evaluate_scratch(
            train_sets,
            test,
            scratch_archs,
            scratch,
            arch_args=scratch_arch_args,
            seed=seed,
            progress=progress,
        )
    return out


BEFORE = "_before"  # a cache entry's list of the nets' test accuracies before training
# 2: the candidate sets drawn from the named streams of seeds.py; 3: entries keep the nets'
# accuracies before training (BEFORE), which a release before it would read as a baseline
BASELINE_CACHE_VERSION = 3
DIGEST_ROWS = 4096  # rows of 8-bit pixels hashed at a time for the cache key


def _digest(h, t) -> None:
    """Feed a tensor (or the ids and table of embedded tokens) to the hash ``h``."""
    if hasattr(t, "ids") and hasattr(t, "table"):
        _digest(h, t.ids)
        _digest(h, t.table)
        return
    if hasattr(t, "raw") and hasattr(t, "mean"):  # 8-bit pixels and their normalisation
        # the bytes of t.raw[t.rows], a block of rows at a time (no copy of the whole split)
        n = len(t.raw) if t.rows is None else len(t.rows)
        h.update(f"{t.raw.dtype}{(n, *t.raw.shape[1:])}".encode())
        for i in range(0, n, DIGEST_ROWS):
            block = (
                t.raw[i : i + DIGEST_ROWS] if t.rows is None else t.raw[t.rows[i : i + DIGEST_ROWS]]
            )
            h.update(block.cpu().contiguous().view(torch.uint8).numpy())
        h.update(f"{t.mean}{t.std}{t.dtype}".encode())
        return
    a = t.detach().cpu().contiguous()
    h.update(f"{a.dtype}{tuple(a.shape)}".encode())
    if a.numel():
        h.update(a.view(torch.uint8).numpy())


def baseline_key(
    model, nets, syn, train, test, names, lr, lr_grid, draws, knn_k, knn_p, seed
) -> str:
    """What the set baselines depend on, hashed: data, model, nets, the synthetic set's shape,
    classes (and lrs when they are ``learned``), settings, seed, and the torch build and
    thread count (whose last bits the numbers depend on)."""
    h = hashlib.sha256()
    h.update(
        json.dumps(
            {
                "v": BASELINE_CACHE_VERSION,
                "names": list(names),
                "lr": lr if isinstance(lr, int | float | str) else repr(lr),
                "grid": list(lr_grid),
                "draws": draws,
                "knn": [knn_k, knn_p],
                "seed": seed,
                "model": repr(model),
                "syn": [list(syn.x_syn.shape), syn.classes.tolist(), syn.n_steps, syn.n_classes],
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "device": str(train.x.device),
            },
            sort_keys=True,
        ).encode()
    )
    if str(lr) == "learned":
        _digest(h, syn.lrs)
    for p in nets:
        for k in sorted(p):
            h.update(k.encode())
            _digest(h, p[k])
    for split in (train, test):
        _digest(h, split.x)
        _digest(h, split.y)
    return h.hexdigest()[:32]


def _read_cached(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # absent or damaged: compute


def _write_cached(path: Path, results: dict) -> None:
    with contextlib.suppress(OSError):  # an unwritable cache is skipped, not an error
        io.save_json(path, results)


def _result_order(names: Sequence[str], results: dict) -> list[str]:
    """The order evaluate_baselines writes its results in: the set baselines, knn, knn_<set>."""
    sets = [n for n in names if n != "knn" and n in results]
    knn = ["knn"] if "knn" in results else []
    return (
        sets
        + knn
        + [k for k in results if k.startswith("knn_")]
        + [k for k in results if k not in sets and k != "knn" and not k.startswith("knn_")]
    )


def train_full(
    model: nn.Module,
    params0: Params,
    train: Split,
    test: Split,
    *,
    epochs: int = 5,
    lr: float = 1e-3,
    batch_size: int = 64,
    generator: torch.Generator | None = None,
    progress: Callable[[int, float], None] | None = None,
    max_steps: int | None = None,
) -> EvalResult:
    """The full-data reference: train ``f(.; params0)`` normally on the whole training split
    (Adam, ``epochs`` shuffled passes of minibatches, cross-entropy) and return the test accuracy
    after the last epoch (no early stopping on test data).

    Args:
        progress: called after every epoch with ``(epoch, test_accuracy)``.
        max_steps: stop after this many Adam steps in all, even in the middle of an epoch (that
            partial epoch is scored and counts as the last one); ``None``: whole epochs only.
    """
    settings = FitSettings(epochs=epochs, batch_size=batch_size, lr=lr, max_steps=max_steps)
    accs: list[float] = []

    def scored(epoch: int, weights: list[Params], _losses) -> None:
        accs.append(accuracy(model, weights[0], test))
        if progress is not None:
            progress(epoch, accs[-1])

    steps = fit(
        model, params0, train.x, train.y, settings, generator=generator, on_epoch=scored
    ).steps
    return EvalResult(
        [accs[-1]], {"per_epoch": accs, "epochs": len(accs), "steps": steps, "lr": lr}
    )
