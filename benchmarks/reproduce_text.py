"""Text reproduction rows (soft-label/text paper): distil, evaluate beside the baselines, train the
same model on the full training set, and write a markdown table.

Each row is a config file ``configs/<row>.yaml``, run exactly as a user would run it::

    softdistill distill --config configs/<row>.yaml --data-dir DATA --out RUNS/<row>

then the full-data reference: the same architecture from the same initial weights (the fixed
init; for random-init rows one fresh init) trained normally (Adam 1e-3, batch 64, a fixed number
of epochs, accuracy after the last one). Finished parts are kept in the run folder
(``eval.json``, ``full_data.json``) and reused unless ``--force``.

Usage::

    python benchmarks/reproduce_text.py --data-dir DATA --runs runs/text \\
        [--rows trec6_bilstm_fixed_6 ...] [--seeds 0 1] [--device cpu|cuda] [--table FILE]

Fixed-init rows run seeds 0 and 1 by default (each seed another fixed init, starting set and
batch order; the table gives their mean ± std and each value), random-init rows seed 0 (its
spread is over the preset's unseen evaluation inits). The presets use ``embeddings: glove6b``
(``pip install 'softdistill[text-glove]'`` first), but for the TREC-6 rows
(``trec6_bilstm_fixed_6``, ``trec6_bilstm_fixed_120``, ``trec6_bilstm_random_6``), which take
MiniLM's table (``'softdistill[text-hf]'``).

``--smoke`` runs every row for 2 outer steps with a 512-example full-data pass (checks the
script, not the method). The table goes to ``benchmarks/results/text.md`` by default.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import torch
import yaml

from softdistill import io
from softdistill.cli import main as cli_main
from softdistill.config import Config, merge
from softdistill.data import load_config
from softdistill.distillation import distill
from softdistill.evaluation import train_full
from softdistill.models import build
from softdistill.nets import NetSpec, eval_nets
from softdistill.results import Score, read_eval

ROOT = Path(__file__).resolve().parent.parent


# row -> published number (%; the text paper, Sucholutsky & Schonlau, and its authors' run logs)
# and full-data epochs; random-init rows are evaluated on the preset's test_n_nets unseen inits
ROWS = {
    "trec6_bilstm_fixed_6": {"published": 87.4, "epochs": 10, "label": "TREC-6 BiLSTM fixed, 6"},
    "trec6_bilstm_fixed_120": {
        "published": 87.8,
        "epochs": 10,
        "label": "TREC-6 BiLSTM fixed, 120",
    },
    "trec6_bilstm_random_6": {
        "published": 61.99,
        "epochs": 10,
        "label": "TREC-6 BiLSTM random, 6",
    },
    "sst5_birnn_fixed_5": {"published": 35.97, "epochs": 10, "label": "SST-5 BiRNN fixed, 5"},
    "sst5_birnn_fixed_100": {"published": 36.83, "epochs": 10, "label": "SST-5 BiRNN fixed, 100"},
    "sst5_birnn_random_5": {"published": 23.38, "epochs": 10, "label": "SST-5 BiRNN random, 5"},
    "imdb_textconvnet_fixed_20": {
        "published": 80.0,  # the soft-label README's claim; its run log: 76.26
        "epochs": 3,
        "label": "IMDB TextConvNet fixed, 20",
    },
    "imdb_textconvnet_fixed_2": {
        "published": 78.3,
        "epochs": 3,
        "label": "IMDB TextConvNet fixed, 2",
    },
    "imdb_textconvnet_random_2": {
        "published": 69.64,
        "epochs": 3,
        "label": "IMDB TextConvNet random, 2",
    },
    "imdb_textconvnet_random_20": {
        "published": None,
        "epochs": 3,
        "label": "IMDB TextConvNet random, 20",
    },
    "trec50_bilstm_fixed_50": {
        "published": 52.8,
        "epochs": 10,
        "label": "TREC-50 BiLSTM fixed, 50",
    },
}


def log(msg: str) -> None:
    print(f"[reproduce_text {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def row_config(row: str, args, seed: int | None = None) -> Config:
    """The row's config file with ``--set`` overrides (and the seed) applied."""
    cfg = Config.from_file(ROOT / "configs" / f"{row}.yaml")
    changes = {}
    for item in args.set:
        key, _, value = item.partition("=")
        changes[key] = yaml.safe_load(value)
    if seed is not None:
        changes["seed"] = seed
    return merge(cfg.to_dict(), changes, source="--set")


