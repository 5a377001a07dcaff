from __future__ import annotations

import json

import pytest

from softdistill.config import Config, ConfigError


def test_defaults_validate():
    assert Config().validate().n_steps == 3


def test_unknown_key_suggests_nearest(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'per_class'"):
        Config.from_dict({"per_clas": 2})


def test_original_flag_name_points_to_ours():
    with pytest.raises(ConfigError, match="'distill_steps' is 'n_batches' here"):
        Config.from_dict({"distill_steps": 10})


@pytest.mark.parametrize(
    "suffix,text",
    [
        (".yaml", "per_class: 2\narch: lenet\ninit_labels: [3, 7]\n"),
        (".json", json.dumps({"per_class": 2, "arch": "lenet", "init_labels": [3, 7]})),
        (".toml", 'per_class = 2\narch = "lenet"\ninit_labels = [3, 7]\n'),
    ],
)
def test_file_formats(tmp_path, suffix, text):
    p = tmp_path / f"c{suffix}"
    p.write_text(text)
    cfg = Config.from_file(p)
    assert (cfg.per_class, cfg.arch, cfg.init_labels) == (2, "lenet", [3, 7])


def test_yaml_is_parsed_safely(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("arch: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        Config.from_file(p)


@pytest.mark.parametrize(
    "change,message",
    [
        ({"arch": "lenett"}, "did you mean 'lenet'"),
        ({"per_class": 0}, "per_class must be a positive integer"),
        ({"init_lr": -0.1}, "init_lr must be positive"),
        ({"lr": 0}, "lr must be positive"),
        (
            {"n_label_classes": 2, "init_labels": [1, 2, 3]},
            "has 3 entries but n_label_classes is 2",
        ),
        ({"label_init": "onehott"}, "did you mean 'onehot'"),
        ({"nets": "randon"}, "did you mean 'random'"),
    ],
)
def test_validation_messages(change, message):
    with pytest.raises(ConfigError, match=message):
        Config(**change).validate()


def test_label_classes_checked_against_dataset():
    assert Config(n_label_classes=5).label_classes(10) == [0, 1, 2, 3, 4]
    assert Config(init_labels=[3, 7]).label_classes(10) == [3, 7]
    with pytest.raises(ConfigError, match=r"init_labels \[12\] out of range"):
        Config(init_labels=[3, 12]).label_classes(10)
    with pytest.raises(ConfigError, match="exceeds"):
        Config(n_label_classes=11).label_classes(10)


def test_snapshot_interval():
    assert Config(outer_steps=1000).snapshot_interval == 40  # about 25 per run
    assert Config(outer_steps=10).snapshot_interval == 1
    assert Config(snapshot_every=0).snapshot_interval == 0
    assert Config(snapshot_every=7).validate().snapshot_interval == 7
    with pytest.raises(ConfigError, match="snapshot_every must be >= 0"):
        Config(snapshot_every=-3).validate()


@pytest.mark.parametrize("suffix", [".yaml", ".json", ".toml"])
@pytest.mark.parametrize(
    "key,text,message",
    [
        ("init_lr", '"fast"', "init_lr in .* takes a number, got 'fast'"),
        ("batch_size", "3.5", "batch_size in .* takes an integer, got 3.5"),
        ("learn_labels", '"maybe"', "learn_labels in .* takes true or false, got 'maybe'"),
        ("arch", "3", "arch in .* takes a string, got 3"),
        ("baselines", "7", "baselines in .* takes a list of strings, got 7"),
        ("arch_args", '"wide"', "arch_args in .* takes a mapping of keys to values"),
        ("maxlen", '"long"', r"maxlen in .* takes an integer \(or null\), got 'long'"),
    ],
)
def test_values_of_the_wrong_type_name_the_key_and_type(tmp_path, suffix, key, text, message):
    p = tmp_path / f"c{suffix}"
    if suffix == ".json":
        p.write_text(f'{{"{key}": {text}}}')
    else:
        p.write_text(f"{key}: {text}\n" if suffix == ".yaml" else f"{key} = {text}\n")
    with pytest.raises(ConfigError, match=message):
        Config.from_file(p)


def test_plain_meanings_are_coerced(tmp_path):
    p = tmp_path / "c.yaml"
    # PyYAML reads 1e-3 as a string; integral floats are integers; yes/no are booleans
    p.write_text("lr: 1e-3\ninit_lr: 1\nbatch_size: 256.0\nlearn_lrs: 'no'\nbaselines: random\n")
    cfg = Config.from_file(p)
    assert cfg.lr == 0.001 and isinstance(cfg.lr, float)
    assert cfg.init_lr == 1.0 and isinstance(cfg.init_lr, float)
    assert cfg.batch_size == 256 and isinstance(cfg.batch_size, int)
    assert cfg.learn_lrs is False and cfg.baselines == ["random"]


def test_python_api_and_constructor_check_types_too():
    from softdistill import api

    with pytest.raises(ConfigError, match="batch_size in .* takes an integer, got 3.5"):
        api.resolve_config(batch_size=3.5)
    with pytest.raises(ConfigError, match="init_lr in config takes a number"):
        Config(init_lr="fast")
    with pytest.raises(ConfigError, match="outer_steps in config takes an integer, got True"):
        Config(outer_steps=True)
    assert Config().replace(lr="0.5").lr == 0.5


def test_original_names_match_case_insensitively():
    cfg = Config(dataset="Cifar10", arch="AlexCifarNet").validate()
    assert (cfg.dataset, cfg.arch) == ("cifar10", "alexcifarnet")
    cfg = Config(dataset="trec6", arch="TextLSTM1", arch_args={"hidden": 20}).validate()
    assert cfg.arch == "textlstm"
    assert cfg.arch_args == {"hidden": 20, "layers": 1, "readout": "last"}  # given ones win
    assert Config(dataset="FashionMNIST").dataset == "fashion_mnist"
    assert Config(dataset="folder:My/Images").dataset == "folder:My/Images"  # paths keep case


def test_passes_become_steps():
    cfg, notes = Config(
        outer_epochs=2, decay_epochs=1, checkpoint_epochs=1, batch_size=100
    ).resolve_passes(250)
    assert (cfg.outer_steps, cfg.decay_every, cfg.checkpoint_every) == (6, 3, 3)
    assert cfg.outer_epochs is None and len(notes) == 3 and "3 steps per pass" in notes[0]
    assert "batch_size_late" not in notes[0]
    _, notes = Config(
        outer_epochs=2, batch_size=100, batch_size_late=200, batch_late_from=4
    ).resolve_passes(250)
    assert "3 steps per pass" in notes[0] and "batch_size_late 200" in notes[0]  # not counted
    with pytest.raises(ConfigError, match="outer_epochs must be a positive integer"):
        Config(outer_epochs=0).validate()


def test_baselines_none_or_empty_means_no_baselines():
    assert Config(baselines=["none"]).validate().baselines == []
    assert Config.from_dict({"baselines": [""]}).baselines == []
    assert Config(baselines=["random", "none"]).baselines == ["random"]


def test_a_flag_in_steps_beats_the_files_count_in_passes(tmp_path):
    """``--outer_steps 6`` over a file with ``outer_epochs: 100`` runs 6 steps (it used to be
    overwritten by the 100 passes once the data was loaded); the same for the Python API and
    ``decay_every`` over ``decay_epochs``. A count in passes given last still wins."""
    from softdistill.api import resolve_config
    from softdistill.cli import parse_command
    from softdistill.cli.common import config_from_args

    path = tmp_path / "c.yaml"
    path.write_text("outer_epochs: 100\ndecay_epochs: 10\nbatch_size: 64\n")
    args, _ = parse_command(["distill", "--config", str(path), "--outer_steps", "6"])
    cfg = config_from_args(args)
    assert (cfg.outer_steps, cfg.outer_epochs, cfg.decay_epochs) == (6, None, 10)
    cfg = resolve_config(path, outer_steps=6, decay_every=2)
    assert (cfg.outer_steps, cfg.outer_epochs, cfg.decay_every, cfg.decay_epochs) == (
        6,
        None,
        2,
        None,
    )
    resolved, _ = cfg.resolve_passes(n_train=640)
    assert (resolved.outer_steps, resolved.decay_every) == (6, 2)
    path.write_text("outer_steps: 50\n")
    args, _ = parse_command(["distill", "--config", str(path), "--epochs", "3"])
    cfg = config_from_args(args)
    assert cfg.outer_epochs == 3
    assert cfg.resolve_passes(n_train=1024 * 5)[0].outer_steps == 15
