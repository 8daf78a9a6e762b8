"""`ilcore` command line: parse, call the library, print (or --json).

Each subcommand lives in its own module exposing ``register(subparsers)``; the handler it sets
with ``set_defaults(func=...)`` takes the parsed args and returns a JSON-able dict (printed with
--json) or None. A :class:`ilcore.errors.UserError` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Sequence

from ilcore.errors import UserError

# Module names under ilcore.cli, each with register(subparsers).
SUBCOMMAND_MODULES = ("record", "train", "eval", "info", "interop", "dagger", "finetune")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ilcore", description="Record demonstrations, train and evaluate imitation learners."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(f"ilcore.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"ilcore.cli.{name}":
                continue  # subcommand not built yet
            raise
        module.register(sub)
    return parser


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a machine-readable result on stdout")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if getattr(args, "json", False) and result is not None:
        json.dump(result, sys.stdout, default=_json_default)
        sys.stdout.write("\n")
    return 0


def _json_default(obj: object) -> object:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


if __name__ == "__main__":
    sys.exit(main())
