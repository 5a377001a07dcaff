"""The from-scratch protocol: training, cross-architecture table, augmentation, generic shapes."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F

from helpers import blobs
from softdistill.data import Split
from softdistill.evaluation import accuracy, evaluate_run
from softdistill.models import build, init_params
from softdistill.protocol import (
    ScratchSettings,
    evaluate_scratch,
    format_scratch_table,
    make_augment,
    parse_augment,
    train_scratch,
)

FAST = dict(epochs=30, lr=0.05, batch_size=8, n_nets=2)


def _few(split: Split, per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` examples of each class, with one-hot label vectors."""
    idx = torch.cat([(split.y == c).nonzero().flatten()[:per_class] for c in range(3)])
    return split.x[idx], F.one_hot(split.y[idx], 3).float()


def test_scratch_training_learns_on_blobs():
    data = blobs()
    x, y = _few(data.train, 5)
    model = build("mlp", data.sample_shape, 3, hidden=[16])
    params0 = init_params(model, generator=torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in params0.items()}
    params, info = train_scratch(
        model, params0, x, y, ScratchSettings(**FAST), generator=torch.Generator()
    )
    assert not info["diverged"] and info["loss"] < 0.1
    assert all(torch.equal(v, before[k]) for k, v in params0.items())  # inputs untouched
    assert accuracy(model, params0, data.test) < 0.7
    assert accuracy(model, params, data.test) > 0.95


def test_hard_labels_and_divergence():
    data = blobs()
    x, y = _few(data.train, 2)
    model = build("mlp", data.sample_shape, 3, hidden=[8])
    params0 = init_params(model, generator=torch.Generator().manual_seed(0))
    # hard labels: a soft label whose argmax is the class trains like the one-hot label
    soft = 0.4 * y + 0.2
    s_hard = ScratchSettings(**{**FAST, "labels": "hard", "n_nets": 1})
    p_soft, _ = train_scratch(model, params0, x, soft, s_hard, generator=torch.Generator())
    s_onehot = ScratchSettings(**{**FAST, "n_nets": 1})
    p_one, _ = train_scratch(model, params0, x, y, s_onehot, generator=torch.Generator())
    assert all(torch.allclose(p_soft[k], p_one[k]) for k in p_one)
    # raw soft labels with huge negative entries and a huge lr diverge: stop, keep finite weights
    wild = ScratchSettings(epochs=50, lr=1e6, momentum=0.9, batch_size=6, weight_decay=0.0)
    params, info = train_scratch(model, params0, x, -1e6 * y, wild, generator=torch.Generator())
    assert info["diverged"]
    assert all(torch.isfinite(v).all() for v in params.values())


def test_cross_architecture_table():
    data = blobs()
    x, y = _few(data.train, 5)
    x_r, y_r = _few(Split(data.train.x.flip(0), data.train.y.flip(0)), 5)
    out = evaluate_scratch(
        {"distilled": (x, y), "random": (x_r, y_r)},
        data.test,
        ["mlp", "convnet", "lenet"],
        ScratchSettings(**FAST),
        arch_args={"convnet": {"depth": 1, "width": 4}, "mlp": {"hidden": [16]}},
    )
    assert list(out["archs"]) == ["mlp", "convnet"]
    assert "28x28 or 32x32" in out["skipped"]["lenet"]  # 8x8 images do not fit LeNet
    for arch, table in out["archs"].items():
        assert list(table) == ["distilled", "random"], arch
        for r in table.values():
            assert len(r["per_net"]) == 2 and r["diverged"] == 0 and r["seconds"] >= 0
            assert r["mean"] > 0.9  # both archs learn the blobs
    assert out["epochs"] == 30 and out["n_nets"] == 2 and out["augment"] is None
    md = format_scratch_table(out)
    assert md.splitlines()[0] == "| arch | distilled | random |"
    assert md.count("\n") == 4 and "| lenet | skipped:" in md
    # the same inits and batch orders whatever the order of archs
    again = evaluate_scratch(
        {"distilled": (x, y)},
        data.test,
        ["convnet"],
        ScratchSettings(**FAST),
        arch_args={"convnet": {"depth": 1, "width": 4}},
    )
    assert (
        again["archs"]["convnet"]["distilled"]["per_net"]
        == (out["archs"]["convnet"]["distilled"]["per_net"])
    )


