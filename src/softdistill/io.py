"""The run folder: layout, atomic writes, synthetic sets, weights, checkpoints, metrics.

Layout (see ARCHITECTURE.md)::

    config.json            resolved configuration, with a format version
    synthetic.safetensors  x_syn, label_params, raw_lrs (+ y_soft, lrs, and metadata)
    init.safetensors       the fixed initial weights theta_0 (nets: fixed)
    embedding.safetensors  text runs: the frozen embedding table and its vocabulary
    metrics.jsonl          one JSON object per logged outer step
    eval.json              evaluation results
    checkpoints/last.pt    resumable state
    snapshots/             small float16 copies of x_syn during training (the report's animation)
    tensorboard/           TensorBoard event files (``tensorboard: true``)
    report/                pictures, index.html, summary.md

Nothing here executes code from a file: tensors are read with safetensors or
``torch.load(weights_only=True)``, JSON with the json module.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from softdistill import __version__
from softdistill.core import SyntheticSet
from softdistill.results import EvalReport
from softdistill.typing import Params

__all__ = [
    "FORMAT_VERSION",
    "Run",
    "RunDirError",
    "append_jsonl",
    "atomic_write",
    "load_checkpoint",
    "load_embedding",
    "load_params",
    "load_real_examples",
    "load_run",
    "load_snapshots",
    "load_synthetic",
    "read_safetensors",
    "save_png",
    "prepare_run_dir",
    "read_json",
    "save_checkpoint",
    "save_embedding",
    "save_json",
    "save_params",
    "save_real_examples",
    "save_snapshot",
    "save_synthetic",
    "Snapshot",
]

FORMAT_VERSION = 1
CONFIG = "config.json"
SYNTHETIC = "synthetic.safetensors"
INIT = "init.safetensors"
EMBEDDING = "embedding.safetensors"
METRICS = "metrics.jsonl"
RESTARTS = "restarts.jsonl"  # restarts > 1: every start's metrics lines, each with its start
RESTART_DIR = "restarts"  # restarts > 1: the starts' snapshots until the choice
EVAL = "eval.json"
RUN_INFO = "run.json"  # command line, wall time, threads, hardware, versions, seed
REAL = "real_examples.safetensors"  # a few real training examples per class (the report's)
CHECKPOINT = "checkpoints/last.pt"
SNAPSHOTS = "snapshots"
TENSORBOARD = "tensorboard"
SNAPSHOT_MAX_EXAMPLES = 100  # examples kept per snapshot (the first ones, batch by batch)
SNAPSHOT_MAX_ELEMENTS = 2**18  # and at most this many numbers (512 KiB in float16)
MIN_FREE_BYTES = 50 * 2**20


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


class RunDirError(RuntimeError):
    """The run folder cannot be used (exists, unwritable, full, or incomplete)."""


# --------------------------------------------------------------------------- atomic writes
def atomic_write(path: str | Path, write) -> Path:
    """Call ``write(tmp_path)`` then rename over ``path``: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_png(fig, path: str | Path, dpi: int) -> Path:
    """Write a matplotlib figure to ``path`` as PNG (atomically) and close it."""
    import matplotlib.pyplot as plt

    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    finally:
        plt.close(fig)


def save_json(path: str | Path, obj: Any) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=False) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunDirError(f"missing file {path}") from None
    except json.JSONDecodeError as e:
        raise RunDirError(f"{path} is not valid JSON (truncated?): {e}") from None


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


