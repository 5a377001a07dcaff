"""Type aliases shared across the package (kept tiny on purpose).

``Params`` is the functional form of a network's weights: parameter name -> tensor, applied
with :func:`torch.func.functional_call`. ``Step`` is one inner training step: a batch of
synthetic inputs, their label vectors and the step's learning rate.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

__all__ = ["Params", "Step", "LossFn", "OuterLoss"]

Params = dict[str, Tensor]
Step = tuple[Tensor, Tensor, Tensor]  # (x_t, y_t, eta_t)
LossFn = Callable[[Tensor, Tensor], Tensor]  # (logits, y_soft) -> scalar
OuterLoss = Callable[[Params], Tensor]  # theta_T -> scalar L
