"""Shared by the speed-and-memory benchmarks: fresh worker processes, memory and time probes.

Every measured cell runs in its own subprocess (``python SCRIPT --worker JSON``), so peak memory
is that process's own: peak resident set size minus the resident size just before the measured
work ("growth over the process's baseline").
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


class Clock:
    """Wall and process CPU seconds of a block (CPU time is steadier on a shared machine)."""

    def __enter__(self) -> Clock:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0


def run_worker(script: str, spec: object, timeout: float | None = None) -> dict:
    """Run ``script --worker JSON(spec)`` in a fresh process; its last stdout line is JSON."""
    out = subprocess.run(
        [sys.executable, script, "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if out.returncode != 0:
        raise RuntimeError(f"worker {spec} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def public_argv(argv: list[str], data_dir: str | None) -> list[str]:
    """``argv`` as a table cites it: the data folder given as ``DATA``, not a local path."""
    return ["DATA" if data_dir is not None and a == data_dir else a for a in argv]


def machine_line() -> str:
    import torch

    threads = os.environ.get("OMP_NUM_THREADS", str(torch.get_num_threads()))
    return (
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, {threads} thread(s) per process"
        + (" (OMP_NUM_THREADS=1)" if threads == "1" else "")
    )


def write_table(out: str | Path, lines: list[str], rows: object) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{out}.md").write_text("\n".join(lines) + "\n")
    Path(f"{out}.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("\n".join(lines), flush=True)
