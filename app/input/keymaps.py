"""Keyboard keymaps: key combinations -> actions, in the shape of gymnasium.utils.play's
``keys_to_action``, plus the app's command keys.

A keymap file (TOML or JSON) looks like::

    noop = 0                 # action when no mapped key is held (optional)
    [keys]                   # key combination -> action; "+" joins keys of a combination
    left = 0
    right = 1
    "up+left" = [-1.0, 1.0, 0.0]
    [commands]               # optional: rebind app commands (command name -> key)
    takeover = "space"

Key names are pygame's (``pygame.key.name``): ``a``, ``left``, ``space``, ``return``...
A flat mapping without a ``[keys]`` table is accepted too, and, as in gymnasium, a key made of
up to four distinct single characters (``"wa"``) that is not a key name means the combination
of those characters.
Every action is checked against the env's action space when the keymap is built; a bad entry is
a :class:`~ilcore.errors.ConfigError` naming the entry.
"""

from __future__ import annotations

import json
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import gymnasium as gym
import numpy as np
import pygame

from app.input.action_names import ActionNames, check_name
from ilcore.errors import ConfigError

# Command name -> default key(s). Chosen to stay clear of arrows, WASD and digits, which keymaps use.
DEFAULT_COMMAND_KEYS: dict[str, tuple[str, ...]] = {
    "help": ("f1", "?"),
    "quit": ("escape",),
    "pause": ("p",),
    "slower": ("-",),
    "faster": ("=",),
    "restart": ("r",),
    "discard": ("backspace",),
    "takeover": ("space",),
    "accept": ("return",),
    "skip": ("tab",),
    "undo": ("z",),
    "step_back": (",",),
    "step_forward": (".",),
    "next": ("n",),
    "keep_policy": ("k",),
    "goto:demo": ("f2",),
    "goto:train": ("f3",),
    "goto:dagger": ("f4",),
    "goto:review": ("f5",),
    "goto:watch": ("f6",),
    "goto:summary": ("f7",),
}

COMMAND_DESCRIPTIONS: dict[str, str] = {
    "help": "show / hide this help",
    "quit": "quit (everything is already saved)",
    "pause": "pause / resume",
    "slower": "slower",
    "faster": "faster",
    "restart": "restart the episode",
    "discard": "discard the last episode",
    "takeover": "hold to take over from the learner",
    "accept": "accept the learner's action",
    "skip": "skip this state",
    "undo": "undo the last label",
    "step_back": "step back one frame",
    "step_forward": "step forward one frame",
    "next": "next stage of the session (or continue once a stage is done)",
    "keep_policy": "keep the previous policy (when the new one evaluates worse)",
    "goto:demo": "demonstrate",
    "goto:train": "train",
    "goto:dagger": "DAgger round",
    "goto:review": "review queue",
    "goto:watch": "watch the policy",
    "goto:summary": "summary",
}


def key_code(name: str) -> int:
    """pygame key code for a key name; raises ConfigError for an unknown name."""
    if name == "?":
        return pygame.K_QUESTION
    with warnings.catch_warnings():
        # key_code warns before pygame.init(); the table it reads is static, so the answer holds.
        warnings.simplefilter("ignore")
        try:
            return pygame.key.key_code(name)
        except ValueError:
            raise ConfigError(f"unknown key name {name!r} in keymap (use pygame key names such as 'a', 'left', 'space')") from None


def key_label(code: int) -> str:
    """Short printable name of a key code, for the help overlay."""
    if code == pygame.K_QUESTION:
        return "?"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        name = pygame.key.name(code)
    named = {"return": "Enter", "escape": "Esc", "backspace": "Backspace", "space": "Space",
             "tab": "Tab", "left": "\u2190", "right": "\u2192", "up": "\u2191", "down": "\u2193"}  # arrows as on the keys
    return named.get(name, name.upper() if len(name) <= 3 else name.capitalize())


