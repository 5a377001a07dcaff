"""Command-line interface: ``softdistill distill | evaluate``.

Every :class:`~softdistill.config.Config` field is a flag (``--per_class`` or ``--per-class``);
the original implementations' flag names are accepted as aliases. Precedence: defaults < config
file (``--config``) < flags. ``main(argv) -> int`` is what tests call; exit codes: 0 ok, 1 runtime
failure, 2 usage error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from softdistill import __version__
from softdistill.config import Config, ConfigError, read_config_file

__all__ = ["main", "entry"]

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


_ALIASES = {  # original flag -> (our field, extra argparse kwargs)
    "distill_steps": "n_batches",
    "distill_epochs": "n_epochs",
    "distilled_images_per_class_per_step": "per_class",
    "distill_lr": "init_lr",
    "train_nets_type": "nets",
    "num_distill_classes": "n_label_classes",
    "random_init_labels": "label_init",
}


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per Config field (default: not given), plus the original code's aliases."""
    g = p.add_argument_group("configuration (any config-file key; flags override the file)")
    aliases: dict[str, list[str]] = {}
    for old, new in _ALIASES.items():
        aliases.setdefault(new, []).append(old)
    for f in dataclasses.fields(Config):
        names = [f"--{f.name}"]
        if "_" in f.name:
            names.append(f"--{f.name.replace('_', '-')}")
        names += [f"--{a}" for a in aliases.get(f.name, [])]
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS}
        t = str(f.type)
        if t == "bool":
            kw["action"] = argparse.BooleanOptionalAction
        elif t.startswith("list[int]"):
            kw.update(nargs="+", type=int)
        elif t.startswith("list[float]"):
            kw.update(nargs="+", type=float)
        elif t.startswith("list[str]"):
            kw.update(nargs="+")
        elif t.startswith("dict"):
            kw.update(type=_kv, metavar="K=V,...")
        elif t.startswith("int"):
            kw["type"] = int
        elif t.startswith("float"):
            kw["type"] = float
        elif f.name == "nets":
            kw["type"] = _nets_type
        g.add_argument(*names, **kw)
    g.add_argument(
        "--static_labels",
        "--static-labels",
        dest="learn_labels",
        action="store_false",
        default=argparse.SUPPRESS,
        help="do not learn labels (the original hard-label method)",
    )


def config_from_args(args: argparse.Namespace, base: Config | None = None) -> Config:
    """``base`` (or defaults) < ``--config`` file < explicit flags; validated."""
    values: dict[str, Any] = dataclasses.asdict(base) if base else {}
    if getattr(args, "config", None):
        values.update(read_config_file(args.config))
        values.pop("config_version", None)
    names = set(Config.field_names())
    values.update({k: v for k, v in vars(args).items() if k in names})
    cfg = Config.from_dict(values, source=getattr(args, "config", None) or "flags")
    return cfg.validate()


# ----------------------------------------------------------------------------- helpers
def pick_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise UsageError(f"bad --device {name!r}: {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name} asked for, but CUDA is not available here")
    return device


class Progress:
    """A tqdm bar on a terminal; a log line every 10% otherwise (CI logs, nohup)."""

    def __init__(self, total: int, start: int, enabled: bool) -> None:
        self.total, self.start = total, start
        self.bar = None
        self.next_log = start
        self.t0 = time.perf_counter()
        self.enabled = enabled
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, initial=start, desc="distill", unit="step", dynamic_ncols=True
            )

    def __call__(self, step: int, info: dict[str, float]) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in info.items()}, refresh=False)
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


