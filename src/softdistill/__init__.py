"""softdistill: dataset distillation with learned soft labels, for images and text.

The Python API (imported lazily, so ``import softdistill`` stays light)::

    import softdistill as sd
    run = sd.distill(dataset="digits", arch="mlp", outer_steps=200, out="runs/digits")
    sd.evaluate(run)                   # the eval.json dict
    run = sd.load("runs/digits")       # a finished run folder
    sd.write_report(["runs/digits"])   # runs/digits/report/index.html, summary.md
    path = sd.export_run("runs/digits", "npz")
    syn = sd.load_exported(path)
    sd.train_on(syn.init_(model), syn) # any nn.Module, trained with the learned schedule
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> (module, attribute), resolved on first use
_LAZY = {
    "distill": ("softdistill.api", "distill"),
    "evaluate": ("softdistill.api", "evaluate"),
    "load": ("softdistill.api", "load"),
    "write_report": ("softdistill.report", "write_report"),
    "export_run": ("softdistill.export", "export_run"),
    "load_exported": ("softdistill.export", "load_exported"),
    "train_on": ("softdistill.export", "train_on"),
    "ExportedSet": ("softdistill.export", "ExportedSet"),
    "Config": ("softdistill.config", "Config"),
    "Run": ("softdistill.io", "Run"),
    "SyntheticSet": ("softdistill.core", "SyntheticSet"),
}

__all__ = ["__version__", *_LAZY]


if TYPE_CHECKING:  # for type checkers and IDEs; nothing is imported at run time
    from softdistill.api import distill, evaluate, load  # noqa: F401, F811
    from softdistill.config import Config  # noqa: F401
    from softdistill.core import SyntheticSet  # noqa: F401
    from softdistill.export import ExportedSet, export_run, load_exported, train_on  # noqa: F401
    from softdistill.io import Run  # noqa: F401
    from softdistill.report import write_report  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'softdistill' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
