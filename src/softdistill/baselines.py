"""Baselines: real-data stand-ins for the synthetic set, and k-nearest-neighbour classification.

As in the original dataset-distillation code's test mode, each baseline replaces ``x_syn`` by
real training data in the synthetic set's shape, with one-hot labels, and trains the same
networks with the same number of steps:

    random    ``per_class * n_batches`` random training examples of each class; the best of
              ``draws`` random draws, scored on training data (the original code's
              ``test_optimize_n_runs``)
    kmeans    ``per_class * n_batches`` k-means centroids of each class (scikit-learn, on
              flattened inputs, reshaped back); one seeded clustering
    average   the class mean, repeated ``per_class`` times in every batch
    knn       no training: k-nearest-neighbour classification (``k``, ``p``-norm) of the test
              set with the synthetic set (and each other baseline set) as the reference set

The learning rates of the baseline steps are the run's learned ``lrs`` (``learned``), one fixed
value, or the best value of a small grid (``tuned``), chosen by accuracy on training examples.
Test data is only ever used for the final accuracies.

Everything is generic over the sample shape: images ``(N, C, H, W)`` and sequences of
embeddings ``(N, maxlen, dim)`` go through the same code (flattened where a vector is needed).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from softdistill.core import SyntheticSet, layout_steps
from softdistill.data import Split
from softdistill.progress import task
from softdistill.scoring import EvalResult, class_pool, evaluate_steps, random_real_indices
from softdistill.seeds import seed_of, stream
from softdistill.typing import Params, Step

__all__ = [
    "SET_BASELINES",
    "BaselineSet",
    "LrMode",
    "average_set",
    "baseline_names",
    "best_of",
    "evaluate_baselines",
    "kmeans_set",
    "knn_accuracy",
    "knn_predict",
    "parse_lr_mode",
    "random_set",
    "set_baseline",
]

# The set baselines (real training sets in the synthetic set's layout), by name: a builder
# ``(train, classes, per_class, n_batches, n_classes, *, seed, draws) -> candidate sets``. One
# candidate is the set; several are scored on held-out training examples and the best kept.
# A new one is one function decorated with @set_baseline("name").
SET_BASELINES: dict[str, Callable[..., list[BaselineSet]]] = {}


def set_baseline(name: str):
    """Register a set baseline builder under ``name`` (see :data:`SET_BASELINES`)."""
    if name == "knn" or name.startswith("knn_"):
        raise ValueError(f"baseline name {name!r} is taken by the kNN baselines")

    def register(builder):
        SET_BASELINES[name] = builder
        return builder

    return register


def baseline_names() -> tuple[str, ...]:
    """Every baseline a run can name: the registered set baselines and ``knn``."""
    return (*SET_BASELINES, "knn")


# the lrs a tuned baseline chooses among (on training data); config.DEFAULT_BASELINE_LRS, the
# setting's default, is the same grid (tested), spelled there to keep the config free of torch
DEFAULT_LR_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)


@dataclass
class BaselineSet:
    """Real-data inputs in a synthetic set's layout, with one-hot labels.

    Attributes:
        name: which baseline made it.
        x: ``(n_batches, per_batch, *sample_shape)`` inputs.
        y: ``(n_batches, per_batch, n_classes)`` one-hot label vectors.
    """

    name: str
    x: Tensor
    y: Tensor

    @property
    def n_batches(self) -> int:
        return self.x.shape[0]

    def steps(self, lrs: Tensor) -> list[Step]:
        """``len(lrs)`` steps in the synthetic set's layout (:func:`core.layout_steps`)."""
        return layout_steps(self.x, self.y, lrs)

    def flat(self) -> tuple[Tensor, Tensor]:
        """All examples ``(n, *sample_shape)`` and their label vectors ``(n, n_classes)``."""
        return self.x.flatten(0, 1), self.y.flatten(0, 1)


def _layout(
    name: str,
    per_class_x: Sequence[Tensor],
    classes: Sequence[int],
    per_class: int,
    n_batches: int,
    n_classes: int,
) -> BaselineSet:
    """Arrange ``per_class_x[i]`` ``(per_class * n_batches, *shape)`` of class ``classes[i]``.

    Example ``j`` of a class goes to batch ``j // per_class``; inside a batch the classes follow
    each other, ``per_class`` examples each, as ``SyntheticSet.classes``.
    """
    sample_shape = per_class_x[0].shape[1:]
    # (n_cls, n_batches, per_class, *shape) -> (n_batches, n_cls * per_class, *shape)
    x = torch.stack([xc.reshape(n_batches, per_class, *sample_shape) for xc in per_class_x])
    x = x.transpose(0, 1).reshape(n_batches, len(classes) * per_class, *sample_shape)
    return BaselineSet(name, x.contiguous(), _one_hot_labels(x, classes, per_class, n_classes))


