"""The one inner loop: replay == torch.optim.SGD, replay == differentiable forward."""

from __future__ import annotations

import torch

from softdistill.core import SyntheticSet, forward, hypergradient, inner_step, unroll
from softdistill.core.losses import soft_cross_entropy


def test_detached_unroll_equals_torch_sgd(tiny64):
    model, params0, syn, _ = tiny64
    steps = syn.detached_steps()
    traj = unroll(model, params0, steps)
    assert len(traj) == syn.n_steps + 1  # theta_0 .. theta_T

    # Reference: torch.optim.SGD on a real copy of the network, lr changed per step.
    ref = type(model)().double()
    ref.load_state_dict(params0)
    opt = torch.optim.SGD(ref.parameters(), lr=1.0)
    for t, (x, y, lr) in enumerate(steps):
        for group in opt.param_groups:
            group["lr"] = lr.item()
        opt.zero_grad()
        soft_cross_entropy(ref(x), y).backward()
        opt.step()
        for k, v in ref.named_parameters():
            torch.testing.assert_close(traj[t + 1][k], v.detach(), rtol=1e-12, atol=1e-14)


def test_replay_equals_differentiable_forward(tiny64):
    model, params0, syn, outer_loss = tiny64
    replay = unroll(model, params0, syn.detached_steps())
    p0 = {k: v.clone().requires_grad_(True) for k, v in params0.items()}
    diff = unroll(model, p0, syn.steps(), create_graph=True)
    for a, b in zip(replay, diff):
        for k in a:
            assert torch.equal(a[k], b[k].detach())
    res = hypergradient(model, params0, syn, outer_loss)
    for k in params0:
        assert torch.equal(res.params_T[k], replay[-1][k])


def test_inner_step_leaves_inputs_untouched(tiny64):
    model, params0, syn, _ = tiny64
    before = {k: v.clone() for k, v in params0.items()}
    template = {k: v.clone() for k, v in model.state_dict().items()}
    x, y, lr = syn.step(0)
    new, g = inner_step(model, params0, x, y, lr)
    for k in params0:
        assert torch.equal(params0[k], before[k])
        assert torch.equal(model.state_dict()[k], template[k])
        torch.testing.assert_close(new[k], params0[k] - g[k])
        assert not new[k].requires_grad


def test_steps_cycle_batches_over_epochs():
    syn = SyntheticSet.create((2,), 3, n_batches=2, n_epochs=3)
    assert syn.n_steps == 6
    for t in range(6):
        x, _, _ = syn.step(t)
        assert torch.equal(x, syn.x_syn[t % 2])


def test_forward_uses_given_params_not_module_weights(tiny64):
    model, params0, _, _ = tiny64
    x = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    zeros = {k: torch.zeros_like(v) for k, v in params0.items()}
    assert torch.equal(forward(model, zeros, x), torch.zeros(3, 3, dtype=torch.float64))
