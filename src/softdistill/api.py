"""The Python API: distill, evaluate and load runs in three calls.

    import softdistill as sd
    run = sd.distill(dataset="digits", arch="mlp", outer_steps=200, out="runs/digits")
    sd.evaluate(run, test_n_nets=20)   # the eval.json dict
    run = sd.load("runs/digits")       # a finished run folder

``distill`` is the same pipeline as ``softdistill distill`` (run folder, checkpoints, metrics,
snapshots, evaluation); the CLI is a thin layer over it that also seeds the global RNG,
configures logging and prints.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from softdistill import __version__, distributed, io
from softdistill.callbacks import Callback
from softdistill.config import (
    PASS_KEYS,
    Config,
    ConfigError,
    is_merged,
    merge,
    read_config_file,
)
from softdistill.core import SyntheticSet
from softdistill.data import cache_dir, load_config
from softdistill.distillation import distill as distill_loop
from softdistill.evaluation import evaluate_attack, evaluate_run
from softdistill.models import build
from softdistill.nets import NetSpec, eval_nets
from softdistill.pool import load_pool
from softdistill.protocol import ScratchSettings
from softdistill.report import save_artefacts
from softdistill.typing import Params

__all__ = [
    "RESUMABLE_CHANGES",
    "check_eval_config",
    "default_run_dir",
    "distill",
    "evaluate",
    "evaluate_config",
    "load",
    "merge_eval",
    "method_summary",
    "resolve_config",
    "resolve_device",
    "resumed_config",
    "scratch_settings",
]

log = logging.getLogger("softdistill")

# Settings a resumed run may change (they do not alter the result's definition).
RESUMABLE_CHANGES = {
    "outer_steps",
    "outer_epochs",  # sets outer_steps
    "device",
    "threads",  # only the last bits of the result may change
    "log_every",
    "checkpoint_every",
    "checkpoint_epochs",  # sets checkpoint_every
    "eval_every",
    "test_every",
    "snapshot_every",
    "keep_every",  # recomputes the very same weights: the result does not change
    "tensorboard",
    "data_dir",
    "download",
    "test_pool",
    "published_acc",
    "full_data_acc",
    "baseline_cache",
    "patience",  # when to stop, like outer_steps
    "stop_at_val_acc",
}

ConfigLike = Config | Mapping[str, Any] | str | Path | None


def resolve_config(config: ConfigLike = None, **overrides) -> Config:
    """A validated :class:`Config` from a Config, a mapping, a config file path, or defaults,
    with ``overrides`` (any config key) applied last."""
    if config is None:
        values: dict[str, Any] = {}
        source = "arguments"
    elif isinstance(config, Config) and not overrides and is_merged(config):
        return config  # merged and validated (e.g. by the command line), unchanged since
    elif isinstance(config, Config):
        values, source = config.to_dict(), "config"
    elif isinstance(config, Mapping):
        values, source = dict(config), "config"
    elif isinstance(config, (str, Path)):
        values, source = read_config_file(config), str(config)
    else:
        raise ConfigError(f"config must be a Config, a dict or a file path, got {type(config)}")
    if overrides:
        source = f"{source} and arguments"
    return merge(values, overrides, source=source)


def resolve_device(name: str):
    """``auto`` -> cuda when available, else cpu; anything else as given (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"bad device {name!r}: {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available here")
    return device


def resumed_config(out: str | Path, overrides: Mapping[str, Any]) -> Config:
    """The saved config of the run in ``out`` with ``overrides``, which may change only
    :data:`RESUMABLE_CHANGES`."""
    saved = saved_config(out)
    cfg = resolve_config(saved, **overrides)
    check_resume_changes(saved, cfg)
    return cfg


def saved_config(out: str | Path) -> Config:
    """The config saved in the run folder ``out`` (its counts in passes already steps)."""
    path = Path(out) / io.CONFIG
    return Config.from_dict(io.read_json(path), source=str(path))