def _one_hot_labels(x: Tensor, classes: Sequence[int], per_class: int, n_classes: int) -> Tensor:
    """``(n_batches, per_batch, n_classes)`` one-hot labels of a set laid out as ``x`` (classes
    in turn, ``per_class`` examples each, in every batch)."""
    labels = torch.tensor(list(classes), device=x.device).repeat_interleave(per_class)
    return F.one_hot(labels, n_classes).to(x.dtype).expand(x.shape[0], -1, -1).contiguous()


def random_set(
    train: Split,
    classes: Sequence[int],
    per_class: int,
    n_batches: int,
    n_classes: int,
    generator: torch.Generator,
) -> BaselineSet:
    """``per_class * n_batches`` distinct random training examples of each of ``classes``
    (:func:`softdistill.scoring.random_real_indices`)."""
    batches = random_real_indices(train, classes, per_class, n_batches, generator, distinct=True)
    x = torch.stack([train.x[idx.to(train.x.device)] for idx in batches])
    return BaselineSet("random", x, _one_hot_labels(x, classes, per_class, n_classes))


def average_set(
    train: Split, classes: Sequence[int], per_class: int, n_batches: int, n_classes: int
) -> BaselineSet:
    """The mean training example of each class, repeated in every position of its class."""
    xs = []
    for c in classes:
        pool = class_pool(train, c, 1).to(train.x.device)
        mean = _mean_of(train, pool)
        xs.append(mean.expand(per_class * n_batches, *mean.shape))
    return _layout("average", xs, classes, per_class, n_batches, n_classes)


def _mean_of(train: Split, idx: Tensor, chunk: int = 1024) -> Tensor:
    """The mean of the examples ``idx``, summed in float64 (no drift) a chunk at a time (only
    one chunk of the class is ever materialised)."""
    total = None
    for i in range(0, len(idx), chunk):
        part = train.x[idx[i : i + chunk]].double().sum(0)
        total = part if total is None else total + part
    return (total / len(idx)).to(train.x.dtype)


def kmeans_set(
    train: Split,
    classes: Sequence[int],
    per_class: int,
    n_batches: int,
    n_classes: int,
    seed: int = 0,
) -> BaselineSet:
    """``per_class * n_batches`` k-means centroids of each class's training examples.

    Inputs are flattened for scikit-learn's ``KMeans`` (k-means++ init, squared Euclidean) and
    the centroids reshaped back. With one centroid per class this is :func:`average_set`.
    """
    k = per_class * n_batches
    if k == 1:
        out = average_set(train, classes, per_class, n_batches, n_classes)
        out.name = "kmeans"
        return out
    from sklearn.cluster import KMeans

    xs = []
    for c in classes:
        pool = class_pool(train, c, k).to(train.x.device)
        xc = train.x[pool]
        km = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(
            xc.flatten(1).cpu().double().numpy()
        )
        centers = torch.from_numpy(km.cluster_centers_).to(device=xc.device, dtype=xc.dtype)
        xs.append(centers.reshape(k, *xc.shape[1:]))
    return _layout("kmeans", xs, classes, per_class, n_batches, n_classes)


@set_baseline("random")
def _random_candidates(*args, seed: int, draws: int) -> list[BaselineSet]:
    """``draws`` sets of random real examples, each from its own stream."""
    return [random_set(*args, stream(seed, "baseline_random", d)) for d in range(draws)]


@set_baseline("kmeans")
def _kmeans_candidates(*args, seed: int, draws: int) -> list[BaselineSet]:
    """One clustering (10 classes x 100 centroids take ~40 s on MNIST)."""
    return [kmeans_set(*args, seed=seed_of(seed, "baseline_kmeans") % 2**32)]


@set_baseline("average")
def _average_candidates(*args, seed: int, draws: int) -> list[BaselineSet]:
    return [average_set(*args)]


