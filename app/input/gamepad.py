"""Gamepad device: JOY* events -> intents, with controls mapped by name.

Controls are named (``left_x``, ``rt``, ``a``, ``dpad_left``...) and a *layout* maps names to the
axis/button indices a given pad reports; layouts are picked by a substring of the pad's name, so
one config works across pads. Analog sticks and triggers drive Box actions (deadzone, scale);
buttons and stick directions give discrete actions and app commands. Pads may be plugged in or
pulled out at any time: ``JOYDEVICEADDED``/``JOYDEVICEREMOVED`` open/forget them, and losing the
pad that was taking over releases the takeover so the learner is never left without a driver.

Config (TOML ``[gamepad]`` table or JSON object)::

    deadzone = 0.15
    takeover = "rb"                          # button (held) or axis name (held past half-way)
    confirm = "a"                            # label a query with the stick's current action
    [axes]                                   # Box actions: action dimension -> control
    0 = { control = "left_x", scale = 1.0 }
    1 = { control = "rt" }                   # triggers rest at 0, full press = 1
    [buttons]                                # Discrete actions: control -> action
    dpad_left = 0
    left_x- = 0                              # stick pushed left past the deadzone
    [commands]                               # control -> app command
    b = "skip"
    [layouts."Xbox"]                         # pad-name substring -> {name: index}
    left_x = 0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import gymnasium as gym
import numpy as np
import pygame

from app.input.base import Device
from app.input.intents import Intent, IntentKind
from app.input.keymaps import DEFAULT_COMMAND_KEYS
from ilcore.errors import ConfigError

# SDL joystick indices of an Xbox-style pad; triggers are axes resting at -1.
DEFAULT_LAYOUT: dict[str, int] = {
    "left_x": 0, "left_y": 1, "lt": 2, "right_x": 3, "right_y": 4, "rt": 5,
    "a": 0, "b": 1, "x": 2, "y": 3, "lb": 4, "rb": 5, "back": 6, "start": 7, "guide": 8,
}
AXIS_NAMES = ("left_x", "left_y", "lt", "right_x", "right_y", "rt")
TRIGGERS = ("lt", "rt")
HAT_DIRECTIONS = ("dpad_left", "dpad_right", "dpad_up", "dpad_down")

DEFAULT_COMMANDS: dict[str, str] = {
    "y": "accept", "b": "skip", "x": "undo", "start": "pause", "back": "help", "lb": "step_back", "guide": "next",
}


@dataclass(frozen=True)
class AxisBinding:
    control: str  # an axis name, e.g. "left_x" or "rt"
    scale: float = 1.0  # multiplies the normalised deflection before mapping onto [low, high]
    invert: bool = False  # sticks report +1 for down; invert makes up positive


@dataclass(frozen=True)
class GamepadConfig:
    """How a pad drives one action space; see the module docstring for the file shape."""

    deadzone: float = 0.15
    takeover: str = "rb"
    confirm: str = "a"
    axes: Mapping[int, AxisBinding] = field(default_factory=dict)  # Box: action dim -> axis
    buttons: Mapping[str, Any] = field(default_factory=dict)  # Discrete: control -> action
    commands: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_COMMANDS))
    layouts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    def layout_for(self, pad_name: str) -> dict[str, int]:
        layout = dict(DEFAULT_LAYOUT)
        for fragment, overrides in self.layouts.items():
            if fragment.lower() in pad_name.lower():
                layout.update(overrides)
        return layout


GAMEPAD_ENTRIES = ("deadzone", "takeover", "confirm", "axes", "buttons", "commands", "layouts")


def gamepad_config_from_dict(data: Mapping[str, Any], action_space: gym.Space) -> GamepadConfig:
    """Build and validate a GamepadConfig from a parsed TOML/JSON table; anything malformed
    (an unknown entry, a value of the wrong type or shape) is one ConfigError."""
    if not isinstance(data, Mapping):
        raise ConfigError("a gamepad mapping must be a table ([gamepad] in TOML, an object in JSON)")
    unknown = sorted(str(k) for k in data if k not in GAMEPAD_ENTRIES)
    if unknown:
        raise ConfigError(f"gamepad mapping has unknown entries {unknown} (known: {', '.join(GAMEPAD_ENTRIES)})")
    for name in ("takeover", "confirm"):
        if name in data and not isinstance(data[name], str):
            raise ConfigError(f"gamepad {name} must be a control name such as 'rb', got {data[name]!r}")
    try:
        return _config_from_dict(data, action_space)
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise ConfigError(f"gamepad mapping has a value of the wrong type or shape ({type(exc).__name__}: {exc})") from None


def _config_from_dict(data: Mapping[str, Any], action_space: gym.Space) -> GamepadConfig:
    base = default_gamepad_config(action_space)
    deadzone = data.get("deadzone", base.deadzone)
    if isinstance(deadzone, bool) or not isinstance(deadzone, (int, float)):
        raise ConfigError(f"gamepad deadzone must be a number in [0, 1), got {deadzone!r}")
    deadzone = float(deadzone)
    if not 0.0 <= deadzone < 1.0:
        raise ConfigError(f"gamepad deadzone must be in [0, 1), got {deadzone}")
    axes = dict(base.axes)
    if "axes" in data:
        axes = {}
        for dim, spec in data["axes"].items():
            spec = {"control": spec} if isinstance(spec, str) else dict(spec)
            if spec.get("control") not in AXIS_NAMES:
                raise ConfigError(f"gamepad axis for action dimension {dim} names {spec.get('control')!r}, not one of {', '.join(AXIS_NAMES)}")
            axes[int(dim)] = AxisBinding(spec["control"], float(spec.get("scale", 1.0)), bool(spec.get("invert", False)))
    buttons = dict(base.buttons) if "buttons" not in data else dict(data["buttons"])
    for control, action in buttons.items():
        value = np.int64(action) if isinstance(action_space, gym.spaces.Discrete) and isinstance(action, int) else np.asarray(action, dtype=action_space.dtype)
        if not action_space.contains(value):
            raise ConfigError(f"gamepad button {control!r} maps to {action!r}, which is not an action of {action_space}")
        buttons[control] = value
    if isinstance(action_space, gym.spaces.Box):
        for dim in axes:
            if not 0 <= dim < int(np.prod(action_space.shape)):
                raise ConfigError(f"gamepad axis mapping names action dimension {dim}, but actions have {int(np.prod(action_space.shape))}")
    commands = dict(base.commands)
    commands.update(data.get("commands", {}))

    for control, command in commands.items():
        if command not in DEFAULT_COMMAND_KEYS:
            raise ConfigError(f"gamepad control {control!r} is bound to unknown command {command!r}")
    layouts = {str(k): {str(n): int(i) for n, i in v.items()} for k, v in data.get("layouts", {}).items()}
    return GamepadConfig(
        deadzone=deadzone,
        takeover=str(data.get("takeover", base.takeover)),
        confirm=str(data.get("confirm", base.confirm)),
        axes=axes,
        buttons=buttons,
        commands=commands,
        layouts=layouts,
    )


def default_gamepad_config(action_space: gym.Space, keymap_actions: Mapping[str, Any] | None = None) -> GamepadConfig:
    """Sticks for Box actions (CarRacing-shaped 3-dim: steer, gas=rt, brake=lt); d-pad/stick directions for Discrete."""
    if isinstance(action_space, gym.spaces.Box):
        n = int(np.prod(action_space.shape))
        if n == 3 and float(action_space.low[1]) == 0.0 and float(action_space.low[2]) == 0.0:
            axes = {0: AxisBinding("left_x"), 1: AxisBinding("rt"), 2: AxisBinding("lt")}
        else:
            order = [AxisBinding("left_x"), AxisBinding("left_y", invert=True), AxisBinding("right_x"), AxisBinding("right_y", invert=True)]
            axes = {i: order[i] for i in range(min(n, len(order)))}
        return GamepadConfig(axes=axes)
    buttons: dict[str, Any] = {}
    km = dict(keymap_actions or {})
    for key, controls in (("left", ("dpad_left", "left_x-")), ("right", ("dpad_right", "left_x+")), ("up", ("dpad_up", "left_y-")), ("down", ("dpad_down", "left_y+"))):
        if key in km:
            for c in controls:
                buttons[c] = km[key]
    return GamepadConfig(buttons=buttons)


class _Pad:
    def __init__(self, instance_id: int, name: str, layout: dict[str, int], joystick: Any) -> None:
        self.instance_id = instance_id
        self.name = name
        self.joystick = joystick  # kept open: SDL closes a pad whose handle is garbage-collected
        self.axis_names = {layout[n]: n for n in AXIS_NAMES if n in layout}
        self.button_names = {i: n for n, i in layout.items() if n not in AXIS_NAMES}
        # Triggers rest at -1 on the joystick API; start there so an untouched trigger reads 0.
        self.axes: dict[str, float] = {n: (-1.0 if n in TRIGGERS else 0.0) for n in AXIS_NAMES}
        self.held: set[str] = set()  # held buttons, d-pad directions and stick directions


class GamepadDevice(Device):
    """Any number of pads; the most recently used one drives."""

    name = "gamepad"

    def __init__(self, config: GamepadConfig, action_space: gym.Space) -> None:
        self.config = config
        self.action_space = action_space
        self.pads: dict[int, _Pad] = {}
        self._taking_over = False
        self._last_move: Any = None
        self._moving = False

    # --- hot-plug -------------------------------------------------------------------------
    def _add(self, event: pygame.event.Event) -> list[Intent]:
        joystick = None
        name = getattr(event, "name", None)
        instance_id = getattr(event, "instance_id", None)
        try:
            joystick = pygame.joystick.Joystick(event.device_index)
            instance_id = joystick.get_instance_id()
            name = joystick.get_name()
        except (pygame.error, AttributeError):
            pass  # a synthetic event (tests) or a pad that vanished at once: track it by the event's ids
        if instance_id is None:
            instance_id = getattr(event, "device_index", 0)
        name = name or "gamepad"
        self.pads[instance_id] = _Pad(instance_id, name, self.config.layout_for(name), joystick)
        return []

    def _remove(self, event: pygame.event.Event) -> list[Intent]:
        pad = self.pads.pop(getattr(event, "instance_id", -1), None)
        out: list[Intent] = []
        if pad is None:
            return out
        if self._taking_over and not any(self._control_held(p, self.config.takeover) for p in self.pads.values()):
            self._taking_over = False
            out.append(Intent(IntentKind.RELEASE, device=self.name))
        self._emit_move(out)
        return out

    def connected(self) -> list[str]:
        return [p.name for p in self.pads.values()]

    # --- state ----------------------------------------------------------------------------
    def _dead(self, v: float) -> float:
        dz = self.config.deadzone
        if abs(v) < dz:
            return 0.0
        return float(np.sign(v) * (abs(v) - dz) / (1.0 - dz))

    def _axis_value(self, pad: _Pad, control: str) -> float:
        raw = pad.axes.get(control, 0.0)
        if control in TRIGGERS:
            t = (raw + 1.0) / 2.0
            return 0.0 if t < self.config.deadzone else (t - self.config.deadzone) / (1.0 - self.config.deadzone)
        return self._dead(raw)

    def _control_held(self, pad: _Pad, control: str) -> bool:
        if control in AXIS_NAMES:
            return self._axis_value(pad, control) > 0.5
        return control in pad.held

    def held_action(self) -> Any:
        """The action the pads express now, or None when every control is at rest."""
        space = self.action_space
        if isinstance(space, gym.spaces.Box) and self.config.axes:
            low = np.broadcast_to(space.low, space.shape).ravel().astype(np.float64)
            high = np.broadcast_to(space.high, space.shape).ravel().astype(np.float64)
            act = np.clip(np.zeros_like(low), low, high)
            any_moved = False
            for pad in self.pads.values():
                for dim, binding in self.config.axes.items():
                    v = self._axis_value(pad, binding.control) * binding.scale * (-1.0 if binding.invert else 1.0)
                    if v == 0.0:
                        continue
                    any_moved = True
                    if binding.control in TRIGGERS and low[dim] >= 0.0:
                        act[dim] = low[dim] + v * (high[dim] - low[dim])  # a trigger covers the whole range
                    else:
                        act[dim] = v * (high[dim] if v > 0 else -low[dim]) if low[dim] < 0 < high[dim] else low[dim] + (v + 1) / 2 * (high[dim] - low[dim])
            if not any_moved:
                return None
            return np.clip(act, low, high).astype(space.dtype).reshape(space.shape)
        for pad in self.pads.values():
            for control, action in self.config.buttons.items():
                if control in pad.held:
                    return action
        return None

    def _emit_move(self, out: list[Intent]) -> None:
        action = self.held_action()
        moving = action is not None
        if moving != self._moving or (moving and not np.array_equal(action, self._last_move)):
            self._moving = moving
            self._last_move = action
            out.append(Intent(IntentKind.MOVE, action, device=self.name))

    # --- events ---------------------------------------------------------------------------
    def handle(self, event: pygame.event.Event) -> list[Intent]:
        if event.type == pygame.JOYDEVICEADDED:
            return self._add(event)
        if event.type == pygame.JOYDEVICEREMOVED:
            return self._remove(event)
        if event.type not in (pygame.JOYAXISMOTION, pygame.JOYBUTTONDOWN, pygame.JOYBUTTONUP, pygame.JOYHATMOTION):
            return []
        pad = self.pads.get(getattr(event, "instance_id", -1))
        if pad is None:
            # A pad present before the app started sends no ADDED event on some platforms; adopt it.
            pad = _Pad(event.instance_id, "gamepad", self.config.layout_for("gamepad"), None)
            self.pads[event.instance_id] = pad
        out: list[Intent] = []
        was_taking_over = self._taking_over
        pressed: list[str] = []
        if event.type == pygame.JOYAXISMOTION:
            control = pad.axis_names.get(event.axis)
            if control is None:
                return out
            pad.axes[control] = float(event.value)
            if control not in TRIGGERS:
                v = self._dead(float(event.value))
                for sign, suffix in ((-1, "-"), (1, "+")):
                    name = control + suffix
                    if v * sign > 0.5 and name not in pad.held:
                        pad.held.add(name)
                        pressed.append(name)
                    elif v * sign <= 0.5:
                        pad.held.discard(name)
        elif event.type in (pygame.JOYBUTTONDOWN, pygame.JOYBUTTONUP):
            control = pad.button_names.get(event.button, f"button{event.button}")
            if event.type == pygame.JOYBUTTONDOWN:
                pad.held.add(control)
                pressed.append(control)
            else:
                pad.held.discard(control)
        else:  # hat: (x, y) with y = +1 up
            x, y = event.value
            now = {n for n, on in (("dpad_left", x < 0), ("dpad_right", x > 0), ("dpad_up", y > 0), ("dpad_down", y < 0)) if on}
            pressed.extend(sorted(now - pad.held))
            pad.held = (pad.held - set(HAT_DIRECTIONS)) | now

        self._taking_over = any(self._control_held(p, self.config.takeover) for p in self.pads.values())
        if self._taking_over and not was_taking_over:
            out.append(Intent(IntentKind.TAKEOVER, device=self.name))
        elif was_taking_over and not self._taking_over:
            out.append(Intent(IntentKind.RELEASE, device=self.name))
        for control in pressed:
            if control == self.config.confirm:
                out.append(Intent(IntentKind.LABEL, self.held_action(), device=self.name))
            elif control in self.config.commands and control != self.config.takeover:
                command = self.config.commands[control]
                if command.startswith("goto:"):
                    out.append(Intent(IntentKind.GOTO, command.split(":", 1)[1], device=self.name))
                else:
                    out.append(Intent(IntentKind(command), device=self.name))
        self._emit_move(out)
        return out
