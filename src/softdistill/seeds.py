"""The package's random streams, by name: one registry, and no two streams on one seed.

Every random draw of a run (the synthetic set's init, the nets, the batch order, the baselines'
candidate sets, a pool's nets, the from-scratch protocol's inits and orders) comes from a
generator made here from the run's seed, the stream's name and, for a family of streams, a key
(the draw's index, the net's index, the architecture's name).

The run's own streams (:data:`RUN_STREAMS`) keep the derivation they have always had,
``seed * 1000 + k``, so that a run reproduces the sets of earlier releases bit for bit. Every
other stream's seed is a hash of ``(name, seed, key)`` with bit 62 set: above every run-stream
seed of a seed below :data:`MAX_SEED`, so the two families never meet, and distinct within the
second family unless SHA-256 collides on 62 bits.
"""

from __future__ import annotations

import hashlib

import torch

__all__ = ["MAX_SEED", "RUN_STREAMS", "STREAMS", "check_seed", "seed_of", "stream"]

# The run's streams: name -> k of seed * 1000 + k.
RUN_STREAMS = {
    "syn": 1,  # the synthetic set's init
    "nets": 2,  # the inner nets (random init: a fresh draw per outer step)
    "data": 3,  # the order of the real batches
    "test_nets": 4,  # the unseen evaluation inits
    "truncation": 5,  # random_truncated's window lengths
    "val": 6,  # the held-out training examples (val_size)
    "input_noise": 7,  # noise on the synthetic inputs
}

# Every other stream, with what its key is.
OTHER_STREAMS = {
    "restart_syn": "the start's index (1, 2, ...): the synthetic set's init of a further start",
    "baseline_val": "none: the training examples the random-baseline draws are scored on",
    "baseline_random": "the draw's index: the random-real candidate sets",
    "baseline_kmeans": "none: the k-means clustering's random_state",
    "pool_train": "the net's index: the init and batch order of a training-pool net",
    "pool_test": "the net's index: the init and batch order of a test-pool net",
    "scratch_init": "the architecture's name: the from-scratch protocol's inits",
    "scratch_order": "the architecture's name: its batch orders (the same for every set)",
    "eval_dropout": "none: the dropout masks of the evaluation's inner steps (arch_args dropout)",
}

STREAMS = (*RUN_STREAMS, *OTHER_STREAMS)

MAX_SEED = 2**40
_HIGH = 1 << 62  # bit 62: above seed * 1000 + k for every seed below MAX_SEED


def check_seed(seed: int) -> int:
    """``seed`` if it is an int in ``[0, MAX_SEED)``, else ValueError."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < MAX_SEED:
        raise ValueError(f"seed must be an integer in [0, 2**40), got {seed!r}")
    return seed


def seed_of(seed: int, name: str, key: int | str | None = None) -> int:
    """The generator seed of stream ``name`` (with ``key`` for a family) of run seed ``seed``."""
    check_seed(seed)
    if name in RUN_STREAMS:
        if key is not None:
            raise ValueError(f"stream {name!r} takes no key, got {key!r}")
        return seed * 1000 + RUN_STREAMS[name]
    if name not in OTHER_STREAMS:
        raise ValueError(f"unknown random stream {name!r}; known: {STREAMS}")
    text = f"softdistill/{name}/{seed}/{'' if key is None else repr(key)}"
    low = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") % _HIGH
    return _HIGH | low


def stream(seed: int, name: str, key: int | str | None = None) -> torch.Generator:
    """A CPU ``torch.Generator`` of stream ``name`` (see :func:`seed_of`)."""
    return torch.Generator().manual_seed(seed_of(seed, name, key))
