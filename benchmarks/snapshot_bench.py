"""Cost of the report's x_syn snapshots next to an outer step, measured in one process.

For a MNIST-shaped LeNet set (10 batches x 100 images, T = 30) it times ``io.save_snapshot``
(the first 100 examples in float16, written atomically) and one outer step (reverse
hypergradient on a real batch of 512, one fixed net), then reports the fraction of outer-loop
time the snapshots take at the default interval (about 25 snapshots per run).

    python benchmarks/snapshot_bench.py            # writes benchmarks/results/snapshot.md

On a shared machine run it with OMP_NUM_THREADS=1 (single-threaded).
"""

from __future__ import annotations

import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from softdistill import io
from softdistill.core import SyntheticSet, forward
from softdistill.distillation import outer_grads
from softdistill.models import build, init_params

RESULTS = Path(__file__).parent / "results"


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main() -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    syn = SyntheticSet.create((1, 28, 28), 10, per_class=10, n_batches=10, n_epochs=3, generator=g)
    model = build("lenet", (1, 28, 28), 10)
    params0 = init_params(model, generator=g)
    x = torch.randn(512, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (512,), generator=g)

    def outer_step():
        outer_grads(model, [params0], syn, lambda p: F.cross_entropy(forward(model, p, x), y))

    with tempfile.TemporaryDirectory() as d:
        snap = timed(lambda: io.save_snapshot(d, 1, syn), 20)
        size = next(Path(d, io.SNAPSHOTS).glob("*.safetensors")).stat().st_size
    step = timed(outer_step, 3)
    rows = []
    for outer_steps in (100, 1000, 5000):
        every = max(1, outer_steps // 25)
        rows.append((outer_steps, every, snap / (every * step)))
    lines = [
        "# Snapshot cost (report animation)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, torch "
        f"{torch.__version__}, {torch.get_num_threads()} thread(s). Command: "
        "`python benchmarks/snapshot_bench.py`.",
        "",
        "MNIST-shaped LeNet set: 10 batches x 100 images, T = 30; outer step = reverse "
        "hypergradient on 512 real images, one net.",
        "",
        f"- one snapshot (100 examples, float16, {size / 1024:.0f} KiB): {1000 * snap:.2f} ms",
        f"- one outer step: {1000 * step:.0f} ms",
        "",
        "| outer_steps | snapshot every | snapshot time / outer-loop time |",
        "|---|---|---|",
        *[f"| {n} | {e} | {100 * r:.3f}% |" for n, e, r in rows],
        "",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "snapshot.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
