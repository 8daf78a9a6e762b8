"""What the app loop asks of an input device, and of an autopilot that plays the person.

Two kinds of intent source feed :class:`app.loop.AppLoop`, and each declares which it is:

- a :class:`Device` turns the raw pygame events the loop pumps (once per frame, for everyone)
  into intents: the keyboard and the gamepad. It never pumps events itself, so two devices never
  race for the same queue.
- an :class:`Autopilot` has no events: once per frame it looks at the manager (the mode on
  screen and its state) and answers with the intents a person would give, as the simulated
  person does (``--simulate``) and as scripted test devices do.

Both return plain :class:`app.input.intents.Intent` lists, so a mode cannot tell who pressed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from app.input.intents import Intent

if TYPE_CHECKING:
    import pygame


class Device(Protocol):
    """An input device: pygame events in, intents out.

    ``name`` is what the HUD lists; a device that can have several units plugged in (gamepads)
    also has ``connected() -> list[str]``, which the loop lists instead.
    """

    name: str

    def handle(self, event: "pygame.event.Event") -> list[Intent]:
        """The intents this one event produced (often none)."""
        ...


class Autopilot(Protocol):
    """Plays the person's part: the manager's state in, intents out, once per frame."""

    name: str

    def poll(self, manager: Any) -> list[Intent]:
        """The intents for this frame, from what ``manager`` shows now."""
        ...
