"""A scripted device for tests and headless runs: hands out intents queued in advance."""

from __future__ import annotations

from collections import deque
from typing import Any

from app.input.base import Autopilot
from app.input.intents import Intent


class MockDevice(Autopilot):
    """An :class:`~app.input.base.Autopilot` that plays back a script: intents pushed with
    :meth:`push` come out one frame at a time via :meth:`poll` (the manager is not looked at).

    Each queued entry is the list of intents for one frame, so a test can say "hold right for
    ten frames, then press accept" without a window or an event queue.
    """

    name = "mock"

    def __init__(self) -> None:
        self._frames: deque[list[Intent]] = deque()

    def push(self, *intents: Intent) -> None:
        """Queue intents to come out together on one frame."""
        self._frames.append(list(intents))

    def poll(self, manager: Any = None) -> list[Intent]:
        return self._frames.popleft() if self._frames else []

    def pending(self) -> int:
        return len(self._frames)
