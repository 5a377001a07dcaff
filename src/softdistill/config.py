"""The run configuration: one flat dataclass, read from YAML/JSON/TOML files and CLI flags.

Files give keys flat or nested by section (``outer: {lr: 0.03}``, see
:mod:`softdistill.sections`); :meth:`Config.section` returns one section as a typed, frozen
dataclass. :func:`merge` is the one merge of settings (defaults < a saved config < a file <
flags) that the command line, the Python API and ``--resume`` share.

Unknown keys are rejected with the nearest valid name; every value is checked against its
field's type and coerced where the meaning is plain (``"1e-3"``, which PyYAML reads as a string,
becomes the float 0.001; ``batch_size: 3.5`` is refused). :meth:`Config.validate` checks values
before any long work starts.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from softdistill import hypergrads, objectives
from softdistill.errors import ConfigError
from softdistill.original import RENAMED_FLAGS, canonical_names
from softdistill.sections import SECTIONS, flatten_sections
from softdistill.utils import did_you_mean

__all__ = [
    "AMP_MODES",
    "CONFIG_VERSION",
    "Config",
    "ConfigError",
    "HYPERGRADS",
    "bool_keys",
    "coerce_value",
    "describe_type",
    "layered",
    "merge",
]

CONFIG_VERSION = 1


# hypergrad choices: the core's methods plus the outer loop's random truncation (RaT-BPTT)
HYPERGRADS = hypergrads.choices()  # auto and the registered methods (softdistill.hypergrads)
AMP_MODES = ("off", "bf16")
LR_SCHEDULES = ("step", "cosine")

# Defaults of list-valued keys (see Config).
DEFAULT_BASELINES = ("random", "kmeans", "average", "knn")
DEFAULT_BASELINE_LRS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
# counts in passes over the real data (the original code's units) and the key each one sets
PASS_KEYS = (
    ("outer_epochs", "outer_steps"),
    ("decay_epochs", "decay_every"),
    ("checkpoint_epochs", "checkpoint_every"),
)


def layer_values(values: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with ``changes`` laid over them, where a count in steps of the upper layer
    (``outer_steps`` ...) replaces the lower layer's count in passes (``outer_epochs`` ...):
    ``--outer_steps 6`` over a file with ``outer_epochs: 100`` runs 6 steps."""
    out = {**values, **changes}
    for passes_key, steps_key in PASS_KEYS:
        if steps_key in changes and passes_key not in changes:
            out[passes_key] = None
    return out


