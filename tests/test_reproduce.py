"""The presets in configs/ and the reproduction scripts under benchmarks/."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import benchmark_module
from softdistill.config import Config, read_config_file
from softdistill.data.text import TEXT_DATASETS
from softdistill.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


reproduce = benchmark_module("reproduce")


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_preset_is_a_valid_config(path):
    name = path.stem
    raw = read_config_file(path)
    if raw.get("objective", "basic") != "basic":  # adapt/attack: the pool paths are flags
        raw["nets"] = "pool:POOLS/train"
    cfg = Config.from_dict(raw, source=str(path)).validate()
    if name == "demo_digits" or cfg.objective != "basic":  # named after their objective
        return
    # the file name states the setting: dataset_arch_nets_images[_hard]
    dataset, arch, nets, images, *hard = name.replace("fashion_mnist", "fashionmnist").split("_")
    arch = {"bilstm": "textlstm", "birnn": "textrnn"}.get(arch, arch)  # the papers' names
    assert (cfg.arch, cfg.nets) == (arch, nets)
    n_classes = len(TEXT_DATASETS[cfg.dataset]["classes"]) if cfg.dataset in TEXT_DATASETS else 10
    classes = len(cfg.init_labels) if cfg.init_labels else n_classes
    assert classes * cfg.per_class * cfg.n_batches == int(images)
    assert cfg.learn_labels == (hard != ["hard"])
    assert f"configs/{name}.yaml" in path.read_text()  # the documented command names itself


@pytest.mark.parametrize(
    "hard", sorted((ROOT / "configs").glob("*_hard.yaml")), ids=lambda p: p.stem
)
def test_each_hard_label_twin_runs_its_soft_presets_schedule_and_selection(hard):
    """A ``*_hard`` preset is its soft preset but for the labels, so the two rows compare the
    labels alone: the same keys and values except learn_labels, the published number, and
    label_mode (softmax of fixed one-hot labels would smooth them; hard labels stay raw)."""
    soft = read_config_file(hard.with_name(hard.name.replace("_hard", "")))
    twin = read_config_file(hard)
    assert (soft["learn_labels"], twin["learn_labels"]) == (True, False)
    differ = {k for k in soft.keys() | twin.keys() if soft.get(k) != twin.get(k)}
    assert differ <= {"learn_labels", "published_acc", "label_mode"}, differ
    assert twin.get("label_mode", "raw") == "raw"


def test_paper_init_labels():
    want = {5: [0, 1, 2, 3, 4], 3: [0, 3, 7], 2: [3, 7], 1: [7]}
    for n, labels in want.items():
        for suffix in ("", "_hard"):
            path = ROOT / "configs" / f"mnist_lenet_fixed_{n}{suffix}.yaml"
            assert read_config_file(path)["init_labels"] == labels, path


def _fake_run(folder: Path, acc: float):
    folder.mkdir(parents=True)
    ev = {
        "distilled": {"mean": acc, "std": 0.0, "per_net": [acc]},
        "baselines": {
            "random": {"mean": 0.5, "std": 0.01, "per_net": [0.49, 0.51]},
            "kmeans": {"mean": 0.6, "std": 0.0, "per_net": [0.6]},
        },
        "protocol": {"outer_steps": 100, "seconds": 50.0, "seconds_per_step": 0.5},
    }
    (folder / "eval.json").write_text(json.dumps(ev))
    cfg = {"per_class": 1, "n_batches": 1, "init_labels": [0, 1, 2, 3, 4], "nets": "fixed"}
    (folder / "config.json").write_text(json.dumps(cfg))
    lines = [
        {"step": 50, "loss": 1.0, "test_acc": 0.7},
        {"step": 100, "loss": 0.5, "test_acc": acc},
    ]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines))
    (folder / "reproduce.json").write_text(json.dumps({"wall_seconds": 3725.0}))


def test_reproduce_tabulates_finished_runs(tmp_path, capsys):
    _fake_run(tmp_path / "runs" / "mnist_lenet_fixed_5", 0.9234)
    argv = ["mnist_lenet_fixed_5", "--reuse", "--runs-dir", str(tmp_path / "runs")]
    assert reproduce.main([*argv, "--results", str(tmp_path / "table")]) == 0
    md = (tmp_path / "table.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| `mnist_lenet_fixed_5`"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:4] == ["5", "≈92 (Sucholutsky & Schonlau)", "92.34 ± 0.00 (1)"]
    assert cells[4:6] == ["50.00 ± 1.00 (2)", "60.00 ± 0.00 (1)"]  # random, kmeans columns
    preset = read_config_file(ROOT / "configs" / "mnist_lenet_fixed_5.yaml")
    truncated = f"100 of {preset['outer_steps']} (budget)"  # a truncated run says so
    assert cells[6:] == [truncated, "1h02m", "0.500"]
    assert "configs/mnist_lenet_fixed_5.yaml" in md and "100: 92.3" in md
    rows = json.loads((tmp_path / "table.json").read_text())
    assert rows[0]["n_images"] == 5 and rows[0]["curve"] == [[50, 0.7], [100, 0.9234]]


def test_reproduce_selects_by_glob_and_rejects_unknown():
    assert "mnist_lenet_fixed_1_hard" in reproduce.select(["mnist_lenet_fixed_*"])
    assert reproduce.select(["configs/mnist_lenet_fixed_5.yaml"]) == ["mnist_lenet_fixed_5"]
    assert "demo_digits" not in reproduce.select([])
    with pytest.raises(SystemExit, match="no preset matches 'nope'"):
        reproduce.select(["nope"])


@pytest.mark.slow
def test_gpu_reproduce_runs_on_cpu_with_tiny_settings(tmp_path, monkeypatch):
    """The GPU script end to end on a tiny fake CIFAR-10 (minutes on a busy CPU)."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (60, 32, 32, 3)).astype(np.uint8)
    y = np.arange(60) % 10
    np.savez(tmp_path / "cifar10.npz", x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:])
    monkeypatch.setenv("SOFTDISTILL_CACHE", str(tmp_path / "cache"))
    gpu = benchmark_module("gpu_reproduce")
    tiny = ["batch_size=16", "n_batches=1", "n_epochs=1", "baseline_lrs=0.01"]
    argv = [str(tmp_path / "out"), "--device", "cpu", "--budget", "1", "--probe-steps", "2"]
    argv += ["--data-dir", str(tmp_path), "--baselines", "random"]
    assert gpu.main(argv + [a for kv in tiny for a in ("--set", kv)]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    # cut to the budget: at least the probe's steps, as many as 1 s allows on this machine
    assert 2 <= summary["outer_steps"] <= summary["preset_outer_steps"]
    assert len(summary["curve"]) == summary["outer_steps"]  # evaluated at every step
    assert 0 <= summary["distilled"]["mean"] <= 1
    assert (tmp_path / "out" / "cifar10_alexcifarnet_fixed_100" / "eval.json").is_file()


def test_few_steps_real_trains_the_presets_fixed_init(tmp_path):
    """benchmarks/few_steps_real.py on digits: one row per (gain, lr) cell, each gain its own
    init, lr 0 leaves the loss where it was, lr 0.1 lowers it, plus the Adam rows."""
    cfg = tmp_path / "digits.yaml"
    cfg.write_text("dataset: digits\narch: mlp\nnets: fixed\nn_epochs: 2\n")
    out = tmp_path / "table"
    mod = benchmark_module("few_steps_real")
    argv = ["--config", str(cfg), "--examples", "300", "--lrs", "0.0", "0.1"]
    assert mod.main(argv + ["--gains", "1", "0.5", "--adam-steps", "20", "--out", str(out)]) == 0
    rows = json.loads(out.with_suffix(".json").read_text())
    sgd = [r for r in rows if "lr" in r]
    assert [(r["init_param"], r["lr"], r["T"]) for r in sgd] == [
        (1.0, 0.0, 2),
        (1.0, 0.1, 2),
        (0.5, 0.0, 2),
        (0.5, 0.1, 2),
    ]
    assert sgd[0]["loss_init"] != sgd[2]["loss_init"]  # init_param 1 vs 0.5
    for r0, r1 in zip(sgd[::2], sgd[1::2]):
        assert r0["loss_after"] == pytest.approx(r0["loss_init"])  # lr 0: nothing moves
        assert r1["loss_after"] < r1["loss_init"]
    adam = [r for r in rows if "adam_steps" in r]
    assert len(adam) == 2 and all(r["test_acc"] > 0.3 for r in adam), adam  # 10 classes
    assert "| 0.5 | 0.1 |" in out.with_suffix(".md").read_text()


def test_sensitivity_table_of_a_finished_run(tmp_path):
    """benchmarks/sensitivity.py on a tiny digits run: noise 0 changes nothing, one row per
    (sigma, tensor), and the table's command line carries every flag given."""
    import softdistill as sd

    run = tmp_path / "run"
    sd.distill(dataset="digits", arch="mlp", nets="fixed", outer_steps=3, out=str(run))
    out = tmp_path / "table"
    argv = [str(run), "--sigma", "0", "0.5", "--draws", "2", "--out", str(out)]
    assert benchmark_module("sensitivity").main(argv) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    rows = result["rows"]
    tensors = ["x_syn", "label_params", "raw_lrs", "all"]
    assert [(r["sigma"], r["tensor"]) for r in rows] == [(s, t) for s in (0, 0.5) for t in tensors]
    for r in rows[:4]:
        assert r["accs"] == [result["base"]] * 2  # sigma 0: the set as learned
    noisy = rows[4 + tensors.index("x_syn")]["accs"]
    assert noisy != [result["base"]] * 2  # noise of 0.5 on the inputs moves the accuracy
    md = out.with_suffix(".md").read_text()
    assert "--sigma 0 0.5 --draws 2" in md


def test_reproduce_text_keeps_finished_lines_of_an_earlier_table(tmp_path):
    text = benchmark_module("reproduce_text")
    header = "| setting | embeddings | distilled |"
    old = tmp_path / "old.md"
    old.write_text(
        "# t\n\n" + header + "\n|---|---|---|\n"
        "| TREC-6 BiLSTM fixed, 6 [decay60] | glove6b | 84.8 |\n"
        "| SST-5 BiRNN fixed, 100 | — | not run (no finished run folder) |\n"
    )
    kept = text.kept_lines(str(old), header)
    assert list(kept) == ["| TREC-6 BiLSTM fixed, 6 [decay60]"]  # the unfinished line is not kept
    assert text.row_of_label("| TREC-6 BiLSTM fixed, 6 [decay60]") == (
        "trec6_bilstm_fixed_6",
        "decay60",
    )
    assert text.row_of_label("| SST-5 BiRNN fixed, 100") == ("sst5_birnn_fixed_100", "")
    assert text.kept_lines(None, header) == {}
    # the content read before any table was written wins over the file as it is now
    old.write_text(old.read_text().replace("[decay60]", "[decay60, earlier seeds]"))
    first = "# t\n\n" + header + "\n|---|---|---|\n| TREC-6 BiLSTM fixed, 6 [decay60] | g | 1 |\n"
    assert list(text.kept_lines(str(old), header, first)) == ["| TREC-6 BiLSTM fixed, 6 [decay60]"]
    with pytest.raises(SystemExit, match="columns differ"):
        text.kept_lines(str(old), "| setting | other |")


def test_reproduce_text_resumes_a_stopped_run_of_the_same_config_and_counts_its_whole_loop(
    tmp_path,
):
    import json

    text = benchmark_module("reproduce_text")
    run, cfg_file = tmp_path / "row", tmp_path / "row.yaml"
    config = {"dataset": "trec6", "outer_steps": 100}
    assert not text.resumable(run, cfg_file, config)  # nothing there: start
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"x")
    cfg_file.write_text("dataset: trec6\nouter_steps: 100\n")
    assert text.resumable(run, cfg_file, config)
    assert not text.resumable(run, cfg_file, {**config, "outer_steps": 200})  # another config
    (run / "eval.json").write_text(json.dumps({"protocol": {"seconds": 500.0}}))
    assert not text.resumable(run, cfg_file, config)  # finished
    # wall: the last process's 100 s saw only the steps after the resume; the loop took 500 s
    (run / "run.json").write_text(json.dumps({"wall_seconds": 100.0, "after_loop_seconds": 20.0}))
    assert text._run_wall(run) == 520.0
    (run / "eval.json").write_text(json.dumps({"protocol": {"seconds": 50.0}}))
    assert text._run_wall(run) == 100.0  # a run in one process: its own wall time


