"""How much does a finished run's test accuracy move when its synthetic set is nudged?

Adds Gaussian noise of each ``--sigma`` to one learned tensor at a time (``x_syn``, the label
parameters, ``raw_lrs``) and to all of them, ``--draws`` times, and re-evaluates on the run's
evaluation nets (the fixed init, or ``--nets`` fresh inits). A set whose accuracy collapses
under noise far smaller than its values sits on a sharp ridge of the outer loss, which is why
its test accuracy swings between evaluations of a run (README, MNIST headline).

    python benchmarks/sensitivity.py RUN_DIR --data-dir DATA
    python benchmarks/sensitivity.py RUN_DIR --sigma 0.001 0.003 0.01 --draws 4 --out DIR/name

Writes ``benchmarks/results/sensitivity.md`` and ``.json`` unless ``--out`` says otherwise.
"""

from __future__ import annotations

import argparse
import copy
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_common import RESULTS, machine_line, write_table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run", help="a finished run folder")
    p.add_argument("--data-dir", default=None, help="dataset folder (default: the run's)")
    p.add_argument("--sigma", type=float, nargs="+", default=[0.001, 0.003, 0.01])
    p.add_argument("--draws", type=int, default=4, help="noise draws per cell")
    p.add_argument("--nets", type=int, default=4, help="fresh inits for random-init runs")
    p.add_argument("--out", default=str(RESULTS / "sensitivity"), help="table path, no suffix")
    args = p.parse_args(argv)

    import torch

    from softdistill import api, io
    from softdistill.data import load_config
    from softdistill.evaluation import evaluate_synthetic
    from softdistill.models import build
    from softdistill.nets import NetSpec, eval_nets

    run = io.load_run(args.run)
    overrides = {"data_dir": args.data_dir} if args.data_dir else {}
    cfg = api.resolve_config(run.config, **overrides)
    data = load_config(cfg)
    model = build(cfg.arch, data.sample_shape, data.n_classes, **cfg.arch_args)
    nets = eval_nets(
        model,
        NetSpec.of(cfg),
        run.init_params if cfg.nets == "fixed" else None,
        args.nets,
        device="cpu",
        dtype=torch.float32,
        sample_shape=data.sample_shape,
        n_classes=data.n_classes,
    )
    syn, test = run.syn, data.test

    def acc(s) -> float:
        return evaluate_synthetic(model, nets, s, test).mean

    base = acc(syn)
    names = [n for n, _ in syn.named_parameters()]
    rows = []
    for sigma in args.sigma:
        for target in [*names, "all"]:
            accs = []
            for draw in range(args.draws):
                g = torch.Generator().manual_seed(draw)
                nudged = copy.deepcopy(syn)
                with torch.no_grad():
                    for name, t in nudged.named_parameters():
                        if target in (name, "all"):
                            t.add_(sigma * torch.randn(t.shape, generator=g))
                accs.append(acc(nudged))
            rows.append({"sigma": sigma, "tensor": target, "accs": accs})
            print(f"sigma {sigma:g} {target}: {[round(100 * a, 2) for a in accs]}", flush=True)
    magnitudes = {n: t.detach().abs().mean().item() for n, t in syn.named_parameters()}
    lines = [
        f"# Sensitivity of `{args.run}` to Gaussian noise on its learned tensors",
        "",
        f"Test accuracy of the set as learned: {100 * base:.2f}% ({len(nets)} net(s)). "
        f"Mean |value|: "
        + ", ".join(f"`{n}` {m:.3g}" for n, m in magnitudes.items())
        + f". {args.draws} noise draws per cell.",
        "",
        "| sigma | noise on | min % | mean % | max % |",
        "| ---: | --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        a = [100 * x for x in r["accs"]]
        lines.append(
            f"| {r['sigma']:g} | `{r['tensor']}` | {min(a):.2f} | {sum(a) / len(a):.2f} | "
            f"{max(a):.2f} |"
        )
    given = shlex.join(sys.argv[1:] if argv is None else argv)  # every flag: reproducible
    lines += ["", machine_line(), "", f"Command: `python benchmarks/sensitivity.py {given}`"]
    write_table(args.out, lines, {"run": args.run, "base": base, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