@dataclass
class Config:
    """Everything a ``softdistill distill`` run depends on (saved as ``config.json``)."""

    # --- data
    dataset: str = "digits"  # registry name (softdistill datasets lists them) or folder:PATH
    data_dir: str | None = None  # folder with dataset files (default: $SOFTDISTILL_DATA)
    download: bool = False  # fetch a missing dataset into data_dir with torchvision (optional)

    # --- text (trec6, sst5, imdb, tsv:PATH, ...)
    maxlen: int | None = None  # tokens per text (padded/truncated); default per dataset
    ntoken: int = 5000  # vocabulary: this many most frequent training words + <pad>, <unk>
    embeddings: str = "auto"  # frozen table: glove6b (the full GloVe 6B package), glove:PATH,
    #                           random:DIM, hf:MODEL_DIR, or auto (glove6b when installed, else a
    #                           GloVe file under DATA_DIR/embeddings, else random:100)

    # --- networks
    arch: str = "convnet"  # lenet, alexcifarnet, convnet, mlp; text: textconvnet, textlstm,
    #                        textrnn, texttransformer
    arch_args: dict[str, Any] = field(default_factory=dict)  # the arch's options: depth=2,width=32
    init: str = "xavier"  # weight init: xavier, xavier_unif, kaiming, kaiming_out, ...
    init_param: float = 1.0  # gain (xavier/orthogonal), negative slope (kaiming) or std (normal)

    # --- synthetic set
    per_class: int = 1  # examples per label class per batch
    n_batches: int = 1  # synthetic batches = distinct inner steps
    n_epochs: int = 3  # passes over the batches; T = n_batches * n_epochs
    init_lr: float = 0.02  # initial inner learning rate of every step
    learn_labels: bool = True  # learn soft labels (False: the original hard-label method)
    learn_lrs: bool = True  # learn the per-step learning rates (False: keep init_lr)
    freeze_data: bool = False  # keep x_syn at its init; learn labels and lrs only
    label_init: str = "onehot"  # onehot, smoothed, stdnormal, uniform, bin, zeros, ones,
    #                             orthogonal, or file:PATH (.npy/.pt/.txt)
    label_mode: str = "raw"  # raw (any real vector, as the paper) or softmax
    n_label_classes: int | None = None  # classes with synthetic examples; default all
    init_labels: list[int] | None = None  # which classes those are; default 0..n-1
    x_init: str = "noise"  # noise (N(0,1)) or real (random real examples of each class)

    # --- outer loop
    objective: str = "basic"  # basic; attack (attack_class -> target_class); adapt (pool nets
    #                           pretrained on another dataset, learning this one)
    attack_class: int = 0  # objective attack: real examples of this class ...
    target_class: int = 1  # ... should be classified as this one after the synthetic steps
    nets: str = "fixed"  # fixed (known init), random (fresh inits every outer step), or
    #                      pool:PATH (n_nets drawn every step from a pool of pretrained nets)
    n_nets: int = 1  # inner networks per outer step (gradients averaged over all processes)
    outer_steps: int = 1000  # outer (Adam) steps: learning-rate updates of the synthetic set
    batch_size: int = 1024  # real examples per outer step
    batch_size_late: int = 0  # > 0: real examples per outer step from step batch_late_from on
    batch_late_from: int = 0  # the first (0-based) outer step of batch_size_late
    lr: float = 0.01  # Adam learning rate of the outer loop
    adam_beta1: float = 0.5  # Adam's beta1 (momentum) of the outer loop; 0.5 as the original
    #                          code (beta2 0.999)
    decay_every: int = 250  # multiply the outer lr by decay_factor every this many steps
    decay_factor: float = 0.5  # factor of the outer lr decay, in (0, 1]
    lr_schedule: str = "step"  # step (x decay_factor every decay_every steps, the original) or
    #                            cosine (half a cosine from lr down to 0 at outer_steps)
    warmup_steps: int = 0  # > 0: the outer lr rises linearly from lr / warmup_steps over these
    #                        first steps, then follows lr_schedule
    lr_factor_labels: float = 1.0  # outer lr of the label parameters, as a multiple of lr
    lr_factor_lrs: float = 1.0  # outer lr of the inner steps' (raw) lrs, as a multiple of lr;
    #                             1 and 1: one lr for every tensor (the original method)
    # The original code's units: passes over the real training data ("epochs"); when given, they
    # set the key in brackets once the data is loaded (one pass = ceil(N / batch_size) steps)
    outer_epochs: int | None = None  # passes over the training data [outer_steps]
    decay_epochs: int | None = None  # passes between outer lr decays [decay_every]
    checkpoint_epochs: int | None = None  # passes between checkpoints [checkpoint_every]
    hypergrad: str = "auto"  # auto (autograd when the inner graph is small, else reverse),
    #                          reverse (memory-lean, exact) or autograd (reference), both exact;
    #                          truncated or random_truncated (RaT-BPTT), approximate
    clip_ratio: float = 0.0  # > 0: clip the hypergradient's norm at this multiple of the
    #                          running mean of earlier norms (0: off, the original method)
    ema_decay: float = 0.0  # > 0: evaluate/save an exponential moving average of the set (Polyak)
    input_noise: float = 0.0  # > 0: std of Gaussian noise added to x_syn for each outer step's
    #                           hypergradient (favours sets that small changes do not break)
    val_size: int = 0  # > 0: hold out this many training examples (never in an outer batch),
    #                    score the set on them every eval_every steps and keep the best one
    #                    (model selection without the test set)
    stop_at_val_acc: float | None = None  # val_size: stop once the held-out accuracy reaches
    #                                       this fraction (the run says so)
    patience: int = 0  # val_size: stop after this many evaluations without a better held-out
    #                    accuracy (0: never)
    restarts: int = 1  # val_size: > 1 starts this many synthetic sets (the run's own init and
    #                    restarts - 1 others), runs each restart_steps outer steps on the same
    #                    nets and real batches, and continues the one with the best mean
    #                    held-out accuracy over its second half (1: one start, the original)
    restart_steps: int = 0  # restarts > 1: outer steps of each start before the choice

    # --- scale: speed and memory (docs/hypergradient.md)
    keep_every: int = 1  # reverse/truncated: keep every k-th inner weight vector theta_t and
    #                      recompute the rest in the reverse sweep (same result, ~1/k the memory;
    #                      0: ceil(sqrt(T)))
    window: int | None = None  # truncated/random_truncated: differentiated steps at the end
    batched_nets: bool = False  # run the n_nets inner nets at once with torch.func.vmap (same
    #                             gradients as the loop over them, faster)
    outer_chunk: int | None = None  # real examples per forward/backward of the outer loss (the
    #                                 batch taken in chunks: less memory, on a CPU faster; the
    #                                 same gradient up to rounding); None: 256 on a CPU, the whole
    #                                 batch on an accelerator; 0: the whole batch
    amp: str = "off"  # off, or bf16: inner steps under bfloat16 autocast (GPU); the synthetic set,
    #                   weights and gradients stay float32

    # --- evaluation
    test_n_nets: int = 10  # evaluation nets: fresh random inits (nets=random) or the first
    #                        test_n_nets of test_pool (of the nets pool without one)
    test_pool: str | None = None  # held-out pool of pretrained nets for evaluation (nets=pool:)

    # --- baselines
    baselines: list[str] = field(default_factory=lambda: list(DEFAULT_BASELINES))  # real-data
    #   baselines beside the synthetic set: random, kmeans, average, knn (none: no baselines)
    baseline_lr: str | float = "tuned"  # lrs of the baseline steps: tuned (best of
    #   baseline_lrs on training data), learned (the run's lrs), or a number (one fixed lr)
    baseline_lrs: list[float] = field(default_factory=lambda: list(DEFAULT_BASELINE_LRS))  # grid
    #   of baseline_lr tuned (chosen on training data, never on test data)
    baseline_draws: int = 10  # candidate draws of random; the best on training data are kept
    knn_k: int = 1  # neighbours of the knn baseline
    knn_p: float = 2.0  # p of the p-norm distance of the knn baseline (>= 1)
    baseline_cache: bool = True  # reuse baselines computed before for the same data, nets,
    #                              budget and settings (under the cache folder; see README)

    # --- protocol (training from scratch)
    protocols: list[str] = field(default_factory=lambda: ["replay"])  # replay (the learned
    #   steps; always run) and scratch (train fresh networks from scratch)
    scratch_epochs: int = 300  # scratch protocol: epochs over the synthetic set
    scratch_lr: float = 0.01  # scratch: SGD lr (divided by 10 after half the epochs)
    scratch_momentum: float = 0.9  # scratch: SGD momentum
    scratch_weight_decay: float = 5e-4  # scratch: SGD weight decay
    scratch_batch_size: int = 256  # scratch: examples per SGD step
    scratch_n_nets: int = 5  # scratch: fresh networks per architecture (mean ± std)
    scratch_archs: list[str] | None = None  # scratch: architectures; default [arch]
    scratch_arch_args: dict[str, dict[str, Any]] = field(default_factory=dict)  # scratch:
    #   arch_args per architecture, e.g. {convnet: {width: 64}}
    scratch_labels: str = "soft"  # scratch: soft (y_soft) or hard (its argmax) labels
    scratch_augment: str | None = None  # scratch: e.g. dsa or crop,flip,rotate (needs kornia)
    scratch_baselines: bool = False  # scratch: also train on the random/kmeans/average sets

    # --- reference numbers (shown beside the run's in the report; they change nothing)
    published_acc: float | None = None  # the published test accuracy of this setting (a fraction)
    full_data_acc: float | None = None  # the same model trained on all the data (a fraction)

    # --- run
    seed: int = 0  # seeds the synthetic set's init, the nets, the batches and the baselines
    device: str = "auto"  # auto, cpu, cuda, cuda:1, mps
    threads: int = 0  # CPU intra-op threads; 0: the CPUs other processes leave free (at start)
    dtype: str = "float32"  # float32, or float64 (gradient checks; slower)

    # --- logging
    log_every: int = 10  # outer steps between metrics.jsonl lines
    eval_every: int = 0  # outer steps between test-accuracy entries in metrics.jsonl (0: off)
    test_every: int | None = None  # a multiple of eval_every: outer steps between the test
    #                                accuracies of those entries (default: at every one); with
    #                                val_size, also at each new best held-out score
    checkpoint_every: int = 100  # outer steps between checkpoints
    snapshot_every: int | None = None  # outer steps between small x_syn snapshots (snapshots/,
    #                                    the report's animation); None: about 25 per run, 0: off
    tensorboard: bool = False  # also log metrics to RUN_DIR/tensorboard (needs `tensorboard`)

    # ------------------------------------------------------------------------- construction
    def __post_init__(self) -> None:
        # Every way of building a Config (from_dict, the constructor, replace) checks the types.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            coerced = coerce_value(f.name, value, str(f.type), "config")
            if coerced is not value:
                object.__setattr__(self, f.name, coerced)
        self._normalise_names()
        if any(b in ("", "none") for b in self.baselines):  # --baselines none / "": no baselines
            object.__setattr__(
                self, "baselines", [b for b in self.baselines if b not in ("", "none")]
            )

    def _normalise_names(self) -> None:
        """Dataset and arch names as the original code spells them too (``MNIST``, ``LeNet``,
        ``TextLSTM2``, ...): see :func:`softdistill.original.canonical_names`."""
        self.dataset, self.arch, self.arch_args = canonical_names(
            self.dataset, self.arch, self.arch_args
        )

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "config") -> Config:
        """Build from a mapping, rejecting unknown keys with the nearest valid name and values
        of the wrong type with the key's name and the type it takes."""
        names = cls.field_names()
        try:
            d = flatten_sections(d, source)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        d.pop("config_version", None)
        unknown = [k for k in d if k not in names]
        if unknown:
            k = unknown[0]
            hint = RENAMED_FLAGS.get(k)
            hint = (
                f" (the original code's {k!r} is {hint!r} here)" if hint else did_you_mean(k, names)
            )
            raise ConfigError(f"unknown key {k!r} in {source}{hint}")
        types = {f.name: str(f.type) for f in dataclasses.fields(cls)}
        return cls(**{k: coerce_value(k, v, types[k], source) for k, v in d.items()})

    @classmethod
    def from_file(cls, path: str | Path) -> Config:
        """Read a ``.yaml``/``.yml``, ``.json`` or ``.toml`` file (safe loaders only)."""
        return cls.from_dict(read_config_file(path), source=str(path))

    def to_dict(self) -> dict[str, Any]:
        return {"config_version": CONFIG_VERSION, **dataclasses.asdict(self)}

    def section(self, name: str) -> Any:
        """One section of the settings (``data``, ``networks``, ``synthetic``, ``outer``,
        ``hypergradient``, ``evaluation``, ``run``, ``logging``) as a frozen dataclass of the
        same keys, types and defaults: ``cfg.section("outer").lr``."""
        if name not in SECTION_TYPES:
            raise KeyError(f"no section {name!r}{did_you_mean(name, SECTION_TYPES)}")
        cls = SECTION_TYPES[name]
        return cls(**{f.name: getattr(self, f.name) for f in dataclasses.fields(cls)})

    def replace(self, **changes) -> Config:
        return dataclasses.replace(self, **changes)

    def resolve_passes(self, n_train: int) -> tuple[Config, list[str]]:
        """The config with ``outer_epochs``/``decay_epochs``/``checkpoint_epochs`` (passes over
        ``n_train`` real training examples) turned into steps, and one note per conversion."""
        per_pass = math.ceil(n_train / self.batch_size)
        changes: dict[str, Any] = {}
        notes = []
        late = (
            f"; the steps from {self.batch_late_from} on draw batch_size_late "
            f"{self.batch_size_late}, which the conversion does not count"
            if self.batch_size_late
            else ""
        )
        for passes_key, steps_key in PASS_KEYS:
            passes = getattr(self, passes_key)
            if passes is None:
                continue
            changes[passes_key] = None
            changes[steps_key] = passes * per_pass
            notes.append(
                f"{passes_key} {passes} -> {steps_key} {passes * per_pass} ({per_pass} steps "
                f"per pass over {n_train} training examples at batch_size {self.batch_size})" + late
            )
        return (self.replace(**changes) if changes else self), notes

    @property
    def pool_path(self) -> str | None:
        """The pool folder of ``nets: pool:PATH``, else None."""
        return self.nets[5:] if self.nets.startswith("pool:") else None

    def batch_size_at(self, step: int) -> int:
        """Real examples in the outer batch of (0-based) outer step ``step``."""
        late = self.batch_size_late and step >= self.batch_late_from
        return self.batch_size_late if late else self.batch_size

    @property
    def n_steps(self) -> int:
        """T = n_batches * n_epochs."""
        return self.n_batches * self.n_epochs

    @property
    def total_outer_steps(self) -> int:
        """Outer steps the run takes in all: ``outer_steps``, plus ``restart_steps`` for each
        start beyond the first (``restarts``)."""
        return self.outer_steps + (self.restarts - 1) * self.restart_steps

    @property
    def snapshot_interval(self) -> int:
        """Outer steps between snapshots (0: none); ``snapshot_every`` or about 25 per run."""
        if self.snapshot_every is not None:
            return self.snapshot_every
        return max(1, self.outer_steps // 25)

    # ------------------------------------------------------------------------- validation
    def validate(self) -> Config:
        """Check every value that can be checked without loading data; raise ConfigError."""
        from softdistill.core import LABEL_INITS, LABEL_MODES
        from softdistill.data import DATASETS
        from softdistill.models import ARCHS, INITS

        def choice(key: str, value: str, options) -> None:
            if value not in options:
                raise ConfigError(
                    f"unknown {key} {value!r}{did_you_mean(value, options)}; "
                    f"expected one of {sorted(options)}"
                )

        ds = self.dataset.split(":", 1)[0] + ":" if ":" in self.dataset else self.dataset
        choice("dataset", ds, DATASETS)
        choice("arch", self.arch, ARCHS)
        if self.init.startswith("pool:"):
            raise ConfigError(
                f"init {self.init!r}: pretrained pools are given as nets: {self.init} "
                "(--nets pool:PATH); init is the weight-init scheme of fresh nets"
            )
        choice("init", self.init, INITS)
        if not self.label_init.startswith("file:"):
            choice("label_init", self.label_init, LABEL_INITS)
        choice("label_mode", self.label_mode, LABEL_MODES)
        if self.pool_path is None:
            choice("nets", self.nets, ("fixed", "random", "pool:PATH"))
        elif not self.pool_path:
            raise ConfigError("nets pool:PATH needs a path to a pool folder, e.g. pool:pools/mnist")
        choice("objective", self.objective, objectives.choices())
        objectives.get(self.objective).check(self)  # the objective's own (softdistill.objectives)
        if self.test_pool is not None and self.pool_path is None:
            raise ConfigError(
                f"test_pool {self.test_pool!r} is for runs on pretrained nets (nets pool:PATH); "
                f"got nets {self.nets!r}"
            )
        if self.attack_class < 0 or self.target_class < 0:
            raise ConfigError(
                f"attack_class and target_class must be >= 0, got {self.attack_class} and "
                f"{self.target_class}"
            )
        choice("hypergrad", self.hypergrad, hypergrads.choices())
        choice("amp", self.amp, AMP_MODES)
        choice("x_init", self.x_init, ("noise", "real"))
        choice("dtype", self.dtype, ("float32", "float64"))
        from softdistill.baselines import baseline_names, parse_lr_mode
        from softdistill.protocol import SCRATCH_LABELS, parse_augment

        for b in self.baselines:
            choice("baseline", b, baseline_names())
        for p in self.protocols:
            choice("protocol", p, ("replay", "scratch"))
        for a in self.scratch_archs or []:
            choice("scratch arch", a, ARCHS)
        for a in self.scratch_arch_args:
            choice("arch in scratch_arch_args", a, ARCHS)
        choice("scratch_labels", self.scratch_labels, SCRATCH_LABELS)
        try:
            parse_lr_mode(self.baseline_lr)
            if self.scratch_augment:
                parse_augment(self.scratch_augment)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if (
            self.scratch_augment
            and "scratch" in self.protocols
            and importlib.util.find_spec("kornia") is None
        ):
            raise ConfigError(
                f"scratch_augment {self.scratch_augment!r} needs kornia, which is not "
                "installed: pip install 'softdistill[augment]' (or pip install kornia)"
            )
        if not self.knn_p >= 1:
            raise ConfigError(f"knn_p must be >= 1, got {self.knn_p}")
        for key in ("scratch_lr",):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key} must be positive, got {getattr(self, key)}")
        for key in ("scratch_momentum", "scratch_weight_decay"):
            if not getattr(self, key) >= 0:
                raise ConfigError(f"{key} must be >= 0, got {getattr(self, key)}")
        for key in (
            "per_class",
            "n_batches",
            "n_epochs",
            "n_nets",
            "outer_steps",
            "batch_size",
            "decay_every",
            "test_n_nets",
            "baseline_draws",
            "knn_k",
            "scratch_epochs",
            "scratch_batch_size",
            "scratch_n_nets",
            "log_every",
            "checkpoint_every",
        ):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be a positive integer, got {getattr(self, key)}")
        for key in ("outer_epochs", "decay_epochs", "checkpoint_epochs"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ConfigError(f"{key} must be a positive integer, got {getattr(self, key)}")
        for key in ("init_lr", "lr"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key} must be positive, got {getattr(self, key)}")
        if self.maxlen is not None and self.maxlen < 1:
            raise ConfigError(f"maxlen must be a positive integer, got {self.maxlen}")
        if self.ntoken < 1:
            raise ConfigError(f"ntoken must be a positive integer, got {self.ntoken}")
        from softdistill.data.text import parse_embeddings

        try:
            parse_embeddings(self.embeddings)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        from softdistill.seeds import check_seed

        try:
            check_seed(self.seed)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if self.threads < 0:
            raise ConfigError(f"threads must be >= 0 (0: automatic), got {self.threads}")
        if self.eval_every < 0:
            raise ConfigError(f"eval_every must be >= 0, got {self.eval_every}")
        if self.test_every is not None and (
            self.test_every < 1 or not self.eval_every or self.test_every % self.eval_every
        ):
            raise ConfigError(
                f"test_every must be a positive multiple of eval_every ({self.eval_every}), got "
                f"{self.test_every}"
            )
        if self.snapshot_every is not None and self.snapshot_every < 0:
            raise ConfigError(
                f"snapshot_every must be >= 0 (0: no snapshots), got {self.snapshot_every}"
            )
        if not self.input_noise >= 0:
            raise ConfigError(f"input_noise must be >= 0, got {self.input_noise}")
        if self.val_size < 0:
            raise ConfigError(
                f"val_size must be >= 0 (0: no validation split), got {self.val_size}"
            )
        if self.val_size and not self.eval_every:
            raise ConfigError(
                f"val_size {self.val_size} selects the best set among evaluations; set "
                "eval_every > 0 (outer steps between them)"
            )
        for key in ("published_acc", "full_data_acc"):
            v = getattr(self, key)
            if v is not None and not 0 <= v <= 1:
                raise ConfigError(f"{key} is a fraction in [0, 1] (0.96 for 96%), got {v}")
        if self.patience < 0:
            raise ConfigError(f"patience must be >= 0 (0: off), got {self.patience}")
        if self.stop_at_val_acc is not None and not 0 < self.stop_at_val_acc <= 1:
            raise ConfigError(
                "stop_at_val_acc is a fraction in (0, 1] (0.96 for 96%), got "
                f"{self.stop_at_val_acc}"
            )
        if (self.patience or self.stop_at_val_acc is not None) and not self.val_size:
            raise ConfigError(
                "patience and stop_at_val_acc stop on the held-out accuracy: set val_size > 0 "
                "(held-out training examples) and eval_every > 0"
            )
        if self.restarts < 1:
            raise ConfigError(f"restarts must be >= 1 (1: one start), got {self.restarts}")
        if self.restarts > 1:
            if not self.val_size:
                raise ConfigError(
                    f"restarts {self.restarts} chooses a start by its held-out accuracy: set "
                    "val_size > 0 (held-out training examples) and eval_every > 0"
                )
            if not 0 < self.restart_steps < self.outer_steps:
                raise ConfigError(
                    f"restart_steps (outer steps of each start before the choice) must be "
                    f"between 1 and outer_steps - 1 = {self.outer_steps - 1} when restarts > 1, "
                    f"got {self.restart_steps}"
                )
            if self.restart_steps % self.eval_every:
                raise ConfigError(
                    f"restart_steps {self.restart_steps} must be a multiple of eval_every "
                    f"{self.eval_every}: the starts are compared on their held-out evaluations"
                )
        if self.clip_ratio < 0 or 0 < self.clip_ratio < 1:
            raise ConfigError(f"clip_ratio must be 0 (off) or >= 1, got {self.clip_ratio}")
        if not 0 <= self.adam_beta1 < 1:
            raise ConfigError(f"adam_beta1 must be in [0, 1), got {self.adam_beta1}")
        for key in ("lr_factor_labels", "lr_factor_lrs"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key} must be > 0, got {getattr(self, key)}")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0 < self.decay_factor <= 1:
            raise ConfigError(f"decay_factor must be in (0, 1], got {self.decay_factor}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(
                f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}"
            )
        if self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be >= 0 (0: off), got {self.warmup_steps}")
        if self.batch_size_late < 0 or self.batch_late_from < 0:
            raise ConfigError(
                "batch_size_late and batch_late_from must be >= 0 (0: one batch size), got "
                f"{self.batch_size_late} and {self.batch_late_from}"
            )
        if bool(self.batch_size_late) != bool(self.batch_late_from):
            raise ConfigError(
                "batch_size_late and batch_late_from go together: set both (the real examples "
                "per step from that outer step on) or neither, got "
                f"{self.batch_size_late} and {self.batch_late_from}"
            )
        if any(not lr > 0 for lr in self.baseline_lrs) or not self.baseline_lrs:
            raise ConfigError(f"baseline_lrs must be positive numbers, got {self.baseline_lrs}")
        if self.n_label_classes is not None and self.n_label_classes < 1:
            raise ConfigError(f"n_label_classes must be >= 1, got {self.n_label_classes}")
        if (
            self.init_labels is not None
            and self.n_label_classes is not None
            and len(self.init_labels) != self.n_label_classes
        ):
            raise ConfigError(
                f"init_labels {self.init_labels} has {len(self.init_labels)} entries but "
                f"n_label_classes is {self.n_label_classes}"
            )
        self._validate_scale()
        if not (self.learn_labels or self.learn_lrs or not self.freeze_data):
            raise ConfigError("nothing to learn: freeze_data with learn_labels and learn_lrs off")
        return self

    def _validate_scale(self) -> None:
        """The speed-and-memory keys: keep_every, window, amp."""
        if self.outer_chunk is not None and self.outer_chunk < 0:
            raise ConfigError(
                f"outer_chunk must be >= 0 (0: the whole batch), got {self.outer_chunk}"
            )
        if self.keep_every < 0:
            raise ConfigError(f"keep_every must be >= 0 (0: sqrt(T)), got {self.keep_every}")
        hypergrads.check(self.hypergrad, window=self.window, keep_every=self.keep_every)
        if self.amp == "bf16" and self.dtype != "float32":
            raise ConfigError(f"amp bf16 needs dtype float32 (the master copies), got {self.dtype}")

    def check_classes(self, n_classes: int) -> None:
        """ConfigError if the classes the objective names (attack_class, target_class) are not
        classes of the dataset."""
        if self.objective in objectives.OBJECTIVES:
            for key in objectives.get(self.objective).class_keys:
                if getattr(self, key) >= n_classes:
                    raise ConfigError(
                        f"{key} {getattr(self, key)} out of range: the dataset has classes "
                        f"0..{n_classes - 1}"
                    )

    def label_classes(self, n_classes: int) -> list[int]:
        """The classes that get synthetic examples, checked against the dataset's classes."""
        if self.init_labels is not None:
            classes = list(self.init_labels)
        else:
            n = self.n_label_classes or n_classes
            if n > n_classes:
                raise ConfigError(f"n_label_classes {n} exceeds the dataset's {n_classes} classes")
            classes = list(range(n))
        bad = [c for c in classes if not 0 <= c < n_classes]
        if bad:
            raise ConfigError(
                f"init_labels {bad} out of range: the dataset has classes 0..{n_classes - 1}"
            )
        if len(set(classes)) != len(classes):
            raise ConfigError(f"init_labels {classes} repeats a class")
        return classes