def default_seeds(row: str) -> list[int]:
    return [0] if "_random_" in row else [0, 1]


def run_name(row: str, tag: str, seed: int) -> str:
    """``row[-tag]`` for seed 0, ``row[-tag]-sN`` for seed N."""
    return row + (f"-{tag}" if tag else "") + (f"-s{seed}" if seed else "")


def split_name(name: str) -> tuple[str, str, int]:
    """``(row, tag, seed)`` of a run folder name (the inverse of :func:`run_name`)."""
    row = max((r for r in ROWS if name == r or name.startswith(r + "-")), key=len)
    rest = name[len(row) + 1 :]
    seed = 0
    head, _, last = rest.rpartition("-")
    if last.startswith("s") and last[1:].isdigit():
        rest, seed = head, int(last[1:])
    return row, rest, seed


def calibrate(cfg: Config, args) -> float:
    """Seconds per outer step of ``cfg`` on this machine (steps 2-5; step 1 warms up)."""
    cfg = cfg.replace(data_dir=args.data_dir, device=args.device, eval_every=0)
    data = load_config(cfg)
    model = build(cfg.arch, data.sample_shape, data.n_classes, **cfg.arch_args)
    stamps: list[float] = []
    distill(
        cfg.replace(outer_steps=5),
        data,
        model,
        device=args.device,
        progress=lambda step, info: stamps.append(time.perf_counter()),
    )
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1)


def budgeted(cfg: Config, seconds_per_step: float, budget: float) -> Config:
    """``cfg`` with outer_steps cut to fit ``budget`` seconds; decay and eval scaled along."""
    steps = max(10, min(cfg.outer_steps, int(budget / seconds_per_step)))
    frac = steps / cfg.outer_steps
    return cfg.replace(
        outer_steps=steps,
        decay_every=max(1, round(cfg.decay_every * frac)),
        eval_every=max(1, round(cfg.eval_every * frac)) if cfg.eval_every else 0,
    )


def run_row(row: str, args, seed: int = 0) -> dict:
    name = run_name(row, args.tag, seed)
    run = Path(args.runs) / name
    t0 = time.perf_counter()
    if args.force or not (run / io.EVAL).exists():
        cfg = row_config(row, args, seed)
        if args.budget:
            sps = calibrate(cfg, args)
            cfg = budgeted(cfg, sps, args.budget)
            log(f"{name}: {sps:.3f} s/step here; {cfg.outer_steps} outer steps fit {args.budget} s")
        if args.smoke:
            cfg = cfg.replace(outer_steps=2, eval_every=0, test_n_nets=2, baseline_lrs=[0.1, 0.3])
        # the exact configuration run, kept beside the run folder
        cfg_file = Path(args.runs) / f"{name}.yaml"
        cfg_file.parent.mkdir(parents=True, exist_ok=True)
        d = {k: v for k, v in cfg.to_dict().items() if k not in ("data_dir", "device")}
        resume = resumable(run, cfg_file, d) and not args.force
        cfg_file.write_text(yaml.safe_dump(d, sort_keys=False))
        argv = ["distill", "--config", str(cfg_file), "--out", str(run)]
        argv.append("--resume" if resume else "--overwrite")
        if resume:
            log(f"{name}: a stopped run of the same config: resuming from its checkpoint")
        argv += ["--data-dir", args.data_dir, "--device", args.device]
        log(f"{name}: softdistill {' '.join(argv)}")
        rc = cli_main(argv)
        if rc != 0:
            raise SystemExit(f"{name}: softdistill distill exited with {rc}")
        io.save_json(
            run / "reproduce.json",
            {
                "distill_eval_seconds": time.perf_counter() - t0,  # incl. calibration, loading
                "budget": args.budget or None,
                "device": args.device,
                "overrides": args.set,
            },
        )
    info = io.read_json(run / "reproduce.json") if (run / "reproduce.json").exists() else {}
    full_path = run / "full_data.json"
    if not seed and (args.force or not full_path.exists()):  # the ceiling: once per row
        full = full_data(run, ROWS[row]["epochs"], args)
        io.save_json(full_path, full)
    full = io.read_json(full_path) if full_path.exists() else None
    ev = read_eval(run)
    cfg = io.read_json(run / io.CONFIG)
    saved = io.load_run(run)
    meta = saved.meta
    return {
        "sentences": saved.syn.n_batches * saved.syn.per_batch,
        "T": saved.syn.n_steps,
        "row": row,
        "tag": args.tag,
        "seed": seed,
        "name": name,
        "cfg": cfg,
        "eval": ev,
        "full": full,
        "embeddings": meta.get("embeddings", cfg.get("embeddings")),
        # the run's own wall time (run.json of softdistill distill), else the script's
        "wall": _run_wall(run) or info.get("distill_eval_seconds"),
        "ran_preset": ran_preset(Path(args.runs) / f"{name}.yaml", row),
        "info": info,
    }