def test_reproduce_text_keeps_earlier_seeds_beside_a_new_line_of_the_same_variant():
    text = benchmark_module("reproduce_text")
    cells = ["| IMDB TextConvNet fixed, 20 [clip2]", "glove6b", "20 × 5", "2500", "80.0", "76.9"]
    line = " | ".join([*cells, "0: 76.9", "49.8 |"])
    assert text.line_seeds(line) == {0}
    assert text.line_seeds(line.replace("0: 76.9", "0: 76.9, 1: 78.0")) == {0, 1}
    kept = {cells[0]: line}
    # the new line has seed 1 only: seed 0's line stays, marked
    [(row, tag, out)] = text.kept_beside(kept, {cells[0]: {1}})
    assert (row, tag) == ("imdb_textconvnet_fixed_20", "clip2, earlier seeds")
    assert out.startswith("| IMDB TextConvNet fixed, 20 [clip2, earlier seeds] | glove6b |")
    assert text.row_of_label(out.split(" | ")[0]) == (row, tag)
    assert text.kept_beside(kept, {cells[0]: {0, 1}}) == []  # replaced by the new line
    assert [t for _, t, _ in text.kept_beside(kept, {})] == ["clip2"]  # not run again: kept


def test_reproduce_text_baseline_columns_do_not_depend_on_the_runs_present():
    """The header is the same whichever baselines the runs computed (IMDB has no kmeans), so an
    earlier table's lines can always be kept beside a new line."""
    text = benchmark_module("reproduce_text")
    all_seven = text.baseline_columns(text.BASELINE_COLUMNS)
    assert text.baseline_columns(["random", "average", "knn"]) == all_seven
    assert text.baseline_columns([]) == all_seven
    assert text.baseline_columns(["random", "mine"]) == [*all_seven, "mine"]


