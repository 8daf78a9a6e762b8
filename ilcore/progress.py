"""One progress-bar style for every long command: tqdm on stderr, so ``--json`` keeps stdout clean.

On a terminal the bar redraws a few times a second; when stderr is a file or a pipe (CI logs,
``2> log``) it updates at most every 30 s, so a long run leaves a handful of lines, not thousands.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, Iterable, TypeVar

if TYPE_CHECKING:
    from tqdm import tqdm

T = TypeVar("T")

TTY_INTERVAL_S = 0.1
LOG_INTERVAL_S = 30.0


def progress_bar(
    iterable: Iterable[T] | None = None,
    *,
    total: float | None = None,
    desc: str | None = None,
    unit: str = "it",
    enabled: bool = True,
    leave: bool = False,
    **kwargs: Any,
) -> "tqdm[T]":
    """A tqdm bar on stderr (``enabled=False``: a silent one that still counts).

    Use as an iterator wrapper (``for ep in progress_bar(range(n), desc="eval", unit="ep")``) or
    manually (``bar = progress_bar(total=steps, unit="step"); bar.update(1); bar.close()``).
    """
    from tqdm import tqdm  # lazy (about 35 ms): the CLI's --help loads this module

    tty = bool(getattr(sys.stderr, "isatty", lambda: False)())
    kwargs.setdefault("mininterval", TTY_INTERVAL_S if tty else LOG_INTERVAL_S)
    kwargs.setdefault("dynamic_ncols", tty)
    # Nothing is drawn for the first seconds: a command that ends (or fails with its one error line)
    # quickly prints no bar at all.
    kwargs.setdefault("delay", 2.0)
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, disable=not enabled,
                leave=leave, **kwargs)


def show_status(bar: "tqdm[Any]", text: str | None = None, **fields: Any) -> None:
    """Put ``text`` (or ``key=value`` fields) after the bar, redrawn no sooner than the bar itself
    would be: tqdm's own ``set_postfix`` redraws at once, which draws a bar before its start-up
    delay and runs it into a command's one error line."""
    if text is None:
        bar.set_postfix(refresh=False, **fields)
    else:
        bar.set_postfix_str(text, refresh=False)
    if bar.disable:
        return
    now = time.time()
    if now - bar.start_t >= bar.delay and now - bar.last_print_t >= bar.mininterval:
        bar.refresh()
