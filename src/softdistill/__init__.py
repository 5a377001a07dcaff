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
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> (module, attribute), resolved on first use
_LAZY = {
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

# ``sd.distill`` and ``sd.evaluate`` are also the submodules ``softdistill.distill`` and
# ``softdistill.evaluate`` (Python sets a package attribute for every imported submodule), so
# those modules are made callable: calling one runs the API function of the same name.
_CALLABLE = {
    "distill": ("softdistill.api", "distill"),
    "evaluate": ("softdistill.api", "evaluate"),
}

__all__ = ["__version__", *_CALLABLE, *_LAZY]


class _CallableModule(types.ModuleType):
    """A submodule that also runs the API function of its name: ``sd.distill(...)``."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        module, attr = _CALLABLE[self.__name__.rsplit(".", 1)[-1]]
        return getattr(importlib.import_module(module), attr)(*args, **kwargs)


def _make_callable(module_name: str) -> None:
    """Called by ``softdistill.distill`` and ``softdistill.evaluate`` at import."""
    sys.modules[module_name].__class__ = _CallableModule


if TYPE_CHECKING:  # for type checkers and IDEs; nothing is imported at run time
    from softdistill.api import distill, evaluate, load  # noqa: F401, F811
    from softdistill.config import Config  # noqa: F401
    from softdistill.core import SyntheticSet  # noqa: F401
    from softdistill.export import ExportedSet, export_run, load_exported, train_on  # noqa: F401
    from softdistill.io import Run  # noqa: F401
    from softdistill.report import write_report  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _CALLABLE:  # the submodule, callable (it sets itself as our attribute)
        return importlib.import_module(f"softdistill.{name}")
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'softdistill' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_CALLABLE))
