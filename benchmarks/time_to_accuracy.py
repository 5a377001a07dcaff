"""Time to accuracy: seconds per outer step against the compute floor, and presets run to the end.

Two parts, both written to ``benchmarks/results/time_to_accuracy.md`` and ``.json``:

``--per-step`` (a few minutes, no data needed): CPU seconds per outer step of the real outer loop
(``distillation.distill`` on MNIST-shaped random 8-bit images, timed step by step through its
``progress`` callback) for the 10-image T = 3 fixed-init setting and the 100-image T = 30
random-init one, beside the compute floor measured in the same process, interleaved: one
forward+backward of LeNet on the real batch plus, per inner step, the least a hypergradient must
do there (the step's forward, its ``create_graph`` gradient, and one backward of that to the
weights and the synthetic tensors). The floor is given twice: the real batch at once (1,024
examples) and in chunks of 256 (what the loop does on a CPU, ``outer_chunk``).

``--runs DATA`` (long: minutes per run): each preset and seed run with the CLI as a user would,
from the command to ``eval.json``: wall time, the outer step and wall time at which the logged test
accuracy first reached the target, the final test accuracy of the set kept (held-out selection),
seconds and CPU seconds per outer step, peak RSS, threads, and the seconds after the loop. Before
the runs it times a speed probe (:func:`speed_probe`: one LeNet forward+backward of 1,024
MNIST-shaped images in chunks of 256, one thread, CPU seconds, median of a few) and writes it into
every row: the same machine kind runs some days at half the speed of others, so wall times of rows
from different days compare only through it.

    python benchmarks/time_to_accuracy.py --per-step
    python benchmarks/time_to_accuracy.py --runs DATA --presets mnist_lenet_fixed_10 --seeds 0 1 2 \
        --out-dir OUT_DIR

Timings depend on the machine and on what else runs: the table says how many threads and CPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import RESULTS, machine_line, write_table
from softdistill.results import read_eval  # torch-free

ROOT = Path(__file__).resolve().parent.parent
# (label, config overrides): the two settings of the per-step comparison
SETTINGS = [
    ("10 images, T = 3, fixed init", dict(n_batches=1, n_epochs=3, nets="fixed", init_lr=0.1)),
    ("100 images, T = 30, random init", dict(n_batches=10, n_epochs=3, nets="random")),
]
# preset -> the test accuracy a run should reach (the acceptance targets)
TARGETS = {
    "mnist_lenet_fixed_10": 0.96,
    "mnist_lenet_fixed_5": 0.92,
    "mnist_lenet_random_100": 0.81,
    "mnist_lenet_fixed_10_hard": 0.938,
}


# ----------------------------------------------------------------------------- per step
def per_step(batch: int, rounds: int, steps: int) -> list[dict]:
    import torch

    from softdistill.data import Dataset, Pixels, Split
    from softdistill.models import build

    g = torch.Generator().manual_seed(0)

    def pixels(n):
        raw = torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
        return Split(Pixels(raw, (0.1307,), (0.3081,)), torch.randint(0, 10, (n,), generator=g))

    data = Dataset("mnist-shaped", pixels(60000), pixels(1000), [str(c) for c in range(10)])
    model = build("lenet", (1, 28, 28), 10)
    return [
        _setting(label, changes, data, model, batch, rounds, steps, g)
        for label, changes in SETTINGS
    ]


def speed_probe(reps: int = 15) -> float:
    """CPU seconds of one LeNet forward+backward of 1,024 MNIST-shaped images in chunks of 256
    (the bulk of an outer step of the MNIST presets), one thread, median of ``reps``; taken
    before the runs start, so nothing of this benchmark's runs competes with it."""
    import torch
    import torch.nn.functional as F

    from softdistill.core import forward
    from softdistill.models import build, init_params

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        g = torch.Generator().manual_seed(0)
        model = build("lenet", (1, 28, 28), 10)
        params = {k: v.requires_grad_(True) for k, v in init_params(model, generator=g).items()}
        x = torch.randn(1024, 1, 28, 28, generator=g)
        y = torch.randint(0, 10, (1024,), generator=g)
        times = []
        for _ in range(reps):
            t = time.process_time()
            for a in range(0, 1024, 256):
                loss = F.cross_entropy(forward(model, params, x[a : a + 256]), y[a : a + 256])
                torch.autograd.grad(loss, tuple(params.values()))
            times.append(time.process_time() - t)
        return statistics.median(times)
    finally:
        torch.set_num_threads(threads)


