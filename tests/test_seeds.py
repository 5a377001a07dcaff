"""The named random streams (softdistill.seeds): one registry, no two streams on one seed."""

from __future__ import annotations

import pytest
import torch

from softdistill import seeds
from softdistill.config import Config, ConfigError
from softdistill.pool import net_seed


def test_no_two_streams_share_a_generator_seed():
    """Over run seeds 0-49 and keys 0-99 (architecture names for the scratch streams), every
    (stream, seed, key) has its own generator seed: the earlier schemes gave seed 0's
    synthetic set and random-baseline draw 1 the same generator (manual_seed(1))."""
    keys = {
        "baseline_random": range(100),
        "pool_train": range(100),
        "pool_test": range(100),
        "scratch_init": ["lenet", "mlp", "convnet", "alexcifarnet", "textconvnet"],
        "scratch_order": ["lenet", "mlp", "convnet", "alexcifarnet", "textconvnet"],
    }
    seen: dict[int, tuple] = {}
    for seed in range(50):
        for name in seeds.STREAMS:
            for key in keys.get(name, [None]):
                value = seeds.seed_of(seed, name, key)
                assert 0 <= value < 2**63  # a valid torch seed
                assert value not in seen, (seen[value], (name, seed, key))
                seen[value] = (name, seed, key)
    assert len(seen) == 50 * (len(seeds.STREAMS) - len(keys) + 3 * 100 + 2 * 5)


def test_the_run_streams_keep_their_derivation():
    """seed * 1000 + k: runs reproduce the synthetic sets of earlier releases bit for bit."""
    assert seeds.seed_of(0, "syn") == 1
    assert seeds.seed_of(7, "val") == 7006
    earlier = torch.Generator().manual_seed(3 * 1000 + 3)  # the data stream of seed 3, before
    assert torch.equal(
        torch.rand(5, generator=seeds.stream(3, "data")), torch.rand(5, generator=earlier)
    )
    # every other stream lies above every run stream of an admissible seed
    top = (seeds.MAX_SEED - 1) * 1000 + max(seeds.RUN_STREAMS.values())
    assert min(seeds.seed_of(s, n, 0) for s in range(20) for n in seeds.OTHER_STREAMS) > top


def test_bad_stream_names_keys_and_seeds_are_refused():
    with pytest.raises(ValueError, match="unknown random stream 'sin'"):
        seeds.seed_of(0, "sin")
    with pytest.raises(ValueError, match="takes no key"):
        seeds.seed_of(0, "syn", 3)
    for bad in (-1, 2**40, 1.5, True):
        with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*40\)"):
            seeds.seed_of(bad, "syn")
    with pytest.raises(ConfigError, match="seed must be an integer"):
        Config(seed=-1).validate()
    with pytest.raises(ValueError, match="split must be"):
        net_seed(0, "val", 1)
    assert net_seed(0, "train", 1) != net_seed(0, "test", 1)
