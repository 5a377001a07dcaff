"""Command-line interface: ``softdistill <command>``.

One module per subcommand, each with ``register(subparsers, parents)``; ``main(argv) -> int`` is
what tests call. Exit codes: 0 ok, 1 runtime failure, 2 usage error; errors print one paragraph,
``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import re
import shlex
import sys

from softdistill import __version__
from softdistill.cli.common import UsageError, install_progress
from softdistill.config import ConfigError

__all__ = ["COMMANDS", "build_parser", "entry", "main", "parse_command"]

# Subcommand modules under softdistill.cli, in the order `--help` lists them.
COMMANDS = ("distill", "evaluate", "train", "report", "export", "show", "datasets")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: the nearest option or command name for an
    unknown one, what an option takes for a bad value, and where the full usage is."""

    command: str | None = None  # the subcommand being parsed (its options are the suggestions)

    def error(self, message: str):
        from softdistill.utils import did_you_mean

        prog = self.prog
        sub = _subparser(self, self.command)
        if sub is not None:
            prog = sub.prog
        m = re.match(r"unrecognized arguments: (.*)", message)
        if m:
            parser = sub or self
            options = [o for a in parser._actions for o in a.option_strings if o[:2] == "--"]
            for token in m.group(1).split():
                if token.startswith("--"):
                    name = token.split("=", 1)[0]
                    message = f"unknown option {name}{did_you_mean(name, options)}"
                    break
                message = f"unexpected value {token!r} (not an option's value)"
                break
        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            message += did_you_mean(m.group(1), re.findall(r"'([^']*)'", m.group(2)))
        m = re.match(r"argument (--[^/:\s]+)(?:/\S+)?: (.*)", message)
        if m:  # "argument --lr/--l-r: takes a number, got 'x'" -> "--lr takes a number, ..."
            sep = " " if m.group(2).startswith("takes ") else ": "
            message = f"{m.group(1)}{sep}{m.group(2)}"
        self.exit(2, f"softdistill: error: {message}\n(`{prog} --help` lists the options)\n")


def _subparser(parser: argparse.ArgumentParser, command: str | None):
    """The parser of subcommand ``command`` of ``parser``, or None."""
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction) and command in a.choices:
            return a.choices[command]
    return None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="softdistill",
        description="Dataset distillation with learned soft labels, for images and text.",
    )
    p.add_argument("--version", action="version", version=f"softdistill {__version__}")
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    common.add_argument("--quiet", action="store_true", help="no progress output")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"softdistill.cli.{name}").register(sub, [common])
    return p


# Subcommands that take config flags, and so the original code's flags too.
_CONFIG_COMMANDS = ("distill", "evaluate")


def parse_command(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Parse a command line (the original code's flags translated first); returns the
    namespace and the translation notes. Raises ConfigError for an original flag that cannot
    be honoured, SystemExit where argparse ends (errors, --help)."""
    typed = list(argv)
    parser = build_parser()
    command = next((a for a in argv if not a.startswith("-")), None)
    _Parser.command = command
    notes: list[str] = []
    if command == "distill":
        from softdistill.original import is_train_mode, translate_train

        at = argv.index(command) + 1
        if is_train_mode(argv[at:]):  # the original's --mode train is `softdistill train`
            tr = translate_train(argv[at:])
            argv = [*argv[: at - 1], "train", *tr.argv]
            command = _Parser.command = "train"
            notes = tr.notes
    if command in _CONFIG_COMMANDS:
        from softdistill.config import bool_keys
        from softdistill.original import translate

        at = argv.index(command) + 1
        own = {
            o[2:].replace("-", "_")
            for a in _subparser(parser, command)._actions
            for o in a.option_strings
        }
        tr = translate(argv[at:], bool_keys=bool_keys(), defaults=command == "distill", own=own)
        argv = argv[:at] + tr.argv
        notes = tr.notes
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        raise SystemExit(2)
    args.command_line = shlex.join(["softdistill", *typed])  # as typed, before translation
    return args, notes


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 runtime failure, 2 usage error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args, notes = parse_command(argv)
    except ConfigError as e:
        print(f"softdistill: error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # argparse printed its message (or --help/--version)
        return int(e.code or 0)
    # Under torchrun only rank 0 reports progress; every rank reports its errors.
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.WARNING if args.quiet or rank > 0 else logging.INFO,
        format="%(message)s",
        force=True,
    )
    install_progress(enabled=not args.quiet and rank == 0)
    log = logging.getLogger("softdistill")
    for note in notes:  # what the original code's flags became, once each
        log.info(note)
    from softdistill.data import DataError
    from softdistill.distillation import DivergenceError
    from softdistill.export import ExportError
    from softdistill.io import RunDirError
    from softdistill.pool import PoolError

    who = f" (rank {rank})" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else ""

    try:
        return args.func(args)
    except (UsageError, ConfigError, ExportError) as e:
        if args.debug:
            raise
        print(f"softdistill: error{who}: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if args.debug:
            raise
        where = e.filename or getattr(args, "run_dir", None) or getattr(args, "out", None)
        if e.errno == errno.ENOSPC:
            what = f"no space left on the disk of {where}" if where else "no space left on disk"
            print(
                f"softdistill: error{who}: {what}; free some space (the last checkpoint is "
                "kept) and continue with --resume",
                file=sys.stderr,
            )
        else:
            text = e.strerror or str(e)
            print(
                f"softdistill: error{who}: {text}{f': {where}' if where else ''}\n"
                "(run with --debug for the traceback)",
                file=sys.stderr,
            )
        return 1
    except (DataError, RunDirError, PoolError, DivergenceError) as e:
        if args.debug:
            raise
        print(
            f"softdistill: error{who}: {e}\n(run with --debug for the traceback)", file=sys.stderr
        )
        return 1
    except KeyboardInterrupt:
        run_dir = getattr(args, "run_dir", None) if args.command == "distill" else None
        hint = f"; continue with: softdistill distill --resume --out {run_dir}" if run_dir else ""
        print(f"softdistill: interrupted{hint}", file=sys.stderr)
        return 130


def entry() -> None:
    sys.exit(main())
