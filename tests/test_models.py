from __future__ import annotations

import pytest
import torch

from softdistill.models import ARCHS, INITS, build, init_params


@pytest.mark.parametrize(
    "arch,shape,kwargs",
    [
        ("lenet", (1, 28, 28), {}),
        ("lenet", (3, 32, 32), {}),
        ("alexcifarnet", (3, 32, 32), {}),
        ("convnet", (3, 32, 32), {"depth": 3, "width": 16}),
        ("convnet", (1, 8, 8), {"depth": 2, "width": 8, "norm": "none"}),
        ("convnet", (3, 20, 12), {"depth": 2, "width": 8}),
        ("mlp", (1, 8, 8), {"hidden": [16, 16]}),
    ],
)
def test_output_shapes(arch, shape, kwargs):
    model = build(arch, shape, 7, **kwargs)
    assert model(torch.randn(2, *shape)).shape == (2, 7)


def test_registry_lists_the_paper_networks():
    assert {"lenet", "alexcifarnet", "convnet", "mlp"} <= set(ARCHS)


def test_lenet_rejects_other_sizes_and_suggests_convnet():
    with pytest.raises(ValueError, match="28x28 or 32x32.*convnet"):
        build("lenet", (1, 8, 8), 10)


def test_lenet_without_autograd_pools_to_the_same_values():
    """The evaluation path (elementwise maxima) equals max_pool2d bitwise, ties included."""
    from softdistill.models.lenet import max_pool2

    x = torch.randn(3, 6, 28, 28, dtype=torch.float64).relu()  # ReLU zeros: ties in a window
    x[0, 0, :2, :2] = 1.5  # a window of four equal positive values
    with torch.no_grad():
        assert torch.equal(max_pool2(x), torch.nn.functional.max_pool2d(x, 2))
        assert max_pool2(x[..., :27, :27]).shape == (3, 6, 13, 13)  # odd sizes: max_pool2d
    for shape in ((1, 28, 28), (3, 32, 32)):
        model = build("lenet", shape, 10)
        x = torch.randn(5, *shape)
        with torch.no_grad():
            fast = model(x)
        assert torch.equal(fast, model(x).detach())


def test_unknown_arch_suggests_nearest():
    with pytest.raises(ValueError, match="did you mean 'lenet'"):
        build("lenett", (1, 28, 28), 10)


def test_convnet_too_deep_for_input():
    with pytest.raises(ValueError, match="too small"):
        build("convnet", (1, 8, 8), 10, depth=4)


@pytest.mark.parametrize("scheme", INITS)
def test_init_schemes_are_seeded_and_leave_model_alone(scheme):
    model = build("lenet", (1, 28, 28), 10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    a = init_params(model, scheme, 1.0, generator=torch.Generator().manual_seed(3))
    b = init_params(model, scheme, 1.0, generator=torch.Generator().manual_seed(3))
    c = init_params(model, scheme, 1.0, generator=torch.Generator().manual_seed(4))
    assert a.keys() == dict(model.named_parameters()).keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    if scheme != "default":
        assert all((a[k] == 0).all() for k in a if k.endswith("bias"))


def test_init_param_scales_weights():
    model = build("mlp", (100,), 10, hidden=[200])
    small = init_params(model, "normal", 0.01, generator=torch.Generator().manual_seed(0))
    big = init_params(model, "normal", 1.0, generator=torch.Generator().manual_seed(0))
    w = "net.1.weight"
    torch.testing.assert_close(big[w], 100 * small[w])
    assert 0.9 < big[w].std() < 1.1