def _parse_keys(spec: str) -> tuple[int, ...]:
    """Key codes of a combination, in the order written ("up+left" is up, then left)."""
    spec = spec.strip()
    if "+" in spec and spec != "+":
        parts = [p.strip() for p in spec.split("+")]
    else:
        try:
            return (key_code(spec),)
        except ConfigError:
            if 1 < len(spec) <= 4 and len(set(spec)) == len(spec):
                parts = list(spec)  # gymnasium style: "wa" is w and a together (up to 4 distinct keys)
            else:
                raise
    return tuple(key_code(p) for p in parts)


@dataclass(frozen=True)
class Keymap:
    """Key combinations -> actions for one action space.

    combos: frozenset of pygame key codes -> action (a valid element of the action space)
    noop:   the action taken when nothing mapped is held (demonstrations must keep moving)
    commands: pygame key code -> command name (see DEFAULT_COMMAND_KEYS)
    """

    combos: Mapping[frozenset[int], Any]
    noop: Any
    commands: Mapping[int, str] = field(default_factory=dict)
    names: Mapping[frozenset[int], str] = field(default_factory=dict)
    actions: ActionNames | None = None  # what each action is called and which keys give it

    def resolve(self, pressed: set[int] | frozenset[int]) -> frozenset[int] | None:
        """The largest mapped combination fully held, so an unrelated key does not cancel it."""
        best: frozenset[int] | None = None
        for combo in self.combos:
            if combo <= pressed and (best is None or len(combo) > len(best)):
                best = combo
        return best

    def action_for(self, pressed: set[int] | frozenset[int]) -> Any:
        combo = self.resolve(pressed)
        return self.noop if combo is None else self.combos[combo]

    def help_lines(self) -> list[tuple[str, str]]:
        """(key, what it does) for every action combination, for the help overlay."""
        out = []
        for combo, action in self.combos.items():
            name = self.names.get(combo) or "+".join(key_label(k) for k in sorted(combo))
            out.append((name, self.actions.name(action) if self.actions is not None else f"action {_fmt_action(action)}"))
        return out


def _fmt_action(action: Any) -> str:
    arr = np.asarray(action)
    if arr.ndim == 0:
        return str(arr.item())
    return "[" + ", ".join(f"{v:g}" for v in arr.ravel()) + "]"


def _coerce_action(space: gym.Space, value: Any, where: str) -> Any:
    """Turn a keymap value into an element of ``space`` or raise ConfigError naming ``where``."""
    try:
        if isinstance(space, gym.spaces.Discrete):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError
            action: Any = np.int64(value)
        elif isinstance(space, gym.spaces.Box):
            action = np.asarray(value, dtype=space.dtype).reshape(space.shape)
        elif isinstance(space, (gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)):
            action = np.asarray(value, dtype=space.dtype).reshape(space.shape)
        else:
            raise ConfigError(f"keymaps support Discrete, Box, MultiDiscrete and MultiBinary actions, not {space}")
    except (ValueError, TypeError):
        raise ConfigError(f"keymap entry {where} maps to {value!r}, which is not an action of {space}") from None
    if not space.contains(action):
        raise ConfigError(f"keymap entry {where} maps to {value!r}, which is not an action of {space}")
    return action


