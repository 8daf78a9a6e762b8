"""`ilcore` command line: parse, call the library, print (or --json).

Each subcommand lives in its own module exposing ``register(subparsers)``; the handler it sets
with ``set_defaults(func=...)`` takes the parsed args and returns a JSON-able dict (printed with
--json) or None. A :class:`ilcore.errors.UserError` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import sys
from typing import Any, NoReturn, Sequence

import numpy as np

from ilcore.errors import ConfigError, UserError
from ilcore.fileio import describe_os_error
from ilcore.runtime import THREADS_HELP, RunInterrupted, configure_threads

# Module names under ilcore.cli, each with register(subparsers).
SUBCOMMAND_MODULES = ("record", "train", "eval", "info", "interop", "dagger", "finetune")


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to each option whose default means something and whose help does not
    already state one; options without help text get that alone."""

    def add_argument(self, action: argparse.Action) -> None:
        default = action.default
        shown = (action.option_strings and default is not None and default is not False
                 and default is not argparse.SUPPRESS and default != [])
        text = action.help or ""
        if shown and "default" not in text and text is not argparse.SUPPRESS:
            action = copy.copy(action)  # the parser keeps its own action untouched
            action.help = f"{text} (default: %(default)s)".strip()
        super().add_argument(action)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose help shows defaults; sub-commands inherit the class (argparse gives
    ``add_subparsers`` the parent's type), so every level formats alike."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        # A bad argument is one `error:` line and exit 2 like every other refusal (main prints it),
        # instead of argparse's usage block.
        raise ConfigError(f"{message} ({self.prog} --help lists the options).")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="ilcore", description="Record demonstrations, train and evaluate imitation learners."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"ilcore.cli.{name}").register(sub)
    _add_threads_flag(parser)
    return parser


def _add_threads_flag(parser: argparse.ArgumentParser) -> None:
    """Give every runnable (sub)command the same --threads option, applied in :func:`main`."""
    if "func" in parser._defaults and "--threads" not in parser._option_string_actions:
        parser.add_argument("--threads", type=int, default=None, metavar="N", help=THREADS_HELP)
    for action in parser._actions:  # argparse keeps no public list of subcommands
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
                _add_threads_flag(child)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a machine-readable result on stdout")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        # One place sets torch's threads for every command, before any of them imports torch.
        configure_threads(getattr(args, "threads", None), async_envs=bool(getattr(args, "async_envs", False)))
        result = args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a write or read the command did not anticipate (full disk, permissions)

        print(f"error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except RunInterrupted as exc:
        print(f"interrupted: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if getattr(args, "json", False) and result is not None:
        json.dump(result, sys.stdout, default=_json_default)
        sys.stdout.write("\n")
    return 0


def _json_default(obj: object) -> object:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


if __name__ == "__main__":
    sys.exit(main())
