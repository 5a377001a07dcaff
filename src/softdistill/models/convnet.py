"""ConvNet: the depth/width-configurable network most newer distillation papers use."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["ConvNet"]

NORMS = ("instancenorm", "none")


class ConvNet(nn.Module):
    """``depth`` x [conv3x3(width) - norm - ReLU - avgpool2], then a linear classifier.

    Instance norm is ``GroupNorm(width, width)`` (one group per channel, affine), which has no
    running statistics, so training and evaluation behave the same. Any input size works while
    ``depth`` halvings leave at least 1x1.
    """

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        input_size: int | tuple[int, int] = 32,
        *,
        depth: int = 3,
        width: int = 128,
        norm: str = "instancenorm",
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"unknown ConvNet norm {norm!r}; expected one of {NORMS}")
        if depth < 1 or width < 1:
            raise ValueError(f"ConvNet depth and width must be >= 1, got {depth}, {width}")
        h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
        if min(h, w) >> depth < 1:
            raise ValueError(
                f"ConvNet of depth {depth} halves the input {depth} times; {h}x{w} is too small "
                f"(use depth <= {max(1, min(h, w).bit_length() - 1)})"
            )
        layers: list[nn.Module] = []
        c = in_channels
        for _ in range(depth):
            layers.append(nn.Conv2d(c, width, 3, padding=1))
            if norm == "instancenorm":
                layers.append(nn.GroupNorm(width, width, affine=True))
            layers += [nn.ReLU(), nn.AvgPool2d(2)]
            c, h, w = width, h // 2, w // 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c * h * w, n_classes)

    def forward(self, x: Tensor) -> Tensor:  # x: (N, C, H, W)
        return self.classifier(self.features(x).flatten(1))
