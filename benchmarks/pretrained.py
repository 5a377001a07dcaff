"""The adaptation and attack experiments on pools of pretrained LeNets, as one results table.

    # pools first (see README, "Pretrained pools"), then:
    python benchmarks/pretrained.py --data-dir DATA --train-pool POOLS/mnist_lenet_train \
        --test-pool POOLS/mnist_lenet_test --runs RUNS

Runs ``softdistill distill`` with ``configs/adapt_mnist_usps.yaml`` (MNIST -> USPS) and
``configs/attack_mnist.yaml`` (0s classified as 1s), each in its own process, then writes
``benchmarks/results/pretrained.md`` (``--table``) from the pools' manifests and the runs'
``eval.json``: the commands, the numbers, wall times and the machine. ``--reuse`` keeps runs that
already have an ``eval.json``; ``--set key=value`` overrides a config key (e.g. for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
EXPERIMENTS = {
    "adapt": "configs/adapt_mnist_usps.yaml",
    "attack": "configs/attack_mnist.yaml",
}


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def mean_std(r: dict) -> str:
    return f"{100 * r['mean']:.2f}% ± {100 * r['std']:.2f}"


def command(args, name: str, out: Path) -> list[str]:
    cmd = ["softdistill", "distill", "--config", EXPERIMENTS[name], "--data-dir", args.data_dir]
    cmd += ["--nets", f"pool:{args.train_pool}", "--test_pool", str(args.test_pool)]
    cmd += ["--device", args.device, "--out", str(out), "--overwrite"]
    for kv in args.set:
        key, value = kv.split("=", 1)
        cmd += [f"--{key}", *value.split()]
    return cmd


def run(args, name: str) -> tuple[list[str], float | None]:
    out = Path(args.runs) / name
    cmd = command(args, name, out)
    if args.reuse and (out / "eval.json").is_file():
        print(f"reusing {out}", flush=True)
        return cmd, None
    print("$ " + shlex.join(cmd), flush=True)
    t0 = time.perf_counter()
    exe = [sys.executable, "-m", "softdistill", *cmd[1:]]
    subprocess.run(exe, cwd=ROOT, check=True)
    return cmd, time.perf_counter() - t0


def pool_rows(path: Path) -> str:
    m = json.loads((Path(path) / "manifest.json").read_text())
    tc = m["train_config"]
    secs = [n["seconds"] for n in m["nets"]]
    return (
        f"| `{path}` | {m['split']} | {m['n_nets']} | {m['arch']} on {m['dataset']} | "
        f"{tc['epochs']} epochs, batch {tc['batch_size']}, Adam lr {tc['lr']:g} "
        f"(x{tc['decay_factor']:g} every {tc['decay_every']}) | {pct(m['test_acc_mean'])} "
        f"({pct(m['test_acc_min'])} – {pct(m['test_acc_max'])}) | "
        f"{sum(secs) / len(secs):.0f} s |"
    )


def baseline_text(name: str, r: dict) -> str:
    """One baseline row's description from its eval.json entry."""
    lr = f"fixed lr {r['lr']:g} (tuned on training data)" if isinstance(r.get("lr"), float) else ""
    if name == "random":
        kept = len(r.get("kept", [])) or 1
        return (
            f"random: the same number of random USPS training images, one-hot labels, {lr}; the "
            f"best {kept} of {r.get('draws', 1)} draws by training-data accuracy"
        )
    if name == "kmeans":
        return f"kmeans: k-means centroids of each USPS class, one-hot labels, {lr}"
    if name == "average":
        return f"average: the mean USPS image of each class, one-hot labels, {lr}"
    if "k" in r:
        return f"{name}: {r['k']}-nearest-neighbour classification (no training; p {r['p']:g})"
    return name


