"""Text classifiers that take word embeddings ``(batch, maxlen, dim)``, not token ids.

Real token ids are looked up in the frozen embedding table before the model (in ``data/text/``),
and synthetic sentences live in that embedding space, so one model serves both and the core never
branches on modality.

Every network here is written with plain differentiable ops (no cuDNN RNN kernels, no fused
attention): the hypergradient takes Hessian-vector products through the inner training steps,
which needs double backward, and cuDNN's RNN and flash attention do not provide it. The recurrence
is a Python loop over time steps, with both directions of a bidirectional layer advanced together
by one batched matrix product per step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["BiRecurrent", "TextConvNet", "TextLSTM", "TextRNN", "TextTransformer"]


class TextConvNet(nn.Module):
    """Kim (2014)-style CNN: parallel 1-D convolutions of several widths over the sequence, ReLU,
    max over time, concatenated, then a linear classifier.

    ``dropout`` (default 0: none) drops the classifier's inputs in *inner* steps only, the passes
    that train on a synthetic set or a baseline's examples (:func:`~softdistill.core.inner_step`
    sets :attr:`inner_pass` around them), as the text paper's TextConvNet1 trains in train mode
    with dropout 0.5; every other pass (the outer loss on real data, predictions) sees the whole
    features, as the paper's eval mode. The masks come from the global torch RNG, so a run is
    repeatable from its seed and a checkpoint (which keeps that RNG's state) resumes it exactly;
    the ``reverse`` hypergradient, which recomputes inner steps, would draw other masks and is
    refused by the outer loop (``autograd`` keeps the one graph).

    Args:
        maxlen: sequence length (must be >= the widest filter).
        dim: embedding dimension.
        n_classes: outputs.
        widths: filter widths (default 3, 4, 5).
        maps: feature maps per width (default 100).
        dropout: drop probability of the classifier's inputs in inner steps (0 <= p < 1).
    """

    def __init__(
        self,
        maxlen: int,
        dim: int,
        n_classes: int,
        *,
        widths: Sequence[int] = (3, 4, 5),
        maps: int = 100,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"TextConvNet's dropout must be in [0, 1), got {dropout}")
        self.dropout = float(dropout)
        self.inner_pass = False  # set by core.inner_step around the passes of inner steps
        if maxlen < max(widths):
            raise ValueError(
                f"TextConvNet's widest filter is {max(widths)} but maxlen is {maxlen}; "
                f"use a larger maxlen or smaller widths"
            )
        self.convs = nn.ModuleList(nn.Conv1d(dim, maps, w) for w in widths)
        self.classifier = nn.Linear(maps * len(widths), n_classes)

    def extra_repr(self) -> str:
        # in the repr (a cache key of the baselines) only when set: nets without it print as before
        return f"dropout={self.dropout}" if self.dropout > 0 else ""

    def forward(self, x: Tensor) -> Tensor:  # x: (B, L, D)
        x = x.transpose(1, 2)  # (B, D, L): channels are embedding dimensions
        feats = [F.relu(conv(x)).amax(dim=-1) for conv in self.convs]  # each (B, maps)
        h = torch.cat(feats, dim=-1)
        if self.inner_pass and self.dropout > 0:
            h = F.dropout(h, self.dropout, training=True)
        return self.classifier(h)


class _BiLayer(nn.Module):
    """The weights of one bidirectional recurrent layer (``gates`` blocks of ``hidden`` rows)."""

    def __init__(self, input_size: int, hidden: int, gates: int) -> None:
        super().__init__()
        for suffix in ("", "_reverse"):
            self.register_parameter(
                "weight_ih" + suffix, nn.Parameter(torch.empty(gates * hidden, input_size))
            )
            self.register_parameter(
                "weight_hh" + suffix, nn.Parameter(torch.empty(gates * hidden, hidden))
            )
            self.register_parameter("bias" + suffix, nn.Parameter(torch.zeros(gates * hidden)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.weight_hh.shape[1])  # as torch.nn.LSTM
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)


class BiRecurrent(nn.Module):
    """A stack of bidirectional LSTM (``cell="lstm"``) or tanh-RNN (``cell="rnn"``) layers.

    Same equations as ``torch.nn.LSTM`` / ``torch.nn.RNN`` (one bias per gate instead of two,
    which is the same function), written with plain ops so double backward works on every device.
    Returns the top layer's outputs ``(B, L, 2 * hidden)`` (forward and backward halves).
    """

    def __init__(self, input_size: int, hidden: int, layers: int, cell: str) -> None:
        super().__init__()
        if cell not in ("lstm", "rnn"):
            raise ValueError(f"unknown recurrent cell {cell!r}; expected 'lstm' or 'rnn'")
        if hidden < 1 or layers < 1:
            raise ValueError(f"hidden and layers must be >= 1, got {hidden}, {layers}")
        self.cell, self.hidden = cell, hidden
        gates = 4 if cell == "lstm" else 1
        self.layers = nn.ModuleList(
            _BiLayer(input_size if i == 0 else 2 * hidden, hidden, gates) for i in range(layers)
        )

    def forward(self, x: Tensor) -> Tensor:  # x: (B, L, D)
        B, L, _ = x.shape
        H = self.hidden
        for layer in self.layers:
            w_ih = torch.stack([layer.weight_ih, layer.weight_ih_reverse])  # (2, G*H, in)
            w_hh = torch.stack([layer.weight_hh, layer.weight_hh_reverse]).transpose(1, 2)
            bias = torch.stack([layer.bias, layer.bias_reverse]).unsqueeze(1)  # (2, 1, G*H)
            # direction 1 reads the sequence reversed; inputs of all steps projected at once
            xs = torch.stack([x.transpose(0, 1), x.flip(1).transpose(0, 1)])  # (2, L, B, in)
            proj = torch.baddbmm(bias, xs.reshape(2, L * B, -1), w_ih.transpose(1, 2))
            # one unbind (not L index ops, whose backward would each fill a full-size zero grad)
            proj = proj.view(2, L, B, -1).unbind(1)  # L x (2, B, G*H)
            h = x.new_zeros(2, B, H)
            c = x.new_zeros(2, B, H)
            outs = []
            for t in range(L):
                g = torch.baddbmm(proj[t], h, w_hh)  # (2, B, G*H)
                if self.cell == "lstm":
                    # split (not slicing): its backward is one cat, not a zero-fill per slice
                    ifo, cand = g.split([3 * H, H], dim=-1)
                    i, f, o = torch.sigmoid(ifo).split(H, dim=-1)
                    c = torch.addcmul(f * c, i, torch.tanh(cand))
                    h = o * torch.tanh(c)
                else:
                    h = torch.tanh(g)
                outs.append(h)
            out = torch.stack(outs, dim=2)  # (2, B, L, H)
            x = torch.cat([out[0], out[1].flip(1)], dim=-1)  # (B, L, 2H), position-aligned
        return x


READOUTS = ("max", "last")


class _RecurrentClassifier(nn.Module):
    """``readout``: ``max`` (the max over time of the top layer's outputs: robust to padding
    position and length) or ``last`` (the top layer's final hidden states, forward after the last
    position and backward after the first: ``torch.nn.LSTM``'s ``h_n``, as the original code's
    TextLSTM2/TextRNN1 classify)."""

    cell = "lstm"

    def __init__(
        self,
        maxlen: int,
        dim: int,
        n_classes: int,
        *,
        hidden: int = 100,
        layers: int = 2,
        readout: str = "max",
    ) -> None:
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"unknown readout {readout!r}; expected one of {', '.join(READOUTS)}")
        self.readout, self.hidden = readout, hidden
        self.rnn = BiRecurrent(dim, hidden, layers, self.cell)
        self.classifier = nn.Linear(2 * hidden, n_classes)

    def forward(self, x: Tensor) -> Tensor:  # x: (B, L, D)
        out = self.rnn(x)  # (B, L, 2H), both directions position-aligned
        if self.readout == "max":
            return self.classifier(out.amax(dim=1))
        H = self.hidden
        return self.classifier(torch.cat([out[:, -1, :H], out[:, 0, H:]], dim=-1))


class TextLSTM(_RecurrentClassifier):
    """Bidirectional LSTM (default 2 layers, hidden 100 per direction), max over time (or the
    last hidden states, ``readout="last"``), linear."""

    cell = "lstm"


class TextRNN(_RecurrentClassifier):
    """Bidirectional tanh RNN (default 2 layers, hidden 100 per direction), max over time (or the
    last hidden states, ``readout="last"``), linear."""

    cell = "rnn"


class _EncoderLayer(nn.Module):
    """Pre-norm Transformer encoder layer with attention written out (double-backward safe)."""

    def __init__(self, d_model: int, heads: int, ff: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff1 = nn.Linear(d_model, ff)
        self.ff2 = nn.Linear(ff, d_model)

    def forward(self, x: Tensor) -> Tensor:  # x: (B, L, d)
        B, L, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, L, 3, self.heads, d // self.heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, heads, L, d/heads)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
        x = x + self.out((att @ v).transpose(1, 2).reshape(B, L, d))
        return x + self.ff2(F.gelu(self.ff1(self.norm2(x))))


class TextTransformer(nn.Module):
    """A small Transformer encoder: linear projection of the embeddings to ``d_model``, learned
    position embeddings, ``layers`` pre-norm encoder layers, mean over positions, linear."""

    def __init__(
        self,
        maxlen: int,
        dim: int,
        n_classes: int,
        *,
        d_model: int = 64,
        heads: int = 4,
        layers: int = 2,
        ff: int = 128,
    ) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model {d_model} must be divisible by heads {heads}")
        self.proj = nn.Linear(dim, d_model)
        self.pos = nn.Parameter(torch.randn(maxlen, d_model) * 0.02)
        self.layers = nn.ModuleList(_EncoderLayer(d_model, heads, ff) for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)
        self.classifier = nn.Linear(d_model, n_classes)

    def forward(self, x: Tensor) -> Tensor:  # x: (B, L, D)
        h = self.proj(x) + self.pos[: x.shape[1]]
        for layer in self.layers:
            h = layer(h)
        return self.classifier(self.norm(h).mean(dim=1))