def _setting(label, changes, data, model, batch, rounds, steps, g) -> dict:
    import torch
    import torch.nn.functional as F

    from softdistill.config import Config
    from softdistill.core import forward, soft_cross_entropy
    from softdistill.distillation import distill, make_synthetic
    from softdistill.models import init_params
    from softdistill.seeds import stream

    cfg = Config(
        dataset="mnist", arch="lenet", per_class=1, batch_size=batch, lr=0.01,
        outer_steps=steps, log_every=10**9, checkpoint_every=10**9, eval_every=0,
        baselines=[], **changes,
    ).validate()  # fmt: skip
    params0 = init_params(model, generator=g)
    syn = make_synthetic(cfg, data, stream(0, "syn"), device="cpu", dtype=torch.float32)
    x_real = data.train.x[torch.arange(batch)]
    y_real = data.train.y[:batch]

    def real(chunk):
        p = {k: v.detach().requires_grad_(True) for k, v in params0.items()}
        for a in range(0, batch, chunk):
            out = forward(model, p, x_real[a : a + chunk])
            loss = F.cross_entropy(out, y_real[a : a + chunk], reduction="sum") / batch
            torch.autograd.grad(loss, tuple(p.values()))

    def inner():
        leaves = [q for q in syn.parameters() if q.requires_grad]
        for t in range(syn.n_steps):
            p = {k: v.detach().requires_grad_(True) for k, v in params0.items()}
            x, y, eta = syn.step(t)
            inner_loss = soft_cross_entropy(forward(model, p, x), y)
            grads = torch.autograd.grad(inner_loss, tuple(p.values()), create_graph=True)
            s = -eta * sum((gk * gk.detach()).sum() for gk in grads)
            torch.autograd.grad(s, (*p.values(), *leaves), allow_unused=True)

    def cpu_of(fn, n=5):
        t = time.process_time()
        for _ in range(n):
            fn()
        return (time.process_time() - t) / n

    def loop(method):
        marks = []
        distill(
            cfg.replace(hypergrad=method),
            data,
            model,
            progress=lambda step, info: marks.append(time.process_time()),
        )
        return statistics.median(b - a for a, b in zip(marks, marks[1:]))

    cells: dict[str, list[float]] = {}
    for _ in range(rounds):  # interleaved, so drift on a shared machine hits every cell
        for name, fn in (
            ("real_whole", lambda: cpu_of(lambda: real(batch))),
            ("real_chunked", lambda: cpu_of(lambda: real(256))),
            ("inner", lambda: cpu_of(inner)),
            ("loop_auto", lambda: loop("auto")),
            ("loop_reverse", lambda: loop("reverse")),
        ):
            cells.setdefault(name, []).append(fn())
    med = {k: statistics.median(v) for k, v in cells.items()}
    floor_whole = med["real_whole"] + med["inner"]
    floor_chunked = med["real_chunked"] + med["inner"]
    row = {
        "setting": label,
        "batch": batch,
        "T": syn.n_steps,
        "floor_whole_s": floor_whole,
        "floor_chunked_s": floor_chunked,
        "inner_s": med["inner"],
        "loop_auto_s": med["loop_auto"],
        "loop_reverse_s": med["loop_reverse"],
        "auto_vs_floor_whole": med["loop_auto"] / floor_whole,
        "auto_vs_floor_chunked": med["loop_auto"] / floor_chunked,
        "reverse_vs_floor_whole": med["loop_reverse"] / floor_whole,
        "rounds": rounds,
        "steps_per_round": steps,
    }
    print(json.dumps(row), flush=True)
    return row


def per_step_table(rows: list[dict]) -> list[str]:
    lines = [
        "## CPU seconds per outer step against the compute floor",
        "",
        "Median CPU s per outer step of `distillation.distill` (the real loop: batch drawing, "
        "hypergradient, Adam), MNIST-shaped 8-bit random images, LeNet, one net per step; the "
        "floor is one LeNet forward+backward of the real batch plus, per inner step, its forward, "
        "`create_graph` gradient and one backward of that (measured in the same process, "
        "interleaved). `auto` is the default (`hypergrad: auto`, outer loss in chunks of 256); "
        "`reverse` takes the real batch in the same chunks.",
        "",
        "| setting | batch | T | floor, batch at once | floor, chunks of 256 | auto | auto / "
        "floor at once | auto / floor in chunks | reverse | reverse / floor at once |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['setting']} | {r['batch']} | {r['T']} | {r['floor_whole_s']:.3f} | "
            f"{r['floor_chunked_s']:.3f} | {r['loop_auto_s']:.3f} | "
            f"{r['auto_vs_floor_whole']:.2f} | {r['auto_vs_floor_chunked']:.2f} | "
            f"{r['loop_reverse_s']:.3f} | {r['reverse_vs_floor_whole']:.2f} |"
        )
    return lines


