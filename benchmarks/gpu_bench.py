"""GPU benchmark of the speed-and-memory features, in one self-contained run (< 3 min on an H100).

    python benchmarks/gpu_bench.py OUT_DIR            # on a CUDA machine (make gpu-bench OUT=...)
    python benchmarks/gpu_bench.py OUT_DIR --tiny     # tiny settings, any device (CPU smoke test)

Needs only torch (the package is imported from ../src). Writes OUT_DIR/gpu_bench.md (complete
markdown tables, also printed) and OUT_DIR/gpu_bench.json. Sections, each skipped (and said so)
if the time budget ``--budget`` seconds is spent:

  A  outer step time vs number of random-init LeNets (T = 30, real batch 1024): loop vs vmap,
     with the relative difference of their gradients
  B  precision and layout: ConvNet-3/128, CIFAR-shaped, 100 images/step, T = 30: float32 vs
     bf16 autocast (float32 master copies), contiguous vs channels-last, time, peak memory and
     gradient agreement with float32
  C  peak memory vs T (ConvNet-3/128, 100 images/step): autograd, reverse, reverse with
     snapshots every ceil(sqrt(T)), truncated (window 20); autograd extrapolated where it does
     not fit; the acceptance case T = 300
  D  torch.compile of the detached forward sweep (the part of `reverse` without double backward)
  E  host syncs in the hot loop: one outer step of every mode under
     torch.cuda.set_sync_debug_mode("error") (first, before the other sections)
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from softdistill.core import (
    SyntheticSet,
    batched_hypergradient,
    forward,
    hypergradient,
    unroll,
)
from softdistill.models import build, init_params


class Bench:
    def __init__(self, device: torch.device, budget: float) -> None:
        self.device, self.budget, self.t0 = device, budget, time.perf_counter()
        self.cuda = device.type == "cuda"

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.t0)

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def run(self, fn):
        """``(result, seconds, peak MiB over the memory allocated before)``."""
        self.sync()
        base = 0
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        t = time.perf_counter()
        out = fn()
        self.sync()
        seconds = time.perf_counter() - t
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if self.cuda else math.nan
        return out, seconds, peak


def task(bench, arch, shape, arch_args, per_class, T, batch, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    model = build(arch, shape, 10, **arch_args).to(bench.device, dtype)
    syn = SyntheticSet.create(
        shape, 10, per_class=per_class, n_batches=1, n_epochs=T, generator=g, dtype=dtype
    ).to(bench.device)
    x = torch.randn(batch, *shape, generator=g, dtype=dtype).to(bench.device)
    y = torch.randint(0, 10, (batch,), generator=g).to(bench.device)

    def outer_loss(p):
        return F.cross_entropy(forward(model, p, x), y)

    outer_loss.x, outer_loss.y = x, y
    return model, syn, outer_loss, g


def rel(a, b) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-30)).item()


def cosine(grads_a, grads_b) -> float:
    a = torch.cat([g.float().flatten() for g in grads_a])
    b = torch.cat([g.float().flatten() for g in grads_b])
    return F.cosine_similarity(a, b, dim=0).item()


# --------------------------------------------------------------------------- A: loop vs vmap
def section_a(bench, s, lines, data):
    lines += [
        "## A. Outer step vs number of nets: loop vs vmap (`batched_nets`)",
        "",
        f"Random-init LeNets, MNIST-shaped, {s['a_batches']} batches x 1 image/class x 3 epochs "
        f"(T = {3 * s['a_batches']}), real batch {s['a_real']}, float32, `reverse`. Seconds per "
        "outer step (hypergradients of all nets + Adam), mean of 2 after a warm-up. Gradient "
        "difference: ||vmap - loop|| / ||loop|| of the x_syn gradient (float32; ReLU/max-pool "
        "nets can flip an activation under rounding, so this is not always ~1e-6).",
        "",
        "| n_nets | loop s/step | vmap s/step | speedup | vmap outer steps/s | grad diff |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    g = torch.Generator().manual_seed(0)
    model = build("lenet", (1, 28, 28), 10).to(bench.device)
    syn = SyntheticSet.create(
        (1, 28, 28), 10, per_class=1, n_batches=s["a_batches"], n_epochs=3, generator=g
    ).to(bench.device)
    opt = torch.optim.Adam([p for p in syn.parameters() if p.requires_grad], lr=1e-4)
    x = torch.randn(s["a_real"], 1, 28, 28, generator=g).to(bench.device)
    y = torch.randint(0, 10, (s["a_real"],), generator=g).to(bench.device)

    def outer_loss(p):
        return F.cross_entropy(forward(model, p, x), y)

    def step(nets, batched, update=True):
        if batched:
            grads = batched_hypergradient(model, nets, syn, outer_loss).grads
        else:
            per = [hypergradient(model, p, syn, outer_loss).grads for p in nets]
            grads = [torch.stack(gs).mean(0) for gs in zip(*per)]
        if update:
            for p, gr in zip(syn.parameters(), grads):
                p.grad = gr
            opt.step()
        return grads

    for n in s["a_nets"]:
        if bench.left() < 20:
            lines.append(f"| {n} | not run (time budget) | | | | |")
            continue
        nets = [init_params(model, generator=g, device=bench.device) for _ in range(n)]
        row = {"n_nets": n}
        # warm-up, and the two gradients at the same synthetic set
        warm, grads = {}, {}
        for mode in ("loop", "vmap"):
            grads[mode], warm[mode], _ = bench.run(lambda b=mode == "vmap", n=nets: step(n, b, 0))
        row["grad_diff"] = rel(grads["vmap"][0], grads["loop"][0])
        for mode in ("loop", "vmap"):
            repeats = 2 if warm[mode] * 3 < bench.left() - 10 else 0
            times = [
                bench.run(lambda b=mode == "vmap", n=nets: step(n, b))[1] for _ in range(repeats)
            ]
            row[mode] = sum(times) / len(times) if times else warm[mode]
            row[f"{mode}_warmup_only"] = not times
        data["A"].append(row)
        star = " (warm-up only)" if row["loop_warmup_only"] or row["vmap_warmup_only"] else ""
        lines.append(
            f"| {n} | {row['loop']:.4f} | {row['vmap']:.4f}{star} | "
            f"{row['loop'] / row['vmap']:.2f}x | {1 / row['vmap']:.2f} | {row['grad_diff']:.1e} |"
        )


# --------------------------------------------------------------------------- B: bf16, layout
def section_b(bench, s, lines, data):
    T, pc = s["b_T"], s["per_class"]
    lines += [
        "",
        "## B. Precision and memory layout",
        "",
        f"ConvNet-3/{s['width']}, CIFAR-shaped, {10 * pc} images/step, T = {T}, 1 net, "
        f"real batch {s['real']}, `reverse`. bf16 = `torch.autocast(bfloat16)` around the "
        "hypergradient (`amp: bf16`): weights, synthetic set and gradients stay float32. "
        "channels-last = x_syn, real batch and conv weights in channels-last memory format. "
        "Cosine = cosine similarity of all hypergradients with float32/contiguous. "
        f"TF32 for convolutions: {torch.backends.cudnn.allow_tf32 if bench.cuda else 'n/a'}.",
        "",
        "| precision | layout | s/step | peak MiB | cosine vs float32 |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    model, syn, outer_loss, g = task(
        bench, "convnet", (3, 32, 32), {"width": s["width"]}, pc, T, s["real"]
    )
    x_real, y_real = outer_loss.x, outer_loss.y
    params0 = init_params(model, generator=g, device=bench.device)
    ref = None
    for amp in (False, True):
        for channels_last in (False, True):
            if bench.left() < 15:
                lines.append(
                    f"| {'bf16' if amp else 'float32'} | ... | not run (time budget) | | |"
                )
                continue
            p0, loss_fn = params0, outer_loss
            if channels_last:
                cl = torch.channels_last
                p0 = {
                    k: v.contiguous(memory_format=cl) if v.dim() == 4 else v for k, v in p0.items()
                }
                x_cl = x_real.contiguous(memory_format=cl)

                def loss_fn(p, x_cl=x_cl):
                    return F.cross_entropy(forward(model, p, x_cl), y_real)

                with torch.no_grad():  # (n_batches, per_batch, C, H, W): each batch channels-last
                    syn.x_syn.data = syn.x_syn.data.permute(0, 1, 3, 4, 2).contiguous()
                    syn.x_syn.data = syn.x_syn.data.permute(0, 1, 4, 2, 3)

            def go(p0=p0, amp=amp, loss_fn=loss_fn):
                with torch.autocast(bench.device.type, torch.bfloat16, enabled=amp):
                    return hypergradient(model, p0, syn, loss_fn).grads

            go()  # warm-up
            grads, seconds, peak = bench.run(go)
            with torch.no_grad():
                syn.x_syn.data = syn.x_syn.data.contiguous()
            ref = grads if ref is None else ref
            row = {
                "amp": amp,
                "channels_last": channels_last,
                "seconds": seconds,
                "peak_mib": peak,
                "cosine": cosine(grads, ref),
            }
            data["B"].append(row)
            lines.append(
                f"| {'bf16 autocast' if amp else 'float32'} | "
                f"{'channels-last' if channels_last else 'contiguous'} | {seconds:.3f} | "
                f"{_mib(peak)} | {row['cosine']:.5f} |"
            )


# --------------------------------------------------------------------------- C: memory vs T
def section_c(bench, s, lines, data):
    pc, window = s["per_class"], s["window"]
    lines += [
        "",
        "## C. Peak memory vs T",
        "",
        f"ConvNet-3/{s['width']}, CIFAR-shaped, {10 * pc} images/step (one synthetic batch "
        f"replayed T times), 1 net, real batch {s['real']}, float32. Peak = "
        "torch.cuda.max_memory_allocated over the allocation before the step; time = that one "
        f"outer step. keep_every = ceil(sqrt(T)); truncated: window {window}. '~': "
        "extrapolated linearly from the measured T of the same mode (did not fit or was not run).",
        "",
        "| T | autograd | reverse | reverse, keep_every = ceil(sqrt T) (exact) "
        "| truncated (approx.) |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    modes = {
        "autograd": {"method": "autograd"},
        "reverse": {"method": "reverse"},
        "snapshots": None,
        "truncated": {"method": "truncated", "window": window},
    }
    fits: dict[str, list[tuple[int, float]]] = {m: [] for m in modes}
    for T in s["c_Ts"]:
        model, syn, outer_loss, g = task(
            bench, "convnet", (3, 32, 32), {"width": s["width"]}, pc, T, s["real"]
        )
        params0 = init_params(model, generator=g, device=bench.device)
        row, cells = {"T": T}, []
        for mode, opts in modes.items():
            opts = opts or {"method": "reverse", "keep_every": math.ceil(math.sqrt(T))}
            skip = mode == "autograd" and s["c_autograd_max_T"] < T
            if skip or bench.left() < 10:
                row[mode] = None
            else:
                try:
                    _, seconds, peak = bench.run(
                        lambda o=opts, m=model, p=params0, sy=syn, L=outer_loss: hypergradient(
                            m, p, sy, L, **o
                        )
                    )
                    row[mode] = {"peak_mib": peak, "seconds": seconds}
                    fits[mode].append((T, peak))
                except torch.cuda.OutOfMemoryError:
                    row[mode] = {"oom": True}
                    torch.cuda.empty_cache()
            cells.append(_cell(row[mode], fits[mode], T))
        data["C"].append(row)
        lines.append(f"| {T} | " + " | ".join(cells) + " |")
    # the acceptance case (T = 300 with snapshots must fit in 8 GiB; autograd extrapolated)
    pts = fits["autograd"]
    if len(pts) >= 2 and bench.cuda:
        a, b = _fit(pts)
        data["C_autograd_fit"] = {"intercept_mib": a, "per_step_mib": b}
        lines += ["", f"autograd fit: {a:.0f} MiB + {b:.1f} MiB x T."]
    snap300 = [r["snapshots"] for r in data["C"] if r["T"] == 300 and r.get("snapshots")]
    if snap300 and bench.cuda:
        peak = snap300[0]["peak_mib"]
        lines.append(
            f"Acceptance (T = 300, reverse with keep_every = 18): {peak / 1024:.2f} GiB, "
            f"{'within' if peak < 8 * 1024 else 'OVER'} 8 GiB."
        )


def _fit(points):
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mm = sum(m for _, m in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    b = sum((t - mt) * (m - mm) for t, m in points) / den if den else mm / mt
    return mm - b * mt, b


def _mib(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.0f}"


def _cell(r, points, T):
    if r and not r.get("oom"):
        return f"{_mib(r['peak_mib'])} MiB ({r['seconds']:.2f} s)"
    if len(points) >= 2 and not math.isnan(points[0][1]):
        a, b = _fit(points)
        return f"~{(a + b * T) / 1024:.1f} GiB" + (" (OOM)" if r else "")
    return "OOM" if r else "not run"


# --------------------------------------------------------------------------- E: host syncs
def section_e(bench, s, lines, data):
    lines += [
        "",
        "## E. Host syncs in the hot loop",
        "",
        "One hypergradient (LeNet, T = 6, 4 nets) of each mode under "
        "`torch.cuda.set_sync_debug_mode('error')`, which raises at the first operation that "
        "makes the host wait for the GPU. Weights and data are created before.",
        "",
        "| mode | host syncs |",
        "| --- | --- |",
    ]
    if not bench.cuda:
        lines.append("| all | n/a (no CUDA device) |")
        return
    model, syn, outer_loss, g = task(bench, "lenet", (1, 28, 28), {}, 1, 6, 64)
    nets = [init_params(model, generator=g, device=bench.device) for _ in range(4)]
    modes = {
        "reverse, loop over nets": lambda: hypergradient(model, nets[0], syn, outer_loss),
        "reverse, keep_every=2": lambda: hypergradient(
            model, nets[0], syn, outer_loss, keep_every=2
        ),
        "truncated, window=2, n_steps=5": lambda: hypergradient(
            model, nets[0], syn, outer_loss, method="truncated", window=2, n_steps=5
        ),
        "autograd": lambda: hypergradient(model, nets[0], syn, outer_loss, method="autograd"),
        "reverse, vmap over 4 nets": lambda: batched_hypergradient(model, nets, syn, outer_loss),
    }
    for name, fn in modes.items():
        fn()  # warm-up (lazy initialisations may sync once)
        bench.sync()
        torch.cuda.set_sync_debug_mode("error")
        try:
            fn()
            result = "none"
        except RuntimeError as e:
            result = f"`{str(e).splitlines()[0][:150]}`"
        finally:
            torch.cuda.set_sync_debug_mode(0)
        data.setdefault("E", {})[name] = result
        lines.append(f"| {name} | {result} |")


# --------------------------------------------------------------------------- D: compile
def section_d(bench, s, lines, data):
    lines += ["", "## D. torch.compile of the forward sweep", ""]
    if bench.left() < s["d_min_left"]:
        lines.append("Not run (time budget).")
        return
    from torch.func import functional_call, grad

    from softdistill.core.losses import soft_cross_entropy

    model, syn, _, g = task(bench, "lenet", (1, 28, 28), {}, 1, s["d_T"], 16)
    params0 = init_params(model, generator=g, device=bench.device)
    steps = syn.detached_steps()

    def step(p, x, y, lr):
        gr = grad(lambda q: soft_cross_entropy(functional_call(model, q, (x,)), y))(p)
        return {k: p[k] - lr * gr[k] for k in p}

    compiled = torch.compile(step)

    def sweep(fn):
        p = params0
        for x, y, lr in steps:
            p = fn(p, x, y, lr)
        return p

    eager_fn = lambda: unroll(model, params0, steps)[-1]  # noqa: E731
    ref, _, _ = bench.run(eager_fn)
    out, compile_s, _ = bench.run(lambda: sweep(compiled))
    _, eager_s, _ = bench.run(eager_fn)
    _, comp_s, _ = bench.run(lambda: sweep(compiled))
    diff = max(rel(out[k], ref[k]) for k in ref)
    data["D"] = {"eager_s": eager_s, "compiled_s": comp_s, "compile_s": compile_s, "diff": diff}
    lines += [
        f"LeNet, T = {s['d_T']}, 10 images/step: detached forward sweep (the first pass of "
        "`reverse`; the reverse sweep needs double backward, which torch.compile does not "
        "support).",
        "",
        "| eager s | compiled s | speedup | first call (compiling) s | rel. diff |",
        "| ---: | ---: | ---: | ---: | ---: |",
        f"| {eager_s:.4f} | {comp_s:.4f} | {eager_s / comp_s:.2f}x | {compile_s:.1f} | "
        f"{diff:.1e} |",
    ]


SETTINGS = {
    "full": dict(
        a_batches=10, a_real=1024, a_nets=[1, 4, 16, 64], width=128, per_class=10, real=256,
        b_T=30, window=20, c_Ts=[10, 30, 100, 300, 1000], c_autograd_max_T=100, d_T=30,
        d_min_left=75,
    ),
    "tiny": dict(
        a_batches=2, a_real=32, a_nets=[1, 2], width=8, per_class=1, real=16, b_T=3, window=2,
        c_Ts=[2, 4, 6], c_autograd_max_T=4, d_T=2, d_min_left=0,
    ),
}  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", help="output folder")
    ap.add_argument("--tiny", action="store_true", help="tiny settings (smoke test on CPU)")
    ap.add_argument("--budget", type=float, default=150.0, help="seconds for all sections")
    ap.add_argument("--device", default=None, help="default: cuda, else cpu with --tiny")
    ap.add_argument("--skip", default="", help="sections to skip, e.g. D")
    args = ap.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type != "cuda" and not args.tiny and args.device is None:
        print(
            "gpu_bench: no CUDA device; use --tiny for a CPU smoke run (or --device cpu to run "
            "the full settings on the CPU anyway)",
            file=sys.stderr,
        )
        return 2
    s = SETTINGS["tiny" if args.tiny else "full"]
    bench = Bench(device, args.budget)
    name = torch.cuda.get_device_name(device) if bench.cuda else platform.processor() or "CPU"
    lines = [
        "# softdistill GPU benchmark: speed and memory at scale",
        "",
        f"Device: {name}; torch {torch.__version__}"
        + (f", CUDA {torch.version.cuda}" if bench.cuda else "")
        + f"; settings: {'tiny (smoke test)' if args.tiny else 'full'}; "
        f"command: `python benchmarks/gpu_bench.py OUT{' --tiny' if args.tiny else ''}`.",
        "",
    ]
    data = {"device": name, "torch": torch.__version__, "A": [], "B": [], "C": []}
    sections = {"E": section_e, "A": section_a, "B": section_b, "C": section_c, "D": section_d}
    for key, fn in sections.items():
        if key in args.skip.upper():
            continue
        try:
            fn(bench, s, lines, data)
        except Exception as e:  # report and go on: one failing section must not lose the rest
            lines += ["", f"Section {key} failed: `{type(e).__name__}: {str(e)[:300]}`"]
    lines += ["", f"Total {time.perf_counter() - bench.t0:.0f} s."]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_bench.md").write_text("\n".join(lines) + "\n")
    (out / "gpu_bench.json").write_text(json.dumps(data, indent=2) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
