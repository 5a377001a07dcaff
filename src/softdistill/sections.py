"""The sections of the run settings: which concern each key belongs to.

A config file may give its keys flat (``lr: 0.03``, as the original code's flags) or nested by
section (``outer: {lr: 0.03}``); both mean the same run, and ``config.json`` stays flat.
:meth:`softdistill.config.Config.section` returns one section as a typed, frozen dataclass, and
the report shows the resolved configuration grouped this way. Torch-free, imports nothing of
the package.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["SECTIONS", "SECTION_OF", "flatten_sections", "group_by_section"]

SECTIONS: dict[str, tuple[str, ...]] = {
    "data": ("dataset", "data_dir", "download", "maxlen", "ntoken", "embeddings"),
    "networks": ("arch", "arch_args", "init", "init_param", "nets", "n_nets"),
    "synthetic": (
        "per_class",
        "n_batches",
        "n_epochs",
        "init_lr",
        "learn_labels",
        "learn_lrs",
        "freeze_data",
        "label_init",
        "label_mode",
        "n_label_classes",
        "init_labels",
        "x_init",
    ),
    "outer": (
        "objective",
        "attack_class",
        "target_class",
        "outer_steps",
        "batch_size",
        "batch_size_late",
        "batch_late_from",
        "lr",
        "adam_beta1",
        "decay_every",
        "decay_factor",
        "lr_schedule",
        "warmup_steps",
        "lr_factor_labels",
        "lr_factor_lrs",
        "outer_epochs",
        "decay_epochs",
        "clip_ratio",
        "ema_decay",
        "input_noise",
        "val_size",
        "stop_at_val_acc",
        "patience",
        "restarts",
        "restart_steps",
    ),
    "hypergradient": ("hypergrad", "keep_every", "window", "batched_nets", "outer_chunk", "amp"),
    "evaluation": (
        "test_n_nets",
        "test_pool",
        "baselines",
        "baseline_lr",
        "baseline_lrs",
        "baseline_draws",
        "knn_k",
        "knn_p",
        "baseline_cache",
        "protocols",
        "scratch_epochs",
        "scratch_lr",
        "scratch_momentum",
        "scratch_weight_decay",
        "scratch_batch_size",
        "scratch_n_nets",
        "scratch_archs",
        "scratch_arch_args",
        "scratch_labels",
        "scratch_augment",
        "scratch_baselines",
        "published_acc",
        "full_data_acc",
    ),
    "run": ("seed", "device", "threads", "dtype"),
    "logging": (
        "log_every",
        "eval_every",
        "test_every",
        "checkpoint_every",
        "checkpoint_epochs",
        "snapshot_every",
        "tensorboard",
    ),
}
SECTION_OF: dict[str, str] = {key: name for name, keys in SECTIONS.items() for key in keys}


def _key(k: Any) -> str:
    return str(k).replace("-", "_")


def flatten_sections(values: Mapping[str, Any], source: str = "config") -> dict[str, Any]:
    """``values`` with each section mapping (``outer: {lr: 0.03}``) replaced by its keys.

    Raises ``ValueError`` for a key under the wrong section or given twice; unknown top-level
    keys pass through (the settings class rejects them with the nearest valid name)."""
    out: dict[str, Any] = {}

    def put(key: str, value: Any, where: str) -> None:
        if key in out:
            raise ValueError(f"key {key!r} is given twice in {source} ({where})")
        out[key] = value

    for k, v in values.items():
        k = _key(k)
        if k in SECTIONS and isinstance(v, Mapping):
            for kk, vv in v.items():
                kk = _key(kk)
                if kk not in SECTIONS[k]:
                    home = SECTION_OF.get(kk)
                    where = f"; it belongs in section {home!r}" if home else ""
                    raise ValueError(f"unknown key {kk!r} in section {k!r} of {source}{where}")
                put(kk, vv, f"in section {k!r}")
        else:
            put(k, v, "at the top level")
    return out


def group_by_section(values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A flat mapping of settings nested by section, in the sections' order (keys of no
    section, such as a newer release's, under ``other``)."""
    groups: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for name, keys in SECTIONS.items():
        groups[name] = {k: values[k] for k in keys if k in values}
    other = {k: v for k, v in values.items() if k not in SECTION_OF and k != "config_version"}
    if other:
        groups["other"] = other
    return {name: g for name, g in groups.items() if g}