# ----------------------------------------------------------------------------- runs
def run_preset(
    preset: str, seed: int, data: str, out_dir: Path, extra: list[str], variant: str = ""
) -> dict:
    """One run of ``preset`` (with the flags ``extra``; a ``variant`` name labels its row)."""
    run = out_dir / f"{preset}{'-' + variant if variant else ''}_seed{seed}"
    cmd = [
        "softdistill", "distill", "--config", f"configs/{preset}.yaml", "--data-dir", "DATA",
        "--out", f"OUT_DIR/{run.name}", "--seed", str(seed), *extra,
    ]  # fmt: skip
    argv = [sys.executable, "-m", "softdistill", *cmd[1:]]
    argv[argv.index("DATA")] = data
    argv[argv.index(f"OUT_DIR/{run.name}")] = str(run)
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a chatty run cannot block
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # the child's own peak RSS and CPU time
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        wall = time.perf_counter() - t0
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{stderr[-3000:]}")
    ev = read_eval(run)
    info = json.loads((run / "run.json").read_text())
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    target = TARGETS.get(preset)
    first = next(
        (m for m in metrics if target is not None and m.get("test_acc", 0) >= target), None
    )
    steps = metrics[-1]["step"]
    loop_seconds = metrics[-1]["seconds"]
    # restarts: the starts not continued ran restart_steps steps each (in loop_seconds too)
    config = json.loads((run / "config.json").read_text())
    other = (config.get("restarts", 1) - 1) * config.get("restart_steps", 0)
    sel = ev.selected
    return {
        "preset": preset + (f" [{variant}]" if variant else ""),
        "seed": seed,
        "command": " ".join(cmd),
        "target": target,
        "final_acc": ev.distilled.mean,
        "final_std": ev.distilled.std,
        "selected_step": sel.step if sel else None,
        "selected_val_acc": sel.val_acc if sel else None,
        "stopped_early": sel.stopped_early if sel else None,
        "outer_steps": steps,
        "other_steps": other,
        "first_step_at_target": first["step"] if first else None,
        "first_seconds_at_target": first["seconds"] if first else None,
        "wall_s": wall,
        "loop_s": loop_seconds,
        "s_per_step": loop_seconds / max(1, steps + other),
        "cpu_s_per_step": (usage.ru_utime + usage.ru_stime) / max(1, steps + other),
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "threads": info.get("threads"),
        "after_loop_s": info.get("after_loop_seconds"),
    }