def resumable(run: Path, cfg_file: Path, config: dict) -> bool:
    """Whether ``run`` is a stopped run (a checkpoint, no eval.json) of exactly ``config`` (the
    file written beside it when it started): then it continues instead of starting over."""
    if (run / io.EVAL).exists() or not (run / io.CHECKPOINT).exists() or not cfg_file.exists():
        return False
    return yaml.safe_load(cfg_file.read_text()) == config


def _run_wall(run: Path) -> float | None:
    """The run's wall time: run.json's, or for a resumed run (whose last process saw only the
    steps after the resume) the loop's seconds over every process plus the work after it."""
    path = run / io.RUN_INFO
    if not path.exists():
        return None
    info = io.read_json(path)
    wall = info.get("wall_seconds")
    loop = (
        io.read_json(run / io.EVAL).get("protocol", {}).get("seconds")
        if (run / io.EVAL).exists()
        else None
    )
    if wall is not None and loop is not None:
        wall = max(wall, loop + info.get("after_loop_seconds", 0.0))
    return wall


def full_data(run: Path, epochs: int, args) -> dict:
    saved = io.read_json(run / io.CONFIG)
    cfg = Config.from_dict(saved).replace(data_dir=args.data_dir, device=args.device)
    device = torch.device(args.device)
    data = load_config(cfg)
    model = build(cfg.arch, data.sample_shape, data.n_classes, **cfg.arch_args).to(device)
    if cfg.nets == "fixed":
        params0 = io.load_params(run / io.INIT, device)[0]
    else:
        params0 = eval_nets(model, NetSpec.of(cfg), None, 1, device=device, dtype=torch.float32)[0]
    train, test = data.train.to(device), data.test.to(device)
    g = torch.Generator().manual_seed(cfg.seed)
    if args.smoke:
        train, epochs = train.sample(512, g), 1
    log(f"{run.name}: full-data training, {epochs} epochs on {len(train)} examples")
    t0 = time.perf_counter()
    res = train_full(
        model,
        params0,
        train,
        test,
        epochs=epochs,
        generator=g,
        progress=lambda e, a: log(f"{run.name}: full data epoch {e}: test {100 * a:.2f}%"),
    )
    return {**res.to_dict(), "seconds": time.perf_counter() - t0, "train_examples": len(train)}


def pct(r: Score | None) -> str:
    if r is None:
        return "—"
    return f"{100 * r.mean:.1f}" + (f" ± {100 * r.std:.1f}" if r.std else "")


