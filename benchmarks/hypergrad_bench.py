"""Seconds per outer step and peak memory of the hypergradient methods, measured in one run.

Every (network, T, method) cell runs in a fresh subprocess, so peak memory is that process's
peak resident set size minus its resident size just before the first outer step ("growth over
the process's baseline"). Time is the mean of ``--repeats`` outer steps after one warm-up step.

    python benchmarks/hypergrad_bench.py                   # full table (a few minutes on 2 cores)
    python benchmarks/hypergrad_bench.py --quick           # small T, for a smoke run

Writes ``benchmarks/results/hypergrad.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

# (label, arch, sample_shape, arch_args, per_class, list of T)
CASES = [
    ("LeNet, MNIST-shaped, 100 images/step", "lenet", (1, 28, 28), {}, 10, [3, 30, 100]),
    ("ConvNet-3/128, CIFAR-shaped, 10 images/step", "convnet", (3, 32, 32), {}, 1, [10, 50]),
]
QUICK = [
    ("LeNet, MNIST-shaped, 100 images/step", "lenet", (1, 28, 28), {}, 10, [3, 10]),
    ("ConvNet-3/32, CIFAR-shaped, 10 images/step", "convnet", (3, 32, 32), {"width": 32}, 1, [3]),
]


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def worker(arch, shape, arch_args, per_class, T, method, repeats, batch) -> dict:
    import torch
    import torch.nn.functional as F

    from softdistill.core import SyntheticSet, forward, hypergradient
    from softdistill.models import build, init_params

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = build(arch, shape, 10, **arch_args)
    params0 = init_params(model, generator=g)
    syn = SyntheticSet.create(shape, 10, per_class=per_class, n_batches=T, n_epochs=1, generator=g)
    x = torch.randn(batch, *shape, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)

    def outer_loss(p):
        return F.cross_entropy(forward(model, p, x), y)

    base = rss_bytes()
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        res = hypergradient(model, params0, syn, outer_loss, method=method)
        for p, gr in zip(syn.parameters(), res.grads):
            p.grad = gr
        if i:  # the first step is warm-up
            times.append(time.perf_counter() - t0)
        del res
    return {
        "seconds_per_step": sum(times) / len(times),
        "peak_growth_mib": (peak_rss_bytes() - base) / 2**20,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256, help="real examples in the outer loss")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(RESULTS / "hypergrad"))
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(*json.loads(args.worker))))
        return

    rows = []
    for label, arch, shape, arch_args, per_class, Ts in QUICK if args.quick else CASES:
        for T in Ts:
            row = {"case": label, "T": T}
            for method in ("autograd", "reverse"):
                spec = json.dumps(
                    [arch, shape, arch_args, per_class, T, method, args.repeats, args.batch]
                )
                out = subprocess.run(
                    [sys.executable, __file__, "--worker", spec],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                row[method] = json.loads(out.stdout.strip().splitlines()[-1])
                print(label, T, method, row[method], flush=True)
            rows.append(row)

    import torch

    lines = [
        "# Hypergradient cost: `reverse` vs `autograd`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), float32, CPU. "
        f"Outer loss on {args.batch} real examples; mean of {args.repeats} outer steps after a "
        "warm-up; memory = peak RSS growth over the process's RSS before the first step "
        "(one fresh process per cell).",
        "",
        "| case | T | autograd s/step | reverse s/step | time ratio (rev/auto) "
        "| autograd peak MiB | reverse peak MiB | memory ratio (rev/auto) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        a, v = r["autograd"], r["reverse"]
        lines.append(
            f"| {r['case']} | {r['T']} | {a['seconds_per_step']:.3f} | "
            f"{v['seconds_per_step']:.3f} | {v['seconds_per_step'] / a['seconds_per_step']:.2f} | "
            f"{a['peak_growth_mib']:.0f} | {v['peak_growth_mib']:.0f} | "
            f"{v['peak_growth_mib'] / max(a['peak_growth_mib'], 1e-9):.2f} |"
        )
    lines += ["", "Regenerate: `make bench` (or `python benchmarks/hypergrad_bench.py`)."]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    Path(args.out + ".json").write_text(json.dumps(rows, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
