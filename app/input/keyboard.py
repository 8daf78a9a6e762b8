"""Keyboard device: KEYDOWN/KEYUP events -> intents, using a :class:`Keymap`."""

from __future__ import annotations

from typing import Any

import pygame

from app.input.base import Device
from app.input.intents import Intent, IntentKind
from app.input.keymaps import Keymap

# Command names whose key is held (takeover lasts while the key is down).
_HELD_COMMANDS = {"takeover"}


class KeyboardDevice(Device):
    """Tracks held keys; emits MOVE when the held action changes, commands on key press.

    ``handle(event)`` returns the intents one event produced (possibly none). The device never
    pumps the event queue itself: the app loop owns it.
    """

    name = "keyboard"

    def __init__(self, keymap: Keymap) -> None:
        self.keymap = keymap
        self.pressed: set[int] = set()
        self._combo: frozenset[int] | None = None

    def held_action(self) -> Any:
        """The action for the keys held now (the keymap's noop when none)."""
        return self.keymap.action_for(self.pressed)

    def handle(self, event: pygame.event.Event) -> list[Intent]:
        out: list[Intent] = []
        if event.type == pygame.KEYDOWN:
            command = self.keymap.commands.get(event.key)
            if command is None and getattr(event, "unicode", "") == "?":
                command = "help"
            if command is not None:
                out.append(_command_intent(command, pressed=True))
                return out
            self.pressed.add(event.key)
            self._emit_move(out)
        elif event.type == pygame.KEYUP:
            command = self.keymap.commands.get(event.key)
            if command in _HELD_COMMANDS:
                out.append(Intent(IntentKind.RELEASE, device=self.name))
                return out
            self.pressed.discard(event.key)
            self._emit_move(out)
        elif event.type == pygame.WINDOWFOCUSLOST:
            # Key-ups are not delivered to an unfocused window; forget held keys so nothing sticks.
            if self.pressed:
                self.pressed.clear()
                self._emit_move(out)
            out.append(Intent(IntentKind.RELEASE, device=self.name))
        return out

    def _emit_move(self, out: list[Intent]) -> None:
        combo = self.keymap.resolve(self.pressed)
        if combo != self._combo:
            self._combo = combo
            out.append(Intent(IntentKind.MOVE, None if combo is None else self.keymap.combos[combo], device=self.name))


def _command_intent(command: str, *, pressed: bool) -> Intent:
    if command.startswith("goto:"):
        return Intent(IntentKind.GOTO, command.split(":", 1)[1], device="keyboard")
    return Intent(IntentKind(command), device="keyboard")