def test_time_to_accuracy_runs_a_named_variant_beside_its_preset(tmp_path):
    """benchmarks/time_to_accuracy.py --variant NAME --extra FLAGS: the row is labelled
    'PRESET [NAME]' (the preset's own rows stay), its folder is its own, and its command
    carries the flags."""
    tta = benchmark_module("time_to_accuracy")
    flags = ["--outer_steps", "4", "--eval_every", "2", "--baseline_lrs", "0.1", "--threads", "1"]
    row = tta.run_preset("demo_digits", 0, str(tmp_path), tmp_path / "runs", flags, "short")
    assert row["preset"] == "demo_digits [short]" and row["outer_steps"] == 4
    assert (tmp_path / "runs" / "demo_digits-short_seed0" / "eval.json").is_file()
    assert row["command"].endswith("--seed 0 " + " ".join(flags))
    assert 0 <= row["final_acc"] <= 1 and row["peak_rss_mb"] > 0
    lines = tta.runs_table([row])
    assert any(line.startswith("| demo_digits [short] | 0 |") for line in lines)
    row_line = next(line for line in lines if line.startswith("| demo_digits [short] |"))
    assert row_line.endswith(" - |")  # no speed probe: run_preset alone measures none


def test_time_to_accuracy_rows_carry_the_speed_probe_of_their_day():
    """The speed probe is a positive CPU time at one thread (the caller's thread count is given
    back), and a row that has one shows it in the table's last column."""
    import torch

    tta = benchmark_module("time_to_accuracy")
    threads = torch.get_num_threads()
    probe = tta.speed_probe(reps=2)
    assert probe > 0 and torch.get_num_threads() == threads
    row = {
        "preset": "p", "seed": 0, "final_acc": 0.9, "selected_val_acc": None, "target": None,
        "first_step_at_target": None, "outer_steps": 10, "wall_s": 1.0, "s_per_step": 0.1,
        "cpu_s_per_step": 0.1, "peak_rss_mb": 100.0, "threads": 1, "after_loop_s": 0.5,
        "command": "c", "speed_probe_s": 0.2283,
    }  # fmt: skip
    line = next(ln for ln in tta.runs_table([row]) if ln.startswith("| p | 0 |"))
    assert line.endswith("| 0.5 | 0.228 |")
    # a restarts run: the other starts' steps beside the kept set's
    line = next(ln for ln in tta.runs_table([{**row, "other_steps": 5}]) if ln.startswith("| p |"))
    assert "| 10 (+5) |" in line


