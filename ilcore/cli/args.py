"""Argument types, flags and output-folder checks shared by the subcommands (the run flags every
trainer has), so no command imports another command's module. ``--hidden`` is read by
:func:`ilcore.algos.bc_config.parse_hidden`.

The ``type=`` helpers make argparse refuse an out-of-range value while parsing (usage plus one
``error:`` line, exit 2), before any env is made or file opened.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Sequence

from ilcore.errors import ConfigError


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (counts: episodes, epochs, envs, batch sizes, members)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0 (seeds, patience, "every E epochs" where 0 means off)."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (noise scales, weights of loss terms)."""
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value:g}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (learning rates)."""
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {value:g}")
    return value


def unit_float(text: str) -> float:
    """A number in [0, 1] (probabilities)."""
    value = _float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value:g}")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1) (a share held out: all of it would leave nothing to train on)."""
    value = _float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {value:g}")
    return value


def add_run_flags(parser: argparse.ArgumentParser, *, resumable: bool = False) -> None:
    """--logdir (TensorBoard + CSV), and for resumable trainers --checkpoint-every and --resume."""
    parser.add_argument("--logdir", metavar="DIR",
                        help="also write TensorBoard event files and metrics.csv here (tags: docs/internals.md)")
    if resumable:
        parser.add_argument("--checkpoint-every", type=int, default=0, metavar="N",
                            help="save the best weights so far and the training state every N epochs (0: only "
                                 "at the end and on Ctrl-C)")
        parser.add_argument("--resume", metavar="RUN",
                            help="continue the run in RUN from its last saved epoch (optimizer and random state "
                                 "included) up to --epochs in total; its data and options are reused")


# Files whose presence marks a folder as something a run must not write into.
_RECORDING_MARKERS = ("session.json", "episodes", "labels.jsonl", "writer.lock")


def check_run_out(out: str | Path, inputs: Sequence[str | Path] = (), *,
                  run_markers: Sequence[str] = ("config.json", "history.json"),
                  option: str = "--out") -> Path:
    """Refuse an output folder that would mix a run into something else, before any work.

    ``out`` may be missing, an empty folder, or an earlier run (a folder holding one of
    ``run_markers``), which is overwritten. Refused: an existing file, a recording session
    (or a folder inside one), one of the ``inputs`` or a folder inside one, and any other
    non-empty folder.
    """
    path = Path(out)
    resolved = path.resolve()
    for given in inputs:
        src = Path(given).resolve()
        if resolved == src or src in resolved.parents:
            raise ConfigError(f"{option} {path} is inside the input {given}; write the run to its own folder.")
    for parent in (resolved, *resolved.parents):
        if (parent / "session.json").is_file():
            raise ConfigError(f"{option} {path} is inside the recording {parent}; write the run to its own folder.")
    if not path.exists():
        return path
    if not path.is_dir():
        raise ConfigError(f"{option} {path} exists and is not a folder.")
    try:
        names = {p.name for p in path.iterdir()}
    except OSError as exc:
        raise ConfigError(f"{option} {path} cannot be read ({exc.strerror}).") from None
    if any(m in names for m in _RECORDING_MARKERS):
        raise ConfigError(f"{option} {path} holds a recording; write the run to its own folder.")
    if names and not any(m in names for m in run_markers):
        raise ConfigError(f"{option} {path} is a non-empty folder that is not an earlier run; "
                          "choose a new or empty folder.")
    return path

