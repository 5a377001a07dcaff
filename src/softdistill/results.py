"""Typed evaluation results: what ``eval.json`` holds.

``eval.json`` stays the JSON object it has always been (files of every release load, and
``EvalReport.from_dict(d).to_dict() == d`` for the files this release writes); these classes
name its parts so the report, the CLI summary and the benchmarks read it one way:

- :class:`Score`: the test accuracy of several trained networks (the distilled set, before
  training, each baseline), with whatever else its producer recorded (``extra``: the
  confusion matrix, a baseline's lr, kNN's k and reference, ...);
- :class:`Selection`: which outer step's set a run kept, on how many held-out examples;
- :class:`Protocol`: how the evaluation was run (nets, steps, test examples, run timing);
- :class:`EvalReport`: all of it, plus the optional ``scratch`` and ``attack`` sections (kept
  as the dicts :mod:`softdistill.protocol` and the attack evaluation write) and ``made``
  (which command produced which entry).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["EvalReport", "Protocol", "Score", "Selection", "read_eval"]


@dataclass
class Score:
    """Accuracy (fractions in [0, 1]) of ``len(per_net)`` trained networks or reference sets."""

    mean: float
    std: float = 0.0
    per_net: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Score:
        d = dict(d)
        return cls(float(d.pop("mean")), float(d.pop("std", 0.0)), list(d.pop("per_net", [])), d)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "per_net": self.per_net, **self.extra}

    @property
    def is_knn(self) -> bool:
        """A kNN result: its numbers are per reference set, not per trained net."""
        return "k" in self.extra

    @property
    def lr(self) -> float | None:
        """The fixed lr of a baseline's steps (tuned or given), if it had one."""
        lr = self.extra.get("lr")
        return lr if isinstance(lr, int | float) else None

    def cell(self, unit: str = "") -> str:
        """``95.96 ± 0.10 (3)``, or ``95.96 (1 net)`` for a single value (no "± 0.00")."""
        n = len(self.per_net) or 1
        if n == 1:
            return f"{100 * self.mean:.2f}{unit} (1 {'set' if self.is_knn else 'net'})"
        return f"{100 * self.mean:.2f}{unit} ± {100 * self.std:.2f} ({n})"


@dataclass
class Selection:
    """The set a run kept by its held-out score (``val_size``)."""

    step: int  # the outer step of the kept set
    val_acc: float  # its accuracy on the held-out training examples
    val_size: int
    evaluations: int = 2  # held-out evaluations it was chosen among (1: no selection)
    stopped_early: int | None = None  # the outer step the run stopped at, if it stopped early
    # restarts: {"chosen": k, "val_acc": [each start's mean held-out accuracy over the second
    # half of its steps], "steps": steps per start}
    restarts: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Selection:
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("stopped_early", "restarts"):
            if d[key] is None:
                del d[key]
        return d


@dataclass
class Protocol:
    """How the distilled set was scored: replay of the learned steps on ``n_nets`` nets."""

    name: str = "replay"
    n_nets: int = 1
    n_steps: int = 0  # inner steps T
    test_examples: int = 0
    baselines_cache: str = "off"  # hit, miss or off
    extra: dict[str, Any] = field(default_factory=dict)  # dataset, arch, outer_steps, seconds...
    selected: Selection | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Protocol:
        d = dict(d)
        sel = d.pop("selected", None)
        known = {f.name for f in fields(cls)} - {"extra", "selected"}
        kw = {k: d.pop(k) for k in list(d) if k in known}
        return cls(**kw, extra=d, selected=Selection.from_dict(sel) if sel else None)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d.pop("extra"), d.pop("selected")
        d.update(self.extra)
        if self.selected is not None:
            d["selected"] = self.selected.to_dict()
        return d

    def get(self, key: str, default: Any = None) -> Any:
        """A field or an ``extra`` entry by name (``outer_steps``, ``seconds_per_step``, ...)."""
        if key in {f.name for f in fields(self)} - {"extra"}:
            return getattr(self, key)
        return self.extra.get(key, default)

    @property
    def on_training_nets(self) -> bool:
        """Evaluated on the very pool nets it was distilled on (no ``test_pool``)."""
        return str(self.extra.get("eval_nets", "")).endswith("(the nets distilled on)")


@dataclass
class EvalReport:
    """A run's ``eval.json``."""

    distilled: Score
    before: Score | None = None
    baselines: dict[str, Score] = field(default_factory=dict)
    protocol: Protocol = field(default_factory=Protocol)
    scratch: dict[str, Any] | None = None  # softdistill.protocol.evaluate_scratch's table
    attack: dict[str, Any] | None = None  # objective attack: before/after attack metrics
    made: dict[str, Any] = field(default_factory=dict)  # entry -> {"command", "at"}
    extra: dict[str, Any] = field(default_factory=dict)  # entries this release does not know

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalReport:
        d = dict(d)
        before = d.pop("before", None)
        return cls(
            distilled=Score.from_dict(d.pop("distilled")),
            before=Score.from_dict(before) if before is not None else None,
            baselines={k: Score.from_dict(v) for k, v in (d.pop("baselines", None) or {}).items()},
            protocol=Protocol.from_dict(d.pop("protocol", None) or {}),
            scratch=d.pop("scratch", None),
            attack=d.pop("attack", None),
            made=d.pop("made", None) or {},
            extra=d,
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"distilled": self.distilled.to_dict()}
        if self.before is not None:
            d["before"] = self.before.to_dict()
        d["baselines"] = {k: v.to_dict() for k, v in self.baselines.items()}
        d["protocol"] = self.protocol.to_dict()
        for key in ("scratch", "attack"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        d.update(self.extra)
        if self.made:
            d["made"] = self.made
        return d

    @property
    def selected(self) -> Selection | None:
        return self.protocol.selected

    @property
    def confusion(self) -> list[list[int]] | None:
        """Test examples by true (rows) and predicted class, summed over the nets."""
        return self.distilled.extra.get("confusion")

    def best_baseline(self) -> tuple[str, Score] | None:
        """The baseline with the highest mean accuracy, if any."""
        if not self.baselines:
            return None
        return max(self.baselines.items(), key=lambda kv: kv[1].mean)


def read_eval(path: str | Path) -> EvalReport:
    """The :class:`EvalReport` of a run folder (or of an ``eval.json`` file)."""
    path = Path(path)
    if path.is_dir():
        path = path / "eval.json"
    return EvalReport.from_dict(json.loads(path.read_text()))
