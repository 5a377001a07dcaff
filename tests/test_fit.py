"""softdistill.fit: the one training loop of the full-data reference, the pools and the
from-scratch protocol."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from softdistill.core import forward, soft_cross_entropy
from softdistill.fit import FitSettings, fit, step_decay
from softdistill.models import build, init_params


def _problem(n=96, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 8, 8, generator=g, dtype=dtype)
    y = (x.flatten(1).sum(1) > 0).long() + 2 * (x[:, 0, 0, 0] > 0).long()  # 4 classes
    model = build("mlp", (1, 8, 8), 4).to(dtype)
    inits = [
        init_params(model, "xavier", 1.0, generator=torch.Generator().manual_seed(s), dtype=dtype)
        for s in range(3)
    ]
    return model, x, y, inits


def _adam_loop(model, params0, x, y, epochs, bs, lr, generator):
    """The full-data reference's loop as it was written before fit(), for comparison."""
    params = {k: v.detach().clone().requires_grad_(True) for k, v in params0.items()}
    opt = torch.optim.Adam(params.values(), lr=lr)
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=generator)
        for i in range(0, len(y), bs):
            idx = perm[i : i + bs]
            loss = F.cross_entropy(forward(model, params, x[idx]), y[idx])
            grads = torch.autograd.grad(loss, tuple(params.values()))
            for p, g in zip(params.values(), grads):
                p.grad = g
            opt.step()
    return params


def test_fit_gives_the_weights_of_the_loop_it_replaces_bit_for_bit():
    model, x, y, inits = _problem()
    settings = FitSettings(epochs=3, batch_size=20, lr=0.01)
    res = fit(model, inits[0], x, y, settings, generator=torch.Generator().manual_seed(5))
    ref = _adam_loop(model, inits[0], x, y, 3, 20, 0.01, torch.Generator().manual_seed(5))
    assert res.steps == 3 * math.ceil(96 / 20)
    assert [len(e) for e in res.epoch_losses] == [3]
    for k in ref:
        assert torch.equal(res.params[0][k], ref[k].detach()), k
    assert not torch.equal(res.params[0][k], inits[0][k])  # it trained
    assert not res.diverged and math.isfinite(res.last_loss[0])


def test_stacked_nets_train_as_each_would_alone():
    """Three nets at once (one vmapped step) equal three runs of one net, each with its own
    generator, up to float rounding; the losses fall."""
    model, x, y, inits = _problem()
    settings = FitSettings(epochs=4, batch_size=32, lr=0.02, betas=(0.5, 0.999))
    lr_at = step_decay(0.02, 2, 0.5)
    gens = [torch.Generator().manual_seed(10 + k) for k in range(3)]
    together = fit(model, inits, x, y, settings, generator=gens, lr_at=lr_at)
    for k in range(3):
        alone = fit(
            model,
            inits[k],
            x,
            y,
            settings,
            generator=[torch.Generator().manual_seed(10 + k)],
            lr_at=lr_at,
        )
        for name, v in alone.params[0].items():
            torch.testing.assert_close(together.params[k][name], v, rtol=1e-10, atol=1e-12)
        assert together.epoch_losses[k] == pytest.approx(alone.epoch_losses[0], rel=1e-10)
        assert together.epoch_losses[k][-1] < together.epoch_losses[k][0]


def test_check_every_step_stops_at_the_first_non_finite_loss_and_keeps_the_last_weights():
    model, x, y, inits = _problem()
    calls = []

    def blow_up(logits, targets):
        calls.append(1)
        loss = soft_cross_entropy(logits, F.one_hot(targets, 4).to(logits.dtype))
        return loss * (math.inf if len(calls) == 4 else 1.0)

    settings = FitSettings(epochs=5, batch_size=32, lr=0.1, optimizer="sgd", check_every_step=True)
    res = fit(model, inits[0], x, y, settings, generator=torch.Generator(), loss_fn=blow_up)
    assert res.diverged and res.steps == 3  # steps 1-3 applied, the 4th loss was inf
    three = fit(
        model,
        inits[0],
        x,
        y,
        FitSettings(epochs=1, batch_size=32, lr=0.1, optimizer="sgd"),
        generator=torch.Generator(),
    )
    for k, v in three.params[0].items():
        assert torch.allclose(res.params[0][k], v)  # one epoch of 3 steps: the same weights
    assert all(math.isfinite(v) for v in res.last_loss)


def test_without_the_step_check_an_epoch_of_non_finite_loss_ends_the_fit():
    model, x, y, inits = _problem()
    seen = []
    res = fit(
        model,
        inits[0],
        x,
        y,
        FitSettings(epochs=5, batch_size=32, lr=1e200),
        generator=torch.Generator(),
        loss_fn=lambda logits, t: F.cross_entropy(logits, t) * 1e300,
        on_epoch=lambda epoch, weights, losses: seen.append((epoch, losses)),
    )
    assert res.diverged and len(seen) < 5
    assert not all(math.isfinite(v) for v in seen[-1][1])


def test_max_steps_ends_inside_an_epoch_and_the_schedule_sets_each_epochs_lr():
    model, x, y, inits = _problem()
    lrs = []
    res = fit(
        model,
        inits[0],
        x,
        y,
        FitSettings(epochs=10, batch_size=40, lr=0.1, optimizer="sgd", max_steps=7),
        generator=torch.Generator(),
        lr_at=lambda e: lrs.append(e) or 0.1 / (e + 1),
    )
    assert res.steps == 7 and lrs == [0, 1, 2]  # 3 steps per epoch: the third epoch is partial
    assert len(res.epoch_losses[0]) == 3
    assert [step_decay(1.0, 2, 0.5)(e) for e in range(5)] == [1.0, 1.0, 0.5, 0.5, 0.25]


def test_bad_fit_settings_are_refused():
    with pytest.raises(ValueError, match="need epochs, batch_size >= 1 and lr > 0"):
        FitSettings(epochs=0, batch_size=1, lr=0.1)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        FitSettings(epochs=1, batch_size=1, lr=0.1, optimizer="lion")
    with pytest.raises(ValueError, match="max_steps must be >= 1"):
        FitSettings(epochs=1, batch_size=1, lr=0.1, max_steps=0)
    model, x, y, inits = _problem()
    with pytest.raises(ValueError, match="one generator per net"):
        fit(model, inits, x, y, FitSettings(epochs=1, batch_size=8, lr=0.1), generator=[None])
    with pytest.raises(ValueError, match="augment is for one net"):
        fit(
            model,
            inits[:2],
            x,
            y,
            FitSettings(epochs=1, batch_size=8, lr=0.1),
            generator=[None, None],
            augment=lambda b: b,
        )


def test_fit_trains_when_called_without_grad():
    """Called from an evaluation under torch.no_grad(), fit still trains, one net or several."""
    model, x, y, inits = _problem()
    settings = FitSettings(epochs=2, batch_size=32, lr=0.01)
    with torch.no_grad():
        one = fit(model, inits[0], x, y, settings, generator=torch.Generator())
        two = fit(model, inits[:2], x, y, settings, generator=[torch.Generator()] * 2)
    ref = fit(model, inits[0], x, y, settings, generator=torch.Generator())
    for k, v in ref.params[0].items():
        assert torch.equal(one.params[0][k], v)
        assert not torch.equal(two.params[1][k], inits[1][k])