# --------------------------------------------------------------------------- run folder
def prepare_run_dir(path: str | Path, *, overwrite: bool = False, resume: bool = False) -> Path:
    """Create (or reuse, with ``resume``) a run folder, failing fast if it cannot be written.

    An existing non-empty folder is refused unless ``overwrite`` (its run files are removed) or
    ``resume``. Checks that the folder is writable and has at least 50 MiB free before any long
    work starts.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path} exists and is not a folder")
    if path.exists() and any(path.iterdir()) and not resume:
        if not overwrite:
            raise RunDirError(
                f"run folder {path} already exists; pass --overwrite to replace it or "
                "--resume to continue it"
            )
        for name in (CONFIG, SYNTHETIC, INIT, EMBEDDING, METRICS, RESTARTS, EVAL, RUN_INFO, REAL):
            (path / name).unlink(missing_ok=True)
        for name in ("checkpoints", "report", "export", SNAPSHOTS, TENSORBOARD, RESTART_DIR):
            shutil.rmtree(path / name, ignore_errors=True)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as e:
        raise RunDirError(f"cannot write to run folder {path}: {e.strerror or e}") from None
    free = shutil.disk_usage(path).free
    if free < MIN_FREE_BYTES:
        raise RunDirError(
            f"only {free / 2**20:.1f} MiB free on the disk of {path}; need at least "
            f"{MIN_FREE_BYTES // 2**20} MiB for checkpoints and results"
        )
    return path


# --------------------------------------------------------------------------- tensors
def save_synthetic(path: str | Path, syn: SyntheticSet, meta: dict[str, Any]) -> Path:
    """Write the synthetic set as safetensors; ``meta`` values are stored as JSON strings."""
    with torch.no_grad():
        tensors = {
            "x_syn": syn.x_syn,
            "label_params": syn.label_params,
            "raw_lrs": syn.raw_lrs,
            "classes": syn.classes,
            "y_soft": syn.y_soft,  # derived, stored for other tools' convenience
            "lrs": syn.lrs,
        }
        tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    metadata = {
        "format_version": str(FORMAT_VERSION),
        "softdistill_version": __version__,
        "torch_version": torch.__version__,
        "n_epochs": str(syn.n_epochs),
        "label_mode": syn.label_mode,
        **{k: json.dumps(v) for k, v in meta.items()},
    }
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def read_safetensors(
    path: Path, error: type[Exception] = RunDirError
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of a safetensors file; ``error`` (naming the path) when it is
    missing or unreadable."""
    from safetensors import safe_open

    if not path.is_file():
        raise error(f"missing file {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        return load_file(str(path)), metadata
    except (SafetensorError, OSError, ValueError) as e:
        raise error(f"cannot read {path} (corrupt or truncated?): {e}") from None


def load_synthetic(path: str | Path) -> tuple[SyntheticSet, dict[str, Any]]:
    """Read a synthetic set written by :func:`save_synthetic` (nothing requires grad)."""
    tensors, metadata = read_safetensors(Path(path))
    meta: dict[str, Any] = {}
    for k, v in metadata.items():
        try:
            meta[k] = json.loads(v)
        except json.JSONDecodeError:
            meta[k] = v
    syn = SyntheticSet(
        tensors["x_syn"],
        tensors["label_params"],
        tensors["raw_lrs"],
        tensors["classes"],
        n_epochs=int(meta["n_epochs"]),
        label_mode=str(meta["label_mode"]),
    )
    syn.requires_grad_(False)
    return syn, meta


def save_params(path: str | Path, nets: list[Params]) -> Path:
    """Several weight dicts in one safetensors file, keys ``net{i}/{name}``."""
    tensors = {
        f"net{i}/{k}": v.detach().cpu().contiguous()
        for i, p in enumerate(nets)
        for k, v in p.items()
    }
    return atomic_write(
        path, lambda tmp: save_file(tensors, tmp, metadata={"n_nets": str(len(nets))})
    )


def load_params(path: str | Path, device=None) -> list[Params]:
    tensors, metadata = read_safetensors(Path(path))
    nets: list[Params] = [{} for _ in range(int(metadata.get("n_nets", 0)))]
    for key, v in tensors.items():
        i, name = key.split("/", 1)
        nets[int(i[3:])][name] = v.to(device)
    return nets


def save_embedding(
    path: str | Path, table: torch.Tensor, vocab: list[str], meta: dict[str, Any] | None = None
) -> Path:
    """The frozen embedding table ``(len(vocab), dim)`` of a text run and its vocabulary (kept
    in the run folder so that decoding synthetic sentences needs no dataset)."""
    if table.shape[0] != len(vocab):
        raise ValueError(f"table has {table.shape[0]} rows but the vocabulary {len(vocab)} words")
    metadata = {
        "vocab": json.dumps(list(vocab)),
        **{k: json.dumps(v) for k, v in (meta or {}).items()},
    }
    tensors = {"table": table.detach().cpu().contiguous().float()}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def load_embedding(path: str | Path) -> tuple[torch.Tensor, list[str], dict[str, Any]]:
    """``(table, vocab, meta)`` written by :func:`save_embedding`."""
    tensors, metadata = read_safetensors(Path(path))
    try:
        vocab = json.loads(metadata["vocab"])
    except (KeyError, json.JSONDecodeError):
        raise RunDirError(f"{path} lacks its vocabulary (metadata 'vocab')") from None
    meta = {k: json.loads(v) for k, v in metadata.items() if k != "vocab"}
    return tensors["table"], vocab, meta


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path, map_location=None) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"no checkpoint at {path}")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols first
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:  # torch's message advises weights_only=False: never do that
        raise RunDirError(
            f"{path} is not a softdistill checkpoint: it holds Python objects beyond tensors, "
            "which are never loaded (for safety)"
        ) from None
    except Exception as e:  # zip errors of many kinds
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise RunDirError(
            f"cannot read checkpoint {path} (corrupt or truncated?): {first}"
        ) from None