def build_keymap(
    keys_to_action: Mapping[Any, Any],
    action_space: gym.Space,
    *,
    noop: Any = None,
    commands: Mapping[str, str | list[str]] | None = None,
    env_id: str = "",
    action_names: Mapping[str, Any] | None = None,
) -> Keymap:
    """Validate a ``keys_to_action`` mapping against ``action_space`` and build a Keymap.

    Keys may be strings ("left", "a+w", "wa") or tuples of pygame key codes, as in gymnasium.
    A value may also be ``{action = ..., name = "..."}`` to name that action; ``action_names`` is
    the file's ``[names]`` table (see :mod:`app.input.action_names`), ``env_id`` picks the built-in names.
    """
    combos: dict[frozenset[int], Any] = {}
    names: dict[frozenset[int], str] = {}
    glyphs: list[tuple[Any, str]] = []
    named: list[tuple[Any, str]] = []
    for spec, value in keys_to_action.items():
        where = repr(spec)
        if isinstance(spec, str):
            keys = _parse_keys(spec)
        elif isinstance(spec, (tuple, list)):
            keys = tuple(int(k) if not isinstance(k, str) else key_code(k) for k in sorted(spec, key=str))
        elif isinstance(spec, int):
            keys = (spec,)
        else:
            raise ConfigError(f"keymap entry {where} is not a key name or a tuple of key codes")
        combo = frozenset(keys)
        if not combo:
            raise ConfigError(f"keymap entry {where} names no key")
        if combo in combos:
            raise ConfigError(f"keymap entry {where} repeats a key combination given earlier")
        if isinstance(value, Mapping):
            extra = sorted(str(k) for k in value if k not in ("action", "name"))
            if "action" not in value or extra:
                raise ConfigError(f"keymap entry {where} must be an action or {{action = ..., name = \"...\"}}")
            if "name" in value:
                named.append((_coerce_action(action_space, value["action"], where), check_name(value["name"], f"entry {where} name")))
            value = value["action"]
        combos[combo] = _coerce_action(action_space, value, where)
        glyphs.append((combos[combo], "+".join(key_label(k) for k in dict.fromkeys(keys))))
        if isinstance(spec, str):
            names[combo] = spec
    if not combos:
        raise ConfigError("keymap maps no keys to actions")
    if noop is None:
        noop_action = _default_noop(action_space)
    else:
        noop_action = _coerce_action(action_space, noop, "'noop'")

    command_keys: dict[int, str] = {}
    bound = dict(DEFAULT_COMMAND_KEYS)
    for name, keys in (commands or {}).items():
        if name not in DEFAULT_COMMAND_KEYS:
            raise ConfigError(f"keymap [commands] has unknown command {name!r} (known: {', '.join(DEFAULT_COMMAND_KEYS)})")
        bound[name] = (keys,) if isinstance(keys, str) else tuple(keys)
    action_keys = set().union(*combos)
    for name, keys in bound.items():
        for k in keys:
            code = key_code(k)
            if code in action_keys:
                raise ConfigError(f"key {k!r} is both an action key and the {name!r} command; rebind one of them in the keymap")
            command_keys[code] = name
    actions = ActionNames.for_env(env_id, action_space, named=named, table=action_names, keys=glyphs, idle=noop_action)
    return Keymap(combos=combos, noop=noop_action, commands=command_keys, names=names, actions=actions)


def _default_noop(space: gym.Space) -> Any:
    if isinstance(space, gym.spaces.Discrete):
        return np.int64(space.start)
    if isinstance(space, gym.spaces.Box):
        # zero where allowed (no force), else the nearest bound
        return np.clip(np.zeros(space.shape, dtype=space.dtype), space.low, space.high).astype(space.dtype)
    return space.sample() * 0


