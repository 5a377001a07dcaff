"""Progress of the long phases (baselines, evaluation, the scratch protocol, pools, data loading).

Library code never prints: it opens a :func:`task` with a total and advances it. What the user
sees is the reporter's business, set once by the CLI with :func:`set_reporter` (a bar with ETA
on a terminal, a line every 10% otherwise); without one, tasks cost nothing.

    with progress.task("baseline random", total=16, unit="set") as t:
        for ...:
            ...
            t.update()
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

__all__ = ["Task", "set_reporter", "task"]


class Task(Protocol):
    def update(self, n: int = 1) -> None: ...

    def close(self) -> None: ...


class _Null:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


Reporter = Callable[[str, int, str], Task]
_reporter: Reporter | None = None


def set_reporter(reporter: Reporter | None) -> Reporter | None:
    """Install ``reporter(desc, total, unit) -> Task`` (None: silent); returns the previous."""
    global _reporter
    previous, _reporter = _reporter, reporter
    return previous


class _Context:
    def __init__(self, t: Task) -> None:
        self.t = t

    def __enter__(self) -> Task:
        return self.t

    def __exit__(self, *exc) -> None:
        self.t.close()


def task(desc: str, total: int, unit: str = "it") -> _Context:
    """A phase of ``total`` units, reported by the installed reporter (a context manager)."""
    return _Context(_reporter(desc, total, unit) if _reporter is not None else _Null())