def save_real_examples(path: str | Path, split, n_classes: int, per_class: int = 2) -> Path:
    """The first ``per_class`` training examples of each class (the report shows them beside
    the synthetic ones): ``x`` ``(n, *sample_shape)`` float16, ``y`` ``(n,)``."""
    idx = []
    for c in range(n_classes):
        idx += (split.y == c).nonzero().flatten()[:per_class].tolist()
    idx_t = torch.tensor(idx, dtype=torch.long)
    x = split.x[idx_t.to(split.x.device)] if idx else split.x[:0]
    tensors = {"x": x.detach().cpu().half().contiguous(), "y": split.y[idx_t].cpu().contiguous()}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp))


def load_real_examples(path: str | Path) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(x, y)`` saved by :func:`save_real_examples`, or None when the file is absent."""
    path = Path(path)
    if not path.is_file():
        return None
    t = load_file(str(path))
    return t["x"].float(), t["y"]


# --------------------------------------------------------------------------- snapshots
@dataclass
class Snapshot:
    """The first examples of a synthetic set at one outer step (float16 on disk).

    Attributes:
        step: outer steps taken when it was saved (0: the initial set).
        x: ``(n, *sample_shape)`` inputs, rows in batch-major order.
        y_soft: ``(n, n_classes)`` their label vectors.
        lrs: ``(T,)`` all learning rates.
        per_batch: examples per synthetic batch (to tell which batch a row belongs to).
    """

    step: int
    x: torch.Tensor
    y_soft: torch.Tensor
    lrs: torch.Tensor
    per_batch: int


def save_snapshot(run_dir: str | Path, step: int, syn: SyntheticSet) -> Path:
    """Save the first examples of ``syn`` as ``snapshots/{step:07d}.safetensors``.

    At most :data:`SNAPSHOT_MAX_EXAMPLES` examples and :data:`SNAPSHOT_MAX_ELEMENTS` numbers, in
    float16: a few hundred KiB at most, so saving is cheap next to an outer step.
    """
    numel = max(1, math.prod(syn.sample_shape))
    n = max(1, min(SNAPSHOT_MAX_EXAMPLES, SNAPSHOT_MAX_ELEMENTS // numel))
    with torch.no_grad():
        x = syn.x_syn.detach().flatten(0, 1)[:n]
        y = syn.y_soft.detach().flatten(0, 1)[:n]
        tensors = {
            "x": x.to("cpu", torch.float16).contiguous(),
            "y_soft": y.to("cpu", torch.float32).contiguous(),
            "lrs": syn.lrs.detach().to("cpu", torch.float32).contiguous(),
        }
    meta = {"step": str(step), "per_batch": str(syn.per_batch)}
    path = Path(run_dir) / SNAPSHOTS / f"{step:07d}.safetensors"
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def load_snapshots(run_dir: str | Path) -> list[Snapshot]:
    """All snapshots of a run folder, by step (an unreadable one is skipped)."""
    out = []
    for f in sorted((Path(run_dir) / SNAPSHOTS).glob("*.safetensors")):
        try:
            t, meta = read_safetensors(f)
            out.append(
                Snapshot(
                    int(meta["step"]),
                    t["x"].float(),
                    t["y_soft"],
                    t["lrs"],
                    int(meta["per_batch"]),
                )
            )
        except (RunDirError, KeyError, ValueError):
            continue  # a snapshot cut by a crash is not worth failing a report for
    return sorted(out, key=lambda s: s.step)


def remove_snapshots_after(run_dir: str | Path, step: int) -> None:
    """Delete snapshots newer than ``step`` (written before a crash, redone on resume)."""
    for f in (Path(run_dir) / SNAPSHOTS).glob("*.safetensors"):
        if f.stem.isdigit() and int(f.stem) > step:
            f.unlink(missing_ok=True)


# --------------------------------------------------------------------------- finished runs
@dataclass
class Run:
    """A finished run folder, loaded."""

    path: Path
    config: dict[str, Any]
    syn: SyntheticSet
    meta: dict[str, Any]
    init_params: list[Params] | None = None
    eval: dict[str, Any] | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] | None = None  # run.json: command, wall time, threads, hardware

    @property
    def report(self) -> EvalReport | None:
        """``eval`` typed (:class:`~softdistill.results.EvalReport`); None before evaluation."""
        return EvalReport.from_dict(self.eval) if self.eval else None


def load_run(path: str | Path, device=None) -> Run:
    """Load a run folder written by ``softdistill distill``."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"run folder not found: {path}")
    config = read_json(path / CONFIG)
    syn, meta = load_synthetic(path / SYNTHETIC)
    init = load_params(path / INIT, device) if (path / INIT).exists() else None
    ev = read_json(path / EVAL) if (path / EVAL).exists() else None
    metrics = []
    if (path / METRICS).exists():
        for line in (path / METRICS).read_text().splitlines():
            if line.strip():
                try:
                    metrics.append(json.loads(line))
                except json.JSONDecodeError:
                    break  # a line cut by a crash ends the usable log
    info = read_json(path / RUN_INFO) if (path / RUN_INFO).exists() else None
    return Run(path, config, syn.to(device) if device else syn, meta, init, ev, metrics, info)