def test_ceiling_heldout_scores_the_held_out_split_only(tmp_path):
    """benchmarks/ceiling_heldout.py on digits: one row per table, one score per pass, on the
    val_size examples distillation holds out; a preset without a held-out split is refused."""
    cfg = tmp_path / "digits.yaml"
    cfg.write_text("dataset: digits\narch: mlp\nnets: fixed\nval_size: 300\neval_every: 10\n")
    out = tmp_path / "table"
    mod = benchmark_module("ceiling_heldout")
    assert mod.main(["--config", str(cfg), "--epochs", "2", "--out", str(out)]) == 0
    rows = json.loads(out.with_suffix(".json").read_text())
    assert len(rows) == 1 and len(rows[0]["per_epoch"]) == 2
    assert rows[0]["last"] == rows[0]["per_epoch"][-1] > 0.5  # 10 classes, chance 0.1
    assert all(round(a * 300) == a * 300 for a in rows[0]["per_epoch"])  # scored on 300 examples
    assert "| `auto` |" in out.with_suffix(".md").read_text()
    cfg.write_text("dataset: digits\narch: mlp\nnets: fixed\n")
    with pytest.raises(SystemExit):
        mod.main(["--config", str(cfg), "--out", str(out)])


def test_reproduce_text_marks_the_variant_a_preset_took(tmp_path):
    """A tagged line that ran the preset as it is now says '(= preset)' (from its run's config
    file); a line kept from an earlier table keeps its mark while its --set values are still the
    preset's, and loses a stale one; untagged lines are never marked."""
    text = benchmark_module("reproduce_text")
    row = "imdb_textconvnet_fixed_2"
    cmd = f"python benchmarks/reproduce_text.py --data-dir DATA --runs RUNS --rows {row}"

    def line(first, sets):
        return f"{first} | glove6b | 66.7 | `{cmd} --seeds 0{sets} --tag t` |"

    # the config a run ran, as reproduce_text writes it beside the run folder
    preset = text.preset_settings(row)
    ran = tmp_path / "ran.yaml"
    ran.write_text(yaml.safe_dump({**preset, "seed": 3, "data_dir": "elsewhere"}))
    assert text.ran_preset(ran, row)
    ran.write_text(yaml.safe_dump({**preset, "outer_steps": preset["outer_steps"] + 1}))
    assert not text.ran_preset(ran, row)  # a key it did not --set differs: not the preset now
    assert not text.ran_preset(tmp_path / "missing.yaml", row)

    new = line("| IMDB TextConvNet fixed, 2 [paperlr]", " --set lr=0.1")
    assert text.mark_preset(new, True).startswith(
        "| IMDB TextConvNet fixed, 2 [paperlr] (= preset) |"
    )
    assert text.mark_preset(new, False) == new
    assert text.mark_preset(line("| IMDB TextConvNet fixed, 2", ""), True).count("(=") == 0
    # kept lines: the earlier mark stays while the overrides agree, an unmarked line stays so
    kept = line("| IMDB TextConvNet fixed, 2 [paperlr] (= preset)", f" --set lr={preset['lr']}")
    assert text.mark_preset(kept) == kept
    assert text.mark_preset(kept.replace(" (= preset)", "")).count("(=") == 0
    stale = line("| IMDB TextConvNet fixed, 2 [lr3] (= preset)", " --set lr=3")
    assert text.mark_preset(stale) == stale.replace(" (= preset)", "")
    unknown = line("| IMDB TextConvNet fixed, 2 [new] (= preset)", " --set no_such_key=1")
    assert "(=" not in text.mark_preset(unknown)
    assert text.row_of_label("| IMDB TextConvNet fixed, 2 [paperlr] (= preset)") == (row, "paperlr")
    # a new marked line replaces its earlier unmarked line (and the other way round)
    assert text.line_key(kept) == text.line_key(kept.replace(" (= preset)", ""))
    assert text.line_key(kept) == text.line_key(new) == "| IMDB TextConvNet fixed, 2 [paperlr]"


