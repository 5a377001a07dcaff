"""Can T plain SGD steps on real data teach the preset's network anything from its fixed init?

Distillation learns a set for exactly T inner SGD steps from one initialisation. Before blaming
the outer loop for a poor result, check the inner problem: take the preset's fixed init, train
it with T full-batch SGD steps on ``--examples`` random real training examples (hard labels, one
learning rate), and report the training loss after the steps and the test accuracy, for a grid
of learning rates and of init gains (``init_param``). If no cell beats chance, the net is too
ill-conditioned for a few plain SGD steps and the distilled set has to do all the work (the
IMDB TextConvNet, README); the Adam rows are the same net trained normally, as a ceiling.
For a ``nets: random`` preset the init is the first net of its first outer step.

    python benchmarks/few_steps_real.py --config configs/imdb_textconvnet_fixed_20.yaml \\
        --data-dir DATA --out benchmarks/results/few_steps_real_imdb

Writes ``OUT.md`` and ``OUT.json``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_common import RESULTS, machine_line, public_argv, write_table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", required=True, help="a preset (its dataset, arch, init, T, seed)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--examples", type=int, default=1000, help="real examples in the one batch")
    p.add_argument("--lrs", type=float, nargs="+", default=[0.003, 0.01, 0.03, 0.1, 0.3, 1.0])
    p.add_argument("--gains", type=float, nargs="+", default=None, help="init_param values")
    p.add_argument("--test-size", type=int, default=5000, help="test examples scored (0: all)")
    p.add_argument("--adam-steps", type=int, default=300, help="Adam ceiling steps (0: skip)")
    p.add_argument("--out", default=str(RESULTS / "few_steps_real"), help="table path, no suffix")
    args = p.parse_args(argv)
    command = public_argv(sys.argv[1:] if argv is None else argv, args.data_dir)

    import torch
    import torch.nn.functional as F

    from softdistill import api
    from softdistill.core.unroll import forward
    from softdistill.data import Split, load_config
    from softdistill.evaluation import accuracy, replay, train_full
    from softdistill.models import build
    from softdistill.nets import NetSpec, make_nets, stream

    overrides = {"data_dir": args.data_dir} if args.data_dir else {}
    cfg = api.resolve_config(args.config, **overrides)
    data = load_config(cfg)
    model = build(cfg.arch, data.sample_shape, data.n_classes, **cfg.arch_args)
    g = torch.Generator().manual_seed(cfg.seed)
    train = data.train.sample(args.examples, g)
    test = data.test.sample(args.test_size, g) if args.test_size else data.test
    train = Split(train.x[:], train.y[:])  # materialise lazily embedded text once
    test = Split(test.x[:], test.y[:])
    y1 = F.one_hot(train.y, data.n_classes).to(train.x.dtype)
    T = cfg.n_steps
    gains = args.gains or [cfg.init_param]

    rows = []
    for gain in gains:
        c = cfg.replace(init_param=gain)
        # the preset's fixed init (same stream as distillation's nets: fixed)
        net = make_nets(
            model, NetSpec.of(c), 1, stream(c.seed, "nets"), device="cpu", dtype=torch.float32
        )
        with torch.no_grad():
            loss0 = F.cross_entropy(forward(model, net[0], train.x), train.y).item()
        for lr in args.lrs:
            t0 = time.perf_counter()
            steps = [(train.x, y1, lr)] * T
            final = replay(model, net, steps)[0]
            acc = accuracy(model, final, test)
            with torch.no_grad():
                loss = F.cross_entropy(forward(model, final, train.x), train.y).item()
            rows.append(
                {
                    "init_param": gain,
                    "lr": lr,
                    "T": T,
                    "loss_init": loss0,
                    "loss_after": loss,
                    "test_acc": acc,
                    "seconds": time.perf_counter() - t0,
                }
            )
            print(rows[-1], flush=True)
        if args.adam_steps:  # shuffled passes over the whole training split, cut at the cap
            epochs = math.ceil(args.adam_steps * 64 / len(data.train))
            full = train_full(
                model, net[0], data.train, test, epochs=epochs, lr=1e-3, batch_size=64,
                generator=g, max_steps=args.adam_steps,
            )  # fmt: skip
            rows.append({"init_param": gain, "adam_steps": args.adam_steps, "test_acc": full.mean})
            print(rows[-1], flush=True)

    chance = max(torch.bincount(test.y, minlength=data.n_classes).tolist()) / len(test)
    lines = [
        f"# {T} plain SGD steps on {len(train)} real examples from the fixed init: {args.config}",
        "",
        f"{machine_line()}. `python benchmarks/few_steps_real.py {' '.join(command)}`. "
        f"One full batch of {len(train)} random training examples "
        f"(hard labels) for all {T} steps; test accuracy on {len(test)} test examples "
        f"(majority class: {100 * chance:.1f}%). Adam: lr 1e-3, batch 64, {args.adam_steps} "
        "steps of shuffled passes over the whole training split (`evaluation.train_full`) from "
        "the same init (a ceiling, not a budget-matched baseline).",
        "",
        "| init_param | lr | train loss before | after | test acc |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        if "lr" in r:
            lines.append(
                f"| {r['init_param']:g} | {r['lr']:g} | {r['loss_init']:.3f} | "
                f"{r['loss_after']:.4g} | {100 * r['test_acc']:.2f}% |"
            )
        else:
            lines.append(
                f"| {r['init_param']:g} | Adam, {r['adam_steps']} steps | | | "
                f"{100 * r['test_acc']:.2f}% |"
            )
    write_table(args.out, lines, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
