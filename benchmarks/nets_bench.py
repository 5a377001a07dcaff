"""Outer steps per second vs number of inner nets: a Python loop over the nets vs vmap.

Random-init LeNets on MNIST-shaped data with the original paper's synthetic set (10 batches of
1 image per class, 3 epochs: T = 30), the outer loss on ``--batch`` real examples. One outer
step = ``outer_grads`` (every net's hypergradient, averaged) + the Adam step. Each (n_nets, mode)
cell runs in a fresh process: one warm-up step, then the mean of ``--repeats`` steps. Loop and
vmap of one n_nets run back to back, so compare them by their ratio.

    python benchmarks/nets_bench.py            # n_nets 1, 4, 16, 64 (about 10 min, 1 thread)
    python benchmarks/nets_bench.py --quick    # n_nets 1, 4; T = 6

Writes ``benchmarks/results/nets.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_common import RESULTS, Clock, machine_line, run_worker, write_table  # noqa: E402


def worker(n_nets, batched, n_batches, n_epochs, batch, repeats) -> dict:
    import torch
    import torch.nn.functional as F

    from softdistill.core import SyntheticSet, forward
    from softdistill.distillation import outer_grads
    from softdistill.models import build, init_params

    g = torch.Generator().manual_seed(0)
    model = build("lenet", (1, 28, 28), 10)
    syn = SyntheticSet.create(
        (1, 28, 28), 10, per_class=1, n_batches=n_batches, n_epochs=n_epochs, generator=g
    )
    opt = torch.optim.Adam([p for p in syn.parameters() if p.requires_grad], lr=1e-3)
    x = torch.randn(batch, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)

    def outer_loss(p):
        return F.cross_entropy(forward(model, p, x), y)

    walls, cpus = [], []
    for i in range(repeats + 1):
        nets = [init_params(model, generator=g) for _ in range(n_nets)]  # random inits
        with Clock() as c:
            _, grads = outer_grads(model, nets, syn, outer_loss, batched=batched)
            for p, gr in zip(syn.parameters(), grads):
                p.grad = gr
            opt.step()
        if i:  # the first step is warm-up
            walls.append(c.wall)
            cpus.append(c.cpu)
    return {"wall_s": sum(walls) / len(walls), "cpu_s": sum(cpus) / len(cpus)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--n-nets", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--batch", type=int, nargs="+", default=[1024, 64], help="real batch sizes")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", help="default: benchmarks/results/nets (--quick: nets_quick)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(*json.loads(args.worker))))
        return
    args.out = args.out or str(RESULTS / ("nets_quick" if args.quick else "nets"))
    n_batches, n_epochs = (2, 3) if args.quick else (10, 3)
    n_nets_list = [1, 4] if args.quick else args.n_nets
    batches = [64] if args.quick else args.batch
    repeats = 1 if args.quick else args.repeats

    rows = []
    for batch in batches:
        for n in n_nets_list:
            row = {"batch": batch, "n_nets": n}
            for mode in ("loop", "vmap"):
                spec = [n, mode == "vmap", n_batches, n_epochs, batch, repeats]
                row[mode] = run_worker(__file__, spec)
                print(batch, n, mode, row[mode], flush=True)
            rows.append(row)

    T = n_batches * n_epochs
    lines = [
        "# Many nets per outer step: loop vs vmap (`batched_nets: true`)",
        "",
        f"{machine_line()}; float32, CPU. Random-init LeNets, MNIST-shaped, {n_batches} "
        f"batches x 1 image/class x {n_epochs} epochs (T = {T}), `reverse` hypergradient. "
        f"Seconds per outer step (outer_grads + Adam): mean of {repeats} after a warm-up, one "
        "fresh process per cell; CPU = process CPU time (steadier than wall time on a shared "
        "machine). Speedup = loop / vmap.",
        "",
        "| real batch | n_nets | loop s/step (CPU) | vmap s/step (CPU) | speedup (CPU) "
        "| loop s/step (wall) | vmap s/step (wall) | speedup (wall) | vmap outer steps/s |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lo, vm = r["loop"], r["vmap"]
        lines.append(
            f"| {r['batch']} | {r['n_nets']} | {lo['cpu_s']:.3f} | {vm['cpu_s']:.3f} | "
            f"{lo['cpu_s'] / vm['cpu_s']:.2f}x | {lo['wall_s']:.3f} | {vm['wall_s']:.3f} | "
            f"{lo['wall_s'] / vm['wall_s']:.2f}x | {1 / vm['wall_s']:.2f} |"
        )
    cmd = "python benchmarks/nets_bench.py" + (" --quick" if args.quick else "")
    lines += ["", f"Regenerate: `OMP_NUM_THREADS=1 {cmd}` (part of `make bench`)."]
    write_table(args.out, lines, rows)


if __name__ == "__main__":
    main()
