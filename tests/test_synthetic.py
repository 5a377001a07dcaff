from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from softdistill.core import LABEL_INITS, SyntheticSet, inverse_softplus


def test_inverse_softplus_roundtrip():
    lrs = torch.tensor([1e-4, 0.02, 1.0, 30.0], dtype=torch.float64)
    torch.testing.assert_close(F.softplus(inverse_softplus(lrs)), lrs, rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="positive"):
        inverse_softplus(torch.tensor([0.0]))


def test_shapes_and_initial_lrs():
    syn = SyntheticSet.create((1, 8, 8), 10, per_class=2, n_batches=3, n_epochs=2, init_lr=0.05)
    assert syn.x_syn.shape == (3, 20, 1, 8, 8)
    assert syn.label_params.shape == (3, 20, 10)
    assert syn.raw_lrs.shape == (6,)
    torch.testing.assert_close(syn.lrs, torch.full((6,), 0.05))
    assert syn.classes.tolist() == [c for c in range(10) for _ in range(2)]


@pytest.mark.parametrize("kind", LABEL_INITS)
def test_every_label_init(kind):
    syn = SyntheticSet.create(
        (4,),
        5,
        per_class=1,
        n_batches=2,
        label_init=kind,
        generator=torch.Generator().manual_seed(0),
    )
    y = syn.y_soft
    assert y.shape == (2, 5, 5) and torch.isfinite(y).all()
    if kind == "onehot":
        assert torch.equal(y[0], torch.eye(5))
    if kind == "smoothed":
        assert torch.allclose(y.sum(-1), torch.ones(2, 5))
        assert (y.argmax(-1) == torch.arange(5)).all()
    if kind == "orthogonal":
        torch.testing.assert_close(y[0] @ y[0].T, torch.eye(5), atol=1e-5, rtol=0)


def test_softmax_mode_starts_near_onehot():
    syn = SyntheticSet.create((4,), 5, label_mode="softmax")
    assert torch.allclose(syn.y_soft.sum(-1), torch.ones(1, 5))
    assert (syn.y_soft[0].diagonal() > 0.99).all()


def test_fewer_examples_than_classes():
    syn = SyntheticSet.create((4,), 10, per_class=1, label_classes=[3, 7])
    assert syn.per_batch == 2
    assert syn.y_soft.shape == (1, 2, 10)  # label vectors still span all classes
    assert syn.y_soft[0].argmax(-1).tolist() == [3, 7]
    with pytest.raises(ValueError, match=r"label classes \[12\] out of range"):
        SyntheticSet.create((4,), 10, label_classes=[3, 12])


def test_flags_only_set_requires_grad():
    syn = SyntheticSet.create((4,), 3, learn_labels=False, freeze_data=True, learn_lrs=True)
    assert [p.requires_grad for p in syn.parameters()] == [False, False, True]


def test_label_init_from_tensor_and_bad_shapes():
    t = torch.arange(6.0).view(2, 3)
    syn = SyntheticSet.create((4,), 3, label_classes=[0, 1], n_batches=2, label_init=t)
    assert torch.equal(syn.label_params[1], t)
    with pytest.raises(ValueError, match="label init has shape"):
        SyntheticSet.create((4,), 3, label_init=torch.zeros(2, 3))
    with pytest.raises(ValueError, match=">= 1"):
        SyntheticSet.create((4,), 3, per_class=0)