def _mean_std(values: list[float]) -> str:
    m = sum(values) / len(values)
    if len(values) == 1:
        return f"{100 * m:.1f}"
    sd = (sum((v - m) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{100 * m:.1f} ± {100 * sd:.1f}"


def embeddings_label(spec: str) -> str:
    """``glove6b`` for the package's table, else the file (or model folder) name."""
    kind, _, path = spec.partition(":")
    if kind == "glove6b":
        return kind
    if not path:
        return spec
    parts = Path(path).parts
    return f"{kind}:{parts[-2] if kind == 'hf' and parts[-1] == 'model' else parts[-1]}"


def row_command(row: str, tag: str, seeds: list[int], sets: list[str]) -> str:
    cmd = f"python benchmarks/reproduce_text.py --data-dir DATA --runs RUNS --rows {row}"
    if seeds != default_seeds(row):
        cmd += " --seeds " + " ".join(map(str, seeds))
    cmd += "".join(f" --set {s}" for s in sets)
    return cmd + (f" --tag {tag}" if tag else "")


# after the first cell of a variant's line that ran the preset as it is now (the preset took the
# variant's settings): the reader sees which tagged line is the preset's own
PRESET_MARK = " (= preset)"
# keys that say where and which seed a run ran, not what it ran
NOT_SETTINGS = ("seed", "data_dir", "device")


def preset_settings(row: str) -> dict:
    """The settings of ``configs/<row>.yaml`` as it is now (without :data:`NOT_SETTINGS`)."""
    d = Config.from_file(ROOT / "configs" / f"{row}.yaml").to_dict()
    return {k: v for k, v in d.items() if k not in NOT_SETTINGS}


def ran_preset(config_file: Path, row: str) -> bool:
    """Whether the config a run ran (``RUNS/<name>.yaml``, written before the run) is the
    preset's as it is now, but for the seed (False when the file is missing)."""
    if not config_file.is_file():
        return False
    ran = yaml.safe_load(config_file.read_text())
    return {k: v for k, v in ran.items() if k not in NOT_SETTINGS} == preset_settings(row)


def overrides_agree(line: str, row: str) -> bool:
    """Whether a line's overrides (the ``--set k=v`` of its command cell) are all the preset's
    values now (False for a line without any). Weaker than :func:`ran_preset`: the keys it did
    not set came from the preset of its day."""
    sets = re.findall(r"--set ([^\s=`]+)=([^\s`]+)", line.rsplit(" | ", 1)[-1])
    if not sets:
        return False
    preset = preset_settings(row)
    return all(k in preset and preset[k] == yaml.safe_load(v) for k, v in sets)


def mark_preset(line: str, ran: bool | None = None) -> str:
    """The line with :data:`PRESET_MARK` after its first cell when it is a tagged variant that
    ran the preset: ``ran`` where its run folders say (a new line), else (a line kept from an
    earlier table) an earlier mark stays while :func:`overrides_agree` still holds."""
    first, _, rest = line.partition(" | ")
    marked = first.endswith(PRESET_MARK)
    first = first.removesuffix(PRESET_MARK)
    row, tag = row_of_label(first)
    if ran is None:
        ran = marked and row is not None and overrides_agree(line, row)
    if row is not None and tag and ran:
        first += PRESET_MARK
    return first + " | " + rest


def row_of_label(cell: str) -> tuple[str | None, str]:
    """The row and tag of a table line's first cell (``| TREC-6 BiLSTM fixed, 6 [tag]``)."""
    label, _, tag = cell.removeprefix("| ").removesuffix(PRESET_MARK).partition(" [")
    row = next((r for r, v in ROWS.items() if v["label"] == label), None)
    return row, tag.removesuffix("]")


def line_key(line: str) -> str:
    """A table line's first cell without :data:`PRESET_MARK`: the key that matches a new line
    of a variant with its line in an earlier table, marked or not."""
    return line.split(" | ")[0].removesuffix(PRESET_MARK)


def kept_lines(path: str | None, header: str, text: str | None = None) -> dict[str, str]:
    """The finished lines of an earlier table (``--keep``; ``text``: its content as read before
    this run wrote any table), by first cell; its columns must be this table's."""
    if not path:
        return {}
    text = (Path(path).read_text() if text is None else text).splitlines()
    if header not in text:
        raise SystemExit(f"--keep {path}: its columns differ from this table's; not merged")
    body = [line for line in text[text.index(header) + 2 :] if line.startswith("| ")]
    return {line_key(line): line for line in body if "| not run (" not in line}


def line_seeds(line: str) -> set[int]:
    """The seeds of a table line (its ``seeds`` cell: ``0: 76.9, 1: 80.2``)."""
    cell = line.split(" | ")[6]
    return {int(part.split(":")[0]) for part in cell.split(", ") if part.split(":")[0].isdigit()}


def kept_beside(kept: dict[str, str], new_seeds: dict[str, set[int]]) -> list[tuple]:
    """(row, tag, line) of the earlier lines to keep beside the new ones (``new_seeds``: the
    seeds of each new line, by first cell): a line no new line replaces, and a line whose seeds
    the new line of its variant lacks (its run folders are elsewhere), marked ``earlier seeds``."""
    out = []
    for key, line in kept.items():
        row, tag = row_of_label(key)
        if row is None:
            continue
        if key in new_seeds:
            if not line_seeds(line) - new_seeds[key]:
                continue  # the new line has every seed of the earlier one
            tag = f"{tag}, earlier seeds" if tag else "earlier seeds"
            line = " | ".join(["| " + ROWS[row]["label"] + f" [{tag}]", *line.split(" | ")[1:]])
        out.append((row, tag, line))
    return out


# The baseline columns of every table, whichever runs it holds, so that an earlier table's lines
# (--keep) always fit: a baseline no run of the table has gets "—".
BASELINE_COLUMNS = ("average", "kmeans", "knn", "knn_average", "knn_kmeans", "knn_random", "random")


def baseline_columns(found) -> list[str]:
    """The table's baseline columns: the fixed ones, then any other found in the runs."""
    return [*BASELINE_COLUMNS, *sorted(set(found) - set(BASELINE_COLUMNS))]


def table(results: list[dict], args) -> str:
    """One line per (row, tag): the distilled accuracy as the mean ± std over its seeds (fixed
    init: one net per seed) or over its evaluation nets (random init, one seed), every seed's
    value, the baselines (mean over seeds), the full-data ceiling (seed 0's init)."""
    names = baseline_columns(b for r in results for b in r["eval"].baselines)
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        groups.setdefault((r["row"], r["tag"]), []).append(r)
    head = ["setting", "embeddings", "sentences × steps", "outer steps", "published", "distilled"]
    head += ["seeds"] + [f"baseline {b}" for b in names]
    head += ["full data", "device", "distill s/step", "distill+eval wall", "command"]
    header = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines: list[tuple[tuple[int, str], str]] = []  # (row order, tag) -> line
    for (row, tag), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["seed"])
        first = rs[0]
        proto = first["eval"].protocol
        emb = embeddings_label(str(first["embeddings"]))
        pub = ROWS[row]["published"]
        dist = [r["eval"].distilled for r in rs]
        if len(rs) == 1:
            acc = pct(dist[0]) + (f" ({proto.n_nets} nets)" if proto.n_nets > 1 else "")
        else:
            acc = _mean_std([d.mean for d in dist])
        seeds = ", ".join(f"{r['seed']}: {100 * r['eval'].distilled.mean:.1f}" for r in rs)
        cells = [
            ROWS[row]["label"] + (f" [{tag}]" if tag else ""),
            emb,
            f"{first['sentences']} × {first['T']}",
            str(proto.get("outer_steps", first["cfg"]["outer_steps"])),
            f"{pub:.1f}" if pub is not None else "—",
            acc,
            seeds,
        ]
        for b in names:
            vals = [r["eval"].baselines[b].mean for r in rs if b in r["eval"].baselines]
            one = pct(first["eval"].baselines.get(b))
            cells.append(_mean_std(vals) if len(vals) > 1 else one)
        full = first["full"]
        overrides = first["info"].get("overrides") or []
        sps = [r["eval"].protocol.get("seconds_per_step") for r in rs]
        walls = [r["wall"] for r in rs if r["wall"]]
        full_cell = (
            pct(Score.from_dict(full)) + f" ({full['epochs']} ep, {full['seconds'] / 60:.1f} min)"
            if full
            else "—"
        )
        cells += [
            full_cell,
            str(first["info"].get("device", "?"))
            + (f", budget {first['info']['budget']:g} s" if first["info"].get("budget") else ""),
            " / ".join(f"{v:.2f}" for v in sps if v is not None) or "?",
            " / ".join(f"{w / 60:.1f} min" for w in walls) or "?",
            f"`{row_command(row, tag, [r['seed'] for r in rs], overrides)}`",
        ]
        line = mark_preset("| " + " | ".join(cells) + " |", all(r["ran_preset"] for r in rs))
        lines.append(((list(ROWS).index(row), tag), line))
    done = {row for row, _ in groups}
    new_seeds = {line_key(line): line_seeds(line) for _, line in lines}
    for row, tag, line in kept_beside(kept_lines(args.keep, header[0], args.keep_text), new_seeds):
        lines.append(((list(ROWS).index(row), tag), mark_preset(line)))
        done.add(row)
    for row in ROWS if args.all_runs else ():  # every row has a line: say which did not run
        if row not in done:
            pub = ROWS[row]["published"]
            cells = [ROWS[row]["label"], "—", "—", "—", f"{pub:.1f}" if pub else "—"]
            cells += ["not run (no finished run folder)"] + ["—"] * (len(head) - 7)
            cells.append(f"`{row_command(row, '', default_seeds(row), [])}`")
            lines.append(((list(ROWS).index(row), ""), "| " + " | ".join(cells) + " |"))
    lines = header + [line for _, line in sorted(lines, key=lambda kv: kv[0])]
    machine = (
        f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)"
    )
    if args.device.startswith("cuda") and torch.cuda.is_available():
        machine += f", {torch.cuda.get_device_name()}"
    argv = ["DATA" if a == args.data_dir else a for a in sys.argv[1:]]  # no machine paths
    cmd = "python benchmarks/reproduce_text.py " + " ".join(argv)
    return (
        "# Text distillation: reproduction rows\n\n"
        f"Command: `{cmd}`  \nDevice: {args.device} ({machine}).  \n"
        "Accuracies in % on the test split. Distilled: the set kept by the run (the best on "
        "held-out training examples where the preset sets `val_size`); fixed-init rows: mean ± "
        "std over the seeds (one net each: each seed is another fixed init, starting set and "
        "batch order), every seed's value beside it; random-init rows: mean ± std over the "
        "preset's unseen evaluation inits. Baselines: the same number of real training sentences "
        "(same classes, one-hot labels, same number of steps) trained with the best fixed lr of "
        "a grid chosen on training data (mean over seeds). Full data: the same model from seed "
        "0's init trained normally (Adam 1e-3, batch 64, accuracy after the last epoch). "
        "Published: the text paper's number (IMDB 20: its README's claim). A row `[tag]` is a "
        "variant (its config: `RUNS/<row>-<tag>.yaml`); `[tag] (= preset)`: the variant ran the "
        "preset as it is now (the preset took its settings). s/step and "
        "wall: per seed. The last "
        "column is the command of the row (`softdistill distill --config configs/ROW.yaml "
        "--data-dir DATA --seed N` plus the full-data training); this table was assembled by the "
        "command above (with `--keep`: lines of rows it did not run come from the earlier table)."
        "\n\n" + "\n".join(lines) + "\n"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data-dir",
        default=os.environ.get("SOFTDISTILL_DATA"),
        required=not os.environ.get("SOFTDISTILL_DATA"),
        help="the datasets' folder (default: $SOFTDISTILL_DATA)",
    )
    p.add_argument("--runs", default=str(ROOT / "runs" / "text"), help="run folders")
    p.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    p.add_argument("--device", default="cpu")
    p.add_argument("--table", default=str(ROOT / "benchmarks" / "results" / "text.md"))
    p.add_argument("--force", action="store_true", help="redo rows that already have results")
    p.add_argument("--smoke", action="store_true", help="2 outer steps per row (script check)")
    p.add_argument(
        "--budget",
        type=float,
        default=0,
        help="seconds of distillation per row: outer steps are cut to fit, after timing 5 steps",
    )
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key"
    )
    p.add_argument("--tag", default="", help="suffix of the run folders (for --set variants)")
    p.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help="seeds to run per row (folders ROW for seed 0, ROW-sN for seed N); default 0 and 1 "
        "for fixed-init rows (each seed another fixed init), 0 for random-init rows (evaluated "
        "on the preset's test_n_nets unseen inits)",
    )
    p.add_argument(
        "--keep",
        metavar="TABLE",
        help="keep the lines of this earlier table (same columns) for rows or variants this "
        "command does not tabulate (their run folders are elsewhere)",
    )
    p.add_argument(
        "--all-runs",
        action="store_true",
        help="tabulate every finished run folder under --runs (rows and tagged variants)",
    )
    args = p.parse_args()
    # the earlier table as it is now: with --keep and --table the same file, the table written
    # after each run must not be read back as an earlier one
    args.keep_text = Path(args.keep).read_text() if args.keep else None
    results = []
    jobs = [(r, args.tag, s) for r in args.rows for s in args.seeds or default_seeds(r)]
    if args.all_runs:  # tabulate what is there, running nothing new
        found = {
            split_name(d.name)
            for r in ROWS
            for d in Path(args.runs).glob(f"{r}*")
            if (d / io.EVAL).exists() and (d.name == r or d.name.startswith(r + "-"))
        }
        jobs = sorted(found, key=lambda j: (list(ROWS).index(j[0]), j[1], j[2]))
    for row, tag, seed in jobs:
        args.tag = tag
        results.append(run_row(row, args, seed))
        text = table(results, args)
        io.atomic_write(args.table, lambda tmp, text=text: Path(tmp).write_text(text))
        log(f"{row}: done; table so far in {args.table}")
    print(table(results, args))
    print(json.dumps({r["name"]: r["eval"].distilled.mean for r in results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
