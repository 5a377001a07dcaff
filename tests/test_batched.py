"""Many nets at once (vmap over stacked weights) gives the loop's gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from helpers import TinyNet
from softdistill.core import (
    StackedNets,
    SyntheticSet,
    batched_hypergradient,
    forward,
    hypergradient,
    stack_params,
    unstack_params,
)
from softdistill.models import build, init_params


def _setup(model, sample_shape, n_nets, dtype, seed=0, n_batches=2, n_epochs=2):
    g = torch.Generator().manual_seed(seed)
    nets = [init_params(model, generator=g, dtype=dtype) for _ in range(n_nets)]
    n_classes = 10 if not isinstance(model, TinyNet) else 3
    syn = SyntheticSet.create(
        sample_shape,
        n_classes,
        per_class=1,
        n_batches=n_batches,
        n_epochs=n_epochs,
        init_lr=0.1,
        label_init="stdnormal",
        generator=g,
        dtype=dtype,
    )
    x = torch.randn(20, *sample_shape, generator=g, dtype=dtype)
    y = torch.randint(0, n_classes, (20,), generator=g)

    def outer_loss(p):
        return F.cross_entropy(forward(model, p, x), y)

    return nets, syn, outer_loss


def _loop(model, nets, syn, outer_loss, **kw):
    """The reference: a Python loop over the nets, mean loss and mean gradients."""
    results = [hypergradient(model, p, syn, outer_loss, **kw) for p in nets]
    loss = torch.stack([r.loss for r in results]).mean()
    grads = [torch.stack(gs).mean(0) for gs in zip(*(r.grads for r in results))]
    return loss, grads, results


OPTIONS = [
    {},
    {"method": "autograd"},
    {"keep_every": 2},
    {"method": "truncated", "window": 2, "n_steps": 3},
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(map(str, o.values())) or "rev")
def test_vmap_equals_loop_float64(options):
    model = build("convnet", (1, 8, 8), 10, depth=2, width=4).double()
    nets, syn, outer_loss = _setup(model, (1, 8, 8), 3, torch.float64)
    loss, grads, results = _loop(model, nets, syn, outer_loss, **options)
    res = batched_hypergradient(model, nets, syn, outer_loss, **options)
    assert torch.allclose(res.loss, loss, rtol=1e-12)
    for a, b in zip(res.grads, grads):
        assert b.abs().max() > 0
        assert (a - b).norm() <= 1e-10 * b.norm()
    for p_T, r in zip(unstack_params(res.params_T), results):
        for k in p_T:
            torch.testing.assert_close(p_T[k], r.params_T[k], rtol=1e-12, atol=1e-14)


def test_vmap_equals_loop_lenet_float64():
    model = build("lenet", (1, 28, 28), 10).double()
    nets, syn, outer_loss = _setup(model, (1, 28, 28), 2, torch.float64, n_batches=1)
    _, grads, _ = _loop(model, nets, syn, outer_loss)
    res = batched_hypergradient(model, nets, syn, outer_loss)
    for a, b in zip(res.grads, grads):
        assert (a - b).norm() <= 1e-10 * b.norm()


def test_vmap_equals_loop_float32_smooth_net():
    """float32 to 1e-6 relative. A smooth net (tanh): with ReLU/max-pool, float32 rounding can
    flip an activation of one net, which changes that net's gradient by O(1) in the loop too
    (e.g. float32 vs float64 of the same loop), so no float32 tolerance holds for them."""
    model = TinyNet(size=6)
    nets, syn, outer_loss = _setup(model, (1, 6, 6), 4, torch.float32, n_batches=2, n_epochs=3)
    loss, grads, _ = _loop(model, nets, syn, outer_loss)
    res = batched_hypergradient(model, nets, syn, outer_loss)
    assert torch.allclose(res.loss, loss, rtol=1e-6)
    for a, b in zip(res.grads, grads):
        assert (a - b).norm() <= 1e-6 * b.norm()


def test_stack_unstack_and_errors():
    model = TinyNet()
    g = torch.Generator().manual_seed(0)
    nets = [init_params(model, generator=g) for _ in range(3)]
    stacked = stack_params(nets)
    assert stacked["conv.weight"].shape == (3, 2, 1, 3, 3)
    for a, b in zip(unstack_params(stacked), nets):
        assert all(torch.equal(a[k], b[k]) for k in b)
    x = torch.randn(5, 1, 4, 4)
    logits = forward(StackedNets(model), stacked, x)
    assert logits.shape == (3, 5, 3)
    torch.testing.assert_close(logits[1], forward(model, nets[1], x))
    with pytest.raises(ValueError, match="need at least one net"):
        stack_params([])
    with pytest.raises(ValueError, match="net 1 has weights"):
        stack_params([nets[0], {"conv.weight": nets[1]["conv.weight"]}])
    with pytest.raises(TypeError, match="no weights of its own"):
        StackedNets(model)(torch.randn(1, 1, 4, 4))