def _section_type(name: str, keys: tuple[str, ...]) -> type:
    by_name = {f.name: f for f in dataclasses.fields(Config)}
    specs = []
    for key in keys:
        f = by_name[key]
        default = (
            field(default=f.default)
            if f.default is not dataclasses.MISSING
            else field(default_factory=f.default_factory)
        )
        specs.append((key, f.type, default))
    cls = dataclasses.make_dataclass(f"{name.title()}Settings", specs, frozen=True)
    cls.__module__ = __name__
    cls.__doc__ = f"The {name!r} section of :class:`Config` (see softdistill.sections)."
    return cls


# One frozen dataclass per section, made from Config's own fields (one source of truth).
SECTION_TYPES: dict[str, type] = {
    name: _section_type(name, keys) for name, keys in SECTIONS.items()
}


def layered(*layers: Mapping[str, Any] | None, source: str = "config") -> dict[str, Any]:
    """``layers`` (lowest first, each flat or nested by section) as one flat mapping, each laid
    over those below it (a count in steps replaces a lower layer's count in passes); unchecked."""
    values: dict[str, Any] = {}
    for layer in layers:
        if layer:
            try:
                flat = flatten_sections(layer, source)
            except ValueError as e:
                raise ConfigError(str(e)) from None
            flat.pop("config_version", None)
            values = layer_values(values, flat)
    return values


