"""Modality-agnostic distillation math; imports only torch. No I/O."""

from softdistill.core.batched import (
    StackedNets,
    batched_hypergradient,
    stack_params,
    unstack_params,
)
from softdistill.core.hypergrad import (
    EXACT_METHODS,
    METHODS,
    HyperResult,
    auto_keep_every,
    hypergradient,
    inner_graph_bytes,
    sample_truncation,
)
from softdistill.core.losses import (
    LABEL_MODES,
    ChunkedLoss,
    label_vector,
    loss_and_grad,
    soft_cross_entropy,
)
from softdistill.core.synthetic import (
    LABEL_INITS,
    SyntheticSet,
    batch_of_step,
    init_label_params,
    inverse_softplus,
    layout_steps,
)
from softdistill.core.unroll import forward, inner_pass, inner_step, random_inner_steps, unroll

__all__ = [
    "EXACT_METHODS",
    "LABEL_INITS",
    "LABEL_MODES",
    "METHODS",
    "ChunkedLoss",
    "HyperResult",
    "StackedNets",
    "auto_keep_every",
    "batch_of_step",
    "batched_hypergradient",
    "SyntheticSet",
    "forward",
    "hypergradient",
    "init_label_params",
    "inner_graph_bytes",
    "inner_pass",
    "inner_step",
    "inverse_softplus",
    "label_vector",
    "layout_steps",
    "loss_and_grad",
    "random_inner_steps",
    "sample_truncation",
    "soft_cross_entropy",
    "stack_params",
    "unroll",
    "unstack_params",
]