def _format_summary(ev: dict) -> str:
    def pct(r: dict) -> str:
        return f"{100 * r['mean']:.2f}% ± {100 * r['std']:.2f}"

    lines = [
        f"test accuracy before training: {pct(ev['before'])}",
        f"distilled ({ev['protocol']['n_steps']} steps): {pct(ev['distilled'])}",
    ]
    for name, r in ev.get("baselines", {}).items():
        extra = f" (lr {r['lr']:g})" if "lr" in r else ""
        lines.append(f"baseline {name}{extra}: {pct(r)}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- commands
def cmd_distill(args: argparse.Namespace) -> int:
    import torch

    from softdistill import io
    from softdistill.data import load
    from softdistill.distill import distill
    from softdistill.models import build
    from softdistill.report import save_synthetic_grid

    out = Path(args.out) if args.out else None
    if args.resume:
        if out is None:
            raise UsageError("--resume needs --out RUN_DIR (the run to continue)")
        saved = Config.from_dict(io.read_json(out / io.CONFIG), source=str(out / io.CONFIG))
        cfg = config_from_args(args, base=saved)
        changed = {
            k for k in Config.field_names() if getattr(cfg, k) != getattr(saved, k)
        } - RESUMABLE_CHANGES
        if changed:
            raise UsageError(
                f"--resume cannot change {sorted(changed)} of the saved run; "
                f"only {sorted(RESUMABLE_CHANGES)} may differ"
            )
    else:
        cfg = config_from_args(args)
    if out is None:
        out = (
            Path("runs")
            / f"{cfg.dataset.replace(':', '_')}_{cfg.arch}_{time.strftime('%Y%m%d-%H%M%S')}"
        )
    # Fail before the long work: folder exists / unwritable / disk full.
    io.prepare_run_dir(out, overwrite=args.overwrite, resume=args.resume)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    log.info("loading dataset %s", cfg.dataset)
    data = load(cfg.dataset, cfg.data_dir)
    try:
        model = build(cfg.arch, data.sample_shape, data.n_classes, **cfg.arch_args)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    io.save_json(out / io.CONFIG, cfg.to_dict())
    log.info(
        "distilling %s into %d x %d examples, T = %d, on %s; run folder %s",
        cfg.dataset,
        cfg.n_batches,
        len(cfg.label_classes(data.n_classes)) * cfg.per_class,
        cfg.n_steps,
        device,
        out,
    )
    start = 0
    if args.resume:
        start = int(io.load_checkpoint(out / io.CHECKPOINT)["step"])
    progress = Progress(cfg.outer_steps, start, enabled=not args.quiet)
    try:
        result = distill(
            cfg, data, model, device=device, run_dir=out, resume=args.resume, progress=progress
        )
    finally:
        progress.close()
    meta = {
        "dataset": data.name,
        "classes": data.class_names,
        "modality": data.modality,
        "mean": list(data.mean),
        "std": list(data.std),
        "arch": cfg.arch,
        "outer_steps": result.outer_steps,
        "seconds": result.seconds,
        "seconds_per_step": result.seconds_per_step,
    }
    io.save_synthetic(out / io.SYNTHETIC, result.syn, meta)
    if cfg.nets == "fixed":
        io.save_params(out / io.INIT, result.nets)
    if data.modality == "image":
        save_synthetic_grid(
            result.syn.x_syn,
            result.syn.y_soft,
            data.class_names,
            out / "report" / "synthetic.png",
            mean=data.mean,
            std=data.std,
        )
    ev = _evaluate(
        cfg, data, model, result.syn, result.nets if cfg.nets == "fixed" else None, device
    )
    ev["protocol"].update(
        dataset=cfg.dataset,
        arch=cfg.arch,
        nets=cfg.nets,
        outer_steps=result.outer_steps,
        seconds=round(result.seconds, 2),
        seconds_per_step=round(result.seconds_per_step, 4),
    )
    io.save_json(out / io.EVAL, ev)
    print(_format_summary(ev))
    print(
        f"{result.outer_steps} outer steps in {result.seconds:.1f}s "
        f"({result.seconds_per_step:.3f} s/step); run folder: {out}"
    )
    return 0


RESUMABLE_CHANGES = {
    "outer_steps",
    "device",
    "log_every",
    "checkpoint_every",
    "eval_every",
    "data_dir",
}


def _evaluate(cfg: Config, data, model, syn, fixed_nets, device) -> dict:
    """eval.json for ``syn``: on the fixed inits, or on ``test_n_nets`` fresh random inits."""
    import torch

    from softdistill.distill import make_nets, stream
    from softdistill.evaluate import evaluate_run

    dtype = getattr(torch, cfg.dtype)
    model = model.to(device=device, dtype=dtype)
    syn = syn.to(device)
    if fixed_nets is not None:
        nets = [{k: v.to(device) for k, v in p.items()} for p in fixed_nets]
    else:
        nets = make_nets(
            model, cfg, cfg.test_n_nets, stream(cfg.seed, "test_nets"), device=device, dtype=dtype
        )
    return evaluate_run(
        model,
        nets,
        syn,
        data.train.to(device, dtype),
        data.test.to(device, dtype),
        baselines=cfg.baselines,
        baseline_lrs=cfg.baseline_lrs,
        seed=cfg.seed,
    )


def cmd_evaluate(args: argparse.Namespace) -> int:
    from softdistill import io
    from softdistill.data import load
    from softdistill.models import build

    run = io.load_run(args.run_dir)
    base = Config.from_dict(run.config, source=str(Path(args.run_dir) / io.CONFIG))
    cfg = config_from_args(args, base=base)
    device = pick_device(cfg.device)
    data = load(cfg.dataset, cfg.data_dir)
    model = build(cfg.arch, data.sample_shape, data.n_classes, **cfg.arch_args)
    ev = _evaluate(
        cfg, data, model, run.syn, run.init_params if cfg.nets == "fixed" else None, device
    )
    ev["protocol"].update(dataset=cfg.dataset, arch=cfg.arch, nets=cfg.nets)
    if run.eval and "protocol" in run.eval:  # keep the distillation timing of the run
        for k in ("outer_steps", "seconds", "seconds_per_step"):
            if k in run.eval["protocol"]:
                ev["protocol"][k] = run.eval["protocol"][k]
    io.save_json(Path(args.run_dir) / io.EVAL, ev)
    print(_format_summary(ev))
    return 0


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="softdistill",
        description="Dataset distillation with learned soft labels, for images and text.",
    )
    p.add_argument("--version", action="version", version=f"softdistill {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    common.add_argument("--quiet", action="store_true", help="no progress output")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser(
        "distill",
        parents=[common],
        help="learn a synthetic set",
        description="Learn a synthetic set (x_syn, soft labels, step lrs), then "
        "evaluate it beside a random-real baseline.",
    )
    d.add_argument("--config", metavar="FILE", help="YAML/JSON/TOML config file")
    d.add_argument(
        "--out", metavar="RUN_DIR", help="run folder (default runs/<dataset>_<arch>_<time>)"
    )
    d.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    d.add_argument("--resume", action="store_true", help="continue the run in --out")
    add_config_flags(d)
    d.set_defaults(func=cmd_distill)

    e = sub.add_parser(
        "evaluate",
        parents=[common],
        help="re-evaluate a finished run",
        description="Replay a run's learned steps on its evaluation nets and "
        "rewrite eval.json (flags such as --test_n_nets, --baselines, --data-dir "
        "override the run's config).",
    )
    e.add_argument("run_dir", metavar="RUN_DIR")
    add_config_flags(e)
    e.set_defaults(func=cmd_evaluate)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 runtime failure, 2 usage error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already printed its message
        return int(e.code or 0)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s", force=True
    )
    from softdistill.data import DataError
    from softdistill.distill import DivergenceError
    from softdistill.io import RunDirError

    try:
        return args.func(args)
    except (UsageError, ConfigError) as e:
        if args.debug:
            raise
        print(f"softdistill: error: {e}", file=sys.stderr)
        return 2
    except (DataError, RunDirError, DivergenceError, OSError) as e:
        if args.debug:
            raise
        print(f"softdistill: error: {e}\n(run with --debug for the traceback)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("softdistill: interrupted; continue with --resume --out RUN_DIR", file=sys.stderr)
        return 130


def entry() -> None:
    sys.exit(main())
