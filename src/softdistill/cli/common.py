"""Pieces shared by the subcommands: config flags, device choice, progress, summaries.

Every :class:`~softdistill.config.Config` field is a flag (``--per_class`` or ``--per-class``),
parsed by the same typed rules as config files; the original implementation's flags are
rewritten into these before parsing (:mod:`softdistill.original`). Precedence: defaults < config
file (``--config``) < flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from softdistill.config import (
    Config,
    ConfigError,
    coerce_value,
    describe_type,
    layered,
    merge,
    read_config_file,
)
from softdistill.results import EvalReport

__all__ = [
    "Progress",
    "UsageError",
    "add_config_flags",
    "add_eval_flags",
    "config_from_args",
    "format_summary",
    "auto_threads",
    "pick_device",
    "pick_threads",
]

log = logging.getLogger("softdistill")


class UsageError(Exception):
    """Bad command-line usage (exit code 2)."""


# ----------------------------------------------------------------------------- config flags
def _kv(text: str) -> dict[str, Any]:
    """``depth=3,width=64`` or a JSON object -> dict (values parsed as JSON when possible)."""
    text = text.strip()
    if text.startswith("{"):
        return json.loads(text)
    out: dict[str, Any] = {}
    for part in filter(None, text.split(",")):
        if "=" not in part:
            raise argparse.ArgumentTypeError(f"expected key=value, got {part!r}")
        k, v = part.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v.strip()
    return out


def _nets_type(value: str) -> str:
    """Accept the original ``known_init``/``unknown_init`` names for ``--nets``."""
    return {"known_init": "fixed", "unknown_init": "random"}.get(value, value)


def _objective_type(value: str) -> str:
    """Accept the original ``distill_basic``/``distill_attack``/``distill_adapt`` modes."""
    return value.removeprefix("distill_")


def _typed(name: str, annotation: str) -> Callable[[str], Any]:
    """An argparse type for a scalar field: the config file's coercion rules, and a message
    that says what the option takes."""

    def parse(text: str) -> Any:
        try:
            return coerce_value(name, text, annotation, "flags")
        except ConfigError:
            raise argparse.ArgumentTypeError(
                f"takes {describe_type(annotation)}, got {text!r}"
            ) from None

    parse.__name__ = describe_type(annotation)  # argparse names it in its own messages
    return parse


def _field_help(cls: type = Config) -> tuple[dict[str, str], dict[str, str]]:
    """Each field's help text, its comment in the dataclass's source (one source of truth),
    and its section: the last ``# --- title`` line above it."""
    import inspect
    import re

    helps: dict[str, str] = {}
    sections: dict[str, str] = {}
    last = None
    section = ""
    for line in inspect.getsource(cls).splitlines():
        head = re.match(r" {4}# --- (.*)$", line)
        if head:
            section, last = head.group(1), None
            continue
        m = re.match(r" {4}(\w+): [^=]+=(.*)$", line)
        if m:
            last = m.group(1)
            comment = re.search(r"#\s*(.*)$", m.group(2))
            helps[last] = comment.group(1) if comment else ""
            sections[last] = section
            continue
        cont = re.match(r" {4}#\s{2,}(.*)$", line)  # an indented continuation of the comment
        if cont and last:
            helps[last] += " " + cont.group(1)
        else:
            last = None
    return {k: v.replace("%", "%%") for k, v in helps.items()}, sections


