"""How much of the outer Adam's step is signal: its moments in a run's checkpoint.

For each learned tensor of the synthetic set (pixels or embeddings, label parameters, inner lrs),
the quantiles over its entries of |m| / sqrt(v), Adam's first moment over the square root of its
second (bias corrections cancel at the step counts of a finished run up to ``1 - beta1 ** t``).
An entry whose hypergradient keeps its sign scores near 1; one whose hypergradient is zero-mean
noise scores ``|N(0, 1)| * sqrt((1 - beta1) / (1 + beta1))``: a median of ~0.39 at the original
beta1 0.5 (and ~0.15 at 0.9). The reference value is printed beside the quantiles.

    python benchmarks/adam_state.py RUN_DIR [RUN_DIR ...] [--out benchmarks/results/adam_state]

Reads ``RUN_DIR/checkpoints/last.pt`` (written every ``checkpoint_every`` steps and at the end).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from bench_common import RESULTS, write_table

QUANTILES = (0.1, 0.5, 0.9)


def noise_median(beta1: float) -> float:
    """Median of |m| / sqrt(v) for zero-mean Gaussian gradients at ``beta1`` (long runs)."""
    return 0.6745 * math.sqrt((1 - beta1) / (1 + beta1))


def moments(run: Path) -> dict:
    import torch

    ckpt = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    shapes = {
        tuple(v.shape): k for k, v in ckpt["syn"].items() if k != "classes" and hasattr(v, "shape")
    }
    opt = ckpt["opt"]
    beta1 = opt["param_groups"][0]["betas"][0]
    rows = []
    for group in opt["param_groups"]:
        for index in group["params"]:
            st = opt["state"].get(index)
            if not st:
                continue
            m, v = st["exp_avg"], st["exp_avg_sq"]
            ratio = (m.abs() / v.sqrt().clamp_min(1e-30)).flatten().double()
            q = torch.quantile(ratio, torch.tensor(QUANTILES, dtype=torch.double)).tolist()
            rows.append(
                {
                    "tensor": shapes.get(tuple(m.shape), f"#{index}"),
                    "entries": m.numel(),
                    "quantiles": q,
                    "lr": group["lr"],
                }
            )
    return {"run": run.name, "step": ckpt["step"], "beta1": beta1, "tensors": rows}


def table(results: list[dict]) -> list[str]:
    lines = [
        "# The outer Adam's moments at a run's last checkpoint",
        "",
        "|m| / sqrt(v) per entry of each learned tensor: near 1 where the hypergradient keeps its "
        "sign, about the `noise` column where it is zero-mean noise (the median for Gaussian "
        "gradients at the run's beta1).",
        "",
        "Regenerate: `python benchmarks/adam_state.py RUN_DIR [RUN_DIR ...]`.",
        "",
        "| run | step | outer lr | beta1 | tensor | entries | 10% | median | 90% | noise |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        for t in r["tensors"]:
            q = " | ".join(f"{x:.2f}" for x in t["quantiles"])
            lines.append(
                f"| {r['run']} | {r['step']} | {t['lr']:.2g} | {r['beta1']:g} | {t['tensor']} | "
                f"{t['entries']} | {q} | {noise_median(r['beta1']):.2f} |"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run folders (with checkpoints/last.pt)")
    ap.add_argument("--out", default=str(RESULTS / "adam_state"))
    args = ap.parse_args(argv)
    missing = [str(r) for r in args.runs if not (r / "checkpoints" / "last.pt").exists()]
    if missing:
        ap.error(f"no checkpoints/last.pt in {', '.join(missing)}")
    results = [moments(r) for r in args.runs]
    write_table(args.out, table(results), results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
