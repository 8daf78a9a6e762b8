"""The ``make_app`` fixture: the app run headless (a real loop, the dummy SDL driver); the
harness it returns and the key helpers are in ``tests/support/app_harness.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pygame
import pytest

from app.input.gamepad import GamepadDevice, default_gamepad_config
from app.input.keyboard import KeyboardDevice
from app.input.keymaps import default_keymap
from app.loop import AppLoop
from app.modes.manager import ModeManager
from app.render.renderer import Renderer
from app.render.theme import WINDOW_SIZE
from app.session import Session, SessionSettings
from tests.support.app_harness import Harness


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