def add_dataclass_flags(
    p: argparse.ArgumentParser,
    cls: type,
    aliases: dict[str, str],
    types: dict[str, Callable[[str], Any]] | None = None,
    title: str = "settings",
) -> None:
    """One flag per field of dataclass ``cls`` (``--name`` and ``--na-me``; default: not given,
    so only explicit flags override a file), the old names in ``aliases`` (old -> new), help
    from the field's comment, a parser per field type (``types`` overrides by field name), in
    one argument group per ``# --- section`` of the dataclass's source (else one, ``title``)."""
    helps, sections = _field_help(cls)
    groups: dict[str, argparse._ArgumentGroup] = {}
    old_names: dict[str, list[str]] = {}
    for old, new in aliases.items():
        old_names.setdefault(new, []).append(old)
    for f in dataclasses.fields(cls):
        names = [f"--{f.name}"]
        if "_" in f.name:
            names.append(f"--{f.name.replace('_', '-')}")
        names += [f"--{a}" for a in old_names.get(f.name, [])]
        text = helps.get(f.name, "")
        if "default" not in text:  # a help text that states its default is not told twice
            text = f"{text} (default: {_default(f)})".lstrip()
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": text}
        section = sections.get(f.name) or title
        if section not in groups:
            groups[section] = p.add_argument_group(section)
        t = str(f.type)
        if types and f.name in types:
            kw["type"] = types[f.name]
        elif t == "bool":
            kw["action"] = argparse.BooleanOptionalAction
        elif t.startswith("list[int]"):
            kw.update(nargs="+", type=_typed(f.name, "int"))
        elif t.startswith("list[float]"):
            kw.update(nargs="+", type=_typed(f.name, "float"))
        elif t.startswith("list[str]"):
            kw.update(nargs="*")  # `--baselines` alone: none
        elif t.startswith("dict"):
            kw.update(type=_kv, metavar="K=V,...")
        elif t.startswith(("int", "float")):
            kw["type"] = _typed(f.name, t)
        groups[section].add_argument(*names, **kw)


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per Config field (default: not given); the original code's flags are
    translated before parsing (:func:`softdistill.original.translate`)."""
    add_dataclass_flags(p, Config, {}, {"nets": _nets_type, "objective": _objective_type})


class _ExtendNames(argparse.Action):
    """Append names to a list; each value may itself be comma-separated (``a,b c``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        current = getattr(namespace, self.dest, None)
        names = list(current) if isinstance(current, list) else []
        for v in values if isinstance(values, list) else [values]:
            names += [n.strip() for n in v.split(",") if n.strip()]
        setattr(namespace, self.dest, names)


def add_eval_flags(p: argparse.ArgumentParser) -> None:
    """Short flags for the evaluation settings (each also a config key, see --help below)."""
    g = p.add_argument_group("evaluation (shortcuts for config keys)")
    g.add_argument(
        "--baseline",
        dest="baselines",
        action=_ExtendNames,
        nargs="+",
        metavar="NAME",
        default=argparse.SUPPRESS,
        help="baselines to evaluate: random, kmeans, average, knn (several allowed, also "
        "comma-separated; replaces the config's list)",
    )
    g.add_argument(
        "--protocol",
        dest="protocols",
        action=_ExtendNames,
        nargs="+",
        metavar="NAME",
        default=argparse.SUPPRESS,
        help="protocols: replay (the learned steps; always run) and scratch (train fresh "
        "networks from scratch with SGD + momentum)",
    )
    g.add_argument(
        "--epochs",
        dest="scratch_epochs",
        type=int,
        metavar="E",
        default=argparse.SUPPRESS,
        help="scratch protocol: epochs (config key scratch_epochs)",
    )
    g.add_argument(
        "--archs",
        dest="scratch_archs",
        action=_ExtendNames,
        nargs="+",
        metavar="ARCH",
        default=argparse.SUPPRESS,
        help="scratch protocol: architectures, e.g. lenet,convnet,mlp (default: the run's)",
    )
    g.add_argument(
        "--augment",
        dest="scratch_augment",
        nargs="?",
        const="dsa",
        metavar="SPEC",
        default=argparse.SUPPRESS,
        help="scratch protocol: differentiable augmentation (needs kornia); SPEC is dsa "
        "(default) or names of color,crop,cutout,flip,scale,rotate",
    )


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return str(f.default)
    return str(f.default_factory())  # type: ignore[misc]


def changes_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--config`` file < the explicit flags, as one flat mapping of settings (unchecked)."""
    path = getattr(args, "config", None)
    file = read_config_file(path) if path else {}
    names = set(Config.field_names())
    flags = {k: v for k, v in vars(args).items() if k in names}
    return layered(file, flags, source=path or "flags")


def config_from_args(args: argparse.Namespace, base: Config | None = None) -> Config:
    """``base`` (or defaults) < ``--config`` file < explicit flags; validated."""
    source = getattr(args, "config", None) or "flags"
    return merge(base.to_dict() if base else None, changes_from_args(args), source=source)


# ----------------------------------------------------------------------------- helpers
def pick_device(name: str):
    """The torch device for ``--device`` (``auto``: cuda when available)."""
    from softdistill.api import resolve_device

    return resolve_device(name)


def auto_threads(n_cpus: int, load: float, cap: int) -> int:
    """Intra-op threads for a machine with ``n_cpus`` usable CPUs, a 1-minute load average of
    ``load`` (other processes' runnable threads) and torch's own default ``cap``: the CPUs the
    others leave free, at least 1. Threads beyond free cores do not speed a run up, they make
    it wait on the busiest core (a 2-thread demo took 3.6 times as long beside two busy
    processes, a 1-thread one 1.5 times)."""
    return max(1, min(cap, n_cpus - round(load)))


def _runnable() -> int | None:
    """Threads runnable on the machine right now (this one included), from ``/proc/loadavg``;
    None where the system does not say."""
    try:
        return int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None


def _others_load(samples: int = 5, interval: float = 0.05) -> float:
    """How many CPUs other processes keep busy now: the threads runnable besides this one,
    averaged over ``samples`` looks ``interval`` seconds apart. Not the 1-minute load average,
    which lags a minute behind: it still counts a job that has just ended (a run started right
    after another got 1 thread of 2) and misses one that has just started.
    The load average only where the system gives no runnable count; 0 where neither."""
    import os

    counts = []
    for i in range(samples):
        if i:
            time.sleep(interval)
        n = _runnable()
        if n is None:
            break
        counts.append(max(0, n - 1))
    if counts:
        return sum(counts) / len(counts)
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def pick_threads(threads: int) -> str:
    """Set torch's intra-op threads: ``threads`` if > 0 (``--threads N``), else
    ``$OMP_NUM_THREADS`` when set, else :func:`auto_threads` of this machine now; returns the
    log line that says which and why."""
    import os

    import torch

    if threads > 0:
        torch.set_num_threads(threads)
        return f"threads: {threads} (--threads)"
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        torch.set_num_threads(int(env))
        return f"threads: {env} (OMP_NUM_THREADS)"
    n_cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = _others_load()
    n = auto_threads(n_cpus or 1, load, torch.get_num_threads())
    torch.set_num_threads(n)
    return (
        f"threads: {n} (auto: {n_cpus} CPUs, load {load:.1f}; --threads N sets it, and results "
        "can differ in the last bits between thread counts)"
    )


class Progress:
    """A tqdm bar on a terminal; a log line every 10% otherwise (CI logs, nohup)."""

    def __init__(self, total: int, start: int | None, enabled: bool) -> None:
        # total may be set again before the first step; start None: the step before the first
        # one reported (a resumed run's checkpoint step, without reading the checkpoint here)
        self.total, self.start = total, start
        self.bar = None
        self.next_log = start or 0
        self.t0 = time.perf_counter()
        self.enabled = enabled
        self.tty = sys.stderr.isatty()

    def __call__(self, step: int, info: dict[str, float]) -> None:
        if not self.enabled:
            return
        if self.start is None:
            self.start = step - 1
        if self.bar is None and self.tty:
            from tqdm import tqdm

            self.bar = tqdm(
                total=self.total,
                initial=self.start,
                desc="distill",
                unit="step",
                dynamic_ncols=True,
            )
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in info.items()}, refresh=False)
            if step >= self.total:  # the loop is over: the next phases show their own bars
                self.bar.close()
                self.bar, self.tty = None, False
        elif step >= self.next_log or step == self.total:
            done = step - self.start
            rate = done / max(time.perf_counter() - self.t0, 1e-9)
            eta = (self.total - step) / rate if rate > 0 else float("nan")
            log.info(
                "outer step %d/%d  loss %.4f  %.2f steps/s  ETA %.0fs",
                step,
                self.total,
                info.get("loss", float("nan")),
                rate,
                eta,
            )
            self.next_log = step + max(1, self.total // 10)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _LogTask:
    """A phase's progress as log lines (not a terminal): every 10% once it has run 2 s."""

    def __init__(self, desc: str, total: int, unit: str) -> None:
        self.desc, self.total, self.unit = desc, max(total, 1), unit
        self.n, self.t0, self.next = 0, time.perf_counter(), max(1, total // 10)

    def update(self, n: int = 1) -> None:
        self.n += n
        elapsed = time.perf_counter() - self.t0
        if self.n >= self.next and self.n < self.total and elapsed > 2:
            eta = elapsed / self.n * (self.total - self.n)
            log.info(
                "%s: %d/%d %ss, %.0fs, ETA %.0fs",
                self.desc,
                self.n,
                self.total,
                self.unit,
                elapsed,
                eta,
            )
            self.next = self.n + max(1, self.total // 10)

    def close(self) -> None:
        elapsed = time.perf_counter() - self.t0
        if elapsed > 2:
            log.info("%s: done in %.0fs", self.desc, elapsed)


def install_progress(enabled: bool) -> None:
    """Show the library's long phases (:mod:`softdistill.progress`): a tqdm bar with ETA on a
    terminal, log lines otherwise; and route log lines through tqdm so that a line never joins
    a bar's line."""
    from softdistill import progress

    if not enabled:
        progress.set_reporter(None)
        return
    if sys.stderr.isatty():
        from tqdm import tqdm

        def bar(desc: str, total: int, unit: str):
            return tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)

        progress.set_reporter(bar)
        handler = _TqdmHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        root = logging.getLogger()
        root.handlers = [handler]
    else:
        progress.set_reporter(_LogTask)


class _TqdmHandler(logging.Handler):
    """Log lines written with ``tqdm.write``: printed above any bar, never into its line."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # a logging handler must not raise
            self.handleError(record)


def format_summary(ev: dict | EvalReport) -> str:
    rep = ev if isinstance(ev, EvalReport) else EvalReport.from_dict(ev)
    before = rep.before.cell("%") if rep.before is not None else "not measured"
    lines = [
        f"test accuracy before training: {before}",
        f"distilled ({rep.protocol.n_steps} steps): {rep.distilled.cell('%')}",
    ]
    if rep.protocol.on_training_nets:
        lines.append(
            "  note: evaluated on the very nets it was distilled on (no test_pool), which "
            "flatters it; --test_pool PATH evaluates on held-out pretrained nets"
        )
    if sel := rep.selected:
        if sel.evaluations > 1:
            lines[-1] += (
                f"  (the set of outer step {sel.step}, best on {sel.val_size} held-out "
                f"training examples: {100 * sel.val_acc:.2f}%)"
            )
        else:
            lines[-1] += (
                f"  (the last set: one held-out evaluation only, {100 * sel.val_acc:.2f}% "
                f"on {sel.val_size} held-out training examples; no selection)"
            )
        if sel.stopped_early is not None:
            lines.append(f"  stopped early at outer step {sel.stopped_early} (see the log)")
        if sel.restarts:
            scores = ", ".join(
                "-" if a is None else f"{100 * a:.2f}%" for a in sel.restarts["val_acc"]
            )
            steps = sel.restarts["steps"]
            lines.append(
                f"  continued start {sel.restarts['chosen'] + 1} of {len(sel.restarts['val_acc'])}"
                f" (mean held out over outer steps {steps // 2 + 1}-{steps} of each: {scores})"
            )
    for name, r in rep.baselines.items():
        if r.is_knn:
            extra = f" (k {r.extra['k']}, p {r.extra['p']:g}, reference {r.extra['reference']})"
        elif r.lr is not None:
            extra = f" (lr {r.lr:g})"
        elif "lr_mode" in r.extra:
            extra = f" (lrs {r.extra['lr_mode']})"
        else:
            extra = ""
        lines.append(f"baseline {name}{extra}: {r.cell('%')}")
    if rep.attack is not None:
        a = rep.attack
        src, dst = a["attack_class"], a["target_class"]
        b, d = a["before"], a["distilled"]
        lines += [
            f"attack {src} -> {dst} (before -> after the distilled steps):",
            f"  {src} predicted as {dst}: {100 * b['attacked']:.2f}% -> {100 * d['attacked']:.2f}%",
            f"  accuracy on the other classes: {100 * b['acc_others']:.2f}% -> "
            f"{100 * d['acc_others']:.2f}%",
            f"  accuracy w.r.t. the modified labels: {100 * b['acc_modified']:.2f}% -> "
            f"{100 * d['acc_modified']:.2f}%",
            "  per class: "
            + ", ".join(
                f"{c}: {100 * x:.1f}->{100 * y:.1f}"
                for c, (x, y) in enumerate(zip(b["per_class"], d["per_class"]))
            ),
        ]
    if rep.scratch is not None:
        from softdistill.protocol import format_scratch_table

        sc = rep.scratch
        aug = f", augment {sc['augment']}" if sc.get("augment") else ""
        lines.append(
            f"scratch protocol ({sc['epochs']} epochs, {sc['n_nets']} nets per arch{aug}), "
            "test accuracy %:"
        )
        lines.append(format_scratch_table(sc))
    return "\n".join(lines)
