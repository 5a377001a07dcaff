"""Peak memory of one outer step vs the unroll length T, for every hypergradient mode.

ConvNet (depth 3, width 128) on CIFAR-shaped data (3x32x32, 10 classes), one synthetic batch
replayed T times (n_batches 1, n_epochs T), outer loss on ``--batch`` real examples. Modes:
``autograd`` (whole graph), ``reverse`` (all T+1 weight vectors), ``reverse`` with snapshots
every k = ceil(sqrt(T)) (exact, same gradients), ``truncated`` with a window of ``--window``
steps (approximate). Each cell is a fresh process; memory = peak RSS growth over the process's
RSS before the outer step. Cells whose predicted memory exceeds ``--max-gib`` are not run but
extrapolated (a least-squares line through the same mode's measured T; marked "~").

Two tables (measured in this order):
  acceptance   10 images per class (100 per step), T = 300: reverse with weight snapshots
               (keep_every = 18), measured; autograd measured at small T, extrapolated to 300
  sweep        10 images per step (1 per class), T = 10 ... 1000

    python benchmarks/memory_bench.py               # both (about an hour single-threaded)
    python benchmarks/memory_bench.py --only sweep
    python benchmarks/memory_bench.py --quick       # tiny settings, for a smoke run

Writes ``benchmarks/results/memory.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_common import (  # noqa: E402
    RESULTS,
    Clock,
    machine_line,
    peak_rss_bytes,
    rss_bytes,
    run_worker,
    write_table,
)

MODES = ("autograd", "reverse", "snapshots", "truncated")


def options(mode: str, T: int, window: int) -> dict:
    if mode == "snapshots":
        return {"method": "reverse", "keep_every": math.ceil(math.sqrt(T))}
    if mode == "truncated":
        return {"method": "truncated", "window": window}
    return {"method": mode}


def worker(arch_args, per_class, T, mode, window, batch) -> dict:
    import torch
    import torch.nn.functional as F

    from softdistill.core import SyntheticSet, forward, hypergradient
    from softdistill.models import build, init_params

    g = torch.Generator().manual_seed(0)
    model = build("convnet", (3, 32, 32), 10, **arch_args)
    params0 = init_params(model, generator=g)
    syn = SyntheticSet.create(
        (3, 32, 32), 10, per_class=per_class, n_batches=1, n_epochs=T, generator=g
    )
    x = torch.randn(batch, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)

    def outer_loss(p):
        return F.cross_entropy(forward(model, p, x), y)

    base = rss_bytes()
    with Clock() as c:
        res = hypergradient(model, params0, syn, outer_loss, **options(mode, T, window))
    n_params = sum(v.numel() for v in params0.values())
    return {
        "peak_growth_mib": (peak_rss_bytes() - base) / 2**20,
        "seconds": c.wall,
        "cpu_seconds": c.cpu,
        "params_mib": n_params * 4 / 2**20,
        "loss": res.loss.item(),
    }


def fit_line(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares ``a + b * T`` through ``(T, mib)`` points (b only, if one point)."""
    if len(points) == 1:
        T, m = points[0]
        return 0.0, m / T
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mm = sum(m for _, m in points) / n
    b = sum((t - mt) * (m - mm) for t, m in points) / sum((t - mt) ** 2 for t, _ in points)
    return mm - b * mt, b


def measure(label, arch_args, per_class, Ts, modes, window, batch, max_mib) -> list[dict]:
    rows = []
    measured: dict[str, list[tuple[int, float]]] = {m: [] for m in modes}
    for T in Ts:
        row = {"case": label, "T": T}
        for mode in modes:
            a, b = fit_line(measured[mode]) if measured[mode] else (0.0, 0.0)
            predicted = a + b * T
            if measured[mode] and predicted > max_mib:
                row[mode] = {"peak_growth_mib": predicted, "extrapolated": True}
            else:
                spec = [arch_args, per_class, T, mode, window, batch]
                row[mode] = run_worker(__file__, spec)
                measured[mode].append((T, row[mode]["peak_growth_mib"]))
            print(label, T, mode, row[mode], flush=True)
        rows.append(row)
    return rows