# ----------------------------------------------------------------------------- kNN
@torch.no_grad()
def knn_predict(
    x_ref: Tensor,
    y_ref: Tensor,
    x: Tensor,
    *,
    k: int = 1,
    p: float = 2.0,
    batch_size: int = 256,
) -> Tensor:
    """Classes of ``x`` by k-nearest-neighbour vote among ``x_ref`` in the ``p``-norm.

    Args:
        x_ref: ``(M, *sample_shape)`` reference inputs (flattened for the distance).
        y_ref: ``(M,)`` class indices, or ``(M, n_classes)`` label vectors; the vote sums the
            label vectors of the ``k`` nearest references (one-hot for indices: a majority vote;
            soft labels vote with their weights) and takes the argmax (lowest class on ties).
        x: ``(N, *sample_shape)`` inputs to classify.
        k: neighbours.
        p: norm of the distance (``p >= 1``; 2 is Euclidean).

    Returns:
        ``(N,)`` predicted class indices.
    """
    if not 1 <= k <= len(x_ref):
        raise ValueError(f"k={k} must be between 1 and the {len(x_ref)} reference examples")
    if not p >= 1:
        raise ValueError(f"p-norm needs p >= 1, got {p}")
    if y_ref.dim() == 1:
        y_ref = F.one_hot(y_ref.long(), int(y_ref.max()) + 1)
    votes_ref = y_ref.to(torch.float64)
    ref = x_ref.flatten(1).to(torch.float64)
    preds = []
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size].flatten(1).to(device=ref.device, dtype=torch.float64)
        dists = torch.cdist(xb, ref, p=p)  # (batch, M)
        nearest = dists.topk(k, dim=1, largest=False).indices  # (batch, k)
        preds.append(votes_ref[nearest].sum(1).argmax(-1))
    return torch.cat(preds)


def knn_accuracy(
    x_ref: Tensor, y_ref: Tensor, split: Split, *, k: int = 1, p: float = 2.0
) -> float:
    """Fraction of ``split`` classified correctly by :func:`knn_predict`."""
    pred = knn_predict(x_ref, y_ref, split.x, k=k, p=p)
    return (pred == split.y.to(pred.device)).float().mean().item()


# ----------------------------------------------------------------------------- learning rates
@dataclass(frozen=True)
class LrMode:
    """How the learning rates of the baseline steps are set.

    ``tuned``: the value of the grid with the best training accuracy; ``learned``: the run's
    ``lrs``; ``fixed``: ``value`` for every step.
    """

    name: str
    value: float | None = None

    def __str__(self) -> str:
        return f"{self.value:g}" if self.name == "fixed" else self.name


def parse_lr_mode(value: str | float) -> LrMode:
    """``"tuned"``, ``"learned"`` or a positive number (a fixed lr) -> :class:`LrMode`."""
    if isinstance(value, str) and value in ("tuned", "learned"):
        return LrMode(value)
    try:
        lr = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"baseline lr {value!r} must be 'tuned', 'learned' or a positive number"
        ) from None
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"a fixed baseline lr must be a positive number, got {value!r}")
    return LrMode("fixed", lr)


