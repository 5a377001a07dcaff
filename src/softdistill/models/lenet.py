"""LeNet as used by the dataset-distillation papers (28x28 or 32x32 inputs)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LeNet"]


class LeNet(nn.Module):
    """conv(6,5x5) - pool - conv(16,5x5) - pool - fc120 - fc84 - fc.

    28x28 inputs are padded by 2 in the first convolution so both sizes end at 16x5x5.
    """

    supported_sizes = (28, 32)

    def __init__(self, in_channels: int, n_classes: int, input_size: int = 28) -> None:
        super().__init__()
        if input_size not in self.supported_sizes:
            raise ValueError(
                f"LeNet takes 28x28 or 32x32 inputs, got {input_size}x{input_size}; "
                "use arch 'convnet' (any input size) instead"
            )
        self.conv1 = nn.Conv2d(in_channels, 6, 5, padding=2 if input_size == 28 else 0)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, n_classes)

    def forward(self, x: Tensor) -> Tensor:  # x: (N, C, H, W)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.flatten(1)  # (N, 400)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)
