"""Seconds per outer step of a preset against variants of it, interleaved in one process.

Wall times of whole runs made on different days do not compare (the same machine kind runs some
days at half the speed of others); this times a few outer steps of each configuration in turn,
round after round, in the same process, so drift hits all of them alike. Only the loop is timed
(no held-out or test evaluations, no checkpoints, no baselines): the median wall seconds between
consecutive steps of each round, then the median over rounds.

    python benchmarks/time_to_accuracy.py ...   # whole runs; this script: the step alone
    python benchmarks/step_ab.py --data-dir DATA --preset mnist_lenet_random_100 \\
        --variant batch_size=256 --variant n_nets=2 [--threads 1] [--rounds 3] [--steps 8]

Writes ``benchmarks/results/step_ab_<preset>.md`` and ``.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import yaml

from bench_common import RESULTS, machine_line, write_table

ROOT = Path(__file__).resolve().parent.parent


def parse_variant(text: str) -> dict:
    """``KEY=VALUE[,KEY=VALUE...]`` -> overrides, values read as YAML (``256`` is an int)."""
    out = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE[,KEY=VALUE...], got {text!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def time_steps(preset: str, data_dir: str, variants: list[dict], rounds: int, steps: int):
    from softdistill.config import Config, merge
    from softdistill.data import load_config
    from softdistill.distillation import distill
    from softdistill.models import build

    base = Config.from_file(ROOT / "configs" / f"{preset}.yaml").replace(data_dir=data_dir)
    data = load_config(base)
    model = build(base.arch, data.sample_shape, data.n_classes, **base.arch_args)
    quiet = dict(
        outer_steps=steps + 1, eval_every=0, val_size=0, log_every=10**9,
        checkpoint_every=10**9, baselines=[], patience=0, stop_at_val_acc=None, test_every=None,
    )  # fmt: skip
    # typed and validated as the CLI's flags are (a wrong type is refused by name)
    cfgs = [merge(base.to_dict(), quiet, v, source="--variant") for v in variants]
    times: list[list[float]] = [[] for _ in cfgs]
    for _ in range(rounds):
        for cell, cfg in zip(times, cfgs):
            marks: list[float] = []
            distill(
                cfg, data, model, progress=lambda step, info, m=marks: m.append(time.perf_counter())
            )
            cell.append(statistics.median(b - a for a, b in zip(marks, marks[1:])))
    return [statistics.median(cell) for cell in times], times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", required=True, help="the datasets' folder (DATA)")
    ap.add_argument("--preset", required=True, help="a config name under configs/")
    ap.add_argument(
        "--variant",
        action="append",
        type=parse_variant,
        default=[],
        metavar="KEY=VALUE[,KEY=VALUE]",
        help="overrides of one variant (repeat for more); the preset itself is always timed",
    )
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=8, help="timed outer steps per round")
    ap.add_argument("--out", default=None, help="default benchmarks/results/step_ab_<preset>")
    args = ap.parse_args(argv)
    if not (ROOT / "configs" / f"{args.preset}.yaml").exists():
        ap.error(f"no preset configs/{args.preset}.yaml")
    if args.rounds < 1 or args.steps < 2:
        ap.error("--rounds must be >= 1 and --steps >= 2")
    import torch

    torch.set_num_threads(args.threads)
    variants = [{}, *args.variant]
    medians, cells = time_steps(args.preset, args.data_dir, variants, args.rounds, args.steps)
    names = ["preset"] + [",".join(f"{k}={v}" for k, v in v.items()) for v in args.variant]
    flags = " ".join(f"--variant {n}" for n in names[1:])
    lines = [
        f"# Seconds per outer step: {args.preset} and variants",
        "",
        f"{machine_line()}; torch set to {args.threads} thread(s); {args.rounds} interleaved "
        f"rounds of {args.steps} steps (wall s, median within a round, then over rounds); no "
        "evaluations.",
        "",
        f"Regenerate: `python benchmarks/step_ab.py --data-dir DATA --preset {args.preset} "
        f"{flags} --threads {args.threads} --rounds {args.rounds} --steps {args.steps}`",
        "",
        "| configuration | s per step | / preset | per round |",
        "| --- | ---: | ---: | --- |",
    ]
    for name, med, cell in zip(names, medians, cells):
        per_round = ", ".join(f"{c:.3f}" for c in cell)
        lines.append(f"| {name} | {med:.3f} | {med / medians[0]:.2f} | {per_round} |")
    rows = [
        {"configuration": n, "overrides": v, "s_per_step": m, "rounds": c}
        for n, v, m, c in zip(names, variants, medians, cells)
    ]
    out = args.out or str(RESULTS / f"step_ab_{args.preset}")
    write_table(out, lines, {"threads": args.threads, "steps": args.steps, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