def merge(*layers: Mapping[str, Any] | None, source: str = "config") -> Config:
    """The one merge of settings: ``layers`` lowest first (defaults < a saved config < a file
    < flags, see :func:`layered`), checked by type and validated."""
    cfg = Config.from_dict(layered(*layers, source=source), source=source).validate()
    cfg._merged_as = cfg.to_dict()  # see is_merged
    return cfg


def is_merged(cfg: Config) -> bool:
    """Whether ``cfg`` came out of :func:`merge` (checked by type and validated) and has not
    been changed since: the API takes such a config as it is, so a command line's settings are
    merged and validated once."""
    return getattr(cfg, "_merged_as", None) == cfg.to_dict()


def bool_keys() -> list[str]:
    """The boolean keys of :class:`Config` (flags ``--key`` / ``--no-key``)."""
    return [f.name for f in dataclasses.fields(Config) if str(f.type) == "bool"]


def read_config_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.exists() and not path.is_file():
        raise ConfigError(f"config {path} is not a regular file (a YAML, JSON or TOML file)")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text()
    suffix = path.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        elif suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
            data = tomllib.loads(text)
        else:
            raise ConfigError(f"config {path} must end in .yaml, .yml, .json or .toml")
    except ConfigError:
        raise
    except Exception as e:  # parser errors of three libraries
        raise ConfigError(f"cannot parse config {path}: {e}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must hold a mapping of keys to values")
    return data


