"""The original code's command lines (its README and docs/scripts.txt) run as they are."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest

from softdistill.cli import main, parse_command
from softdistill.cli.common import config_from_args
from softdistill.config import Config, ConfigError
from softdistill.original import translate

# The lines as the original README and its docs/scripts.txt write them, after `python main.py`.
README_MNIST_FIXED = (
    "--mode distill_basic --dataset MNIST --arch LeNet --distill_steps 1 "
    "--train_nets_type known_init --n_nets 1 --test_nets_type same_as_train --static_labels 0 "
    "--random_init_labels ''"
)
README_CIFAR_FIXED = (
    "--mode distill_basic --dataset Cifar10 --arch AlexCifarNet --distill_lr 0.001 "
    "--train_nets_type known_init --n_nets 1 --test_nets_type same_as_train"
)
README_MNIST_RANDOM = "--mode distill_basic --dataset MNIST --arch LeNet"
README_CIFAR_RANDOM = (
    "--mode distill_basic --dataset Cifar10 --arch AlexCifarNet --distill_lr 0.001"
)
README_IMDB = (
    "--mode distill_basic --dataset imdb --arch TextConvNet3 --distill_steps 1 --static_labels 0 "
    "--random_init_labels 0 --textdata True --visualize '' "
    "--distilled_images_per_class_per_step 10 --distill_epochs 5 --distill_lr 0.01 "
    "--decay_epochs 10 --epochs 100 --lr 0.01 --ntoken 5000 --ninp 100 "
    "--results_dir text_results/imdb_20by1_unkinit_repl1 --device_id 0"
)
README_SST5 = (
    "--mode distill_basic --dataset sst5 --arch TextConvNet3 --distill_steps 10 "
    "--train_nets_type known_init --n_nets 1 --test_nets_type same_as_train --static_labels 0 "
    "--random_init_labels 0 --textdata True --visualize '' --distill_epochs 5 --distill_lr 0.01 "
    " --decay_epochs 10 --epochs 100 --lr 0.01 --ntoken 5000 --ninp 100 "
    "--results_dir text_results/sst_test"
)
SCRIPT_MNIST_100BY1 = (
    "--mode distill_basic --dataset MNIST --arch LeNet --distill_steps 1 --static_labels 0 "
    "--random_init_labels 0 --distill_lr 0.01  --decay_epochs 35 --epochs 350 --lr 0.01  "
    "--results_dir mnist_100by1_repl1 --device_id 0"
)
SCRIPT_CIFAR_10BY10_UNK = (
    "--mode distill_basic --dataset Cifar10 --arch AlexCifarNet --distill_steps 10 "
    "--static_labels 0 --random_init_labels 0 --distill_lr 0.001  --decay_epochs 35 "
    "--epochs 350 --lr 0.01  --results_dir cifar_10by10_repl1 --device_id 0"
)
SCRIPT_MNIST_3CLASS = (
    "--mode distill_basic --dataset MNIST --arch LeNet --train_nets_type known_init --n_nets 1 "
    "--test_nets_type same_as_train --distill_steps 1 --static_labels 0 --random_init_labels 0 "
    "--distill_lr 0.01  --decay_epochs 35 --epochs 350 --lr 0.01  --num_distill_classes 3 "
    "--init_labels 0 3 7 --results_dir mnist_3class_repl1 --device_id 0"
)
SCRIPT_CIFAR_10BY10 = (
    "--mode distill_basic --dataset Cifar10 --arch AlexCifarNet --train_nets_type known_init "
    "--n_nets 1 --test_nets_type same_as_train --distill_steps 10 --static_labels 0 "
    "--random_init_labels 0 --distill_lr 0.001  --decay_epochs 35 --epochs 350 --lr 0.01  "
    "--results_dir cifar_10by10_knowninit_repl1 --device_id 0"
)
SCRIPT_TREC50_UNK = (
    "--mode distill_basic --dataset trec50 --arch TextConvNet3 --distill_steps 10 "
    "--static_labels 0 --random_init_labels 0 --textdata True --visualize '' "
    "--distilled_images_per_class_per_step 10 --distill_epochs 5 --distill_lr 0.01 "
    "--decay_epochs 10 --epochs 100 --lr 0.01 --ntoken 5000 --ninp 100 "
    "--results_dir text_results/trec50_50by10_unkinit_repl2 --device_id 0"
)
SCRIPT_SST5_STATIC = (
    "--mode distill_basic --dataset sst5 --arch TextConvNet3 --distill_steps 10 "
    "--train_nets_type known_init --n_nets 1 --test_nets_type same_as_train --static_labels 1 "
    "--random_init_labels 0 --textdata True --visualize '' "
    "--distilled_images_per_class_per_step 1 --distill_epochs 5 --distill_lr 0.01 "
    "--num_distill_classes 5 --init_labels 0 1 2 3 4 --decay_epochs 10 --epochs 100 --lr 0.01 "
    "--ntoken 5000 --ninp 100 --results_dir text_results/sst_test --device_id 0"
)
# The text lines of the authors' runs (the flags of their opt.yaml files).
TEXT_TREC6_LSTM = (
    "--mode distill_basic --dataset trec6 --arch TextLSTM2 --distill_steps 1 "
    "--train_nets_type known_init --n_nets 1 --test_nets_type same_as_train --static_labels 0 "
    "--random_init_labels '' --textdata True --visualize '' --distill_epochs 2 --distill_lr 1.5 "
    "--decay_epochs 30 --epochs 200 --lr 0.1 --maxlen 30 --ntoken 8700 --ninp 100 "
    "--label_softmax 0 --learnable_embedding False --num_workers 0 --checkpoint_interval 10 "
    "--device_id -1 --results_dir runs/trec6"
)
TEXT_SST5_RNN = (
    "--mode distill_basic --dataset sst5 --arch TextRNN1 --distill_steps 1 "
    "--train_nets_type known_init --n_nets 1 --test_nets_type same_as_train --static_labels 0 "
    "--random_init_labels '' --textdata True --visualize '' --distill_epochs 1 --distill_lr 0.5 "
    "--decay_epochs 30 --epochs 140 --lr 0.01 --maxlen 56 --label_softmax 1 --device_id -1"
)


def resolve(line: str, *extra: str) -> tuple[Config, list[str]]:
    """The config a `softdistill distill` line resolves to (nothing is run), and the notes."""
    args, notes = parse_command(["distill", *shlex.split(line), *extra])
    return config_from_args(args), notes


def test_readme_mnist_line_is_the_ten_image_preset():
    cfg, notes = resolve(README_MNIST_FIXED, "--epochs", "1")
    preset = Config.from_file("configs/mnist_lenet_fixed_10.yaml")
    for key in (
        "dataset",
        "arch",
        "nets",
        "per_class",
        "n_batches",
        "n_epochs",
        "learn_labels",
        "label_init",
        "objective",
        "n_nets",
    ):
        assert getattr(cfg, key) == getattr(preset, key), key
    assert (cfg.dataset, cfg.arch, cfg.nets) == ("mnist", "lenet", "fixed")
    assert (cfg.per_class, cfg.n_batches, cfg.n_epochs, cfg.learn_labels) == (1, 1, 3, True)
    # --epochs counts passes: resolved once the data size is known; decay_epochs: the default 40
    assert (cfg.outer_epochs, cfg.decay_epochs) == (1, 40)
    steps, _ = cfg.resolve_passes(60000)
    assert (steps.outer_steps, steps.decay_every, steps.outer_epochs) == (59, 2360, None)
    assert "original flag --distill_steps 1 -> ours --n_batches 1" in notes
    assert "original flag --static_labels 0 -> ours --learn_labels" in notes
    assert any("--decay_epochs 40" in n and "original's defaults" in n for n in notes)


@pytest.mark.parametrize(
    "line,expected",
    [
        (
            README_CIFAR_FIXED,
            dict(
                dataset="cifar10",
                arch="alexcifarnet",
                nets="fixed",
                n_batches=10,
                init_lr=0.001,
                outer_epochs=400,
                decay_epochs=40,
            ),
        ),
        (
            README_MNIST_RANDOM,
            dict(
                dataset="mnist",
                arch="lenet",
                nets="random",
                n_batches=10,
                n_epochs=3,
                init_lr=0.02,
                outer_epochs=400,
            ),
        ),
        (README_CIFAR_RANDOM, dict(dataset="cifar10", nets="random", init_lr=0.001)),
        (
            README_IMDB,
            dict(
                dataset="imdb",
                arch="textconvnet",
                nets="random",
                n_batches=1,
                per_class=10,
                n_epochs=5,
                init_lr=0.01,
                outer_epochs=100,
                decay_epochs=10,
                lr=0.01,
                ntoken=5000,
                label_init="onehot",
                learn_labels=True,
                device="cuda:0",
            ),
        ),
        (
            README_SST5,
            dict(
                dataset="sst5",
                arch="textconvnet",
                nets="fixed",
                n_batches=10,
                n_epochs=5,
                outer_epochs=100,
                device="auto",
            ),
        ),
        (
            SCRIPT_MNIST_100BY1,
            dict(nets="random", n_batches=1, init_lr=0.01, outer_epochs=350, decay_epochs=35),
        ),
        (SCRIPT_CIFAR_10BY10_UNK, dict(dataset="cifar10", nets="random", n_batches=10)),
        (
            SCRIPT_MNIST_3CLASS,
            dict(
                n_label_classes=3,
                init_labels=[0, 3, 7],
                init_lr=0.01,
                outer_epochs=350,
                decay_epochs=35,
                nets="fixed",
            ),
        ),
        (
            SCRIPT_CIFAR_10BY10,
            dict(
                arch="alexcifarnet", n_batches=10, init_lr=0.001, outer_epochs=350, decay_epochs=35
            ),
        ),
        (SCRIPT_TREC50_UNK, dict(dataset="trec50", nets="random", n_batches=10, per_class=10)),
        (
            SCRIPT_SST5_STATIC,
            dict(learn_labels=False, n_label_classes=5, init_labels=[0, 1, 2, 3, 4], per_class=1),
        ),
        (
            TEXT_TREC6_LSTM,
            dict(
                dataset="trec6",
                arch="textlstm",
                arch_args={"hidden": 100, "layers": 2, "readout": "last"},
                n_epochs=2,
                init_lr=1.5,
                lr=0.1,
                outer_epochs=200,
                decay_epochs=30,
                maxlen=30,
                ntoken=8700,
                label_mode="raw",
                checkpoint_epochs=10,
                device="cpu",
            ),
        ),
        (
            TEXT_SST5_RNN,
            dict(
                arch="textrnn",
                arch_args={"hidden": 100, "layers": 2, "readout": "last"},
                n_epochs=1,
                init_lr=0.5,
                outer_epochs=140,
                maxlen=56,
                label_mode="softmax",
            ),
        ),
    ],
)
def test_original_lines_resolve_to_our_settings(line, expected):
    cfg, notes = resolve(line)
    for key, value in expected.items():
        assert getattr(cfg, key) == value, key
    # every original flag of the line is reported once, under its own name
    flags = {t[2:] for t in shlex.split(line) if t.startswith("--")}
    ours = {"dataset", "arch", "n_nets", "lr", "ntoken", "maxlen", "init_labels", "decay_epochs"}
    for flag in flags - ours:
        assert any(f"--{flag}" in n for n in notes), flag


def test_results_dir_is_the_run_folder_unless_out_is_given():
    args, _ = parse_command(["distill", *shlex.split(README_SST5)])
    assert args.out == "text_results/sst_test"
    args, notes = parse_command(["distill", *shlex.split(README_SST5), "--out", "R"])
    assert args.out == "R" and any("--out wins" in n for n in notes)


def test_our_defaults_stay_for_lines_in_our_style():
    cfg, notes = resolve("--dataset MNIST --arch LeNet --static_labels 1 --outer_steps 5")
    # --static_labels is original-only: the line is original-style, so original defaults apply
    assert cfg.nets == "random" and cfg.n_batches == 10 and cfg.learn_labels is False
    assert cfg.outer_steps == 5 and cfg.outer_epochs is None  # outer_steps given: no --epochs
    cfg, notes = resolve("--dataset MNIST --arch LeNet --lr 0.02")
    assert cfg.nets == "fixed" and cfg.n_batches == 1 and not notes  # ours: nothing added


def test_config_file_keeps_its_values(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("n_batches: 2\nnets: fixed\n")
    cfg, _ = resolve(f"--config {f} --mode distill_basic --distill_epochs 1")
    assert (cfg.n_batches, cfg.nets, cfg.n_epochs, cfg.outer_epochs) == (2, "fixed", 1, None)


@pytest.mark.parametrize(
    "line,message",
    [
        ("--train_nets_type loaded", "--nets pool:POOL"),
        ("--test_nets_type loaded", "--test_pool PATH"),
        ("--learnable_embedding True", "frozen"),
        ("--learnable_embedding", "frozen"),
        ("--random_init_labels CNDB", "not implemented"),
        ("--random_init_labels file", "--label_init file:PATH"),
        ("--static_labels maybe", "takes 0 .* or 1"),
        ("--world_size 2", "torchrun --nproc-per-node"),
        ("--dropout", "arch_args dropout=0.5"),
        (
            "--dataset trec6 --phase test --test_distilled_images average_train "
            "--test_distilled_lrs nearest_neighbor 3 0.2 --results_dir text_results/t6",
            "softdistill evaluate text_results/t6 --baseline average knn --knn_k 3 --knn_p 0.2",
        ),
        ("--test_distilled_lrs fix", "fix LR"),
        ("--device_id gpu", "takes an integer"),
    ],
)
def test_flags_that_cannot_be_honoured_say_what_to_use(line, message, capsys):
    with pytest.raises(ConfigError, match=message):
        translate(shlex.split(line))
    assert main(["distill", *shlex.split(line)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_baseline_flags_of_the_scripts():
    cfg, _ = resolve(
        "--mode distill_basic --test_distilled_images random_train --test_distilled_lrs fix 0.2 "
        "--test_optimize_n_runs 50 --test_n_runs 10 --test_n_nets 200"
    )
    assert cfg.baselines == ["random"] and cfg.baseline_lr == 0.2
    assert cfg.baseline_draws == 50 and cfg.test_n_nets == 200


@pytest.mark.parametrize(
    "tokens,expected",
    [
        (["--freeze_data", "True"], True),
        (["--freeze_data", "1"], True),
        (["--freeze-data", "False"], False),
        (["--freeze_data", ""], False),
        (["--freeze_data"], True),
        (["--no-freeze_data"], False),
    ],
)
def test_boolean_flags_take_the_original_value_syntax(tokens, expected):
    cfg, _ = resolve(" ".join(shlex.quote(t) for t in tokens))
    assert cfg.freeze_data is expected


def test_evaluate_keeps_its_own_epochs_flag():
    args, notes = parse_command(["evaluate", "RUN", "--protocol", "scratch", "--epochs", "7"])
    assert args.scratch_epochs == 7 and not notes


def test_original_mnist_line_runs_end_to_end(tmp_path, capsys):
    """The README's MNIST line on a tiny MNIST-format file: 1 pass = 5 outer steps."""
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    np.savez(
        data / "mnist.npz",
        x_train=rng.integers(0, 256, (300, 28, 28), dtype=np.uint8),
        y_train=np.arange(300) % 10,
        x_test=rng.integers(0, 256, (100, 28, 28), dtype=np.uint8),
        y_test=np.arange(100) % 10,
    )
    out = tmp_path / "run"
    argv = [
        "distill",
        *shlex.split(README_MNIST_FIXED),
        "--epochs", "1", "--batch_size", "64",
        "--test_distilled_images", "random_train", "--test_distilled_lrs", "fix", "0.1",
        "--device_id", "-1", "--num_workers", "0", "--visualize", "",
        "--data-dir", str(data), "--results_dir", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    # the notes, then the resolved method settings in one line before any work
    assert "original flag --distill_steps 1 -> ours --n_batches 1" in err
    assert "outer_epochs 1 -> outer_steps 5 (5 steps per pass over 300" in err
    assert "method: dataset mnist, arch lenet (init xavier), nets fixed x 1" in err
    assert "(T = 3), labels learned (onehot, raw)" in err
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["outer_steps"], cfg["decay_every"], cfg["outer_epochs"]) == (5, 200, None)
    assert (cfg["n_batches"], cfg["n_epochs"], cfg["nets"], cfg["learn_labels"]) == (
        1, 3, "fixed", True,
    )  # fmt: skip
    ev = json.loads((out / "eval.json").read_text())
    assert ev["protocol"]["outer_steps"] == 5 and list(ev["baselines"]) == ["random"]
    assert ev["baselines"]["random"]["lr"] == 0.1


