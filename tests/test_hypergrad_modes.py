"""Snapshots, truncation and shortened unrolls: exact where they should be, checked against
independent references (float64)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from softdistill.core import (
    SyntheticSet,
    auto_keep_every,
    forward,
    hypergradient,
    sample_truncation,
    unroll,
)
from softdistill.models import build, init_params


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture(scope="module")
def conv64():
    """A small ConvNet (conv-norm-ReLU-pool x 2), float64, T = 9 (3 batches x 3 epochs)."""
    g = torch.Generator().manual_seed(3)
    model = build("convnet", (1, 8, 8), 10, depth=2, width=4).double()
    params0 = init_params(model, generator=g, dtype=torch.float64)
    syn = SyntheticSet.create(
        (1, 8, 8),
        10,
        per_class=1,
        n_batches=3,
        n_epochs=3,
        label_init="stdnormal",
        generator=g,
        dtype=torch.float64,
    )
    x = torch.randn(24, 1, 8, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (24,), generator=g)

    def outer_loss(p):
        return F.cross_entropy(forward(model, p, x), y)

    ref = hypergradient(model, params0, syn, outer_loss, method="reverse")
    return model, params0, syn, outer_loss, ref


@pytest.mark.parametrize("every", [2, 4, 9, 50])
def test_snapshots_every_k_equal_reverse_float64(conv64, every):
    model, params0, syn, outer_loss, ref = conv64
    res = hypergradient(model, params0, syn, outer_loss, keep_every=every)
    assert torch.equal(res.loss, ref.loss)
    for a, b in zip(res.grads, ref.grads):
        assert b.abs().max() > 0
        assert (a - b).norm() <= 1e-10 * b.norm()
    for k in ref.params_T:
        assert torch.equal(res.params_T[k], ref.params_T[k])


def test_truncated_with_window_T_is_exact(conv64):
    model, params0, syn, outer_loss, ref = conv64
    exact = hypergradient(model, params0, syn, outer_loss, method="autograd")
    for window in (syn.n_steps, syn.n_steps + 5):
        res = hypergradient(model, params0, syn, outer_loss, method="truncated", window=window)
        for a, b, c in zip(res.grads, ref.grads, exact.grads):
            assert (a - b).norm() <= 1e-10 * b.norm()
            assert (a - c).norm() <= 1e-10 * c.norm()


def _truncated_reference(model, params0, syn, outer_loss, start, stop):
    """Autograd through steps start..stop-1 only, from a detached theta_start."""
    traj = unroll(model, params0, syn.detached_steps()[:start])
    p = {k: v.clone().requires_grad_(True) for k, v in traj[-1].items()}
    steps = [syn.step(t) for t in range(start, stop)]
    out = unroll(model, p, steps, create_graph=True)
    loss = outer_loss(out[-1])
    return loss, torch.autograd.grad(loss, list(syn.parameters()))


@pytest.mark.parametrize(("window", "n_steps", "every"), [(3, None, 1), (2, 5, 1), (5, 8, 2)])
def test_truncated_equals_autograd_through_the_window(conv64, window, n_steps, every):
    model, params0, syn, outer_loss, _ = conv64
    res = hypergradient(
        model,
        params0,
        syn,
        outer_loss,
        method="truncated",
        window=window,
        n_steps=n_steps,
        keep_every=every,
    )
    stop = n_steps or syn.n_steps
    loss, grads = _truncated_reference(model, params0, syn, outer_loss, stop - window, stop)
    assert torch.allclose(res.loss, loss, rtol=1e-12)
    for a, b in zip(res.grads, grads):
        assert (a - b).norm() <= 1e-10 * b.norm()
    # steps outside [stop - window, stop) contribute nothing to their learning rates
    lr_grad = res.grads[2]
    assert lr_grad[: stop - window].abs().sum() == 0 and lr_grad[stop:].abs().sum() == 0
    assert lr_grad[stop - window : stop].abs().min() > 0
    # and truncation is an approximation: it differs from the exact gradient of the same unroll
    exact = hypergradient(model, params0, syn, outer_loss, n_steps=stop)
    assert _rel(res.grads[0], exact.grads[0]) > 1e-6


@pytest.mark.parametrize("method", ["reverse", "autograd"])
def test_n_steps_shortens_the_unroll(conv64, method):
    model, params0, syn, outer_loss, _ = conv64
    res = hypergradient(model, params0, syn, outer_loss, method=method, n_steps=4)
    loss, grads = _truncated_reference(model, params0, syn, outer_loss, 0, 4)
    assert torch.allclose(res.loss, loss, rtol=1e-12)
    for a, b in zip(res.grads, grads):
        assert (a - b).norm() <= 1e-10 * b.norm()
    assert res.grads[2][4:].abs().sum() == 0


def test_option_errors(tiny64):
    model, params0, syn, outer_loss = tiny64
    with pytest.raises(ValueError, match="'truncated' needs a window >= 1, got None"):
        hypergradient(model, params0, syn, outer_loss, method="truncated")
    with pytest.raises(ValueError, match="window=2 applies to method 'truncated' only"):
        hypergradient(model, params0, syn, outer_loss, window=2)
    with pytest.raises(ValueError, match="keep_every must be >= 1, got 0"):
        hypergradient(model, params0, syn, outer_loss, keep_every=0)
    with pytest.raises(ValueError, match="keep_every=2 applies to 'reverse' and 'truncated'"):
        hypergradient(model, params0, syn, outer_loss, method="autograd", keep_every=2)
    with pytest.raises(ValueError, match=r"n_steps must be in \[1, T = 4\], got 5"):
        hypergradient(model, params0, syn, outer_loss, n_steps=5)


def test_sample_truncation_is_uniform_on_window_to_T():
    g = torch.Generator().manual_seed(0)
    draws = [sample_truncation(10, 4, g) for _ in range(400)]
    assert set(draws) == set(range(4, 11))
    g2 = torch.Generator().manual_seed(0)
    assert draws[:20] == [sample_truncation(10, 4, g2) for _ in range(20)]
    assert sample_truncation(3, 8, g) == 3  # window longer than the unroll: the whole unroll
    with pytest.raises(ValueError, match="must be >= 1, got 0, 10"):
        sample_truncation(10, 0, g)


def test_auto_keep_every():
    assert [auto_keep_every(T) for T in (1, 4, 10, 300, 1000)] == [1, 2, 4, 18, 32]


@pytest.mark.parametrize("method", ["reverse", "autograd"])
def test_chunked_outer_loss_gives_the_whole_batch_hypergradient_float64(conv64, method):
    from softdistill.core import ChunkedLoss

    model, params0, syn, _, _ = conv64
    x = torch.randn(24, 1, 8, 8, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    y = torch.randint(0, 10, (24,), generator=torch.Generator().manual_seed(12))

    def whole(p):
        return F.cross_entropy(forward(model, p, x), y)

    def chunk_sum(p, a, b):
        return F.cross_entropy(forward(model, p, x[a:b]), y[a:b], reduction="sum")

    chunked = ChunkedLoss(chunk_sum, 24, 5)  # 5 + 5 + 5 + 5 + 4
    assert (chunked(params0) - whole(params0)).abs() <= 1e-12
    a = hypergradient(model, params0, syn, whole, method="reverse")
    b = hypergradient(model, params0, syn, chunked, method=method)
    assert (a.loss - b.loss).abs() <= 1e-12 * a.loss.abs()
    for ga, gb in zip(a.grads, b.grads):
        assert ga.abs().max() > 0
        assert (ga - gb).norm() <= 1e-10 * ga.norm()
