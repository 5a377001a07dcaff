"""Take a synthetic set anywhere: ``.npz``, a PNG folder tree, or a tensor file; and train any
``nn.Module`` on it with its learned schedule.

The recipe (README, "Export")::

    import softdistill as sd
    syn = sd.load_exported("runs/mnist/export/synthetic.npz")
    sd.train_on(syn.init_(model), syn)   # model: any nn.Module taking the set's inputs

``train_on`` replays the learned steps exactly as ``softdistill evaluate`` does (the same
``unroll``): step ``t`` is one plain gradient step on batch ``step_batch[t]`` with its soft labels
and learning rate ``lrs[t]``. ``syn.init_(model)`` loads the initial weights the set was learned
for (known-init runs, ``nets: fixed``); for runs learned over random inits skip it: any fresh
initialisation of the run's scheme will do.

Inputs are stored as the network sees them: normalised with the dataset's ``mean``/``std``
(stored too), images as ``(C, H, W)``, text as ``(max_len, embed_dim)`` word embeddings.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from softdistill.core import batch_of_step, unroll
from softdistill.io import atomic_write, load_run
from softdistill.report import denormalise, to_uint8_images
from softdistill.typing import Step

__all__ = ["FORMATS", "ExportError", "ExportedSet", "export_run", "load_exported", "train_on"]

FORMATS = ("npz", "png", "pt")
EXPORT_VERSION = 1


class ExportError(ValueError):
    """An export cannot be written or read (wrong format for the data, or a malformed file)."""


@dataclass
class ExportedSet:
    """A synthetic set outside its run folder.

    Attributes:
        x: ``(N, *sample_shape)`` inputs, N = n_batches * per_batch, batch-major.
        y_soft: ``(N, n_classes)`` label vectors.
        lrs: ``(T,)`` learning rate of each inner step.
        step_batch: ``(T,)`` which batch step ``t`` trains on (``t % n_batches``, as
            :func:`softdistill.core.batch_of_step`).
        batch: ``(N,)`` the batch of each example.
        label_class: ``(N,)`` the class each example was initialised as.
        class_names: one name per class (columns of ``y_soft``).
        mean, std: the per-channel input normalisation (images; empty for text).
        init: the initial weights the set was learned for (known-init runs), one dict per net.
        meta: dataset, arch, modality, label_mode, run folder, versions.
    """

    x: Tensor
    y_soft: Tensor
    lrs: Tensor
    step_batch: Tensor
    batch: Tensor
    label_class: Tensor
    class_names: list[str]
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    init: list[dict[str, Tensor]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_steps(self) -> int:
        return self.lrs.shape[0]

    def steps(self) -> list[Step]:
        """The T inner steps ``(x_t, y_t, lr_t)`` in order."""
        return [
            (self.x[self.batch == b], self.y_soft[self.batch == b], self.lrs[t])
            for t, b in enumerate(self.step_batch.tolist())
        ]

    def dataset(self) -> torch.utils.data.TensorDataset:
        """``TensorDataset(x, y_soft, batch)``, for code that wants a Dataset."""
        return torch.utils.data.TensorDataset(self.x, self.y_soft, self.batch)

    def init_(self, model: nn.Module, net: int = 0) -> nn.Module:
        """Load the initial weights the set was learned for into ``model`` (in place; returns
        it). Raises if the run learned over random inits (then any fresh init will do)."""
        if not self.init:
            raise ExportError(
                "this synthetic set was learned over random initialisations (nets: random), so "
                "it has no initial weights: train a freshly initialised model instead"
            )
        if not 0 <= net < len(self.init):
            raise ExportError(f"net {net} out of range: the set has {len(self.init)} init(s)")
        names = dict(model.named_parameters())
        missing = sorted(set(self.init[net]) ^ set(names))
        if missing:
            raise ExportError(
                f"model does not match the exported initial weights ({self.meta.get('arch')}): "
                f"parameters {missing[:5]} differ"
            )
        with torch.no_grad():
            for k, v in self.init[net].items():
                names[k].copy_(v)
        return model


def from_run(run) -> ExportedSet:
    """An :class:`ExportedSet` of a loaded run (:func:`softdistill.io.load_run`)."""
    syn = run.syn
    with torch.no_grad():
        x = syn.x_syn.detach().cpu().flatten(0, 1)
        y = syn.y_soft.detach().cpu().flatten(0, 1)
        lrs = syn.lrs.detach().cpu()
    T, nb = syn.n_steps, syn.n_batches
    meta = {
        "dataset": run.meta.get("dataset"),
        "arch": run.meta.get("arch", run.config.get("arch")),
        "modality": run.meta.get("modality", "image"),
        "label_mode": syn.label_mode,
        "n_epochs": syn.n_epochs,
        "nets": run.config.get("nets"),
        "init": run.config.get("init"),
        "seed": run.config.get("seed"),
        "run_dir": str(run.path),
        "export_version": EXPORT_VERSION,
    }
    return ExportedSet(
        x=x,
        y_soft=y,
        lrs=lrs,
        step_batch=batch_of_step(torch.arange(T), nb),
        batch=torch.arange(nb).repeat_interleave(syn.per_batch),
        label_class=syn.classes.cpu().repeat(nb),
        class_names=[str(c) for c in run.meta.get("classes", range(syn.n_classes))],
        mean=[float(v) for v in run.meta.get("mean", [])],
        std=[float(v) for v in run.meta.get("std", [])],
        init=[{k: v.cpu() for k, v in p.items()} for p in (run.init_params or [])],
        meta=meta,
    )


# ----------------------------------------------------------------------------- writing
_META_KEYS = ("dataset", "arch", "modality", "label_mode", "nets", "init", "run_dir")


def _flat(s: ExportedSet) -> dict[str, np.ndarray]:
    """Plain numeric/unicode arrays (no pickle needed to read them back)."""
    arrays = {
        "x": s.x.numpy(),
        "y_soft": s.y_soft.numpy(),
        "lrs": s.lrs.numpy(),
        "step_batch": s.step_batch.numpy(),
        "batch": s.batch.numpy(),
        "label_class": s.label_class.numpy(),
        "class_names": np.array(s.class_names, dtype=str),
        "mean": np.array(s.mean, dtype=np.float32),
        "std": np.array(s.std, dtype=np.float32),
        "n_inits": np.array(len(s.init)),
        "export_version": np.array(EXPORT_VERSION),
    }
    for k in _META_KEYS:
        arrays[f"meta_{k}"] = np.array("" if s.meta.get(k) is None else str(s.meta[k]))
    for i, p in enumerate(s.init):
        for k, v in p.items():
            arrays[f"init{i}/{k}"] = v.numpy()
    return arrays


def _unflat(get, keys) -> ExportedSet:
    def t(k):
        return torch.as_tensor(np.asarray(get(k)))

    n_inits = int(get("n_inits")) if "n_inits" in keys else 0
    init = [
        {k.split("/", 1)[1]: t(k) for k in keys if k.startswith(f"init{i}/")}
        for i in range(n_inits)
    ]
    meta = {k[5:]: str(get(k)) or None for k in keys if k.startswith("meta_")}
    return ExportedSet(
        x=t("x"),
        y_soft=t("y_soft"),
        lrs=t("lrs"),
        step_batch=t("step_batch").long(),
        batch=t("batch").long(),
        label_class=t("label_class").long(),
        class_names=[str(c) for c in np.asarray(get("class_names")).tolist()],
        mean=[float(v) for v in np.asarray(get("mean")).tolist()],
        std=[float(v) for v in np.asarray(get("std")).tolist()],
        init=init,
        meta=meta,
    )


def save_npz(s: ExportedSet, path: Path) -> Path:
    arrays = _flat(s)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
            np.savez_compressed(f, **arrays)

    return atomic_write(path, write)


def save_pt(s: ExportedSet, path: Path) -> Path:
    """A dict of tensors (and lists of str/float), readable with ``weights_only=True``."""
    state = {
        "x": s.x,
        "y_soft": s.y_soft,
        "lrs": s.lrs,
        "step_batch": s.step_batch,
        "batch": s.batch,
        "label_class": s.label_class,
        "class_names": list(s.class_names),
        "mean": list(s.mean),
        "std": list(s.std),
        "init": s.init,
        "meta": {k: s.meta.get(k) for k in _META_KEYS},
        "export_version": EXPORT_VERSION,
    }
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def save_png_tree(s: ExportedSet, folder: Path) -> Path:
    """``folder/batch_BB/<class>/NNNN.png`` (8-bit, denormalised) + ``labels.csv`` + ``lrs.csv``.

    ``labels.csv`` has one row per image: its path, batch, initial class and the soft label
    value of every class. PNGs are 8-bit, so pixel values are rounded (use npz/pt for exact
    values).
    """
    from PIL import Image

    if s.meta.get("modality", "image") != "image" or s.x.dim() != 4:
        raise ExportError(
            f"png export is for image sets; this one is {s.meta.get('modality')} with inputs of "
            f"shape {tuple(s.x.shape[1:])}: use --format npz or pt"
        )
    images = to_uint8_images(denormalise(s.x.float(), s.mean, s.std))  # (N, H, W[, C])
    rows = []
    for i, (img, b, c) in enumerate(zip(images, s.batch.tolist(), s.label_class.tolist())):
        name = _safe(s.class_names[c])
        rel = Path(f"batch_{b:02d}") / name / f"{i:04d}.png"
        atomic_write(folder / rel, lambda tmp, img=img: Image.fromarray(img).save(tmp, "PNG"))
        rows.append([rel.as_posix(), b, s.class_names[c], *s.y_soft[i].tolist()])

    def write_csv(tmp: str, header, body) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(body)

    header = ["file", "batch", "init_class", *[f"y_{n}" for n in s.class_names]]
    atomic_write(folder / "labels.csv", lambda tmp: write_csv(tmp, header, rows))
    lr_rows = [[t, b, lr] for t, (b, lr) in enumerate(zip(s.step_batch.tolist(), s.lrs.tolist()))]
    atomic_write(folder / "lrs.csv", lambda tmp: write_csv(tmp, ["step", "batch", "lr"], lr_rows))
    return folder


def _safe(name: str) -> str:
    """A class name usable as a folder name."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "_"


