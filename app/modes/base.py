"""What every mode shares: the view model it exposes and the episode driver.

A mode handles intents, advances on a fixed time step and exposes a :class:`ModeView`; it never
draws and never touches pygame. The renderer reads the view model and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from app.input.action_names import ActionNames, action_names_of
from app.input.intents import Intent, IntentKind
from app.modes.pacing import StepClock  # noqa: F401 - re-exported: the modes import it from here

if TYPE_CHECKING:
    from app.session import Session


@dataclass
class Meter:
    """A bar from 0 to ``maximum`` with a threshold tick: the learner's uncertainty vs the gate's."""

    label: str
    value: float
    threshold: float | None
    maximum: float


@dataclass
class ModeView:
    """Everything the renderer needs to draw a mode. Pure data.

    frame:     (H, W, 3) uint8 env frame, or None
    prompt:    a question for the person (shown large over the frame), e.g. while a query waits
    lines:     (label, value) rows for the side panel
    items:     a list to show (returns, queue entries), newest or most important first
    progress:  0..1 for a progress bar (training, review position), or None
    plot:      (x, y) points for the summary plot
    body:      (style, text) rows drawn in the main area when there is no frame; style is
               "heading", "text" or "command" (monospace, wrapped at spaces to fit)
    """

    mode: str
    title: str
    subtitle: str = ""
    frame: np.ndarray | None = None
    prompt: str | None = None
    prompt_detail: str | None = None
    prompt_at: str = "bottom"  # where the prompt box sits over the frame: "bottom" or "top"
    lines: list[tuple[str, str]] = field(default_factory=list)
    items_title: str = ""
    items: list[str] = field(default_factory=list)
    meter: Meter | None = None
    progress: float | None = None
    progress_label: str = ""
    plot: list[tuple[float, float]] = field(default_factory=list)
    plot_labels: tuple[str, str] = ("", "")
    body: list[tuple[str, str]] = field(default_factory=list)
    proposed: str | None = None  # the learner's proposed action, drawn over the frame
    driver: str | None = None  # who is driving: "you", "learner", "expert"
    paused: bool = False
    recording: bool = False
    speed: float = 1.0
    timeline: tuple[int, int] | None = None  # (position, length) of a replay
    accent: str = "demo"  # colour key for the banner


class Mode:
    """Base class. Subclasses set ``name``/``title`` and override what they use."""

    name = "mode"
    title = "Mode"

    def __init__(self, session: "Session") -> None:
        self.session = session
        self.finished = False  # set when the mode's stage is complete; the manager waits for the person
        self.nothing_to_do = False  # the stage had nothing for the person (an empty review): moved past at once
        self.held_action: Any = None  # what the person is holding now (None = nothing)

    def enter(self) -> None:
        self.finished = False
        self.nothing_to_do = False

    def done_summary(self) -> str:
        """What the finished stage did, for the screen that waits for the person to move on."""
        return ""

    def can_undo(self) -> bool:
        """A label given in this stage can still be taken back (Z)."""
        return False

    def busy(self) -> bool:
        """An episode is being recorded or a question waits: quitting now drops something."""
        driver = getattr(self, "driver", None)
        return bool(driver is not None and driver.running and driver.record and driver.length > 0)

    @property
    def action_names(self) -> ActionNames | None:
        """What the env's actions are called and which keys give them (None without a session)."""
        return action_names_of(self.session)

    def exit(self) -> None:
        pass

    def handle(self, intent: Intent) -> None:
        pass

    def handle_playback(self, kind: IntentKind) -> bool:
        """Pause / slower / faster for modes that play episodes (they own ``paused`` and a
        ``clock``); True when the intent was one of those."""
        if kind is IntentKind.PAUSE:
            self.paused = not self.paused
        elif kind is IntentKind.SLOWER:
            self.clock.slower()
        elif kind is IntentKind.FASTER:
            self.clock.faster()
        else:
            return False
        return True

    def update(self, dt: float) -> None:
        pass

    def view(self) -> ModeView:
        return ModeView(mode=self.name, title=self.title, accent=self.name)

    def help(self) -> list[tuple[str, str]]:
        """(command name or 'action keys', description) of what this mode reacts to."""
        return []


def fmt_action(action: Any, names: ActionNames | None = None, *, keys: bool = False) -> str:
    """An action as the person knows it ("push left", with ``keys`` "push left (\u2190)"); the raw
    numbers when there are no names (a mode without a session)."""
    if names is not None:
        return names.describe(action) if keys else names.name(action)
    if action is None:
        return "-"
    arr = np.asarray(action)
    if arr.ndim == 0:
        return str(arr.item())
    return "[" + ", ".join(f"{v:+.2f}" for v in arr.ravel()) + "]"
