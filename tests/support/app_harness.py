"""The app run headless for tests: a real loop on the dummy SDL driver, key events posted to
pygame, and ``python -m app`` as a subprocess (``tests/app/conftest.py``'s ``make_app`` builds
the :class:`Harness`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pygame

from app.input.gamepad import GamepadDevice
from app.input.keymaps import Keymap
from app.loop import AppLoop
from app.modes.manager import ModeManager
from app.session import Session

ROOT = Path(__file__).resolve().parents[2]
"""The repository root: the working directory of ``python -m app`` subprocesses."""


def app_env(**extra: str) -> dict[str, str]:
    """The environment for a ``python -m app`` subprocess: this one without a display, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")}
    env.update(extra)
    return env


@dataclass
class Harness:
    """One headless app: its session, mode manager and loop, stepped a frame at a time by the test."""

    session: Session
    manager: ModeManager
    loop: AppLoop
    keymap: Keymap
    gamepad: GamepadDevice

    def frames(self, n: int) -> None:
        for _ in range(n):
            self.loop.frame()

    def until(self, predicate: Any, max_frames: int = 3000) -> int:
        """Run frames until predicate() holds; returns the frames it took (fails if it never does)."""
        for i in range(max_frames):
            if predicate():
                return i
            self.loop.frame()
        raise AssertionError(f"condition not reached within {max_frames} frames (mode {self.manager.current.name})")

    @property
    def mode(self) -> Any:
        return self.manager.current


def key(kind: int, code: int) -> None:
    pygame.event.post(pygame.event.Event(kind, key=code, mod=0, unicode="", scancode=0))


def press(code: int) -> None:
    key(pygame.KEYDOWN, code)


def release(code: int) -> None:
    key(pygame.KEYUP, code)


def tap(h: Harness, code: int, frames: int = 1) -> None:
    press(code)
    h.frames(frames)
    release(code)
    h.frames(1)


def go_on(h: Harness, max_frames: int = 20000) -> None:
    """Wait until the stage is done and waits for the person, then press Enter."""
    h.until(lambda: h.manager.waiting, max_frames=max_frames)
    tap(h, pygame.K_RETURN)


def train_in_process(session: Session) -> None:
    """Train the next policy synchronously with the trainer's own job code (no process spawn)."""
    session.train_blocking()
