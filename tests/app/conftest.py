"""Helpers to run the app headless: a real loop, the dummy SDL driver, events posted to pygame."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pygame
import pytest

from app.input.gamepad import GamepadDevice, default_gamepad_config
from app.input.keyboard import KeyboardDevice
from app.input.keymaps import Keymap, default_keymap
from app.loop import AppLoop
from app.modes.manager import ModeManager
from app.render.renderer import Renderer
from app.render.theme import WINDOW_SIZE
from app.session import Session, SessionSettings


@dataclass
class Harness:
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


@pytest.fixture
def make_app(tmp_path: Path):
    made: list[Harness] = []

    def build(out: Path | None = None, *, resume: bool = False, render: bool = True, autopilot: bool = False,
              **settings: Any) -> Harness:
        pygame.init()
        defaults = dict(demo_episodes=1, rounds=1, episodes_per_round=1, max_episode_steps=40, epochs=5, ensemble=3, seed=0)
        defaults.update(settings)
        session = Session(out or tmp_path / "session", None if resume else SessionSettings(**defaults), resume=resume)
        space = session.env.action_space
        keymap = default_keymap(session.settings.env_id, space)
        pad = GamepadDevice(default_gamepad_config(space, {n: keymap.combos[c] for c, n in keymap.names.items()}), space)
        session.autopilot = autopilot  # a person moves the session on (Enter) unless the test says otherwise
        manager = ModeManager(session)
        renderer = Renderer(pygame.display.set_mode(WINDOW_SIZE)) if render else None
        loop = AppLoop(manager, [KeyboardDevice(keymap), pad], renderer, keymap=keymap, fps=60, realtime=False)
        pygame.event.clear()
        manager.start()
        h = Harness(session, manager, loop, keymap, pad)
        made.append(h)
        return h

    yield build
    for h in made:
        h.session.close()  # closing a classic-control env quits pygame, so clear only if it is still up
    if pygame.display.get_init():
        pygame.event.clear()


def go_on(h: Harness, max_frames: int = 20000) -> None:
    """Wait until the stage is done and waits for the person, then press Enter."""
    h.until(lambda: h.manager.waiting, max_frames=max_frames)
    tap(h, pygame.K_RETURN)


def train_in_process(session: Session) -> None:
    """Train the next policy synchronously with the trainer's own job code (no process spawn)."""
    session.train_blocking()