def check_resume_changes(saved: Config, cfg: Config) -> None:
    """Refuse ``cfg`` for resuming the run of ``saved`` if it changes more than
    :data:`RESUMABLE_CHANGES`. A count still in passes (``decay_epochs`` ...; e.g. the run's
    own config file) is left out: the saved config holds the steps it became, known once the
    data is loaded, when :func:`distill` checks again."""
    changed = {k for k in Config.field_names() if getattr(cfg, k) != getattr(saved, k)}
    for passes_key, steps_key in PASS_KEYS:
        if getattr(cfg, passes_key) is not None:
            changed -= {passes_key, steps_key}
    if changed - RESUMABLE_CHANGES:
        raise ConfigError(
            f"resume cannot change {sorted(changed - RESUMABLE_CHANGES)} of the saved run; "
            f"only {sorted(RESUMABLE_CHANGES)} may differ"
        )


def scratch_settings(cfg: Config) -> ScratchSettings | None:
    """The from-scratch protocol settings of ``cfg`` (None unless ``scratch`` is asked for)."""
    if "scratch" not in cfg.protocols:
        return None
    return ScratchSettings(
        epochs=cfg.scratch_epochs,
        lr=cfg.scratch_lr,
        momentum=cfg.scratch_momentum,
        weight_decay=cfg.scratch_weight_decay,
        batch_size=cfg.scratch_batch_size,
        n_nets=cfg.scratch_n_nets,
        labels=cfg.scratch_labels,
        augment=cfg.scratch_augment,
        init=cfg.init,
        init_param=cfg.init_param,
    )


