"""Reproduce the papers' image rows from the presets in configs/ and tabulate them.

For each preset (a config file ``configs/<setting>.yaml``) this runs the documented command

    softdistill distill --config configs/<setting>.yaml --data-dir DATA --out RUNS/<setting>

(unless ``--reuse`` finds a finished run there), then writes a markdown and a JSON table:
setting, published number, ours (mean ± std over the evaluation nets), the real-data baselines
of ``eval.json``, outer steps, wall time and seconds per outer step.

    python benchmarks/reproduce.py 'mnist_lenet_fixed_*' --data-dir DATA
    python benchmarks/reproduce.py --list
    make reproduce PRESETS='mnist_lenet_fixed_5 mnist_lenet_fixed_10_hard'

Long: every preset is a full distillation (minutes to hours on a CPU; see the table's times).
On a shared machine run it with OMP_NUM_THREADS=1 (one thread per process).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

from softdistill.results import read_eval  # torch-free

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
NOT_PRESETS = {"demo_digits"}  # configs/ files that are not paper settings

# Published test accuracy (%) of each setting, with its source.
DD = "Wang et al. 2018"  # Dataset Distillation (hard labels), project page / README
SL = "Sucholutsky & Schonlau"  # Soft-Label Dataset Distillation (abstract / README)
PUBLISHED = {
    "mnist_lenet_fixed_10": (">96", SL),
    "mnist_lenet_fixed_10_long": (">96", SL),
    "mnist_lenet_fixed_10_hard": ("93.8", DD),
    "mnist_lenet_fixed_5": ("≈92", SL),
    "mnist_lenet_random_100_hard": ("79.5 ± 8.1", DD),
    "cifar10_alexcifarnet_fixed_100": ("≈60", SL),
    "cifar10_alexcifarnet_fixed_100_hard": ("54.0", DD),
    "cifar10_alexcifarnet_random_100_hard": ("36.8 ± 1.2", DD),
}


def presets() -> list[str]:
    return sorted(
        p.stem for p in CONFIGS.glob("*.yaml") if p.stem not in NOT_PRESETS and p.is_file()
    )


def select(patterns: list[str]) -> list[str]:
    names = presets()
    if not patterns:
        return names
    chosen = []
    for pat in patterns:
        pat = Path(pat).stem if pat.endswith((".yaml", ".yml")) else pat
        hits = [n for n in names if fnmatch.fnmatchcase(n, pat)]
        if not hits:
            sys.exit(f"reproduce.py: no preset matches {pat!r}; presets: {', '.join(names)}")
        chosen += [h for h in hits if h not in chosen]
    return chosen


def pct(r: dict | None) -> str:
    if not r or "mean" not in r:
        return "—"
    n = len(r.get("per_net", [])) or r.get("n_nets")
    return f"{100 * r['mean']:.2f} ± {100 * r['std']:.2f}" + (f" ({n})" if n else "")


def hms(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def command(name: str, args: argparse.Namespace, out: Path) -> list[str]:
    cmd = ["softdistill", "distill", "--config", f"configs/{name}.yaml"]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    cmd += ["--out", str(out), "--overwrite", "--quiet"]
    for kv in args.set or []:
        key, _, value = kv.partition("=")
        cmd += [f"--{key}", *value.split()]
    return cmd


def evaluate_command(name: str, args: argparse.Namespace, out: Path) -> list[str]:
    """Re-evaluate a finished run with the preset's evaluation settings (e.g. new baselines)."""
    from softdistill.config import Config, read_config_file

    preset = read_config_file(CONFIGS / f"{name}.yaml")
    cfg = Config.from_dict(preset, source=name)
    cmd = ["softdistill", "evaluate", str(out), "--quiet", "--baselines", *cfg.baselines]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    return cmd


