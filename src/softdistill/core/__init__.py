"""Modality-agnostic distillation math; imports only torch. No I/O."""

from softdistill.core.hypergrad import METHODS, HyperResult, hypergradient
from softdistill.core.losses import LABEL_MODES, label_vector, soft_cross_entropy
from softdistill.core.synthetic import (
    LABEL_INITS,
    SyntheticSet,
    init_label_params,
    inverse_softplus,
)
from softdistill.core.unroll import forward, inner_step, unroll

__all__ = [
    "LABEL_INITS",
    "LABEL_MODES",
    "METHODS",
    "HyperResult",
    "SyntheticSet",
    "forward",
    "hypergradient",
    "init_label_params",
    "inner_step",
    "inverse_softplus",
    "label_vector",
    "soft_cross_entropy",
    "unroll",
]