def best_of(scores: Sequence[float], n_keep: int) -> list[int]:
    """Indices of the ``n_keep`` highest ``scores``, best first (earlier index on ties)."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return order[:n_keep]


# ----------------------------------------------------------------------------- orchestration
def evaluate_baselines(
    model: nn.Module,
    nets: Sequence[Params],
    syn: SyntheticSet,
    train: Split,
    test: Split,
    *,
    names: Sequence[str] = ("random",),
    lr: str | float | LrMode = "tuned",
    lr_grid: Sequence[float] = DEFAULT_LR_GRID,
    draws: int = 10,
    knn_k: int = 1,
    knn_p: float = 2.0,
    val_size: int = 2000,
    score_nets: int = 5,
    min_trainings: int = 5,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, dict], dict[str, list[BaselineSet]]]:
    """Evaluate the baselines ``names`` beside a synthetic set (replay protocol).

    Each set baseline (random, kmeans, average) gets the synthetic set's classes, ``per_class``,
    ``n_batches`` and number of steps T. Its learning rates follow ``lr`` (see :class:`LrMode`;
    ``tuned`` picks from ``lr_grid`` on the first candidate set). ``random`` draws ``draws``
    candidate sets, scores each by the mean accuracy of the first ``score_nets`` of ``nets`` on
    ``val_size`` *training* examples, and keeps the best ``ceil(min_trainings / len(nets))``
    (so that at least ``min_trainings`` trained networks are averaged). ``kmeans`` (one seeded
    clustering) and ``average`` are single sets. Each kept set trains every net of ``nets`` and
    is scored on ``test``.

    ``knn`` classifies ``test`` by k-nearest neighbours with the synthetic set as the reference
    set (label vectors ``y_soft``) under ``"knn"``, and with each set baseline evaluated here
    (its kept sets) under ``"knn_<name>"``.

    Returns:
        ``(results, sets)``: results per name, each ``{"mean", "std", "per_net", ...details}``;
        and the kept sets of each set baseline (for other protocols).
    """

    known = baseline_names()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown baseline {unknown[0]!r}; expected some of {known}")
    mode = lr if isinstance(lr, LrMode) else parse_lr_mode(lr)
    if mode.name == "tuned" and not lr_grid:
        raise ValueError("lr mode 'tuned' needs a non-empty lr grid")
    classes = list(dict.fromkeys(syn.classes.tolist()))
    per_class = syn.per_batch // len(classes)
    n_ref = syn.n_batches * syn.per_batch
    if "knn" in names and not 1 <= knn_k <= n_ref:
        raise ValueError(f"knn_k={knn_k} must be between 1 and the {n_ref} synthetic examples")
    T, dtype, device = syn.n_steps, train.x.dtype, train.x.device
    val = train.sample(val_size, stream(seed, "baseline_val"))
    scorers = list(nets[:score_nets])
    n_keep = max(1, math.ceil(min_trainings / len(nets)))
    learned = syn.lrs.detach().to(device=device, dtype=dtype)

    def lrs_of(value: float | None) -> Tensor:
        return learned if value is None else torch.full((T,), value, dtype=dtype, device=device)

    def score(bset: BaselineSet, value: float | None) -> float:
        return evaluate_steps(model, scorers, bset.steps(lrs_of(value)), val).mean

    def candidates(name: str) -> list[BaselineSet]:
        args = (train, classes, per_class, syn.n_batches, syn.n_classes)
        return SET_BASELINES[name](*args, seed=seed, draws=max(draws, n_keep))

    results: dict[str, dict] = {}
    kept_sets: dict[str, list[BaselineSet]] = {}
    for name in names:
        if name == "knn":
            continue
        if progress:
            progress(f"baseline {name}: building candidate sets")
        cands = candidates(name)  # on train's device and dtype
        details: dict = {"lr_mode": mode.name}
        n_kept = n_keep if len(cands) > 1 else 1
        # units: one trained set each (lr grid, candidate scoring, the kept sets on every net)
        total = (len(lr_grid) if mode.name == "tuned" else 0) + (len(cands) > 1) * len(cands)
        with task(f"baseline {name}", total + n_kept, unit="set") as t:

            def scored(bset: BaselineSet, v: float | None) -> float:
                r = score(bset, v)
                t.update()
                return r

            if mode.name == "tuned":
                grid_scores = [scored(cands[0], v) for v in lr_grid]
                value: float | None = lr_grid[best_of(grid_scores, 1)[0]]
                details["lr_grid"] = list(lr_grid)
                details["lr_grid_train_scores"] = grid_scores
            else:
                value = mode.value
            if value is not None:
                details["lr"] = value
            if len(cands) > 1:
                train_scores = [scored(c, value) for c in cands]
                kept = best_of(train_scores, n_keep)
                details["train_scores"] = train_scores
            else:
                kept = [0]
            details.update(draws=len(cands), kept=kept, val_examples=len(val))
            if progress:
                progress(f"baseline {name}: training {len(kept)} set(s) x {len(nets)} net(s)")
            accs = []
            for i in kept:
                accs += evaluate_steps(model, nets, cands[i].steps(lrs_of(value)), test).per_net
                t.update()
        results[name] = EvalResult(accs, details).to_dict()
        kept_sets[name] = [cands[i] for i in kept]
    if "knn" in names:
        info = {"k": knn_k, "p": knn_p}
        x_ref, y_ref = syn.x_syn.detach().flatten(0, 1), syn.y_soft.detach().flatten(0, 1)
        acc = knn_accuracy(x_ref.to(device, dtype), y_ref.to(device, dtype), test, k=knn_k, p=knn_p)
        results["knn"] = EvalResult(
            [acc], {**info, "reference": "synthetic", "n_reference": n_ref}
        ).to_dict()
        for name, sets in kept_sets.items():
            accs = [knn_accuracy(*s.flat(), test, k=knn_k, p=knn_p) for s in sets]
            results[f"knn_{name}"] = EvalResult(
                accs, {**info, "reference": name, "n_reference": n_ref}
            ).to_dict()
    return results, kept_sets
