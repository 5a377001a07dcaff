"""Pools of pretrained nets: training, the folder format, loading, drawing, and the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from helpers import blobs, make_pool
from softdistill.cli import main
from softdistill.config import Config, ConfigError
from softdistill.models import build
from softdistill.nets import NetSource, NetSpec, block, eval_nets
from softdistill.pool import PoolError, load_pool, net_seed


@pytest.fixture(scope="module")
def pools(tmp_path_factory):
    """A 4-net training pool and a 2-net held-out pool of MLPs on the blobs data."""
    root = tmp_path_factory.mktemp("pools")
    data = blobs()
    make_pool(root / "train", data, n_nets=4)
    make_pool(root / "test", data, n_nets=2, split="test")
    return root, data


def _cfg(root, **kw):
    return Config(
        arch="mlp", arch_args={"hidden": [16]}, nets=f"pool:{root / 'train'}", **kw
    ).validate()


def _spec(root, **kw):
    return NetSpec.of(_cfg(root, **kw))


def test_pool_folder_manifest_and_weights(pools):
    root, data = pools
    m = json.loads((root / "train/manifest.json").read_text())
    assert m["n_nets"] == 4 and m["arch"] == "mlp" and m["split"] == "train"
    assert m["sample_shape"] == [1, 8, 8] and m["n_classes"] == 3
    assert [n["seed"] for n in m["nets"]] == [net_seed(0, "train", i) for i in range(4)]
    assert all(n["test_acc"] > 0.9 for n in m["nets"])  # blobs are easy: the nets did learn
    assert m["train_config"]["epochs"] == 3
    test_seeds = {n["seed"] for n in load_pool(root / "test").manifest["nets"]}
    assert not test_seeds & {n["seed"] for n in m["nets"]}
    pool = load_pool(root / "train")
    nets = pool.load([0, 3], dtype=torch.float64)
    model = build("mlp", data.sample_shape, 3, hidden=[16])
    assert [set(p) for p in nets] == [set(dict(model.named_parameters()))] * 2
    assert nets[0]["net.1.weight"].dtype == torch.float64
    assert not torch.equal(nets[0]["net.1.weight"], nets[1]["net.1.weight"])


def test_an_interrupted_pool_continues_without_retraining(pools, tmp_path):
    from softdistill.pool import TrainConfig, train_pool

    root, data = pools
    cfg = TrainConfig(arch="mlp", arch_args={"hidden": [16]}, n_nets=4, epochs=3, lr=1e-2)
    model = build("mlp", data.sample_shape, 3, hidden=[16])
    for i in range(4):
        (tmp_path / f"net_{i:04d}.safetensors").write_bytes(
            (root / f"train/net_{i:04d}.safetensors").read_bytes()
        )
    (tmp_path / "net_0002.safetensors").write_bytes(b"truncated")
    assert train_pool(cfg, data, model, tmp_path) == [2]  # only the corrupt net again


@pytest.mark.parametrize(
    "setup,message",
    [
        (lambda p: None, "pool folder not found"),
        (lambda p: p.mkdir(), "no manifest.json"),
        (lambda p: (p.mkdir(), (p / "manifest.json").write_text("{bad")), "not valid JSON"),
        (
            lambda p: (p.mkdir(), (p / "manifest.json").write_text('{"format_version": 9}')),
            "format version 9",
        ),
        (
            lambda p: (
                p.mkdir(),
                (p / "manifest.json").write_text(
                    '{"format_version": 1, "nets": [{"file": "net_0000.safetensors"}]}'
                ),
            ),
            "lacks 1 net file",
        ),
    ],
)
def test_broken_pools_are_refused_clearly(tmp_path, setup, message):
    setup(tmp_path / "pool")
    with pytest.raises(PoolError, match=message):
        load_pool(tmp_path / "pool")


def test_pool_must_fit_the_config(pools):
    root, data = pools
    model = build("mlp", data.sample_shape, 3, hidden=[8])
    cfg = Config(arch="mlp", arch_args={"hidden": [8]}, nets=f"pool:{root / 'train'}").validate()
    with pytest.raises(ConfigError, match=r"arch_args \{'hidden': \[16\]\}.*--arch mlp"):
        NetSource(model, NetSpec.of(cfg), device="cpu", dtype=torch.float32, sample_shape=(1, 8, 8))
    small = build("mlp", (1, 4, 4), 3, hidden=[16])
    with pytest.raises(ConfigError, match=r"shape \(1, 8, 8\)"):
        NetSource(small, _spec(root), device="cpu", dtype=torch.float32, sample_shape=(1, 4, 4))
    model = build("mlp", data.sample_shape, 3, hidden=[16])
    with pytest.raises(ConfigError, match="n_nets 5 exceeds the 4 nets"):
        NetSource(model, _spec(root, n_nets=5), device="cpu", dtype=torch.float32)


def test_pool_draws_and_shards(pools):
    root, data = pools
    model = build("mlp", data.sample_shape, 3, hidden=[16])
    pool_nets = load_pool(root / "train").load(range(4))

    def index(p):
        return next(
            i for i, q in enumerate(pool_nets) if torch.equal(p["net.1.bias"], q["net.1.bias"])
        )

    src = NetSource(model, _spec(root, n_nets=2), device="cpu", dtype=torch.float32)
    draws = [[index(p) for p in src.draw()] for _ in range(20)]
    assert all(len(set(d)) == 2 for d in draws)  # without replacement
    assert len({tuple(sorted(d)) for d in draws}) > 1  # a new sample every step
    # all nets every step: the two ranks' shares make up the whole pool at every step
    ranks = [
        NetSource(
            model, _spec(root, n_nets=4), device="cpu", dtype=torch.float32, rank=r, world_size=2
        )
        for r in range(2)
    ]
    for _ in range(3):
        shares = [[index(p) for p in s.draw()] for s in ranks]
        assert sorted(shares[0]) == [0, 1] and sorted(shares[1]) == [2, 3]
    assert [list(block(5, r, 2)) for r in range(2)] == [[0, 1], [2, 3, 4]]
    with pytest.raises(ConfigError, match="n_nets 1 is smaller than the 2 processes"):
        NetSource(model, _spec(root, n_nets=1), device="cpu", dtype=torch.float32, world_size=2)


def test_eval_nets_come_from_the_test_pool(pools):
    root, data = pools
    model = build("mlp", data.sample_shape, 3, hidden=[16])
    cfg = _cfg(root, test_pool=str(root / "test"), test_n_nets=10)
    nets = eval_nets(
        model, NetSpec.of(cfg), None, cfg.test_n_nets, device="cpu", dtype=torch.float32
    )
    held_out = load_pool(root / "test").load(range(2))
    assert len(nets) == 2 and all(
        torch.equal(a["net.1.bias"], b["net.1.bias"]) for a, b in zip(nets, held_out)
    )
    nets = eval_nets(model, _spec(root), None, 3, device="cpu", dtype=torch.float32)
    assert len(nets) == 3  # no test pool: the first nets of the training pool


@pytest.mark.parametrize(
    "changes,message",
    [
        (dict(objective="adapt"), "objective adapt needs nets pretrained"),
        (dict(test_pool="p"), "test_pool 'p' is for runs on pretrained nets"),
        (dict(init="pool:p"), "nets: pool:p"),
        (dict(nets="pool:"), "needs a path"),
        (dict(nets="pooled"), "unknown nets"),
        (dict(objective="attack", target_class=0), "nothing to attack"),
        (dict(objective="steal"), "unknown objective"),
    ],
)
def test_config_errors(changes, message):
    with pytest.raises(ConfigError, match=message):
        Config(**changes).validate()
    with pytest.raises(ConfigError, match="attack_class 10 out of range"):
        Config(objective="attack", attack_class=10).validate().check_classes(10)


def test_train_command_writes_resumes_and_refuses_other_settings(tmp_path, capsys):
    argv = ["train", "--dataset", "digits", "--arch", "mlp", "--arch_args", "hidden=[8]"]
    argv += ["--n_nets", "2", "--epochs", "1", "--batch_size", "256", "--lr", "1e-2", "--quiet"]
    out = tmp_path / "pool"
    assert main([*argv, "--out", str(out)]) == 0
    assert "pool of 2 mlp nets on digits (train)" in capsys.readouterr().out
    m = load_pool(out).manifest
    assert m["train_config"]["lr"] == 0.01 and len(m["nets"]) == 2
    stamp = (out / "net_0000.safetensors").stat().st_mtime_ns
    assert main([*argv, "--out", str(out)]) == 0  # complete already: nothing retrained
    assert (out / "net_0000.safetensors").stat().st_mtime_ns == stamp
    assert main([*argv, "--out", str(out), "--epochs", "2"]) == 2
    assert "epochs 1 -> 2" in capsys.readouterr().err
    # a larger n_nets grows the pool: the first nets are kept, one more is trained
    assert main([*argv, "--out", str(out), "--n_nets", "3"]) == 0
    assert (out / "net_0000.safetensors").stat().st_mtime_ns == stamp
    seeds = [net_seed(0, "train", i) for i in range(3)]
    assert [n["seed"] for n in load_pool(out).manifest["nets"]] == seeds
    assert main(["train", "--dataset", "digits", "--split", "val", "--out", str(out)]) == 2


def test_distill_attack_on_a_pool_end_to_end(tmp_path, capsys):
    pool = ["--dataset", "digits", "--arch", "mlp", "--arch_args", "hidden=[16]", "--quiet"]
    pool += ["--epochs", "4", "--batch_size", "64", "--lr", "1e-2"]
    assert main(["train", *pool, "--n_nets", "3", "--out", str(tmp_path / "tr")]) == 0
    assert (
        main(["train", *pool, "--n_nets", "2", "--split", "test", "--out", str(tmp_path / "te")])
        == 0
    )
    out = tmp_path / "run"
    argv = ["distill", "--dataset", "digits", "--arch", "mlp", "--arch_args", "hidden=[16]"]
    argv += ["--nets", f"pool:{tmp_path / 'tr'}", "--test_pool", str(tmp_path / "te")]
    argv += ["--sample_n_nets", "2", "--mode", "distill_attack", "--outer_steps", "3"]
    argv += ["--batch_size", "64", "--baselines", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    ev = json.loads((out / "eval.json").read_text())
    assert ev["protocol"]["eval_nets"] == str(tmp_path / "te")
    assert ev["protocol"]["source_dataset"] == "digits" and ev["protocol"]["objective"] == "attack"
    assert len(ev["distilled"]["per_net"]) == 2 and ev["baselines"] == {}
    before, after = ev["attack"]["before"], ev["attack"]["distilled"]
    assert before["acc"] == pytest.approx(ev["before"]["mean"])
    assert after["acc"] == pytest.approx(ev["distilled"]["mean"])
    assert len(after["per_class"]) == 10 and len(after["per_net"]) == 2
    assert not (out / "init.safetensors").exists()
    assert "0 predicted as 1" in capsys.readouterr().out
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["n_nets"] == 2 and cfg["objective"] == "attack"


def test_training_nets_at_once_equals_one_at_a_time(pools, tmp_path):
    """--parallel K: one vmapped Adam over stacked weights trains K nets as K separate runs."""
    root, data = pools
    make_pool(tmp_path / "par", data, n_nets=4, parallel=3)  # a chunk of 3, then one alone
    one, par = load_pool(root / "train"), load_pool(tmp_path / "par")
    for a, b in zip(one.load(range(4)), par.load(range(4))):
        for k in a:
            torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5)
    accs = [
        (n["test_acc"], m["test_acc"]) for n, m in zip(one.manifest["nets"], par.manifest["nets"])
    ]
    assert all(abs(x - y) < 0.02 for x, y in accs)


def test_a_pool_run_without_test_pool_says_it_is_evaluated_on_its_own_nets(tmp_path, capsys):
    pool = ["--dataset", "digits", "--arch", "mlp", "--arch_args", "hidden=[16]", "--quiet"]
    pool += ["--epochs", "2", "--batch_size", "64", "--lr", "1e-2"]
    assert main(["train", *pool, "--n_nets", "2", "--out", str(tmp_path / "tr")]) == 0
    argv = ["distill", "--dataset", "digits", "--arch", "mlp", "--arch_args", "hidden=[16]"]
    argv += ["--nets", f"pool:{tmp_path / 'tr'}", "--n_nets", "2", "--outer_steps", "2"]
    argv += ["--batch_size", "64", "--baselines", "--out", str(tmp_path / "run"), "--quiet"]
    assert main(argv) == 0
    assert "evaluated on the very nets it was distilled on" in capsys.readouterr().out


def test_net_spec_takes_the_settings_of_its_names(pools):
    root, _ = pools
    cfg = _cfg(root, n_nets=3, test_pool=str(root / "test"), init="kaiming", init_param=0.2)
    spec = NetSpec.of(cfg)
    assert (spec.arch, dict(spec.arch_args), spec.n_nets) == ("mlp", {"hidden": [16]}, 3)
    assert (spec.init, spec.init_param, spec.seed) == ("kaiming", 0.2, 0)
    assert spec.pool_path == cfg.pool_path == str(root / "train")
    assert spec.test_pool == str(root / "test")
    assert NetSpec.of(cfg, nets="random").pool_path is None
    assert NetSpec().pool_path is None and NetSpec.of(Config()).nets == "fixed"