def evaluate_config(
    cfg: Config,
    data,
    model: nn.Module,
    syn: SyntheticSet,
    fixed_nets: Sequence[Params] | None,
    device,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """``eval.json`` of a run described by ``cfg``: on its fixed inits (``nets: fixed``), on
    ``cfg.test_n_nets`` fresh random inits never used in training (``nets: random``), or on the
    held-out ``test_pool`` (``nets: pool:PATH``). The attack objective adds ``attack``: its
    numbers before and after the learned steps."""

    dtype = getattr(torch, cfg.dtype)
    model = model.to(device=device, dtype=dtype)
    nets = eval_nets(
        model,
        NetSpec.of(cfg),
        fixed_nets if cfg.nets == "fixed" else None,
        cfg.test_n_nets,
        device=device,
        dtype=dtype,
        sample_shape=data.sample_shape,
        n_classes=data.n_classes,
    )
    archs = cfg.scratch_archs or [cfg.arch]
    arch_args = {cfg.arch: cfg.arch_args, **cfg.scratch_arch_args}
    ev = evaluate_run(
        model,
        nets,
        syn.to(device),
        data.train.to(device, dtype),
        data.test.to(device, dtype),
        baselines=cfg.baselines,
        baseline_lr=cfg.baseline_lr,
        baseline_lrs=cfg.baseline_lrs,
        baseline_draws=cfg.baseline_draws,
        knn_k=cfg.knn_k,
        knn_p=cfg.knn_p,
        scratch=scratch_settings(cfg),
        scratch_archs=archs,
        scratch_arch_args=arch_args,
        scratch_baselines=cfg.scratch_baselines,
        seed=cfg.seed,
        progress=progress,
        cache=cache_dir() / "baselines" if cfg.baseline_cache else None,
    )
    ev["protocol"].update(
        dataset=cfg.dataset, arch=cfg.arch, nets=cfg.nets, objective=cfg.objective
    )
    if cfg.pool_path is not None:
        ev["protocol"]["eval_nets"] = cfg.test_pool or f"{cfg.pool_path} (the nets distilled on)"
        ev["protocol"]["source_dataset"] = load_pool(cfg.test_pool or cfg.pool_path).dataset
    if cfg.objective == "attack":
        test = data.test.to(device, dtype)
        ev["attack"] = evaluate_attack(
            model, nets, syn.to(device), test, cfg.attack_class, cfg.target_class
        )
    if "scratch" in ev:
        ev["scratch"]["distilled_arch"] = cfg.arch
    return ev


def check_eval_config(cfg: Config, n_synthetic: int) -> None:
    """Evaluation settings that depend on the synthetic set's size (checked before long work)."""
    if "knn" in cfg.baselines and cfg.knn_k > n_synthetic:
        raise ConfigError(
            f"knn_k={cfg.knn_k} exceeds the {n_synthetic} synthetic examples of the reference set"
        )


def default_run_dir(cfg: Config) -> Path:
    """``runs/<dataset>_<arch>_<time>``: the run folder when none is given."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.dataset.replace(':', '_').replace('/', '_')}_{cfg.arch}_{stamp}"


def method_summary(cfg: Config) -> str:
    """The settings that define the experiment, in one line (logged at the start of a run)."""
    labels = (
        f"labels learned ({cfg.label_init}, {cfg.label_mode})"
        if cfg.learn_labels
        else f"labels fixed ({cfg.label_init})"
    )
    classes = f"{cfg.n_label_classes} classes" if cfg.n_label_classes else "every class"
    if cfg.init_labels is not None:
        classes = f"classes {cfg.init_labels}"
    args = f" {cfg.arch_args}" if cfg.arch_args else ""
    schedule = (
        "cosine to 0"
        if cfg.lr_schedule == "cosine"
        else f"x{cfg.decay_factor:g} every {cfg.decay_every}"
    )
    if cfg.warmup_steps:
        schedule += f", warm-up {cfg.warmup_steps}"
    batch = f"{cfg.batch_size}"
    if cfg.batch_size_late:
        batch += f" ({cfg.batch_size_late} from step {cfg.batch_late_from})"
    starts = (
        f", {cfg.restarts} starts of {cfg.restart_steps} steps (the best held out goes on)"
        if cfg.restarts > 1
        else ""
    )
    return (
        f"dataset {cfg.dataset}, arch {cfg.arch}{args} (init {cfg.init}), nets {cfg.nets} "
        f"x {cfg.n_nets}, objective {cfg.objective}; {cfg.per_class} per class of {classes} "
        f"x {cfg.n_batches} batch(es) x {cfg.n_epochs} epoch(s) (T = {cfg.n_steps}), {labels}, "
        f"lrs {'learned' if cfg.learn_lrs else 'fixed'} from {cfg.init_lr:g}, x_init "
        f"{cfg.x_init}{', data frozen' if cfg.freeze_data else ''}; {cfg.outer_steps} outer "
        f"steps of Adam lr {cfg.lr:g} ({schedule}){starts}, batch {batch}, hypergrad "
        f"{cfg.hypergrad}, seed {cfg.seed}"
    )


def tensorboard_writer(run_dir: Path):
    """A ``SummaryWriter`` on ``run_dir/tensorboard`` (imported only here: an optional extra)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(
            "tensorboard logging (--tensorboard) needs the tensorboard package, which is not "
            "installed: pip install 'softdistill[tensorboard]' (metrics.jsonl is written "
            "either way)"
        ) from None
    return SummaryWriter(log_dir=str(run_dir / io.TENSORBOARD))


def distill(
    config: ConfigLike = None,
    *,
    out: str | Path | None = None,
    overwrite: bool = False,
    resume: bool = False,
    evaluate: bool = True,
    progress: Callable[[int, dict[str, float]], None] | None = None,
    command: str | None = None,
    callbacks: Sequence[Callback] = (),
    **overrides,
):
    """Learn a synthetic set and write its run folder; returns the loaded :class:`~io.Run`.

    Args:
        config: a :class:`Config`, a mapping of config keys, a YAML/JSON/TOML file, or None.
        out: the run folder (default ``runs/<dataset>_<arch>_<time>``). An existing non-empty
            folder is refused unless ``overwrite`` or ``resume``.
        overwrite: replace an existing run folder.
        resume: continue the run in ``out`` from its last checkpoint (``config`` is then the
            saved one; ``overrides`` may change only :data:`RESUMABLE_CHANGES`).
        evaluate: evaluate the result (``eval.json``) after distilling.
        progress: called after every outer step with ``(step, {"loss": ...})``; an object
            with a ``total`` attribute gets the number of outer steps once the data is loaded
            (``outer_epochs`` counts passes over it).
        command: the command line that asked for it (recorded in ``eval.json``'s ``made``).
        callbacks: :class:`~softdistill.callbacks.Callback` objects of your own, run after
            every outer step (after the held-out evaluation, before the writers); one may end
            the run with ``event.request_stop("why")``.
        **overrides: any config key, e.g. ``dataset="mnist", per_class=1, outer_steps=500``.

    In a ``torch.distributed`` process group (``torchrun``), every rank calls this with the
    same configuration (checked); the inner nets are sharded across ranks and only rank 0
    writes the run folder, evaluates and returns the run; the other ranks return None.

    Raises:
        ConfigError: a bad configuration (nothing long has started).
        RunDirError: the run folder exists, cannot be written or the disk is full.
        DataError: the dataset is missing or unreadable.
        DivergenceError: the outer loss became NaN/inf; the last good checkpoint is kept.
    """
    t_start = time.time()
    out = Path(out) if out is not None else None
    if resume:
        if out is None:
            raise ConfigError("resume needs the run folder to continue (out=...)")
        if config is not None:
            overrides = {**_as_overrides(config), **overrides}
        cfg = resumed_config(out, overrides)
    else:
        cfg = resolve_config(config, **overrides)
    if out is None:
        out = default_run_dir(cfg)
    device = distributed.local_device(resolve_device(cfg.device))
    distributed.check_same_config(cfg.to_dict())
    main = distributed.is_main()
    # Fail before the long work: folder exists / unwritable / disk full / missing extras.
    if main:
        io.prepare_run_dir(out, overwrite=overwrite, resume=resume)
    writer = tensorboard_writer(out) if cfg.tensorboard and main else None
    try:
        log.info("loading dataset %s", cfg.dataset)
        data = load_config(cfg)
        # the original code's pass counts (outer_epochs, ...) become steps over what the outer
        # loop draws from: the training split less the held-out examples
        cfg, notes = cfg.resolve_passes(len(data.train) - cfg.val_size)
        for note in notes:
            log.info(note)
        if notes:
            cfg.validate()  # the steps that the passes became
            if resume:
                check_resume_changes(saved_config(out), cfg)
        log.info("method: %s", method_summary(cfg))
        if cfg.pool_path and not cfg.test_pool and evaluate:
            log.warning(
                "no test_pool: the set will be evaluated on the nets it is distilled on "
                "(optimistic); pass --test_pool PATH for held-out nets"
            )
        if hasattr(progress, "total"):  # e.g. the CLI's bar: the step count is known now
            progress.total = cfg.total_outer_steps
        try:
            model = build(cfg.arch, data.sample_shape, data.n_classes, **cfg.arch_args)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        per_batch = len(cfg.label_classes(data.n_classes)) * cfg.per_class
        check_eval_config(cfg, cfg.n_batches * per_batch)
        if main:
            io.save_json(out / io.CONFIG, cfg.to_dict())
        world_size = distributed.rank_world()[1]
        log.info(
            "distilling %s into %d batch(es) of %d examples, T = %d, on %s%s; run folder %s",
            cfg.dataset,
            cfg.n_batches,
            per_batch,
            cfg.n_steps,
            device,
            f" and {world_size - 1} more process(es)" if world_size > 1 else "",
            out,
        )
        on_record = None
        if writer is not None:

            def on_record(record: dict[str, Any]) -> None:
                for k, v in record.items():
                    if k != "step" and isinstance(v, (int, float)):
                        writer.add_scalar(k, v, record["step"])

        result = distill_loop(
            cfg,
            data,
            model,
            device=device,
            run_dir=out,
            resume=resume,
            progress=progress,
            on_record=on_record,
            callbacks=callbacks,
        )
    finally:
        if writer is not None:
            writer.close()
    if not main:
        return None
    meta = {
        "dataset": data.name,
        "classes": data.class_names,
        "modality": data.modality,
        # the embedding table a text set lives in (a modality's own entries of data.extra)
        **({"embeddings": data.extra["embeddings"]} if "embeddings" in data.extra else {}),
        "mean": list(data.mean),
        "std": list(data.std),
        "arch": cfg.arch,
        "outer_steps": result.outer_steps,
        "seconds": result.seconds,
        "seconds_per_step": result.seconds_per_step,
        # restarts: the steps of the starts not continued (in seconds and seconds_per_step)
        **({"other_steps": result.other_steps} if result.other_steps else {}),
        **({"selected": result.selected} if result.selected else {}),
    }
    t_after = time.time()
    io.save_synthetic(out / io.SYNTHETIC, result.syn, meta)
    if result.nets is not None:
        io.save_params(out / io.INIT, result.nets)
    io.save_real_examples(out / io.REAL, data.train, data.n_classes, per_class=2)
    if evaluate:
        log.info("evaluating")
        ev = evaluate_config(cfg, data, model, result.syn, result.nets, device, log.info)
        ev["protocol"].update(
            outer_steps=result.outer_steps,
            seconds=round(result.seconds, 2),
            seconds_per_step=round(result.seconds_per_step, 4),
        )
        if result.selected:
            ev["protocol"]["selected"] = result.selected
        io.save_json(out / io.EVAL, merge_eval(None, ev, command))
    # the modality's own files (report.ARTEFACT_WRITERS), after eval.json: the image grid's
    # plotting library then takes memory the evaluation has given back
    save_artefacts(out, result.syn, data)
    info = run_info(cfg, command, t_start, device)
    # the set's files, the evaluation and baselines, the artefacts
    info["after_loop_seconds"] = round(time.time() - t_after, 2)
    io.save_json(out / io.RUN_INFO, info)
    return io.load_run(out)


def run_info(cfg: Config, command: str | None, t_start: float, device) -> dict[str, Any]:
    """``run.json``: how and where a run was made (the report's first questions)."""
    hardware = platform.processor() or platform.machine()
    if getattr(device, "type", "cpu") == "cuda":
        hardware = torch.cuda.get_device_name(device)
    return {
        "command": command,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t_start)),
        "wall_seconds": round(time.time() - t_start, 2),
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "device": str(device),
        "hardware": hardware,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "softdistill": __version__,
        "seed": cfg.seed,
    }


