"""The hypergradient is exact: gradcheck, finite differences, reverse == autograd, closed form."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from softdistill.core import SyntheticSet, forward, hypergradient, unroll
from softdistill.models import build, init_params


def _loss_at(model, params0, syn, outer_loss):
    """L as a plain function of the synthetic set (detached replay)."""
    with torch.no_grad():
        return outer_loss(unroll(model, params0, syn.detached_steps())[-1]).item()


class _Reverse(torch.autograd.Function):
    """L(x_syn, label_params, raw_lrs) whose backward is the hand-written reverse sweep."""

    @staticmethod
    def forward(ctx, x, labels, raw, model, params0, syn, outer_loss):
        with torch.no_grad():
            syn.x_syn.copy_(x)
            syn.label_params.copy_(labels)
            syn.raw_lrs.copy_(raw)
        res = hypergradient(model, params0, syn, outer_loss, method="reverse")
        ctx.grads = res.grads
        return res.loss.clone()

    @staticmethod
    def backward(ctx, gout):
        return (*(gout * g for g in ctx.grads), None, None, None, None)


def test_gradcheck_reverse_wrt_every_learnable_tensor(tiny64):
    model, params0, syn, outer_loss = tiny64
    inputs = tuple(p.detach().clone().requires_grad_(True) for p in syn.parameters())

    def fn(x, labels, raw):
        return _Reverse.apply(x, labels, raw, model, params0, syn, outer_loss)

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("label_mode", ["raw", "softmax"])
@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (3, 1)])
def test_reverse_equals_autograd_float64(label_mode, shape):
    n_batches, n_epochs = shape
    g = torch.Generator().manual_seed(1)
    model = build("lenet", (1, 28, 28), 10).double()
    params0 = init_params(model, generator=g, dtype=torch.float64)
    syn = SyntheticSet.create(
        (1, 28, 28),
        10,
        per_class=1,
        n_batches=n_batches,
        n_epochs=n_epochs,
        label_mode=label_mode,
        generator=g,
        dtype=torch.float64,
    )
    x = torch.randn(32, 1, 28, 28, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (32,), generator=g)

    def outer_loss(p):
        return F.cross_entropy(forward(model, p, x), y)

    a = hypergradient(model, params0, syn, outer_loss, method="reverse")
    b = hypergradient(model, params0, syn, outer_loss, method="autograd")
    assert torch.equal(a.loss, b.loss)
    for ga, gb in zip(a.grads, b.grads):
        assert gb.abs().max() > 0
        assert (ga - gb).norm() <= 1e-10 * gb.norm()


def test_frozen_tensors_get_no_gradient(tiny64):
    model, params0, syn, outer_loss = tiny64
    syn.x_syn.requires_grad_(False)  # freeze_data
    syn.label_params.requires_grad_(False)  # static labels
    for method in ("reverse", "autograd"):
        res = hypergradient(model, params0, syn, outer_loss, method=method)
        assert res.grads[0] is None and res.grads[1] is None
        assert res.grads[2].abs().sum() > 0
    syn.raw_lrs.requires_grad_(False)
    with pytest.raises(ValueError, match="nothing to learn"):
        hypergradient(model, params0, syn, outer_loss)


def test_unknown_method_is_rejected(tiny64):
    model, params0, syn, outer_loss = tiny64
    with pytest.raises(ValueError, match="unknown hypergradient method 'revers'"):
        hypergradient(model, params0, syn, outer_loss, method="revers")


@pytest.mark.parametrize("method", ["reverse", "autograd"])
def test_central_differences_lenet(method):
    """Central differences on sampled entries of every learnable tensor of LeNet (float64)."""
    g = torch.Generator().manual_seed(2)
    model = build("lenet", (1, 28, 28), 10).double()
    params0 = init_params(model, generator=g, dtype=torch.float64)
    syn = SyntheticSet.create(
        (1, 28, 28),
        10,
        per_class=1,
        n_batches=2,
        n_epochs=2,
        label_init="smoothed",
        generator=g,
        dtype=torch.float64,
    )
    x = torch.randn(20, 1, 28, 28, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (20,), generator=g)

    def outer_loss(p):
        return F.cross_entropy(forward(model, p, x), y)

    res = hypergradient(model, params0, syn, outer_loss, method=method)
    h = 1e-6
    for tensor, grad in zip(syn.parameters(), res.grads):
        flat = tensor.data.view(-1)
        # the largest-gradient entry plus random ones
        picks = [int(grad.abs().argmax())] + torch.randint(
            0, flat.numel(), (3,), generator=g
        ).tolist()
        for i in picks:
            old = flat[i].item()
            flat[i] = old + h
            up = _loss_at(model, params0, syn, outer_loss)
            flat[i] = old - h
            down = _loss_at(model, params0, syn, outer_loss)
            flat[i] = old
            numeric = (up - down) / (2 * h)
            analytic = grad.view(-1)[i].item()
            assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(analytic)) + 1e-8, (
                tensor.shape,
                i,
                numeric,
                analytic,
            )


def test_closed_form_one_step_linear_least_squares():
    """One inner step of linear least squares: every hypergradient written out by hand."""
    torch.manual_seed(0)
    dt = torch.float64
    k, d, n, m = 3, 5, 4, 7  # outputs, inputs, synthetic examples, real examples
    model = nn.Linear(d, k, bias=False).double()
    W0 = torch.randn(k, d, dtype=dt)
    Xs = torch.randn(1, n, d, dtype=dt)  # x_syn (n_batches=1, n, d)
    Ys = torch.randn(1, n, k, dtype=dt)  # label_params (raw)
    syn = SyntheticSet(
        Xs.clone(), Ys.clone(), torch.tensor([0.3], dtype=dt), torch.zeros(n), n_epochs=1
    )
    Xr, Yr = torch.randn(m, d, dtype=dt), torch.randn(m, k, dtype=dt)

    def mse(out, y):  # inner loss: 0.5 * mean_i ||out_i - y_i||^2
        return 0.5 * ((out - y) ** 2).sum(-1).mean()

    def outer_loss(p):
        return mse(forward(model, p, Xr), Yr)

    res = hypergradient(model, {"weight": W0}, syn, outer_loss, loss_fn=mse)

    # By hand, with X = Xs[0].T (d x n), Y = Ys[0].T (k x n):
    X, Y = Xs[0].T, Ys[0].T
    eta = F.softplus(syn.raw_lrs.detach())[0]
    G = (W0 @ X - Y) @ X.T / n  # grad of the inner loss at W0
    W1 = W0 - eta * G
    D = (W1 @ Xr.T - Yr.T) @ Xr / m  # dL/dW1
    A = D.T @ W0
    dX = -eta / n * ((A + A.T) @ X - D.T @ Y)  # (d x n)
    dY = eta / n * D @ X  # (k x n)
    deta = -(D * G).sum()
    draw = deta * torch.sigmoid(syn.raw_lrs.detach()[0])
    assert torch.allclose(res.loss, outer_loss({"weight": W1}), rtol=1e-12)
    assert torch.allclose(res.grads[0][0], dX.T, rtol=1e-10, atol=1e-12)
    assert torch.allclose(res.grads[1][0], dY.T, rtol=1e-10, atol=1e-12)
    assert torch.allclose(res.grads[2][0], draw, rtol=1e-10, atol=1e-12)
    assert torch.allclose(res.params_T["weight"], W1, rtol=1e-12)