def cell(r: dict) -> str:
    if r.get("extrapolated"):
        return f"~{r['peak_growth_mib'] / 1024:.1f} GiB (extrapolated)"
    return f"{r['peak_growth_mib']:.0f} MiB ({r['seconds']:.0f} s)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=("sweep", "acceptance"))
    ap.add_argument("--window", type=int, default=20, help="truncated: differentiated steps")
    ap.add_argument("--batch", type=int, default=256, help="real examples in the outer loss")
    ap.add_argument("--max-gib", type=float, default=4.0, help="extrapolate beyond this")
    ap.add_argument("--out", help="default: benchmarks/results/memory (--quick: memory_quick)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(*json.loads(args.worker))))
        return
    args.out = args.out or str(RESULTS / ("memory_quick" if args.quick else "memory"))
    max_mib = args.max_gib * 1024
    if args.quick:
        arch, sweep_Ts, acc_per_class, acc_Ts, acc_T = {"width": 16}, [4, 8, 16], 2, [2, 4], 12
        window = 4
    else:
        arch, sweep_Ts, acc_per_class, acc_Ts, acc_T = (
            {},
            [10, 30, 100, 300, 1000],
            10,
            [2, 4, 8],
            300,
        )
        window = args.window
    name = f"ConvNet-3/{arch.get('width', 128)}"

    sweep, acceptance = [], {}
    if args.only in (None, "acceptance"):
        small = measure(
            "autograd at small T", arch, acc_per_class, acc_Ts, ("autograd",), window,
            args.batch, max_mib,
        )  # fmt: skip
        a, b = fit_line([(r["T"], r["autograd"]["peak_growth_mib"]) for r in small])
        snap = run_worker(__file__, [arch, acc_per_class, acc_T, "snapshots", window, args.batch])
        print("acceptance", acc_T, "snapshots", snap, flush=True)
        acceptance = {
            "per_class": acc_per_class,
            "T": acc_T,
            "keep_every": math.ceil(math.sqrt(acc_T)),
            "snapshots": snap,
            "autograd_small_T": small,
            "autograd_fit_mib": {"intercept": a, "per_step": b},
            "autograd_extrapolated_mib": a + b * acc_T,
        }
    if args.only in (None, "sweep"):
        sweep = measure(
            f"{name}, 10 images/step", arch, 1, sweep_Ts, MODES, window, args.batch, max_mib
        )

    params_mib = (sweep[0]["reverse"] if sweep else acceptance["snapshots"])["params_mib"]
    lines = [
        "# Peak memory of one outer step vs T",
        "",
        f"{machine_line()}; float32, CPU. {name} (params "
        f"{params_mib:.2f} MiB), "
        f"CIFAR-shaped, one synthetic batch replayed T times, outer loss on {args.batch} real "
        "examples, `x_syn`, labels and lrs all learned. Memory = peak RSS growth over the "
        "process's RSS before the step (fresh process per cell); seconds = that one step, wall. "
        f"`keep_every` = ceil(sqrt(T)) for the weight snapshots; truncated: `window` = {window}. "
        f"'~' cells: not run (predicted > {args.max_gib:g} GiB), extrapolated linearly from "
        "the measured T of the same mode.",
    ]
    if sweep:
        lines += [
            "",
            f"## Sweep: 10 images per step (1 per class), T = {sweep_Ts[0]} ... {sweep_Ts[-1]}",
            "",
            "| T | autograd | reverse | reverse, keep_every = ceil(sqrt T) (exact) "
            "| truncated (approx.) |",
            "| ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in sweep:
            lines.append(f"| {r['T']} | " + " | ".join(cell(r[m]) for m in MODES) + " |")
    if acceptance:
        s = acceptance
        fit = s["autograd_fit_mib"]
        small = ", ".join(
            f"T={r['T']}: {r['autograd']['peak_growth_mib']:.0f} MiB" for r in s["autograd_small_T"]
        )
        lines += [
            "",
            f"## Acceptance: {name}, {s['per_class']} images per class "
            f"({10 * s['per_class']} per step), T = {s['T']}",
            "",
            "| mode | peak memory | how |",
            "| --- | ---: | --- |",
            f"| reverse, keep_every = {s['keep_every']} (exact) | "
            f"{s['snapshots']['peak_growth_mib']:.0f} MiB "
            f"({s['snapshots']['peak_growth_mib'] / 1024:.2f} GiB) | measured, one outer step "
            f"in {s['snapshots']['seconds']:.0f} s |",
            f"| autograd | ~{s['autograd_extrapolated_mib'] / 1024:.1f} GiB | extrapolated: "
            f"{fit['intercept']:.0f} MiB + {fit['per_step']:.1f} MiB x T, fitted to {small} |",
        ]
    cmd = "python benchmarks/memory_bench.py" + (" --quick" if args.quick else "")
    lines += ["", f"Regenerate: `OMP_NUM_THREADS=1 {cmd}` (part of `make bench`)."]
    write_table(args.out, lines, {"sweep": sweep, "acceptance": acceptance})


if __name__ == "__main__":
    main()