def load_keymap(path: str | Path, action_space: gym.Space, env_id: str = "") -> Keymap:
    """Read a TOML or JSON keymap file and validate it against ``action_space`` (``env_id``: the
    env whose built-in action names the file's ``[names]`` override)."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read keymap {path}: {exc.strerror}") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = tomllib.loads(text.decode("utf-8"))
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"keymap {path.name} is not valid {'JSON' if path.suffix.lower() == '.json' else 'TOML'}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"keymap {path.name} must be a table/object of key -> action")
    data = dict(data)
    noop = data.pop("noop", None)
    commands = data.pop("commands", None)
    action_names = data.pop("names", None)
    data.pop("env", None)  # informational
    keys = data.pop("keys", None)
    if keys is None:
        keys = data
    elif data:
        raise ConfigError(f"keymap {path.name} has unexpected entries {sorted(data)} next to [keys]")
    if not isinstance(keys, dict):
        raise ConfigError(f"keymap {path.name}: [keys] must map key names to actions")
    return build_keymap(keys, action_space, noop=noop, commands=commands, env_id=env_id, action_names=action_names)


def _unit_directions() -> dict[str, list[float]]:
    """Arrows and WASD -> the 4 unit directions; two held together -> the unit diagonal between them."""
    d = float(np.float32(np.sqrt(0.5)))
    vec = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, 1.0), "down": (0.0, -1.0)}
    wasd = {"left": "a", "right": "d", "up": "w", "down": "s"}
    keys: dict[str, list[float]] = {}
    for names in (dict(zip(vec, vec)), wasd):
        for direction, (x, y) in vec.items():
            keys[names[direction]] = [x, y]
        for vertical in ("up", "down"):
            for horizontal in ("left", "right"):
                keys[f"{names[vertical]}+{names[horizontal]}"] = [d * vec[horizontal][0], d * vec[vertical][1]]
    return keys


# Default keymaps for the envs the shipped experts cover. Arrows drive; comments say what the action does.
_DEFAULT_KEYS: dict[str, tuple[dict[str, Any], Any]] = {
    "CartPole": ({"left": 0, "right": 1}, 0),  # push cart left / right; no "do nothing" action exists
    "Corridor": ({"left": 0, "right": 2}, 1),  # ilcore/Corridor-v0: step left / right, 1 = stay
    "MountainCar": ({"left": 0, "right": 2}, 1),  # accelerate left / right, 1 = coast
    "Acrobot": ({"left": 0, "right": 2}, 1),  # torque -1 / +1, 1 = no torque
    "LunarLander": ({"up": 2, "left": 1, "right": 3}, 0),  # main engine, left / right orientation engine
    "CarRacing": (
        {
            "left": [-1.0, 0.0, 0.0],
            "right": [1.0, 0.0, 0.0],
            "up": [0.0, 1.0, 0.0],
            "down": [0.0, 0.0, 0.8],
            "up+left": [-1.0, 1.0, 0.0],
            "up+right": [1.0, 1.0, 0.0],
            "down+left": [-1.0, 0.0, 0.8],
            "down+right": [1.0, 0.0, 0.8],
        },
        [0.0, 0.0, 0.0],
    ),
    "Pendulum": ({"left": [-2.0], "right": [2.0]}, [0.0]),
    "MountainCarContinuous": ({"left": [-1.0], "right": [1.0]}, [0.0]),
    "LunarLanderContinuous": (
        {"up": [1.0, 0.0], "left": [0.0, -1.0], "right": [0.0, 1.0], "up+left": [1.0, -1.0], "up+right": [1.0, 1.0]},
        [-1.0, 0.0],
    ),
    # ilcore/ParticleSequence-v0: velocity in [-1, 1]^2 (x right, y up); diagonals are unit length too.
    "ParticleSequence": (_unit_directions(), [0.0, 0.0]),
}


def default_keymap(env_id: str, action_space: gym.Space, env_kwargs: Mapping[str, Any] | None = None) -> Keymap:
    """The built-in keymap for ``env_id``, or a generic one derived from the action space."""
    base = env_id.split("/")[-1].split("-")[0]
    if base == "LunarLander" and isinstance(action_space, gym.spaces.Box):
        base = "LunarLanderContinuous"
    if base in _DEFAULT_KEYS:
        keys, noop = _DEFAULT_KEYS[base]
        try:
            return build_keymap(keys, action_space, noop=noop, env_id=env_id)
        except ConfigError:
            pass  # a variant with other spaces (e.g. kwargs); fall through to the generic map
    if isinstance(action_space, gym.spaces.Discrete):
        if action_space.n > 9:
            raise ConfigError(f"{env_id} has {action_space.n} discrete actions; give a keymap with --keymap")
        keys = {str(i + 1): int(action_space.start + i) for i in range(action_space.n)}
        return build_keymap(keys, action_space, env_id=env_id)
    if isinstance(action_space, gym.spaces.Box) and action_space.shape and len(action_space.shape) == 1:
        if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
            raise ConfigError(f"{env_id} has an unbounded Box action space; the app needs bounded actions")
        noop_action = _default_noop(action_space)
        keys = {}
        pairs = [("left", "right"), ("down", "up"), ("a", "d"), ("s", "w")]
        for dim, (lo_key, hi_key) in enumerate(pairs[: action_space.shape[0]]):
            lo = noop_action.copy()
            lo[dim] = action_space.low[dim]
            hi = noop_action.copy()
            hi[dim] = action_space.high[dim]
            keys[lo_key] = lo.tolist()
            keys[hi_key] = hi.tolist()
        return build_keymap(keys, action_space, noop=noop_action.tolist(), env_id=env_id)
    raise ConfigError(f"{env_id} has action space {action_space}; give a keymap with --keymap")
