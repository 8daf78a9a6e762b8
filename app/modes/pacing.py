"""Frame pacing: how many env steps each displayed frame runs, and how far behind the machine is.

A mode asks its :class:`StepClock` for the steps of a frame (``steps(dt)``). The clock runs the
env at its own fps times the person's speed, but a frame never runs more steps than a frame of
the display's nominal length holds (at least one). Time the machine could not keep up with is
dropped, not caught up: when steps and drawing take longer than a frame, the simulation runs one
step per frame at the rate frames come, so it slows down evenly instead of stuttering through
bursts of catch-up steps (which make each frame slower still). ``pace`` is the fraction of the
asked-for step rate achieved over the last seconds; the HUD says so when it drops.
"""

from __future__ import annotations

import math

SPEEDS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0)  # the person's speed steps (fraction of the env's own fps)
DISPLAY_FPS = 60  # the loop's nominal frame rate; AppLoop sets the one it runs at (set_display_fps)
PACE_WINDOW_S = 2.0  # time constant of the achieved-rate average: one hiccup is not a slowdown
SLOW_PACE = 0.9  # below this fraction of the asked-for rate the HUD warns


def set_display_fps(fps: float) -> None:
    """The frame rate the loop aims at; caps the steps of one frame (one loop per process)."""
    global DISPLAY_FPS
    DISPLAY_FPS = max(1, int(fps))


class StepClock:
    """Turns frame time into env steps at the env's fps times a speed factor.

    ``max_steps_per_frame`` (default: what one nominal display frame holds at this speed, at
    least 1) bounds every frame; at most one step of unrun time is carried to the next frame.
    """

    def __init__(self, fps: int, speed: float = 1.0, max_steps_per_frame: int | None = None) -> None:
        self.fps = fps
        self.speed = speed
        self._max = max_steps_per_frame
        self._acc = 0.0
        self._asked = 0.0  # decayed sums of steps asked for and dropped: pace = 1 - dropped / asked
        self._dropped = 0.0

    @property
    def rate(self) -> float:
        """Steps per second asked for (the env's fps at the person's speed)."""
        return self.fps * self.speed

    @property
    def max_steps_per_frame(self) -> int:
        if self._max is not None:
            return self._max
        # a hair of slack so 60 steps/s on a 60 fps display stays one step per frame
        return max(1, math.ceil(self.rate / DISPLAY_FPS - 1e-6))

    def steps(self, dt: float) -> int:
        asked = dt * self.rate
        self._acc += asked
        n = min(int(self._acc), self.max_steps_per_frame)
        self._acc -= n
        dropped = max(0.0, self._acc - 1.0)  # what the machine could not run is dropped, not raced after
        self._acc -= dropped
        decay = math.exp(-dt / PACE_WINDOW_S)
        self._asked = self._asked * decay + asked
        self._dropped = self._dropped * decay + dropped
        return n

    @property
    def pace(self) -> float:
        """Achieved / asked-for step rate over the last seconds (1.0 before anything was asked)."""
        if self._asked < 0.5 * self.rate * PACE_WINDOW_S:  # under about a second of history: no verdict yet
            return 1.0
        return 1.0 - self._dropped / self._asked

    def achieved_rate(self) -> float:
        """Steps per second the clock is running at (the asked-for rate times the pace)."""
        return self.rate * self.pace

    def slowed(self) -> bool:
        return self.pace < SLOW_PACE

    def reset_pace(self) -> None:
        """Forget the rate history (after a pause, a speed change or a new stage)."""
        self._asked = self._dropped = 0.0

    def step_ms(self) -> float:
        """Wall time of one env step at the current speed (what a step driven by a person costs them)."""
        return 1000.0 / max(self.fps * self.speed, 1e-9)

    def slower(self) -> None:
        lower = [s for s in SPEEDS if s < self.speed - 1e-9]
        self.speed = lower[-1] if lower else self.speed
        self.reset_pace()

    def faster(self) -> None:
        higher = [s for s in SPEEDS if s > self.speed + 1e-9]
        self.speed = higher[0] if higher else self.speed
        self.reset_pace()


def pace_text(clock: StepClock | None) -> str:
    """The HUD's warning when the machine cannot keep up ("" when it can)."""
    if clock is None or not clock.slowed():
        return ""
    return f"slowed to {100 * clock.pace:.0f}%: the machine cannot keep up"
