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