def test_scratch_is_generic_over_text_shaped_samples():
    """Sequences of embeddings (N, maxlen, dim): the MLP trains, image archs are skipped."""
    data = blobs()
    x, y = _few(data.train, 5)
    test = Split(data.test.x.reshape(-1, 4, 16), data.test.y)
    out = evaluate_scratch(
        {"distilled": (x.reshape(-1, 4, 16), y)},
        test,
        ["mlp", "convnet"],
        ScratchSettings(**FAST),
    )
    assert out["archs"]["mlp"]["distilled"]["mean"] > 0.9
    assert "images (C, H, W)" in out["skipped"]["convnet"]
    with pytest.raises(ValueError, match=r"needs image samples \(C, H, W\).*\(4, 16\)"):
        evaluate_scratch(
            {"distilled": (x.reshape(-1, 4, 16), y)},
            test,
            ["mlp"],
            ScratchSettings(**{**FAST, "augment": "crop"}),
        )


def test_evaluate_run_adds_the_scratch_protocol():
    data = blobs()
    model = build("mlp", data.sample_shape, 3, hidden=[16])
    from softdistill.core import SyntheticSet

    syn = SyntheticSet.create(data.sample_shape, 3, per_class=2, init_lr=0.1)
    nets = [init_params(model, generator=torch.Generator().manual_seed(0))]
    ev = evaluate_run(
        model,
        nets,
        syn,
        data.train,
        data.test,
        baselines=["random", "average"],
        baseline_lrs=[0.1],
        baseline_draws=2,
        scratch=ScratchSettings(**FAST),
        scratch_archs=["mlp"],
        scratch_arch_args={"mlp": {"hidden": [16]}},
        scratch_baselines=True,
    )
    assert set(ev) == {"distilled", "before", "baselines", "protocol", "scratch"}
    table = ev["scratch"]["archs"]["mlp"]
    assert list(table) == ["distilled", "random", "average"]
    assert table["average"]["mean"] > 0.9  # class means of blobs train a good classifier


def test_augment_names_and_errors(monkeypatch):
    assert parse_augment("dsa,flip") == ("color", "crop", "cutout", "flip", "scale", "rotate")
    assert parse_augment("rotate, crop") == ("crop", "rotate")
    with pytest.raises(ValueError, match="unknown augmentation 'blur'"):
        parse_augment("crop,blur")
    with pytest.raises(ValueError, match="unknown augmentation"):
        ScratchSettings(augment="zoom")
    monkeypatch.setitem(sys.modules, "kornia", None)  # as if kornia were not installed
    monkeypatch.setitem(sys.modules, "kornia.augmentation", None)
    with pytest.raises(ImportError, match=r"needs kornia.*softdistill\[augment\]"):
        make_augment("dsa", (1, 8, 8))


def test_augment_with_kornia_is_random_and_differentiable():
    pytest.importorskip("kornia")
    torch.manual_seed(0)
    aug = make_augment("dsa,flip", (3, 16, 16))
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    out = aug(x)
    assert out.shape == x.shape and not torch.allclose(out, x)
    assert not torch.allclose(aug(x), out)  # fresh random parameters per call
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    data = blobs()
    xs, ys = _few(data.train, 5)
    res = evaluate_scratch(
        {"distilled": (xs, ys)},
        data.test,
        ["mlp"],
        ScratchSettings(**{**FAST, "augment": "crop,scale"}),
    )
    assert res["augment"] == "crop,scale" and 0 <= res["archs"]["mlp"]["distilled"]["mean"] <= 1


def test_train_full_max_steps_stops_mid_epoch():
    """``max_steps`` caps the Adam steps of the full-data reference; without a cap whole epochs
    run, and the same seed gives the same first steps either way."""
    from softdistill.evaluation import train_full

    data = blobs()  # 120 training examples: 4 steps of 32 per epoch
    model = build("mlp", data.sample_shape, 3, hidden=[16])
    params0 = init_params(model, generator=torch.Generator().manual_seed(0))

    def run(**kw):
        g = torch.Generator().manual_seed(1)
        return train_full(model, params0, data.train, data.test, batch_size=32, generator=g, **kw)

    capped = run(epochs=5, lr=0.05, max_steps=6)  # one whole epoch and half of the second
    assert capped.extra["steps"] == 6 and len(capped.extra["per_epoch"]) == 2
    whole = run(epochs=2, lr=0.05)
    assert whole.extra["steps"] == 8 and whole.extra["epochs"] == 2
    assert capped.extra["per_epoch"][0] == whole.extra["per_epoch"][0]  # same first epoch
    assert run(epochs=2, lr=0.05, max_steps=100).extra == whole.extra  # cap never reached
    assert run(epochs=20, lr=0.05, max_steps=40).mean > 0.95  # it trains
    with pytest.raises(ValueError, match="max_steps"):
        run(epochs=1, max_steps=0)
