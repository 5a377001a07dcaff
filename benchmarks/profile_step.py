"""Profile one outer step with torch.profiler: where the time goes, loop vs vmap.

16 random-init LeNets, MNIST-shaped, the paper's synthetic set (T = 30), ``--batch`` real
examples in the outer loss. Writes the top operators by self CPU time of each mode, and the
number of operator calls (per-call overhead is what vmap removes), to
``benchmarks/results/profile.md``; ``--trace DIR`` also saves Chrome traces.

    python benchmarks/profile_step.py [--n-nets 16] [--batch 1024] [--trace TRACE_DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).parent))
from bench_common import RESULTS, Clock, machine_line  # noqa: E402
from softdistill.core import SyntheticSet, forward  # noqa: E402
from softdistill.distillation import outer_grads  # noqa: E402
from softdistill.models import build, init_params  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-nets", type=int, default=16)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--n-batches", type=int, default=10)
    ap.add_argument("--n-epochs", type=int, default=3)
    ap.add_argument("--rows", type=int, default=15)
    ap.add_argument("--trace", help="folder for Chrome traces (optional)")
    ap.add_argument(
        "--channels-last",
        action="store_true",
        help="x_syn, the real batch and the conv weights in channels-last memory format",
    )
    ap.add_argument("--out", default=str(RESULTS / "profile.md"))
    args = ap.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator().manual_seed(0)
    model = build("lenet", (1, 28, 28), 10).to(device)
    nets = [init_params(model, generator=g, device=device) for _ in range(args.n_nets)]
    syn = SyntheticSet.create(
        (1, 28, 28),
        10,
        per_class=1,
        n_batches=args.n_batches,
        n_epochs=args.n_epochs,
        generator=g,
    ).to(device)
    x = torch.randn(args.batch, 1, 28, 28, generator=g).to(device)
    if args.channels_last:
        cl = torch.channels_last
        x = x.contiguous(memory_format=cl)
        nets = [{k: v.contiguous(memory_format=cl) if v.dim() == 4 else v for k, v in p.items()}
                for p in nets]  # fmt: skip
        with torch.no_grad():  # (n_batches, per_batch, C, H, W): every batch channels-last
            syn.x_syn.data = syn.x_syn.data.permute(0, 1, 3, 4, 2).contiguous()
            syn.x_syn.data = syn.x_syn.data.permute(0, 1, 4, 2, 3)
    y = torch.randint(0, 10, (args.batch,), generator=g).to(device)

    def outer_loss(p):
        return F.cross_entropy(forward(model, p, x), y)

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    T = args.n_batches * args.n_epochs
    lines = [
        "# Profile of one outer step",
        "",
        f"{machine_line()}; {device}. {args.n_nets} random-init LeNets, MNIST-shaped, T = {T} "
        f"(1 image/class/step), outer loss on {args.batch} real examples, `reverse`"
        + (", channels-last." if args.channels_last else "."),
        "",
        f"Regenerate: `python benchmarks/profile_step.py --n-nets {args.n_nets} "
        f"--batch {args.batch}{' --channels-last' if args.channels_last else ''}`.",
    ]
    for mode in ("loop", "vmap"):
        batched = mode == "vmap"
        outer_grads(model, nets, syn, outer_loss, batched=batched)  # warm-up
        with Clock() as c:
            outer_grads(model, nets, syn, outer_loss, batched=batched)
        with profile(activities=activities) as prof:
            outer_grads(model, nets, syn, outer_loss, batched=batched)
        if args.trace:
            Path(args.trace).mkdir(parents=True, exist_ok=True)
            prof.export_chrome_trace(str(Path(args.trace) / f"{mode}.json"))
        events = prof.key_averages()
        n_calls = sum(e.count for e in events if e.key.startswith("aten::"))
        sort = "self_cuda_time_total" if device == "cuda" else "self_cpu_time_total"
        table = events.table(sort_by=sort, row_limit=args.rows, max_name_column_width=45)
        lines += [
            "",
            f"## {mode}: {c.wall:.3f} s wall, {c.cpu:.3f} s CPU per outer step (unprofiled); "
            f"{n_calls} aten operator calls",
            "",
            "```",
            table.strip(),
            "```",
        ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