# ----------------------------------------------------------------------------- typed values
_BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True}
_BOOL_WORDS.update({"false": False, "no": False, "off": False, "0": False, "": False})
_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "Any": "a value",
}


class _Mismatch(Exception):
    pass


def describe_type(annotation: str) -> str:
    """``"int | None"`` -> ``"an integer (or null)"``: the type in words, for messages."""
    options = [o.strip() for o in _split_top(annotation.replace(" ", ""), "|")]
    words = [_describe_one(o) for o in options if o != "None"]
    text = " or ".join(words)
    return f"{text} (or null)" if "None" in options else text


def _describe_one(t: str) -> str:
    if t.startswith("list["):
        inner = _describe_one(t[5:-1])
        return "a list of " + {"an integer": "integers", "a number": "numbers"}.get(
            inner, inner.removeprefix("a ") + "s"
        )
    if t.startswith("dict["):
        return "a mapping of keys to values"
    return _TYPE_WORDS.get(t, t)


def _split_top(t: str, sep: str) -> list[str]:
    """Split ``t`` at ``sep`` outside brackets."""
    parts, depth, cur = [], 0, ""
    for ch in t:
        depth += ch == "["
        depth -= ch == "]"
        if ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [*parts, cur]


def coerce_value(key: str, value: Any, annotation: str, source: str = "config") -> Any:
    """``value`` checked against the field type ``annotation`` (as written in :class:`Config`)
    and coerced where the meaning is plain: numbers from numeric strings (YAML reads ``1e-3`` as
    a string), integers from integral floats, booleans from true/false/yes/no/1/0, a list from
    one value. Anything else is a :class:`ConfigError` naming ``key`` and the type it takes."""
    options = _split_top(annotation.replace(" ", ""), "|")
    # a string that reads as a number is the number where the field takes numbers too
    options.sort(key=lambda t: t == "str")
    if value is None:
        if "None" in options:
            return None
    else:
        for t in options:
            if t == "None":
                continue
            try:
                return _coerce_one(value, t)
            except _Mismatch:
                continue
    raise ConfigError(
        f"{key} in {source} takes {describe_type(annotation)}, got {value!r} "
        f"({type(value).__name__})"
    )


def _coerce_one(value: Any, t: str) -> Any:
    if t == "Any":
        return value
    if t == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
            return _BOOL_WORDS[value.strip().lower()]
        raise _Mismatch
    if t == "int":
        if isinstance(value, bool):
            raise _Mismatch
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                try:
                    value = float(value)
                except ValueError:
                    raise _Mismatch from None
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _Mismatch
    if t == "float":
        if isinstance(value, bool):
            raise _Mismatch
        if isinstance(value, int | float):
            return float(value) if isinstance(value, int) else value
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                raise _Mismatch from None
        raise _Mismatch
    if t == "str":
        if isinstance(value, str):
            return value
        raise _Mismatch
    if t.startswith("list["):
        inner = t[5:-1]
        if isinstance(value, str) and inner == "str":
            return [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            value = [value]
        out = [_coerce_one(v, inner) for v in value]
        return out if out != list(value) or not isinstance(value, list) else value
    if t.startswith("dict["):
        if not isinstance(value, dict):
            raise _Mismatch
        inner = _split_top(t[5:-1], ",")[-1]
        return {str(k): _coerce_one(v, inner) for k, v in value.items()}
    raise _Mismatch
