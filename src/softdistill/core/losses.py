"""Losses and the label-parameter -> label-vector map."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LABEL_MODES", "soft_cross_entropy", "label_vector"]

LABEL_MODES = ("raw", "softmax")


def soft_cross_entropy(logits: Tensor, y_soft: Tensor) -> Tensor:
    """Cross-entropy against a label vector, averaged over the batch.

    ``-(y_soft * log_softmax(logits)).sum(-1).mean()``. With one-hot ``y_soft`` this is the usual
    cross-entropy; with ``raw`` soft labels (any real vector, as the soft-label paper) it is the
    same bilinear form, which may be negative.

    Args:
        logits: ``(batch, n_classes)``.
        y_soft: ``(batch, n_classes)``.
    """
    return -(y_soft * F.log_softmax(logits, dim=-1)).sum(-1).mean()


def label_vector(label_params: Tensor, mode: str) -> Tensor:
    """Map label parameters to the label vectors used in the inner loss.

    ``raw`` uses the parameters as they are (the soft-label paper); ``softmax`` keeps every label
    a probability vector.
    """
    if mode == "raw":
        return label_params
    if mode == "softmax":
        return torch.softmax(label_params, dim=-1)
    raise ValueError(f"unknown label mode {mode!r}; expected one of {LABEL_MODES}")
