"""AlexCifarNet, the CIFAR-10 network of the dataset-distillation paper (32x32 RGB)."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["AlexCifarNet"]


class AlexCifarNet(nn.Module):
    supported_sizes = (32,)

    def __init__(self, in_channels: int, n_classes: int, input_size: int = 32) -> None:
        super().__init__()
        if input_size != 32:
            raise ValueError(
                f"AlexCifarNet takes 32x32 inputs, got {input_size}x{input_size}; "
                "use arch 'convnet' (any input size) instead"
            )
        # LRN as in the original (cuda-convnet) network; it is differentiable twice.
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=5, stride=1, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
            nn.LocalResponseNorm(4, alpha=0.001 / 9.0, beta=0.75, k=1),
            nn.Conv2d(64, 64, kernel_size=5, stride=1, padding=2),
            nn.ReLU(),
            nn.LocalResponseNorm(4, alpha=0.001 / 9.0, beta=0.75, k=1),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
        self.classifier = nn.Sequential(
            nn.Linear(64 * 8 * 8, 384),
            nn.ReLU(),
            nn.Linear(384, 192),
            nn.ReLU(),
            nn.Linear(192, n_classes),
        )

    def forward(self, x: Tensor) -> Tensor:  # x: (N, C, 32, 32)
        return self.classifier(self.features(x).flatten(1))
