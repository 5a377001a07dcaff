"""Shared fixtures: tiny models and data made by the tests themselves."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch
import torch.nn.functional as F

from helpers import TinyNet
from softdistill.core import SyntheticSet, forward

# Tests use tiny tensors: extra threads only add overhead, and on a shared 2-core machine their
# contention made tiny outer steps ~50x slower (0.5 s instead of 10 ms).
torch.set_num_threads(1)
os.environ["OMP_NUM_THREADS"] = "1"  # and the CLI's thread choice (softdistill distill) keeps it
# Caches (decoded data, token ids, baselines) never leave the tests' own folders: one for the
# module-scoped fixtures of the run, one per test (below): no test sees another's baselines.
os.environ["SOFTDISTILL_CACHE"] = tempfile.mkdtemp(prefix="softdistill-test-cache-")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTDISTILL_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def tiny64():
    """(model, params0, syn, outer_loss) in float64: 3 classes, 4x4 images, 2 batches x 2 epochs."""
    g = torch.Generator().manual_seed(0)
    model = TinyNet().double()
    params0 = {
        k: 0.5 * torch.randn(v.shape, generator=g, dtype=torch.float64)
        for k, v in model.named_parameters()
    }
    syn = SyntheticSet.create(
        (1, 4, 4),
        3,
        per_class=1,
        n_batches=2,
        n_epochs=2,
        init_lr=0.3,
        label_init="stdnormal",
        generator=g,
        dtype=torch.float64,
    )
    x_real = torch.randn(16, 1, 4, 4, generator=g, dtype=torch.float64)
    y_real = torch.randint(0, 3, (16,), generator=g)

    def outer_loss(params):
        return F.cross_entropy(forward(model, params, x_real), y_real)

    return model, params0, syn, outer_loss
