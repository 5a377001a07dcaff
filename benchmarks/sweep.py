"""Run a grid of `softdistill distill` variants in parallel and tabulate them.

Each variant is the base config plus flag overrides; runs go to OUT/<name>/ and the table (final
and best-so-far test accuracy from metrics.jsonl/eval.json, wall time, seconds per outer step) to
OUT/sweep.md and OUT/sweep.json. A global time budget stops the runs still going (their partial
curves are still tabulated), so the script fits a fixed slot on a lent GPU.

    python benchmarks/sweep.py --base configs/mnist_lenet_fixed_10.yaml --out runs/sweep \\
        --jobs 4 --budget 600 --set lr=0.01,0.03 --set init_lr=0.02,0.1 -- --data-dir DATA
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def variants(sets: list[str]) -> list[dict[str, str]]:
    axes = []
    for s in sets:
        key, values = s.split("=", 1)
        axes.append([(key, v) for v in values.split(",")])
    return [dict(combo) for combo in itertools.product(*axes)] if axes else [{}]


def summarise(run: Path) -> dict:
    curve = []
    if (run / "metrics.jsonl").exists():
        for line in (run / "metrics.jsonl").read_text().splitlines():
            try:
                m = json.loads(line)
            except json.JSONDecodeError:
                break
            if "test_acc" in m:
                curve.append((m["step"], m["test_acc"], m["seconds"]))
    out = {"curve": curve}
    if (run / "eval.json").exists():
        ev = json.loads((run / "eval.json").read_text())
        out["final"] = ev["distilled"]["mean"]
        out["baselines"] = {k: v["mean"] for k, v in ev.get("baselines", {}).items()}
        out["seconds_per_step"] = ev["protocol"].get("seconds_per_step")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", required=True, help="base config file")
    ap.add_argument("--out", required=True)
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="an axis of the grid (repeatable)",
    )
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time")
    ap.add_argument("--budget", type=float, default=600, help="seconds for the whole sweep")
    ap.add_argument("extra", nargs="*", help="flags passed to every run (after --)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    todo = []
    for v in variants(args.set):
        name = "_".join(f"{k}-{x}" for k, x in v.items()) or "base"
        flags = []
        for k, x in v.items():  # booleans become --key / --no-key
            flags += {"true": [f"--{k}"], "false": [f"--no-{k}"]}.get(
                x.lower(), [f"--{k}", *x.split()]
            )
        cmd = [
            sys.executable,
            "-m",
            "softdistill",
            "distill",
            "--config",
            args.base,
            "--out",
            str(out / name),
            "--overwrite",
            "--quiet",
            *flags,
            *args.extra,
        ]
        todo.append((name, cmd))
    t0 = time.time()
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    walls: dict[str, float] = {}
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    while todo or running:
        while todo and len(running) < args.jobs:
            name, cmd = todo.pop(0)
            log = open(out / f"{name}.log", "w")  # noqa: SIM115  (closed with the process)
            running[name] = (
                subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env),
                time.time(),
            )
        for name, (p, start) in list(running.items()):
            if p.poll() is not None:
                walls[name] = time.time() - start
                del running[name]
        if time.time() - t0 > args.budget:
            for name, (p, start) in running.items():
                p.kill()
                walls[name] = time.time() - start
            running.clear()
            todo.clear()
        time.sleep(2)
    rows = {
        name: {**summarise(out / name), "wall_s": round(walls.get(name, 0), 1)} for name in walls
    }
    (out / "sweep.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "| variant | final acc | best acc (step) | last step | wall s | s/step |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in sorted(
        rows.items(), key=lambda kv: -max([a for _, a, _ in kv[1]["curve"]] or [0])
    ):
        best = max(r["curve"], key=lambda c: c[1]) if r["curve"] else (0, 0, 0)
        last = r["curve"][-1][0] if r["curve"] else 0
        final = f"{100 * r['final']:.2f}" if "final" in r else "-"
        sps = r.get("seconds_per_step") or "-"
        lines.append(
            f"| {name} | {final} | {100 * best[1]:.2f} ({best[0]}) | {last} | "
            f"{r['wall_s']} | {sps} |"
        )
    (out / "sweep.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