def write_table(args, cmds: dict, walls: dict) -> str:
    lines = [
        "# Pretrained pools: MNIST -> USPS adaptation and the MNIST 0 -> 1 attack",
        "",
        f"Written by `benchmarks/pretrained.py` on {platform.node() or 'this machine'} "
        f"({os.cpu_count()} CPU cores visible; device `{args.device}`), "
        f"{time.strftime('%Y-%m-%d %H:%M')}.",
        "",
        "## Pools",
        "",
        "| pool | split | nets | nets of | training | test accuracy (mean, min – max) "
        "| time per net |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        pool_rows(args.train_pool),
        pool_rows(args.test_pool),
        "",
    ]
    runs = Path(args.runs)
    if "adapt" in cmds:
        ev = json.loads((runs / "adapt" / "eval.json").read_text())
        p = ev["protocol"]
        lines += [
            "## MNIST -> USPS adaptation",
            "",
            f"USPS test accuracy ({p['test_examples']} images) of the {p['n_nets']} held-out "
            f"nets (`{p['eval_nets']}`, trained on {p['source_dataset']} only) after "
            f"{p['n_steps']} gradient steps:",
            "",
            "| steps | USPS test accuracy |",
            "| --- | --- |",
            f"| none (the MNIST nets as they are) | {mean_std(ev['before'])} |",
        ]
        for name, r in ev["baselines"].items():
            lines.append(f"| {baseline_text(name, r)} | {mean_std(r)} |")
        lines += [
            f"| distilled: {p['n_steps']} learned steps on 100 synthetic images with learned "
            f"soft labels and lrs | **{mean_std(ev['distilled'])}** |",
            "",
            f"Distillation: {p.get('outer_steps')} outer steps, {p.get('seconds_per_step')} "
            "s/step.",
            "",
        ]
    if "attack" in cmds:
        ev = json.loads((runs / "attack" / "eval.json").read_text())
        a, p = ev["attack"], ev["protocol"]
        src, dst = a["attack_class"], a["target_class"]
        b, d = a["before"], a["distilled"]
        lines += [
            f"## MNIST attack: {src}s classified as {dst}s",
            "",
            f"On the {p['n_nets']} held-out nets (`{p['eval_nets']}`), MNIST test set, before "
            f"and after the {p['n_steps']} distilled steps (means over nets):",
            "",
            "| | before | after |",
            "| --- | --- | --- |",
            f"| fraction of {src}s predicted as {dst} | {pct(b['attacked'])} | "
            f"**{pct(d['attacked'])}** |",
            f"| accuracy on the other classes (not {src}) | {pct(b['acc_others'])} | "
            f"**{pct(d['acc_others'])}** |",
            f"| overall accuracy | {pct(b['acc'])} | {pct(d['acc'])} |",
            f"| accuracy w.r.t. the modified labels ({src} -> {dst}) | {pct(b['acc_modified'])} "
            f"| {pct(d['acc_modified'])} |",
        ]
        for c, (x, y) in enumerate(zip(b["per_class"], d["per_class"])):
            lines.append(f"| class {c} accuracy | {pct(x)} | {pct(y)} |")
        per_net = [m["attacked"] for m in d["per_net"]]
        lines += [
            "",
            f"Per held-out net, fraction of {src}s predicted as {dst} after the steps: "
            + ", ".join(pct(x) for x in per_net)
            + ".",
            "",
            f"Distillation: {p.get('outer_steps')} outer steps, {p.get('seconds_per_step')} "
            "s/step.",
            "",
        ]
    lines += ["## Commands", ""]
    for name, cmd in cmds.items():
        wall = f" ({walls[name]:.0f} s wall)" if walls.get(name) else ""
        lines += [f"{name}{wall}:", "", "```bash", shlex.join(cmd), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--train-pool", type=Path, required=True)
    p.add_argument("--test-pool", type=Path, required=True)
    p.add_argument("--runs", required=True, help="folder for the two run folders")
    p.add_argument("--table", type=Path, default=RESULTS / "pretrained.md")
    p.add_argument("--device", default="auto")
    p.add_argument("--only", choices=sorted(EXPERIMENTS), nargs="+", default=sorted(EXPERIMENTS))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--reuse", action="store_true", help="keep runs that have an eval.json")
    args = p.parse_args(argv)
    cmds, walls = {}, {}
    for name in args.only:
        try:
            cmds[name], walls[name] = run(args, name)
        except subprocess.CalledProcessError as e:
            print(f"pretrained.py: the {name} run failed (exit {e.returncode})", file=sys.stderr)
            return 1
    text = write_table(args, cmds, walls)
    args.table.parent.mkdir(parents=True, exist_ok=True)
    args.table.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
