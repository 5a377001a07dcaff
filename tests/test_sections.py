"""Settings by section: nested files, typed section views, and the one merge of layers."""

from __future__ import annotations

import dataclasses

import pytest

from softdistill import api
from softdistill.cli import parse_command
from softdistill.cli.common import changes_from_args, config_from_args
from softdistill.config import SECTION_TYPES, Config, ConfigError, merge
from softdistill.sections import SECTION_OF, SECTIONS, flatten_sections, group_by_section

NESTED = """\
data:
  dataset: digits
networks:
  arch: mlp
  arch_args: {hidden: [16]}
synthetic:
  per_class: 2
  init_lr: 0.05
outer:
  lr: 1e-3
  outer_epochs: 4
run:
  seed: 3
"""
FLAT = """\
dataset: digits
arch: mlp
arch_args: {hidden: [16]}
per_class: 2
init_lr: 0.05
lr: 1e-3
outer_epochs: 4
seed: 3
"""


def test_every_key_is_in_exactly_one_section():
    keys = [k for ks in SECTIONS.values() for k in ks]
    assert sorted(keys) == sorted(Config.field_names())  # each once, none missing or extra
    assert not set(SECTIONS) & set(Config.field_names())  # a section is never read as a key
    assert SECTION_OF["lr"] == "outer" and SECTION_OF["hypergrad"] == "hypergradient"


def test_a_nested_file_is_the_same_run_as_the_flat_one(tmp_path):
    nested, flat = tmp_path / "nested.yaml", tmp_path / "flat.yaml"
    nested.write_text(NESTED)
    flat.write_text(FLAT)
    a, b = Config.from_file(nested), Config.from_file(flat)
    assert a == b and a.lr == 0.001 and a.seed == 3 and a.arch_args == {"hidden": [16]}
    assert "outer" not in a.to_dict() and a.to_dict()["lr"] == 0.001  # config.json stays flat
    assert api.resolve_config(nested) == api.resolve_config(flat)
    # the command line: a nested file under flags in steps (they replace its passes)
    args, _ = parse_command(["distill", "--config", str(nested), "--outer_steps", "7"])
    cfg = config_from_args(args)
    assert (cfg.outer_steps, cfg.outer_epochs, cfg.per_class) == (7, None, 2)
    assert changes_from_args(args)["per_class"] == 2


def test_a_key_in_the_wrong_section_says_where_it_belongs(tmp_path):
    with pytest.raises(ConfigError, match=r"'lr' in section 'data' of c.yaml; .*'outer'"):
        Config.from_dict({"data": {"lr": 0.1}}, source="c.yaml")
    with pytest.raises(ConfigError, match="unknown key 'speed' in section 'outer'"):
        Config.from_dict({"outer": {"speed": 1}})
    with pytest.raises(ConfigError, match="'lr' is given twice"):
        Config.from_dict({"lr": 0.1, "outer": {"lr": 0.2}})
    with pytest.raises(ConfigError, match="init_lr in config takes a number"):
        Config.from_dict({"synthetic": {"init_lr": "fast"}})
    path = tmp_path / "bad.yaml"
    path.write_text("outer:\n  dataset: mnist\n")
    with pytest.raises(ConfigError, match="belongs in section 'data'"):
        config_from_args(parse_command(["distill", "--config", str(path)])[0])


def test_a_section_is_a_typed_frozen_view_with_the_same_defaults():
    cfg = Config(lr=0.2, batch_size=64, hypergrad="reverse")
    outer = cfg.section("outer")
    assert (outer.lr, outer.batch_size, outer.decay_factor) == (0.2, 64, 0.5)
    assert cfg.section("hypergradient").hypergrad == "reverse"
    with pytest.raises(dataclasses.FrozenInstanceError):
        outer.lr = 1.0
    for name, cls in SECTION_TYPES.items():
        view = cls()  # the section's defaults are Config's
        assert dataclasses.asdict(view) == dataclasses.asdict(Config().section(name))
        types = {f.name: str(f.type) for f in dataclasses.fields(Config)}
        assert all(str(f.type) == types[f.name] for f in dataclasses.fields(cls))
    with pytest.raises(KeyError, match="did you mean 'outer'"):
        cfg.section("outr")


def test_merge_lays_each_layer_over_the_ones_below():
    saved = Config(outer_epochs=100, batch_size=32).to_dict()
    cfg = merge(saved, {"outer": {"batch_size": 16}}, {"outer_steps": 5})
    assert (cfg.batch_size, cfg.outer_steps, cfg.outer_epochs) == (16, 5, None)
    assert merge().to_dict() == Config().validate().to_dict()
    with pytest.raises(ConfigError, match="batch_size"):
        merge({"batch_size": 3.5})
    assert flatten_sections({"run": {"seed": 1}, "per-class": 2}) == {"seed": 1, "per_class": 2}


def test_group_by_section_keeps_unknown_keys_apart():
    groups = group_by_section({**Config().to_dict(), "from_the_future": 1})
    assert list(groups)[:2] == ["data", "networks"] and groups["outer"]["lr"] == 0.01
    assert groups["other"] == {"from_the_future": 1}
    assert sum(len(g) for g in groups.values()) == len(Config.field_names()) + 1
