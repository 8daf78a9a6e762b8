"""Process-wide settings every entry point applies once: torch's thread count and Ctrl-C handling.

Kept free of heavy imports: the CLI calls :func:`configure_threads` before it knows whether the
command will need torch at all.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType
from contextlib import contextmanager
from typing import Any, Iterator

from ilcore.errors import ConfigError

THREADS_HELP = ("torch threads for this process (default: min(physical cores, CPUs this process may use); "
                "1 under torchrun or with --async envs, so processes do not oversubscribe the cores)")


# OpenMP threads that finish a parallel region first spin (busy-wait) for the others by default.
# When another process holds one of the cores - a DataLoader reader, an env worker, the app's
# frame loop, another user's job - the spinning thread burns the time slice its partner needs,
# and a 2-thread CNN training step on this 2-core machine ran 10x slower (87 vs 868 samples/s
# for 1 thread, load average 3-7; benchmarks/threads.py). Sleeping waits cost little when the
# cores are free and remove the collapse (506-1058 samples/s in the same runs).
OMP_WAIT_POLICY = "PASSIVE"


def _physical_cores() -> int | None:
    """Distinct (package, core) pairs in /proc/cpuinfo; None where that file is absent or terse."""
    try:
        text = open("/proc/cpuinfo", encoding="ascii", errors="replace").read()
    except OSError:
        return None
    cores: set[tuple[str, str]] = set()
    package = "0"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            package = value.strip()
        elif key == "core id":
            cores.add((package, value.strip()))
    return len(cores) or None


def default_threads(*, async_envs: bool = False) -> int:
    """Threads that fit the machine: one per physical core this process may run on.

    Hyper-threads share a core's arithmetic units, so counting them only adds contention. Under
    torchrun (WORLD_SIZE > 1) or with async env workers, several processes share the cores and
    each gets one thread.
    """
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 or async_envs:
        return 1
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        available = os.cpu_count() or 1
    physical = _physical_cores() or available
    return max(1, min(available, physical))


def configure_threads(threads: int | None = None, *, async_envs: bool = False) -> int:
    """Set torch's intra-op thread count for this process and return it.

    When torch is not imported yet it is not imported here (``ilcore info`` never needs it):
    ``OMP_NUM_THREADS`` is set instead, which torch reads when it starts. ``OMP_WAIT_POLICY`` is
    set to :data:`OMP_WAIT_POLICY` unless the user chose one; OpenMP reads it once, when torch
    loads it, so it only takes effect when this runs before ``import torch`` (as every entry
    point here does).
    """
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {threads}.")
    n = threads if threads is not None else default_threads(async_envs=async_envs)
    os.environ["OMP_NUM_THREADS"] = str(n)
    os.environ.setdefault("OMP_WAIT_POLICY", OMP_WAIT_POLICY)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    return n


class RunInterrupted(Exception):
    """A run stopped by Ctrl-C after saving what it had; the CLI prints the message and exits 130."""


class StopFlag:
    """Set by the first Ctrl-C inside :func:`stop_on_interrupt`; training loops poll it per batch."""

    def __init__(self) -> None:
        self.requested = False

    def __bool__(self) -> bool:
        return self.requested


@contextmanager
def stop_on_interrupt() -> Iterator[StopFlag]:
    """Turn the first Ctrl-C into a polite stop request (the loop finishes its batch and saves);
    a second Ctrl-C interrupts at once as usual. Outside the main thread it changes nothing."""
    flag = StopFlag()
    try:
        previous: Any = signal.getsignal(signal.SIGINT)

        def handler(signum: int, frame: FrameType | None) -> None:
            flag.requested = True
            signal.signal(signal.SIGINT, previous if callable(previous) else signal.default_int_handler)
            print("\nstopping after this batch (Ctrl-C again to abort without saving)", file=sys.stderr)

        signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: signals cannot be handled here
        yield flag
        return
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)
