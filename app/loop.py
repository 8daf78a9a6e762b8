"""The app loop: the ONLY place that pumps pygame events.

Per frame: one ``pygame.event.get()``; every device turns the raw events into intents; the
manager hands them to the active mode; the mode advances on a fixed time step; the renderer draws
the mode's view model. Heavy work is elsewhere (training in a process, episode writes in a worker
thread), so a frame only does input, a few env steps and drawing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pygame

from app.input.base import Autopilot, Device
from app.input.intents import Intent
from app.input.keymaps import COMMAND_DESCRIPTIONS, Keymap, key_label
from app.modes.manager import ModeManager
from app.modes.pacing import pace_text, set_display_fps

INPUT_EVENTS = {
    pygame.KEYDOWN, pygame.KEYUP, pygame.JOYAXISMOTION, pygame.JOYBUTTONDOWN, pygame.JOYBUTTONUP,
    pygame.JOYHATMOTION, pygame.JOYDEVICEADDED, pygame.JOYDEVICEREMOVED,
}


@dataclass
class LoopStats:
    """Counters for tests and the frame benchmark."""

    frames: int = 0
    input_events: int = 0  # input events taken off the queue
    input_events_handled: int = 0  # of those, offered to every device
    intents: int = 0
    work_ms: list[float] = field(default_factory=list)  # wall time each frame spent working (input, update, draw)
    cpu_ms: list[float] = field(default_factory=list)  # CPU time of the loop thread per frame (what preemption does not inflate)
    interval_ms: list[float] = field(default_factory=list)  # wall time between frame starts


class AppLoop:
    """Runs frames until the manager asks to quit (or ``max_frames``).

    realtime=True: dt is measured and the loop sleeps to ``fps`` (a person is watching).
    realtime=False: every frame advances exactly 1/fps of app time and nothing sleeps (simulated
    sessions and tests run as fast as the machine allows, with the same behaviour).
    """

    def __init__(
        self,
        manager: ModeManager,
        devices: list[Device],
        renderer: Any,
        *,
        keymap: Keymap | None = None,
        fps: int = 60,
        realtime: bool = True,
        autopilot: Autopilot | None = None,
        record_stats: bool = False,
    ) -> None:
        self.manager = manager
        self.devices = devices
        self.renderer = renderer
        self.keymap = keymap
        session = getattr(manager, "session", None)
        if session is not None and keymap is not None and keymap.actions is not None:
            session.action_names = keymap.actions  # the modes name actions with this keymap's keys
        self.fps = fps
        self.realtime = realtime
        self.autopilot = autopilot
        self.record_stats = record_stats
        set_display_fps(fps)  # a frame runs at most the env steps one frame of this rate holds
        self.clock = pygame.time.Clock()
        self.stats = LoopStats()
        self.measured_fps = float(fps)
        self._last_start: float | None = None

    def device_names(self) -> list[str]:
        names = []
        for d in self.devices:
            connected = getattr(d, "connected", None)
            if connected is not None:
                names += connected()
            else:
                names.append(d.name)
        if self.autopilot is not None:
            names.append("simulated person")
        return names

    def frame(self) -> None:
        start = time.perf_counter()
        cpu_start = time.thread_time()
        if self._last_start is not None:
            interval = (start - self._last_start) * 1000.0
            if self.record_stats:
                self.stats.interval_ms.append(interval)
            self.measured_fps = 0.9 * self.measured_fps + 0.1 * (1000.0 / max(interval, 1e-3))
        self._last_start = start
        intents: list[Intent] = []
        for event in pygame.event.get():
            if event.type == pygame.QUIT:
                self.manager.quit_requested = True
                continue
            is_input = event.type in INPUT_EVENTS or event.type == pygame.WINDOWFOCUSLOST
            if event.type in INPUT_EVENTS:
                self.stats.input_events += 1
            for device in self.devices:
                intents.extend(device.handle(event))
            if event.type in INPUT_EVENTS and is_input:
                self.stats.input_events_handled += 1
        if self.autopilot is not None:
            intents.extend(self.autopilot.poll(self.manager))
        for intent in intents:
            self.manager.handle(intent)
        self.stats.intents += len(intents)
        self.manager.update(1.0 / self.fps if not self.realtime else min(0.1, self.clock.get_time() / 1000.0 or 1.0 / self.fps))
        if self.renderer is not None:
            view = self.manager.view()
            hud = self.manager.hud(self.measured_fps, self.device_names())
            if self.realtime:  # simulated time never falls behind
                hud.pace = pace_text(getattr(self.manager.current, "clock", None))
            self.renderer.draw(view, hud, self.help_entries() if self.manager.help_visible else None)
            pygame.display.flip()
        self.stats.frames += 1
        if self.record_stats:
            self.stats.work_ms.append((time.perf_counter() - start) * 1000.0)
            self.stats.cpu_ms.append((time.thread_time() - cpu_start) * 1000.0)
        if self.realtime:
            self.clock.tick(self.fps)

    def run(self, max_frames: int | None = None) -> None:
        while not self.manager.quit_requested and (max_frames is None or self.stats.frames < max_frames):
            self.frame()

    def help_entries(self) -> list[tuple[str, str]]:
        """(keys, what they do) for the current mode plus the global keys, for the help overlay."""
        keys_for: dict[str, list[str]] = {}
        if self.keymap is not None:
            for code, command in self.keymap.commands.items():
                keys_for.setdefault(command, []).append(key_label(code))
        out: list[tuple[str, str]] = []
        for command, desc in self.manager.current.help():
            if command == "action keys":
                if self.keymap is not None:
                    # every action of this env by name, with its keys: "\u2190  push left"
                    out.append(("action keys", desc))
                    out.extend(self.keymap.actions.rows() if self.keymap.actions is not None else self.keymap.help_lines())
                continue
            keys = " / ".join(keys_for.get(command, [command]))
            out.append((keys, desc or COMMAND_DESCRIPTIONS.get(command, command)))
        for command in ("help", "quit"):
            out.append((" / ".join(keys_for.get(command, [command])), COMMAND_DESCRIPTIONS[command]))
        out.extend(self.manager.extra_help())
        return out
