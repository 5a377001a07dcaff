"""The README's "Speed and memory at scale" table, from the committed benchmark results.

Reads ``benchmarks/results/nets.json`` (nets_bench.py) and ``memory.json`` (memory_bench.py) and
writes ``benchmarks/results/scale_summary.md`` (pasted into the README).

    python benchmarks/scale_summary.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_common import RESULTS  # noqa: E402


def main() -> None:
    nets = json.loads((RESULTS / "nets.json").read_text())
    memory = json.loads((RESULTS / "memory.json").read_text())
    acc, sweep = memory["acceptance"], memory["sweep"]
    by = {(r["batch"], r["n_nets"]): r for r in nets}
    lines = [
        "| what (2-core x86 CPU, 1 thread, float32) | figure | target | command |",
        "| --- | --- | --- | --- |",
    ]
    for batch in sorted({r["batch"] for r in nets}, reverse=True):
        r = by.get((batch, 16))
        if r:
            ratio = r["loop"]["cpu_s"] / r["vmap"]["cpu_s"]
            lines.append(
                f"| 16 random-init LeNets (T = 30), real batch {batch}: loop / vmap time per "
                f"outer step | {r['loop']['cpu_s']:.2f} s / {r['vmap']['cpu_s']:.2f} s = "
                f"**{ratio:.2f}x** | >= 3x ({'met' if ratio >= 3 else 'not met'}) | "
                "`make bench-scale` (`benchmarks/nets_bench.py`) |"
            )
    r64 = by.get((64, 64)) or by.get((1024, 64))
    if r64:
        lines.append(
            f"| 64 LeNets, real batch {r64['batch']}: loop / vmap | "
            f"**{r64['loop']['cpu_s'] / r64['vmap']['cpu_s']:.2f}x** | | same |"
        )
    if acc:
        snap, peak = acc["snapshots"], acc["snapshots"]["peak_growth_mib"]
        lines.append(
            f"| ConvNet-3/128, CIFAR-shaped, {acc['per_class']} images/class "
            f"({10 * acc['per_class']} per step), T = {acc['T']}: peak memory of an outer step, "
            f"`reverse` with `keep_every: {acc['keep_every']}` | **{peak / 1024:.2f} GiB** "
            f"(measured; one outer step: {snap['cpu_seconds'] / 60:.0f} min of CPU) | "
            f"fits in 8 GiB ({'met' if peak < 8 * 1024 else 'not met'}) | "
            "`benchmarks/memory_bench.py` |"
        )
        small = ", ".join(
            f"{r['autograd']['peak_growth_mib'] / 1024:.1f} GiB at T = {r['T']}"
            for r in acc["autograd_small_T"]
        )
        lines.append(
            f"| same, full `autograd` | **~{acc['autograd_extrapolated_mib'] / 1024:.0f} GiB** "
            f"(extrapolated linearly from {small}) | reported | same |"
        )
    if sweep:
        last = sweep[-1]

        def gib(cell):
            mark = "~" if cell.get("extrapolated") else ""
            return f"{mark}{cell['peak_growth_mib'] / 1024:.2f} GiB"

        lines.append(
            f"| ConvNet-3/128, 10 images per step, T = {last['T']}: autograd / reverse / "
            f"reverse + `keep_every` / truncated (window 20) | {gib(last['autograd'])} / "
            f"{gib(last['reverse'])} / {gib(last['snapshots'])} / {gib(last['truncated'])} | | "
            "same (full table: `benchmarks/results/memory.md`) |"
        )
    lines.append(
        "| SIGKILL twice mid-run, `--resume`: synthetic set and metrics vs uninterrupted | "
        "bitwise equal | bitwise on CPU | `make test-slow` (`tests/test_resume_kill.py`) |"
    )
    out = RESULTS / "scale_summary.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
