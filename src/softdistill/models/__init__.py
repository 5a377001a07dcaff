"""Networks as plain ``nn.Module`` templates, a registry, and weight initialisation.

Distillation never mutates a model: :func:`build` gives the template and :func:`init_params`
draws a fresh ``dict[str, Tensor]`` of weights for it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn

from softdistill.models.alexcifarnet import AlexCifarNet
from softdistill.models.convnet import ConvNet
from softdistill.models.lenet import LeNet
from softdistill.models.mlp import MLP
from softdistill.models.text import TextConvNet, TextLSTM, TextRNN, TextTransformer
from softdistill.typing import Params
from softdistill.utils import did_you_mean

__all__ = [
    "ARCHS",
    "INITS",
    "AlexCifarNet",
    "ConvNet",
    "LeNet",
    "MLP",
    "TextConvNet",
    "TextLSTM",
    "TextRNN",
    "TextTransformer",
    "build",
    "init_params",
    "register",
]

Builder = Callable[..., nn.Module]
ARCHS: dict[str, Builder] = {}
INITS = ("xavier", "xavier_unif", "kaiming", "kaiming_out", "orthogonal", "normal", "default")


def register(name: str) -> Callable[[Builder], Builder]:
    """Register ``builder(sample_shape, n_classes, **arch_args) -> nn.Module`` under ``name``."""

    def deco(fn: Builder) -> Builder:
        ARCHS[name] = fn
        return fn

    return deco


def _image_shape(name: str, sample_shape: Sequence[int]) -> tuple[int, int, int]:
    if len(sample_shape) != 3:
        raise ValueError(
            f"arch {name!r} takes images (C, H, W), got samples of shape {tuple(sample_shape)}"
        )
    return tuple(sample_shape)  # type: ignore[return-value]


@register("lenet")
def _lenet(sample_shape, n_classes):
    c, h, w = _image_shape("lenet", sample_shape)
    if h != w:
        raise ValueError(f"LeNet takes square 28x28 or 32x32 inputs, got {h}x{w}; use 'convnet'")
    return LeNet(c, n_classes, h)


@register("alexcifarnet")
def _alex(sample_shape, n_classes):
    c, h, w = _image_shape("alexcifarnet", sample_shape)
    if h != w:
        raise ValueError(f"AlexCifarNet takes 32x32 inputs, got {h}x{w}; use 'convnet'")
    return AlexCifarNet(c, n_classes, h)


@register("convnet")
def _convnet(sample_shape, n_classes, depth=3, width=128, norm="instancenorm"):
    c, h, w = _image_shape("convnet", sample_shape)
    return ConvNet(c, n_classes, (h, w), depth=depth, width=width, norm=norm)


@register("mlp")
def _mlp(sample_shape, n_classes, hidden=(128,)):
    if isinstance(hidden, int):
        hidden = (hidden,)
    return MLP(sample_shape, n_classes, hidden=tuple(hidden))


def _text_shape(name: str, sample_shape: Sequence[int]) -> tuple[int, int]:
    if len(sample_shape) != 2:
        raise ValueError(
            f"arch {name!r} takes sequences of word embeddings (maxlen, dim), got samples of "
            f"shape {tuple(sample_shape)}; use a text dataset"
        )
    return tuple(sample_shape)  # type: ignore[return-value]


@register("textconvnet")
def _textconvnet(sample_shape, n_classes, widths=(3, 4, 5), maps=100, dropout=0.0):
    maxlen, dim = _text_shape("textconvnet", sample_shape)
    return TextConvNet(
        maxlen, dim, n_classes, widths=tuple(widths), maps=maps, dropout=float(dropout)
    )


@register("textlstm")
def _textlstm(sample_shape, n_classes, hidden=100, layers=2, readout="max"):
    maxlen, dim = _text_shape("textlstm", sample_shape)
    return TextLSTM(maxlen, dim, n_classes, hidden=hidden, layers=layers, readout=readout)


@register("textrnn")
def _textrnn(sample_shape, n_classes, hidden=100, layers=2, readout="max"):
    maxlen, dim = _text_shape("textrnn", sample_shape)
    return TextRNN(maxlen, dim, n_classes, hidden=hidden, layers=layers, readout=readout)


@register("texttransformer")
def _texttransformer(sample_shape, n_classes, d_model=64, heads=4, layers=2, ff=128):
    maxlen, dim = _text_shape("texttransformer", sample_shape)
    return TextTransformer(
        maxlen, dim, n_classes, d_model=d_model, heads=heads, layers=layers, ff=ff
    )


def build(arch: str, sample_shape: Sequence[int], n_classes: int, **arch_args) -> nn.Module:
    """The template network ``arch`` for samples of ``sample_shape`` and ``n_classes`` outputs."""
    if arch not in ARCHS:
        raise ValueError(
            f"unknown arch {arch!r}{did_you_mean(arch, ARCHS)}; known: {sorted(ARCHS)}"
        )
    try:
        return ARCHS[arch](tuple(sample_shape), n_classes, **arch_args)
    except TypeError as e:  # an unknown keyword in arch_args
        raise ValueError(f"bad arch_args {arch_args} for arch {arch!r}: {e}") from None


def _init_weight(w: torch.Tensor, scheme: str, param: float, g: torch.Generator | None) -> None:
    if scheme == "normal":
        nn.init.normal_(w, 0.0, param, generator=g)
    elif scheme == "xavier":
        nn.init.xavier_normal_(w, gain=param, generator=g)
    elif scheme == "xavier_unif":
        nn.init.xavier_uniform_(w, gain=param, generator=g)
    elif scheme == "kaiming":
        nn.init.kaiming_normal_(w, a=param, mode="fan_in", generator=g)
    elif scheme == "kaiming_out":
        nn.init.kaiming_normal_(w, a=param, mode="fan_out", generator=g)
    elif scheme == "orthogonal":
        nn.init.orthogonal_(w, gain=param, generator=g)
    else:
        raise ValueError(f"unknown init {scheme!r}{did_you_mean(scheme, INITS)}; known: {INITS}")


@torch.no_grad()
def init_params(
    model: nn.Module,
    scheme: str = "xavier",
    param: float = 1.0,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Params:
    """Fresh initial weights theta_0 for ``model`` (the model itself is left untouched).

    Weights with two or more dimensions (convolutions, linear layers, recurrent matrices) follow
    ``scheme`` with gain/std ``param``; biases are zero; one-dimensional weights (norm layers)
    are one. ``default`` uses each module's own ``reset_parameters`` (seeded from ``generator``).
    """
    if scheme not in INITS:
        raise ValueError(f"unknown init {scheme!r}{did_you_mean(scheme, INITS)}; known: {INITS}")
    if scheme == "default":
        fresh = copy.deepcopy(model).to("cpu")  # CPU RNG: same weights on every device
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for m in fresh.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
        params = {k: v.detach().clone() for k, v in fresh.named_parameters()}
    else:
        # Drawn on the CPU (where ``generator`` lives), then moved: same weights on every device.
        params = {k: torch.empty(v.shape, dtype=v.dtype) for k, v in model.named_parameters()}
        for k, v in params.items():
            leaf = k.rsplit(".", 1)[-1]
            if leaf.startswith("bias"):
                v.zero_()
            elif v.dim() >= 2:
                _init_weight(v, scheme, param, generator)
            else:
                v.fill_(1.0)
    device = device if device is not None else next(model.parameters()).device
    return {k: v.to(device=device, dtype=dtype) for k, v in params.items()}