def test_sample_n_nets_is_the_nets_per_step_whatever_the_order():
    cfg, notes = resolve("--train_nets_type unknown_init --sample_n_nets 4 --n_nets 20")
    assert cfg.n_nets == 4 and any("--sample_n_nets 4 -> ours --n_nets 4" in n for n in notes)


SCRIPT_IMDB_TRAIN = (
    "--mode train --dataset imdb --arch TextConvNet3  --textdata True --visualize ''   "
    "--decay_epochs 10 --epochs 100 --lr 0.01 --ntoken 5000 --ninp 100 "
    "--results_dir text_results/imdb_model_acc_repl1 --device_id 0"
)


def test_mode_train_line_is_softdistill_train():
    from softdistill.cli.train import _train_config

    args, notes = parse_command(["distill", *shlex.split(SCRIPT_IMDB_TRAIN)])
    assert args.command == "train" and args.out == "text_results/imdb_model_acc_repl1"
    cfg = _train_config(args)
    assert (cfg.dataset, cfg.arch, cfg.arch_args) == (
        "imdb",
        "textconvnet",
        {"widths": [3, 4, 5], "maps": 100},
    )
    assert (cfg.epochs, cfg.decay_every, cfg.lr, cfg.ntoken, cfg.n_nets) == (100, 10, 0.01, 5000, 1)
    assert cfg.device == "cuda:0"
    assert "original flag --mode train -> ours: the command `softdistill train`" in notes
    assert any("--n_nets 1" in n and "original's defaults" in n for n in notes)


def test_mode_train_line_runs(tmp_path):
    out = tmp_path / "pool"
    line = f"--mode train --dataset digits --arch MLP --epochs 1 --results_dir {out} --quiet"
    assert main(["distill", *shlex.split(line)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["n_nets"] == 1 and 0 <= manifest["test_acc_mean"] <= 1


def test_mode_train_without_a_folder_says_which_flag(capsys):
    assert main(["distill", "--mode", "train", "--dataset", "digits"]) == 2
    err = capsys.readouterr().err
    assert "--results_dir DIR" in err and err.count("\n") == 1