def test_adam_state_reads_a_runs_checkpoint_and_its_noise_reference_holds(tmp_path):
    """benchmarks/adam_state.py: one row per learned tensor of a tiny run's last checkpoint; and
    the 'noise' reference is what Adam's moments give on zero-mean Gaussian gradients."""
    import torch

    import softdistill as sd

    bench = benchmark_module("adam_state")
    run = tmp_path / "run"
    sd.distill(dataset="digits", arch="mlp", nets="fixed", outer_steps=4, out=str(run))
    out = tmp_path / "table"
    assert bench.main([str(run), "--out", str(out)]) == 0
    (result,) = json.loads(out.with_suffix(".json").read_text())
    assert result["step"] == 4 and result["beta1"] == 0.5
    assert [t["tensor"] for t in result["tensors"]] == ["x_syn", "label_params", "raw_lrs"]
    for t in result["tensors"]:
        lo, mid, hi = t["quantiles"]
        assert 0 <= lo <= mid <= hi
    assert "| x_syn |" in out.with_suffix(".md").read_text()
    with pytest.raises(SystemExit):
        bench.main([str(tmp_path / "no_run")])
    # the reference: Adam's moments (its two running averages) fed pure noise for many steps
    g = torch.Generator().manual_seed(0)
    for beta1 in (0.5, 0.9):
        m, v = torch.zeros(5000), torch.zeros(5000)
        for _ in range(3000):
            grad = torch.randn(5000, generator=g)
            m.mul_(beta1).add_(grad, alpha=1 - beta1)
            v.mul_(0.999).addcmul_(grad, grad, value=0.001)
        ratio = m.abs() / v.sqrt()
        assert ratio.median().item() == pytest.approx(bench.noise_median(beta1), rel=0.05)