def _run(cmd: list[str]) -> tuple[int, float]:
    exe = Path(sys.executable).with_name("softdistill")
    print(f"[reproduce] {shlex.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run([str(exe) if exe.exists() else cmd[0], *cmd[1:]], cwd=ROOT)
    return proc.returncode, round(time.perf_counter() - t0, 1)


def run_preset(name: str, args: argparse.Namespace) -> dict:
    out = Path(args.runs_dir) / name
    row: dict = {"setting": name, "run_dir": str(out)}
    cmd = command(name, args, out)
    row["command"] = shlex.join(cmd)
    finished = (out / "eval.json").is_file()
    if not ((args.reuse or args.evaluate) and finished):
        if args.evaluate:
            row["error"] = f"no finished run in {out} to evaluate"
            return row
        code, row["wall_seconds"] = _run(cmd)
        if code != 0:
            row["error"] = f"exit code {code}"
            return row
        (out / "reproduce.json").write_text(json.dumps({"wall_seconds": row["wall_seconds"]}))
    elif (out / "reproduce.json").is_file():
        row["wall_seconds"] = json.loads((out / "reproduce.json").read_text())["wall_seconds"]
    if args.evaluate:
        ecmd = evaluate_command(name, args, out)
        row["command"] += "\n    " + shlex.join(ecmd)
        code, _ = _run(ecmd)
        if code != 0:
            row["error"] = f"evaluate: exit code {code}"
            return row
    ev = read_eval(out)
    cfg = json.loads((out / "config.json").read_text())
    proto = ev.protocol
    row.update(
        distilled=ev.distilled.to_dict(),
        baselines={k: v.to_dict() for k, v in ev.baselines.items()},
        outer_steps=proto.get("outer_steps"),
        preset_outer_steps=_preset_steps(name),
        distill_seconds=proto.get("seconds"),
        seconds_per_step=proto.get("seconds_per_step"),
        n_images=None,
        nets=cfg.get("nets"),
        learn_labels=cfg.get("learn_labels"),
        device=cfg.get("device"),
    )
    try:  # number of synthetic images, from the saved config
        n_cls = len(cfg["init_labels"]) if cfg.get("init_labels") else cfg.get("n_label_classes")
        n_cls = n_cls or 10
        row["n_images"] = n_cls * cfg["per_class"] * cfg["n_batches"]
    except (KeyError, TypeError):
        pass
    if curve := _curve(out / "metrics.jsonl"):
        row["curve"] = curve
    return row


def _preset_steps(name: str) -> int | None:
    from softdistill.config import read_config_file

    return read_config_file(CONFIGS / f"{name}.yaml").get("outer_steps")


def _curve(path: Path) -> list[tuple[int, float]]:
    if not path.is_file():
        return []
    pts = []
    for line in path.read_text().splitlines():
        d = json.loads(line)
        if "test_acc" in d:
            pts.append((d["step"], d["test_acc"]))
    return pts


def markdown(rows: list[dict], args: argparse.Namespace) -> str:
    names = []
    for r in rows:
        names += [b for b in r.get("baselines", {}) if b not in names]
    head = ["setting", "images", "published", "ours, % (nets)"]
    head += [f"{b}, %" for b in names]
    head += ["outer steps", "wall time", "s / outer step"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        pub = PUBLISHED.get(r["setting"])
        cells = [f"`{r['setting']}`", str(r.get("n_images") or "—")]
        cells.append(f"{pub[0]} ({pub[1]})" if pub else "—")
        if "error" in r:
            cells += [f"failed: {r['error']}"] + ["—"] * (len(head) - 4)
        else:
            cells.append(pct(r["distilled"]))
            cells += [pct(r["baselines"].get(b)) for b in names]
            sps = r.get("seconds_per_step")
            steps = str(r.get("outer_steps") or "—")
            if r.get("outer_steps") and r["outer_steps"] < (r.get("preset_outer_steps") or 0):
                steps += f" of {r['preset_outer_steps']} (budget)"
            cells += [steps, hms(r.get("wall_seconds")), f"{sps:.3f}" if sps else "—"]
        lines.append("| " + " | ".join(cells) + " |")
    import torch

    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, "
        f"torch {torch.__version__}, threads {os.environ.get('OMP_NUM_THREADS', 'default')}"
    )
    notes = [
        "",
        "Accuracy: mean ± std over the evaluation networks (their number in brackets): the fixed",
        "init for `fixed` presets, fresh random inits never used in training for `random` ones.",
        "Baselines are real training examples in the synthetic set's shape (see eval.json).",
        "Wall time covers distillation and evaluation; s / outer step covers distillation only.",
        f"Machine: {machine}.",
        "",
        "Commands (from the repository root):",
        "",
    ]
    notes += [f"    {r['command']}" for r in rows]
    curves = [r for r in rows if r.get("curve")]
    if curves:
        notes += ["", "Test accuracy during distillation (`eval_every`, from metrics.jsonl):", ""]
        for r in curves:
            pts = ", ".join(f"{s}: {100 * a:.1f}" for s, a in r["curve"])
            notes.append(f"- `{r['setting']}`: {pts}")
    return "\n".join(lines + notes) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("presets", nargs="*", help="preset names or globs (default: all)")
    p.add_argument("--data-dir", default=os.environ.get("SOFTDISTILL_DATA"))
    p.add_argument("--runs-dir", default="runs/reproduce", help="where the run folders go")
    p.add_argument("--results", default="benchmarks/results/reproduce", help="table path stem")
    p.add_argument("--reuse", action="store_true", help="tabulate finished runs, don't rerun")
    p.add_argument(
        "--evaluate",
        action="store_true",
        help="re-evaluate finished runs with the preset's evaluation settings (softdistill "
        "evaluate RUN --baselines ...), then tabulate",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config key for every preset (recorded in the commands), "
        "e.g. --set outer_steps=100 --set device=cuda",
    )
    p.add_argument("--list", action="store_true", help="list the presets and exit")
    args = p.parse_args(argv)
    if args.list:
        for n in presets():
            pub = PUBLISHED.get(n)
            print(f"{n:<40} {pub[0] + ' (' + pub[1] + ')' if pub else ''}")
        return 0
    rows = [run_preset(name, args) for name in select(args.presets)]
    stem = Path(args.results)
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    text = markdown(rows, args)
    stem.with_suffix(".md").write_text(text)
    print(text)
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
