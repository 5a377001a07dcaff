"""The original dataset-distillation code's command lines, translated into ours.

Researchers arrive with command lines from the original code (``ssnl/dataset-distillation``) and
its soft-label and text fork: its README, its ``docs/`` scripts and papers' appendices. Every
flag those use is accepted by ``softdistill distill`` with its original meaning and value syntax
(``0``/``1``, ``True``/``False``, the empty string): :func:`translate` rewrites the original
tokens into ours before argparse reads the line, and says once per flag what it became
("original flag --distill_steps 1 -> ours --n_batches 1"), so users learn the new names. A flag
that cannot be honoured is a :class:`~softdistill.errors.ConfigError` that says why and what to
use instead; a flag that only drove the original's machinery (data-loader workers, plots, the
GPU index) is accepted with a note. Nothing is changed silently.

Where the original and our defaults differ (random vs fixed init, 10 vs 1 batches, LeNet on
MNIST vs a ConvNet on digits, 400 passes over the data vs 1000 steps), a line written in the
original's style (it uses a flag only the original has, and no ``--config``) gets the original's
defaults for what it leaves out, again with a note: the line then runs the experiment its
author meant.

This module imports nothing heavy (no torch): the CLI calls it before parsing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from softdistill.errors import ConfigError

__all__ = [
    "ARCH_ALIASES",
    "DATASET_ALIASES",
    "ORIGINAL_DEFAULTS",
    "RENAMED_FLAGS",
    "ORIGINAL_TRAIN_DEFAULTS",
    "Translation",
    "canonical_names",
    "is_train_mode",
    "translate",
    "translate_train",
]

# Original flag -> our key, for flags that only changed name (also the config-file hint).
RENAMED_FLAGS = {
    "distill_steps": "n_batches",
    "distill_epochs": "n_epochs",
    "distilled_images_per_class_per_step": "per_class",
    "distill_lr": "init_lr",
    "num_distill_classes": "n_label_classes",
    "sample_n_nets": "n_nets",
    "base_seed": "seed",
    "log_interval": "log_every",
    "epochs": "outer_epochs",
    "checkpoint_interval": "checkpoint_epochs",
    "dataset_root": "data_dir",
    "results_dir": "out",
    "train_nets_type": "nets",
    "mode": "objective",
    "static_labels": "learn_labels",
    "random_init_labels": "label_init",
    "label_softmax": "label_mode",
    "device_id": "device",
}

# The original's dataset names (matched case-insensitively) that differ from ours beyond case.
DATASET_ALIASES = {
    "fashionmnist": "fashion_mnist",
    "fashion-mnist": "fashion_mnist",
    "cifar-10": "cifar10",
    "cifar-100": "cifar100",
    "trec": "trec6",
    "sst": "sst5",
    "agnews": "ag_news",
}

# The original's architecture names (lower-cased) -> (our arch, arch_args, how close it is).
# Ours are written for double backward; the numbered text nets of the soft-label fork are variants
# of ours with other layer sizes. The fork's TextConvNet1 drops half of its classifier's inputs in
# inner steps (train mode): textconvnet's arch_args dropout, which these aliases leave at 0.
ARCH_ALIASES: dict[str, tuple[str, dict, str]] = {
    "textconvnet1": (
        "textconvnet",
        {"widths": [3, 4, 5], "maps": 100},
        "the same Kim CNN: filters of widths 3, 4, 5 with 100 maps each, max over time, linear "
        "(its dropout 0.5 in inner steps: add arch_args dropout=0.5)",
    ),
    "textconvnet2": (
        "textconvnet",
        {"widths": [3, 4, 5], "maps": 100},
        "the Kim CNN of TextConvNet1",
    ),
    "textconvnet3": (
        "textconvnet",
        {"widths": [3, 4, 5], "maps": 100},
        "the Kim CNN of TextConvNet1",
    ),
    "textlstm2": (
        "textlstm",
        {"hidden": 100, "layers": 2, "readout": "last"},
        "the same network: 2 bidirectional LSTM layers of 100 units, classified from the last "
        "hidden states",
    ),
    "textrnn1": (
        "textrnn",
        {"hidden": 100, "layers": 2, "readout": "last"},
        "the same network: 2 bidirectional tanh-RNN layers of 100 units, classified from the "
        "last hidden states",
    ),
    "textrnn2": (
        "textrnn",
        {"hidden": 100, "layers": 1, "readout": "last"},
        "1 layer of 100 units read out at its last hidden state as the original, but "
        "bidirectional (ours always is)",
    ),
    "textlstm1": (
        "textlstm",
        {"hidden": 10, "layers": 1, "readout": "last"},
        "1 LSTM layer of 10 units read out at its last hidden state as the original, but "
        "bidirectional and without its convolution + max-pool front end",
    ),
    "transformer1": (
        "texttransformer",
        {},
        "our small Transformer encoder (the original is a 4-layer decoder with random queries)",
    ),
}


def canonical_names(dataset: str, arch: str, arch_args: dict) -> tuple[str, str, dict]:
    """``(dataset, arch, arch_args)`` with names matched case-insensitively and by the
    original's spellings (``MNIST``, ``Cifar10``, ``LeNet``, ``TextLSTM2``, ...); a numbered
    original text arch becomes ours with the ``arch_args`` of its layer sizes (given ones win).
    ``folder:PATH``-style dataset names keep their case."""
    if ":" not in dataset:
        dataset = DATASET_ALIASES.get(dataset.lower(), dataset.lower())
    key = arch.lower()
    if key in ARCH_ALIASES:
        ours, args, _ = ARCH_ALIASES[key]
        return dataset, ours, {**args, **arch_args}
    return dataset, key, arch_args


# The original's defaults where they differ from ours (used for original-style lines).
ORIGINAL_DEFAULTS = {
    "dataset": ("MNIST", "--dataset MNIST"),
    "arch": ("LeNet", "--arch LeNet"),
    "nets": ("random", "--train_nets_type unknown_init"),
    "n_batches": ("10", "--distill_steps 10"),
    "outer_epochs": ("400", "--epochs 400"),
    "decay_epochs": ("40", "--decay_epochs 40"),
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _bool_word(text: str) -> bool | None:
    t = text.strip().lower()
    return True if t in _TRUE else False if t in _FALSE else None


@dataclass
class Translation:
    """The rewritten command line and what was done to it."""

    argv: list[str]
    notes: list[str] = field(default_factory=list)  # one line per original flag, in order
    original_style: bool = False  # the line used a flag only the original has


@dataclass
class _State:
    """What the handlers learn about the line (for the checks that need all of it)."""

    out: list[str]
    notes: list[str]
    given: set[str]  # our keys the line sets
    test_nets: str | None = None
    phase: str | None = None
    sample_n_nets: str | None = None  # nets per step; the original's --n_nets was the pool size
    baselines: list[str] = field(default_factory=list)
    results_dir: str | None = None

    def set(self, key: str, *values: str, note: str) -> None:
        self.out += [f"--{key}", *values]
        self.given.add(key)
        self.notes.append(note)


Handler = Callable[[_State, str, list[str]], None]


def _rename(ours: str) -> Handler:
    def handle(st: _State, flag: str, values: list[str]) -> None:
        shown = " ".join(values)
        st.set(ours, *values, note=f"original flag --{flag} {shown} -> ours --{ours} {shown}")

    return handle


def _note_only(why: str) -> Handler:
    def handle(st: _State, flag: str, values: list[str]) -> None:
        shown = f" {' '.join(v or repr(v) for v in values)}" if values else ""
        st.notes.append(f"original flag --{flag}{shown}: accepted, {why}")

    return handle


def _refuse(why: str) -> Handler:
    def handle(st: _State, flag: str, values: list[str]) -> None:
        raise ConfigError(f"the original code's --{flag} cannot be honoured here: {why}")

    return handle


def _mode(st: _State, flag: str, values: list[str]) -> None:
    (v,) = values
    if v == "train":  # the CLI routes such lines to `softdistill train` (translate_train)
        raise ConfigError("--mode train is the command `softdistill train`")
    objective = v.removeprefix("distill_")
    st.set("objective", objective, note=f"original flag --mode {v} -> ours --objective {objective}")


def _train_nets(st: _State, flag: str, values: list[str]) -> None:
    (v,) = values
    nets = {"known_init": "fixed", "unknown_init": "random"}.get(v)
    if v == "loaded":
        raise ConfigError(
            "--train_nets_type loaded read nets from the original's --model_dir; here make a pool "
            "with `softdistill train ... --out POOL` and pass --nets pool:POOL"
        )
    if nets is None:  # let the config check name the choices
        nets = v
    st.set("nets", nets, note=f"original flag --train_nets_type {v} -> ours --nets {nets}")


def _test_nets(st: _State, flag: str, values: list[str]) -> None:
    (v,) = values
    if v not in ("same_as_train", "unknown_init", "loaded"):
        raise ConfigError(
            f"--test_nets_type {v!r}: the original takes same_as_train, unknown_init or loaded"
        )
    st.test_nets = v


def _static_labels(st: _State, flag: str, values: list[str]) -> None:
    # The original's code learns the labels when static_labels is 0 (its help says the reverse).
    v = values[0] if values else "1"
    b = _bool_word(v)
    if b is None:
        raise ConfigError(f"--static_labels takes 0 (learn the labels) or 1 (keep them), got {v!r}")
    key = "no-learn_labels" if b else "learn_labels"
    st.out.append(f"--{key}")
    st.given.add("learn_labels")
    st.notes.append(f"original flag --static_labels {v} -> ours --{key}")


def _label_init(st: _State, flag: str, values: list[str]) -> None:
    (v,) = values
    if v in ("", "0", "hard"):  # '' and '0': one-hot of init_labels; 'hard': of every class
        ours = "onehot"
    elif v == "file":
        raise ConfigError(
            "--random_init_labels file read ./labels.txt; here give the file: "
            "--label_init file:PATH (.npy, .pt or .txt)"
        )
    elif v in ("CNDB", "AIDB"):
        raise ConfigError(
            f"--random_init_labels {v} (labels from class-name or average-image distances) is "
            "not implemented here; use --label_init onehot, smoothed or orthogonal"
        )
    else:
        ours = v  # stdnormal, uniform, bin, zeros, ones, smoothed, orthogonal: same names
    st.set(
        "label_init",
        ours,
        note=f"original flag --random_init_labels {v!r} -> ours --label_init {ours}",
    )


def _bool_to(ours_true: list[str], ours_false: list[str], key: str) -> Handler:
    def handle(st: _State, flag: str, values: list[str]) -> None:
        v = values[0] if values else "True"
        b = _bool_word(v)
        if b is None:
            raise ConfigError(f"--{flag} takes True or False (or 1/0), got {v!r}")
        ours = ours_true if b else ours_false
        st.out += ours
        st.given.add(key)
        st.notes.append(f"original flag --{flag} {v!r} -> ours {' '.join(ours)}")

    return handle


def _textdata(st: _State, flag: str, values: list[str]) -> None:
    v = values[0] if values else "True"
    b = _bool_word(v)
    if b is None:
        raise ConfigError(f"--textdata takes True or False, got {v!r}")
    st.notes.append(
        f"original flag --textdata {v}: accepted; text or images follow from --dataset here"
    )


def _learnable_embedding(st: _State, flag: str, values: list[str]) -> None:
    v = values[0] if values else "True"
    b = _bool_word(v)
    if b is None:
        raise ConfigError(f"--learnable_embedding takes True or False, got {v!r}")
    if b:
        raise ConfigError(
            "--learnable_embedding True cannot be honoured: the embedding table is frozen here "
            "(synthetic sentences live in its space, and real and synthetic inputs must share "
            "it); drop the flag, or pick another table with --embeddings"
        )
    st.notes.append(f"original flag --learnable_embedding {v!r}: accepted (the table is frozen)")


def _ninp(st: _State, flag: str, values: list[str]) -> None:
    (v,) = values
    st.notes.append(
        f"original flag --ninp {v}: the embedding dimension is the table's here (--embeddings: "
        f"auto takes the GloVe file in DATA_DIR/embeddings, random:{v} random vectors)"
    )


def _device_id(st: _State, flag: str, values: list[str]) -> None:
    (v,) = values
    try:
        i = int(v)
    except ValueError:
        raise ConfigError(f"--device_id takes an integer (-1 for the CPU), got {v!r}") from None
    device = "cpu" if i < 0 else f"cuda:{i}"
    st.set("device", device, note=f"original flag --device_id {v} -> ours --device {device}")


def _results_dir(st: _State, flag: str, values: list[str]) -> None:
    (v,) = values
    st.results_dir = v


def _phase(st: _State, flag: str, values: list[str]) -> None:
    (v,) = values
    if v == "train":
        st.notes.append("original flag --phase train: accepted (distill trains, then evaluates)")
    else:
        st.phase = v  # refused once the whole line is read (the message names its run folder)


_IMAGE_BASELINES = {"random_train": "random", "kmeans_train": "kmeans", "average_train": "average"}


def _test_images(st: _State, flag: str, values: list[str]) -> None:
    (v,) = values
    if v == "loaded":
        st.notes.append("original flag --test_distilled_images loaded: accepted (the default)")
        return
    if v not in _IMAGE_BASELINES:
        raise ConfigError(
            f"--test_distilled_images {v!r}: the original takes loaded, "
            f"{', '.join(_IMAGE_BASELINES)}"
        )
    st.baselines.append(_IMAGE_BASELINES[v])
    st.notes.append(
        f"original flag --test_distilled_images {v} -> ours --baselines "
        f"{_IMAGE_BASELINES[v]} (evaluated beside the distilled set when the run ends)"
    )


def _test_lrs(st: _State, flag: str, values: list[str]) -> None:
    kind, rest = values[0], values[1:]
    if kind == "loaded" and not rest:
        st.notes.append("original flag --test_distilled_lrs loaded: accepted (the default)")
    elif kind == "fix" and len(rest) == 1:
        st.set(
            "baseline_lr",
            rest[0],
            note=f"original flag --test_distilled_lrs fix {rest[0]} "
            f"-> ours --baseline_lr {rest[0]}",
        )
    elif kind == "nearest_neighbor" and len(rest) <= 2:
        st.baselines.append("knn")
        k, p = (rest + ["1", "2"][len(rest) :])[:2]
        st.out += ["--knn_k", k, "--knn_p", p]
        st.given.update({"knn_k", "knn_p"})
        st.notes.append(
            f"original flag --test_distilled_lrs nearest_neighbor {' '.join(rest)} -> ours "
            f"--baselines knn --knn_k {k} --knn_p {p}"
        )
    else:
        raise ConfigError(
            f"--test_distilled_lrs {' '.join(values)}: the original takes loaded, fix LR or "
            "nearest_neighbor [K] [P]"
        )


_ONE, _MANY, _OPT = "one", "many", "optional"  # how many value tokens a flag takes

# Every flag of the original code's options that its README and docs/ scripts use, and the rest
# of its options: (how many values, handler). Flags with our own name (--lr, --batch_size,
# --init, --init_param, --decay_factor, --n_nets, --test_n_nets, --attack_class,
# --target_class, --init_labels, --ntoken, --maxlen, --freeze_data) need no translation.
_FLAGS: dict[str, tuple[str, Handler]] = {
    **{
        old: (_ONE, _rename(new))
        for old, new in RENAMED_FLAGS.items()
        if old
        not in (
            "train_nets_type",
            "mode",
            "static_labels",
            "random_init_labels",
            "label_softmax",
            "device_id",
            "results_dir",
            "sample_n_nets",
        )
    },
    "sample_n_nets": (_ONE, lambda st, flag, values: setattr(st, "sample_n_nets", values[0])),
    "dataset_root": (_ONE, _rename("data-dir")),
    "mode": (_ONE, _mode),
    "train_nets_type": (_ONE, _train_nets),
    "test_nets_type": (_ONE, _test_nets),
    "static_labels": (_OPT, _static_labels),
    "random_init_labels": (_ONE, _label_init),
    "label_softmax": (
        _OPT,
        _bool_to(["--label_mode", "softmax"], ["--label_mode", "raw"], "label_mode"),
    ),
    "textdata": (_OPT, _textdata),
    "learnable_embedding": (_OPT, _learnable_embedding),
    "ninp": (_ONE, _ninp),
    "device_id": (_ONE, _device_id),
    "results_dir": (_ONE, _results_dir),
    "phase": (_ONE, _phase),
    "test_distilled_images": (_ONE, _test_images),
    "test_distilled_lrs": (_MANY, _test_lrs),
    "test_optimize_n_runs": (_ONE, _rename("baseline_draws")),
    "test_n_runs": (
        _ONE,
        _note_only(
            "the random baseline keeps the best of baseline_draws draws on training data, as many "
            "as its evaluation needs"
        ),
    ),
    "test_optimize_n_nets": (
        _ONE,
        _note_only("baseline draws are scored on 2,000 training examples"),
    ),
    "num_workers": (_ONE, _note_only("the data is held in memory, no loader workers are used")),
    "visualize": (_OPT, _note_only("pictures come from `softdistill report RUN_DIR`")),
    "image_dpi": (_ONE, _note_only("pictures come from `softdistill report RUN_DIR`")),
    "test_batch_size": (_ONE, _note_only("evaluation scores the whole test split")),
    "test_niter": (_ONE, _note_only("evaluation scores the whole test split")),
    "no_log": (_OPT, _note_only("the run folder always has metrics.jsonl; --quiet silences")),
    "log_level": (_ONE, _note_only("--quiet shows warnings and errors only")),
    "expr_name_format": (_MANY, _note_only("--out names the run folder")),
    "test_name_format": (_MANY, _note_only("--out names the run folder")),
    "world_size": (
        _ONE,
        _refuse(
            "processes are launched by torchrun here: torchrun --nproc-per-node N -m softdistill "
            "distill ..."
        ),
    ),
    "dropout": (
        _OPT,
        _refuse(
            "the original's --dropout is its ImageNet AlexNet's (its LeNet refuses it); here "
            "dropout in inner steps is textconvnet's: --arch_args dropout=0.5"
        ),
    ),
    "source_dataset": (
        _ONE,
        _refuse(
            "a pool records the dataset it was trained on (its manifest.json); "
            "pass --nets pool:PATH"
        ),
    ),
    "model_dir": (_ONE, _refuse("pretrained nets come from a pool: --nets pool:PATH")),
    "model_subdir_format": (_ONE, _refuse("pretrained nets come from a pool: --nets pool:PATH")),
    "reproduction_test": (_OPT, _refuse("the loss here is the soft-label cross-entropy")),
    "mult_label_scaling": (
        _ONE,
        _refuse(
            "scaled label inits are not implemented; give the labels as --label_init file:PATH"
        ),
    ),
    "add_label_scaling": (
        _ONE,
        _refuse(
            "scaled label inits are not implemented; give the labels as --label_init file:PATH"
        ),
    ),
}
# Flags whose name only the original has: a line using one is in the original's style.
_ORIGINAL_ONLY = set(_FLAGS) - {"epochs", "decay_epochs"}


def _split(token: str) -> tuple[str, str | None]:
    name, eq, value = token[2:].partition("=")
    return name.replace("-", "_"), (value if eq else None)


def translate(
    argv: Sequence[str],
    *,
    bool_keys: Sequence[str] = (),
    defaults: bool = True,
    own: Collection[str] = (),
) -> Translation:
    """Rewrite the original code's flags in ``argv`` (one subcommand's arguments) into ours.

    Args:
        argv: the arguments after the subcommand name.
        bool_keys: our boolean config keys; ``--key True`` / ``--key 0`` (the original's value
            syntax) becomes ``--key`` / ``--no-key``.
        defaults: give an original-style line without ``--config`` the original's defaults
            for what it leaves out (:data:`ORIGINAL_DEFAULTS`; off for ``evaluate``, whose
            defaults are the run's).
        own: option names (``_`` spelling) the command defines itself: left as they are
            (``evaluate --epochs`` is its scratch-protocol shortcut).

    Raises:
        ConfigError: a flag that cannot be honoured, with what to use instead.
    """
    st = _State(out=[], notes=[], given=set())
    tokens = list(argv)
    original_style = False
    has_config = has_out = False
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if not tok.startswith("--") or tok == "--":
            st.out.append(tok)
            continue
        name, inline = _split(tok)
        if name in ("config",):
            has_config = True
        if name == "out":
            has_out = True
        if name in bool_keys and inline is None and i < len(tokens):
            b = _bool_word(tokens[i]) if not tokens[i].startswith("--") else None
            if b is not None:
                flag = f"--{name}" if b else f"--no-{name}"
                st.notes.append(f"--{name} {tokens[i]!r} -> {flag}")
                st.out.append(flag)
                i += 1
                continue
        if name not in _FLAGS or name in own:  # one of ours
            st.out.append(tok)
            st.given.add(name.removeprefix("no_"))
            continue
        original_style |= name in _ORIGINAL_ONLY
        arity, handler = _FLAGS[name]
        if inline is not None:
            values = [inline]
        elif arity == _ONE:
            if i >= len(tokens):
                raise ConfigError(f"the original code's --{name} needs a value")
            values = [tokens[i]]
            i += 1
        elif arity == _MANY:
            values = []
            while i < len(tokens) and not tokens[i].startswith("--"):
                values.append(tokens[i])
                i += 1
            if not values:
                raise ConfigError(f"the original code's --{name} needs a value")
        else:  # optional: a value only when the next token is one (not a flag)
            values = []
            if i < len(tokens) and not tokens[i].startswith("--"):
                values = [tokens[i]]
                i += 1
        handler(st, name, values)
    _finish(st, has_config=has_config, has_out=has_out, original_style=original_style and defaults)
    return Translation(st.out, st.notes, original_style)


def _finish(st: _State, *, has_config: bool, has_out: bool, original_style: bool) -> None:
    """The checks and defaults that need the whole line."""
    if st.phase is not None:
        names = " ".join(st.baselines) or "random kmeans average knn"
        extra = [a for a in st.out if a in ("--knn_k", "--knn_p", "--baseline_lr")]
        shown = " ".join(f"{a} {st.out[st.out.index(a) + 1]}" for a in extra)
        raise ConfigError(
            f"--phase {st.phase} evaluated a finished run in the original; here `softdistill "
            "distill` evaluates its set and the baselines when it ends, and a finished run is "
            f"evaluated again with: softdistill evaluate {st.results_dir or 'RUN_DIR'} "
            f"--baseline {names}{' ' + shown if shown else ''}"
        )
    if st.sample_n_nets is not None:  # after any --n_nets (the original's pool size)
        st.set(
            "n_nets",
            st.sample_n_nets,
            note=f"original flag --sample_n_nets {st.sample_n_nets} -> ours --n_nets "
            f"{st.sample_n_nets} (nets per outer step; a pool's size is its own)",
        )
    if st.baselines:
        st.set("baselines", *st.baselines, note=f"baselines evaluated: {', '.join(st.baselines)}")
    if st.results_dir is not None:
        if has_out:
            st.notes.append(f"original flag --results_dir {st.results_dir}: --out wins")
        else:
            st.set(
                "out",
                st.results_dir,
                note=f"original flag --results_dir {st.results_dir} -> "
                "ours --out (the run folder itself, no nested folders)",
            )
    if original_style and not has_config:
        applied = []
        for key, (value, original) in ORIGINAL_DEFAULTS.items():
            if key in st.given or (key == "outer_epochs" and "outer_steps" in st.given):
                continue
            if key == "decay_epochs" and "decay_every" in st.given:
                continue
            st.out += [f"--{key}", value]
            st.given.add(key)
            applied.append(original)
        if applied:
            st.notes.append(
                "an original-style command line: the original's defaults apply to what it "
                f"leaves out: {' '.join(applied)}"
            )
    if st.test_nets is not None:
        nets = _nets_of(st.out)
        if st.test_nets == "same_as_train":
            st.notes.append(
                "original flag --test_nets_type same_as_train: accepted (evaluation nets come "
                "from the training nets' source: the fixed init, fresh random inits, or the pool)"
            )
        elif st.test_nets == "unknown_init" and nets != "random":
            raise ConfigError(
                "--test_nets_type unknown_init with nets trained from a fixed init or a pool is "
                "not supported: a set learned for one init is evaluated on it here; train for "
                "random inits with --train_nets_type unknown_init (ours --nets random)"
            )
        elif st.test_nets == "unknown_init":
            st.notes.append("original flag --test_nets_type unknown_init: accepted (fresh inits)")
        else:
            raise ConfigError(
                "--test_nets_type loaded read the original's --model_dir; here pass a held-out "
                "pool: --test_pool PATH"
            )


def _nets_of(argv: list[str]) -> str:
    """The last ``--nets`` value in ``argv`` ("fixed" if none)."""
    nets = "fixed"
    for a, b in zip(argv, argv[1:]):
        if a == "--nets":
            nets = b
    return nets


# --------------------------------------------------------------------------- --mode train
# The original's `--mode train` trained networks on the real data (n_nets of them, the pools of
# its `loaded` setting) and reported their test accuracy: here that is `softdistill train`.
_TRAIN_RENAMED = {
    "decay_epochs": "decay_every",  # both count passes over the data
    "base_seed": "seed",
    "dataset_root": "data-dir",
    "results_dir": "out",
}
_TRAIN_SAME = {
    "dataset", "arch", "epochs", "lr", "batch_size", "decay_factor", "init", "init_param",
    "n_nets", "ntoken", "maxlen", "seed", "out", "data_dir", "device", "embeddings",
}  # fmt: skip
# The original's defaults for `--mode train` where `softdistill train`'s differ.
ORIGINAL_TRAIN_DEFAULTS = {"epochs": "400", "decay_every": "40", "lr": "0.01", "n_nets": "1"}


def is_train_mode(argv: Sequence[str]) -> bool:
    """Whether a `distill` line is the original's ``--mode train``."""
    for a, b in zip(argv, [*argv[1:], ""]):
        if a == "--mode" and b == "train" or a == "--mode=train":
            return True
    return False


def translate_train(argv: Sequence[str]) -> Translation:
    """An original ``--mode train`` line as ``softdistill train`` arguments (after the command
    name), with a note per flag; flags of distillation are accepted and ignored with a note."""
    out: list[str] = []
    notes = ["original flag --mode train -> ours: the command `softdistill train`"]
    given: set[str] = set()
    tokens = list(argv)
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if not tok.startswith("--"):
            out.append(tok)
            continue
        name, inline = _split(tok)
        arity = _FLAGS.get(name, (_ONE, None))[0]
        values: list[str] = [inline] if inline is not None else []
        if (
            inline is None
            and arity != _OPT
            or (arity == _OPT and i < len(tokens) and not tokens[i].startswith("--"))
        ):
            while i < len(tokens) and not tokens[i].startswith("--"):
                values.append(tokens[i])
                i += 1
                if arity == _ONE:
                    break
        if name == "mode":
            continue
        if name == "device_id":
            device = "cpu" if int(values[0]) < 0 else f"cuda:{values[0]}"
            out += ["--device", device]
            given.add("device")
            notes.append(f"original flag --device_id {values[0]} -> ours --device {device}")
        elif name in _TRAIN_RENAMED:
            ours = _TRAIN_RENAMED[name]
            out += [f"--{ours}", *values]
            given.add(ours.replace("-", "_"))
            notes.append(f"original flag --{name} {' '.join(values)} -> ours --{ours}")
        elif name in _TRAIN_SAME or name in ("overwrite", "quiet", "debug", "parallel", "split"):
            out += [tok if inline is not None else f"--{name}", *([] if inline else values)]
            given.add(name)
        elif name == "phase":
            out += ["--split", *values]
            given.add("split")
            notes.append(f"original flag --phase {' '.join(values)} -> ours --split")
        elif name == "ninp":
            notes.append(
                f"original flag --ninp {values[0]}: the embedding dimension is the table's here "
                "(--embeddings)"
            )
        else:  # distillation settings and the original's machinery: nothing to train with
            shown = " ".join(v or "''" for v in values)
            why = (
                "a distillation setting; --mode train distills nothing"
                if name in RENAMED_FLAGS or name.startswith(("distill", "test_", "static"))
                else "not needed by `softdistill train`"
            )
            notes.append(f"original flag --{name}{' ' + shown if shown else ''}: accepted, {why}")
    applied = []
    for key, value in ORIGINAL_TRAIN_DEFAULTS.items():
        if key not in given:
            out += [f"--{key}", value]
            applied.append(f"--{key} {value}")
    if applied:
        notes.append(
            "an original-style command line: the original's defaults apply to what it leaves "
            f"out: {' '.join(applied)}"
        )
    if "out" not in given:
        raise ConfigError(
            "--mode train writes the trained nets to a folder: give it with --results_dir DIR "
            "(or --out DIR)"
        )
    return Translation(out, notes, True)
