"""A split of token ids that embeds only the rows it is indexed with (large text datasets)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class EmbeddedTokens:
    """Token ids ``(N, maxlen)`` that read as embeddings ``(N, maxlen, dim)``.

    Supports what the outer loop and evaluation do with ``Split.x``: ``len``, ``shape``, ``dtype``,
    ``device``, ``dim()``, ``to(device, dtype)`` and indexing the first axis (an index tensor, a
    boolean mask, a slice or an int), which returns an ordinary tensor ``table[ids[idx]]``.
    """

    def __init__(self, ids: Tensor, table: Tensor) -> None:
        if ids.dim() != 2:
            raise ValueError(f"ids must be (N, maxlen), got shape {tuple(ids.shape)}")
        self.ids, self.table = ids, table

    @property
    def shape(self) -> torch.Size:
        return torch.Size((*self.ids.shape, self.table.shape[1]))

    @property
    def dtype(self) -> torch.dtype:
        return self.table.dtype

    @property
    def device(self) -> torch.device:
        return self.table.device

    def dim(self) -> int:
        return 3

    def size(self, d: int | None = None):
        return self.shape if d is None else self.shape[d]

    def __len__(self) -> int:
        return self.ids.shape[0]

    def __getitem__(self, idx) -> Tensor:
        if isinstance(idx, Tensor):
            idx = idx.to(self.ids.device)
        return F.embedding(self.ids[idx].long(), self.table)

    def subset(self, idx) -> EmbeddedTokens:
        """The rows ``idx``, still as token ids."""
        if isinstance(idx, Tensor):
            idx = idx.to(self.ids.device)
        return EmbeddedTokens(self.ids[idx], self.table)

    def to(self, device=None, dtype=None) -> EmbeddedTokens:
        return EmbeddedTokens(self.ids.to(device), self.table.to(device=device, dtype=dtype))

    def materialize(self) -> Tensor:
        """All rows embedded (``(N, maxlen, dim)``; mind the memory)."""
        return self[:]

    def __repr__(self) -> str:
        return f"EmbeddedTokens(shape={tuple(self.shape)}, dtype={self.dtype})"