def export_run(run_dir: str | Path, fmt: str = "npz", out: str | Path | None = None) -> Path:
    """Export the synthetic set of a run folder; returns the written file or folder.

    Args:
        run_dir: a finished run folder.
        fmt: ``npz`` (numpy, no pickle), ``pt`` (torch, ``weights_only``-safe) or ``png``
            (a folder tree of images with ``labels.csv`` and ``lrs.csv``; image sets only).
        out: where to write; default ``RUN_DIR/export/synthetic.{npz,pt}`` or
            ``RUN_DIR/export/png/``.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; expected one of {FORMATS}")
    run_dir = Path(run_dir)
    s = from_run(load_run(run_dir))
    if out is None:
        out = run_dir / "export" / ("png" if fmt == "png" else f"synthetic.{fmt}")
    out = Path(out)
    if fmt == "npz":
        return save_npz(s, out)
    if fmt == "pt":
        return save_pt(s, out)
    return save_png_tree(s, out)


# ----------------------------------------------------------------------------- reading
def load_exported(path: str | Path) -> ExportedSet:
    """Read a ``.npz`` or ``.pt`` written by :func:`export_run` (never executes code)."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"no exported synthetic set at {path}")
    try:
        if path.suffix == ".npz":
            with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
            return _unflat(arrays.__getitem__, list(arrays))
        state = torch.load(path, map_location="cpu", weights_only=True)
        s = ExportedSet(
            **{
                k: state[k]
                for k in (
                    "x",
                    "y_soft",
                    "lrs",
                    "step_batch",
                    "batch",
                    "label_class",
                    "class_names",
                    "mean",
                    "std",
                    "init",
                    "meta",
                )
            }
        )
        return s
    except ExportError:
        raise
    except Exception as e:  # zip/pickle/key errors of many kinds
        raise ExportError(
            f"cannot read exported set {path} (corrupt, truncated or not ours): {e}"
        ) from None


def train_on(model: nn.Module, synthetic: ExportedSet | str | Path) -> nn.Module:
    """Train ``model`` in place on a synthetic set with its learned schedule; returns it.

    Step ``t`` is one gradient step ``theta <- theta - lrs[t] * grad l(f(x_t; theta), y_t)`` with
    ``l`` the soft-label cross-entropy, on the model's current weights: the replay that
    ``softdistill evaluate`` measures (the same ``unroll``), so the same initial weights give
    the same accuracy.
    """
    s = load_exported(synthetic) if isinstance(synthetic, (str, Path)) else synthetic
    p0 = next(model.parameters())
    steps = [
        (x.to(p0.device, p0.dtype), y.to(p0.device, p0.dtype), lr.to(p0.device, p0.dtype))
        for x, y, lr in s.steps()
    ]
    params = {k: v.detach() for k, v in model.named_parameters()}
    final = unroll(model, params, steps)[-1]
    with torch.no_grad():
        for k, v in model.named_parameters():
            v.copy_(final[k])
    return model