def runs_table(rows: list[dict]) -> list[str]:
    lines = [
        "## Presets run to the end (the CLI, from the command to eval.json)",
        "",
        "`final` is the test accuracy of the set kept (chosen on held-out training examples); "
        "`first at target` is the first logged evaluation whose test accuracy reached the target "
        "(outer step, seconds into the loop). CPU s per step include the evaluations and the "
        "work after the loop; `steps` are the kept set's, (+N) the other starts' of a "
        "`restarts` run, counted in the per-step times. `speed probe s`: CPU s of one LeNet "
        "forward+backward of 1,024 images in chunks of 256 at one thread, timed before the "
        "runs of that invocation (the machine's speed that day; rows without it are older): "
        "compare wall times of rows through it.",
        "",
        "| preset | seed | final | held out (step kept) | target | first at target (step, s) "
        "| steps | wall s | s/step | CPU s/step | peak RSS MB | threads | runs at once "
        "| after loop s | speed probe s |",
        "| --- " + "| ---: " * 14 + "|",
    ]
    for r in rows:
        first = (
            f"{r['first_step_at_target']}, {r['first_seconds_at_target']:.0f}"
            if r["first_step_at_target"]
            else "not reached"
        )
        target = f"{100 * r['target']:.1f}" if r["target"] else "-"
        probe = f"{r['speed_probe_s']:.3f}" if r.get("speed_probe_s") is not None else "-"
        steps = str(r["outer_steps"])
        if r.get("other_steps"):  # restarts: the starts not continued
            steps += f" (+{r['other_steps']})"
        held = (
            f"{100 * r['selected_val_acc']:.2f} ({r['selected_step']})"
            if r.get("selected_val_acc") is not None
            else "-"
        )
        lines.append(
            f"| {r['preset']} | {r['seed']} | {100 * r['final_acc']:.2f} | {held} | {target} | "
            f"{first} | "
            f"{steps} | {r['wall_s']:.0f} | {r['s_per_step']:.3f} | "
            f"{r['cpu_s_per_step']:.3f} | {r['peak_rss_mb']:.0f} | {r['threads']} | "
            f"{r.get('jobs_at_once', 1)} | {r['after_loop_s']:.1f} | {probe} |"
        )
    lines += ["", "Per preset, over its seeds:", ""]
    for preset in dict.fromkeys(r["preset"] for r in rows):
        rs = [r for r in rows if r["preset"] == preset]
        accs = [100 * r["final_acc"] for r in rs]
        lines.append(
            f"- `{preset}`: mean {statistics.fmean(accs):.2f}% over {len(rs)} seed(s) (lowest "
            f"{min(accs):.2f}%), wall {min(r['wall_s'] for r in rs):.0f}-"
            f"{max(r['wall_s'] for r in rs):.0f} s"
        )
    lines += ["", "Commands (`DATA`: the data folder, `OUT_DIR`: `--out-dir`):", ""]
    lines += [f"    {r['command']}" for r in rows]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per-step", action="store_true", help="the per-step floor comparison")
    ap.add_argument("--rounds", type=int, default=3, help="per-step: interleaved rounds")
    ap.add_argument("--steps", type=int, default=12, help="per-step: outer steps per round")
    ap.add_argument("--batch", type=int, default=1024, help="per-step: real examples per step")
    ap.add_argument("--runs", metavar="DATA", help="run the presets with data from DATA")
    ap.add_argument("--presets", nargs="+", default=["mnist_lenet_fixed_10"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--out-dir", default="runs/time_to_accuracy", help="run folders (OUT_DIR)")
    ap.add_argument(
        "--jobs", type=int, default=1, help="runs at once (each gets CPUs / jobs threads)"
    )
    ap.add_argument(
        "--beside",
        type=int,
        default=0,
        help="other CPU-bound processes running on the machine meanwhile (counted in the "
        "table's 'runs at once'; they do not change the thread count)",
    )
    ap.add_argument(
        "--variant",
        default="",
        help="a name for the --extra flags: its rows are 'PRESET [NAME]', beside the preset's",
    )
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more CLI flags")
    ap.add_argument("--out", default=str(RESULTS / "time_to_accuracy"))
    args = ap.parse_args()
    if not (args.per_step or args.runs):
        ap.error("give --per-step, --runs DATA, or both")
    if args.beside < 0:
        ap.error(f"--beside counts other processes: 0 or more, got {args.beside}")
    out = Path(args.out)
    previous = json.loads(Path(f"{out}.json").read_text()) if Path(f"{out}.json").exists() else {}
    result = {"machine": machine_line(), **previous}
    if args.per_step:
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        result["per_step"] = per_step(args.batch, args.rounds, args.steps)
        result["machine"] = machine_line()
    if args.runs:
        from concurrent.futures import ThreadPoolExecutor

        out_dir = Path(args.out_dir)
        done = {(r["preset"], r["seed"]): r for r in result.get("runs", [])}
        jobs = [(p, s) for p in args.presets for s in args.seeds]
        probe = speed_probe()
        print(f"speed probe: {probe:.3f} CPU s", flush=True)
        extra = list(args.extra)
        if args.jobs > 1 and "--threads" not in extra:  # share the CPUs between the runs
            extra += ["--threads", str(max(1, (os.cpu_count() or 1) // args.jobs))]

        def one(job):
            row = run_preset(*job, args.runs, out_dir, extra, args.variant)
            row["jobs_at_once"] = args.jobs + args.beside
            row["speed_probe_s"] = probe
            print(json.dumps(row), flush=True)
            return row

        with ThreadPoolExecutor(args.jobs) as pool:
            for row in pool.map(one, jobs):
                done[(row["preset"], row["seed"])] = row
        result["runs"] = list(done.values())
    lines = ["# Time to accuracy", ""]
    machine = result["machine"] + " for the per-step table; the preset runs: their threads column"
    lines += [machine + ".", ""]
    regen = "python benchmarks/time_to_accuracy.py --per-step"
    lines += [f"Regenerate: `{regen}` and `... --runs DATA --presets P --seeds S`.", ""]
    if result.get("per_step"):
        lines += per_step_table(result["per_step"]) + [""]
    if result.get("runs"):
        lines += runs_table(result["runs"])
    write_table(out, lines, result)


if __name__ == "__main__":
    main()