def test_step_ab_times_a_preset_beside_its_variants(tmp_path):
    """benchmarks/step_ab.py: one row for the preset and one per --variant, each with a time per
    step and the rounds it came from; a malformed --variant is refused."""
    bench = benchmark_module("step_ab")
    out = tmp_path / "ab"
    argv = ["--data-dir", str(tmp_path), "--preset", "demo_digits", "--variant", "batch_size=64"]
    assert bench.main([*argv, "--rounds", "2", "--steps", "2", "--out", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    rows = result["rows"]
    assert [r["configuration"] for r in rows] == ["preset", "batch_size=64"]
    assert rows[1]["overrides"] == {"batch_size": 64}
    for r in rows:
        assert len(r["rounds"]) == 2 and r["s_per_step"] > 0
    assert "--variant batch_size=64" in out.with_suffix(".md").read_text()
    with pytest.raises(SystemExit):
        bench.main(["--data-dir", str(tmp_path), "--preset", "demo_digits", "--variant", "x"])
    with pytest.raises(SystemExit):
        bench.main(["--data-dir", str(tmp_path), "--preset", "no_such_preset"])
    with pytest.raises(ConfigError, match="batch_size"):  # typed as the CLI's flags are
        bench.main([*argv[:4], "--variant", "batch_size=many", "--out", str(out)])