def _as_overrides(config: ConfigLike) -> dict[str, Any]:
    if isinstance(config, Config):
        return config.to_dict()
    if isinstance(config, Mapping):
        return dict(config)
    return read_config_file(config)


def merge_eval(old: Mapping[str, Any] | None, new: Mapping[str, Any], command: str | None):
    """``new`` results merged into an earlier ``eval.json`` dict: entries of ``new`` replace the
    same entries (each baseline is its own entry), the others stay. ``"made"`` records, per
    entry (``distilled``, ``baselines/random``, ...), when and with which command it was made."""
    stamp = {"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": command}
    merged: dict[str, Any] = {k: v for k, v in (old or {}).items()}
    made = dict(merged.get("made") or {})
    for key, value in new.items():
        if key == "made":
            continue
        if key == "baselines" and isinstance(merged.get("baselines"), dict):
            merged["baselines"] = {**merged["baselines"], **value}
            made.update({f"baselines/{name}": stamp for name in value})
        else:
            merged[key] = value
            if key == "baselines":
                made.update({f"baselines/{name}": stamp for name in value})
            else:
                made[key] = stamp
    merged["made"] = made
    return merged


def evaluate(run, *, save: bool = False, command: str | None = None, **overrides) -> dict[str, Any]:
    """Evaluate a finished run again; returns the ``eval.json`` dict (also set as ``run.eval``).

    The new results are merged into the run's earlier ones (:func:`merge_eval`): a baseline
    evaluated again replaces its entry, the baselines not evaluated this time stay.

    Args:
        run: a :class:`~io.Run` (from :func:`distill` or :func:`load`) or a run folder.
        save: rewrite the run folder's ``eval.json`` (merged).
        command: the command line that asked for it (recorded in ``eval.json``'s ``made``).
        **overrides: config keys that change the evaluation, e.g. ``test_n_nets=20``,
            ``baselines=["random"]``, ``data_dir=...``, ``device="cuda"``.
    """
    if isinstance(run, (str, Path)):
        run = io.load_run(run)
    cfg = resolve_config(
        Config.from_dict(run.config, source=str(run.path / io.CONFIG)), **overrides
    )
    device = resolve_device(cfg.device)
    data = load_config(cfg)
    model = build(cfg.arch, data.sample_shape, data.n_classes, **cfg.arch_args)
    check_eval_config(cfg, run.syn.n_batches * run.syn.per_batch)
    ev = evaluate_config(cfg, data, model, run.syn, run.init_params, device, log.info)
    if run.eval and "protocol" in run.eval:  # keep the distillation timing of the run
        for k in ("outer_steps", "seconds", "seconds_per_step", "selected"):
            if k in run.eval["protocol"]:
                ev["protocol"][k] = run.eval["protocol"][k]
    ev = merge_eval(run.eval, ev, command)
    if save:
        io.save_json(run.path / io.EVAL, ev)
    run.eval = ev
    return ev


def load(path: str | Path, device=None):
    """Load a run folder written by :func:`distill` or ``softdistill distill``."""
    return io.load_run(path, device=device)
