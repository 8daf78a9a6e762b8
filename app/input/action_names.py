"""What each action is called, and which keys give it: the one place the query prompt, the help
overlay and the side panels take action names from ("learner proposes push left (←)").

Discrete actions have a name each ("push left"); Box actions are described component by component
("steer -0.6, gas 0.3", zero components left out) unless the vector has a name of its own ("gas",
the vectors the built-in keymaps send). Names come from the built-in table for the env, overridden
by a keymap file's ``[names]`` table and ``{action = ..., name = ...}`` entries; an env the table
does not know gets "action 2" and "action (0.5, -0.3)". Pure Python: no pygame here, the keymap
hands over its key glyphs as strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import gymnasium as gym
import numpy as np

from ilcore.errors import ConfigError

# Discrete actions by env family, in action order.
_DISCRETE: dict[str, tuple[str, ...]] = {
    "CartPole": ("push left", "push right"),
    "MountainCar": ("push left", "no push", "push right"),
    "Acrobot": ("torque -1", "no torque", "torque +1"),
    "LunarLander": ("do nothing", "fire left engine", "fire main engine", "fire right engine"),
    "Corridor": ("move left", "stay", "move right"),  # ilcore/Corridor-v0
}

# Box actions: one name per component, and names of the vectors the built-in keymaps send.
_COMPONENTS: dict[str, tuple[str, ...]] = {
    "CarRacing": ("steer", "gas", "brake"),
    "Pendulum": ("torque",),
    "MountainCarContinuous": ("force",),
    "LunarLanderContinuous": ("main throttle", "lateral throttle"),
    "ParticleSequence": ("x speed", "y speed"),  # ilcore/ParticleSequence-v0, velocity in [-1, 1]^2
}
_D = float(np.float32(np.sqrt(0.5)))  # the particle keymap's unit diagonals
_VECTORS: dict[str, tuple[tuple[tuple[float, ...], str], ...]] = {
    "CarRacing": (
        ((0.0, 0.0, 0.0), "coast"), ((-1.0, 0.0, 0.0), "steer left"), ((1.0, 0.0, 0.0), "steer right"),
        ((0.0, 1.0, 0.0), "gas"), ((0.0, 0.0, 0.8), "brake"),
        ((-1.0, 1.0, 0.0), "gas + steer left"), ((1.0, 1.0, 0.0), "gas + steer right"),
        ((-1.0, 0.0, 0.8), "brake + steer left"), ((1.0, 0.0, 0.8), "brake + steer right"),
    ),
    # main throttle fires only above 0; lateral below -0.5 fires the left engine, above 0.5 the right
    "LunarLanderContinuous": (
        ((-1.0, 0.0), "engines off"), ((1.0, 0.0), "fire main engine"), ((0.0, -1.0), "fire left engine"),
        ((0.0, 1.0), "fire right engine"), ((1.0, -1.0), "fire main + left engine"), ((1.0, 1.0), "fire main + right engine"),
    ),
    "ParticleSequence": (
        ((0.0, 0.0), "stay"), ((-1.0, 0.0), "move left"), ((1.0, 0.0), "move right"), ((0.0, 1.0), "move up"),
        ((0.0, -1.0), "move down"), ((-_D, _D), "move up-left"), ((_D, _D), "move up-right"),
        ((-_D, -_D), "move down-left"), ((_D, -_D), "move down-right"),
    ),
}

MAX_NAME = 40  # characters: a name has to fit the prompt and a help row


def env_family(env_id: str, action_space: gym.Space) -> str:
    """"CarRacing" for "CarRacing-v3"; LunarLander with Box actions is "LunarLanderContinuous"."""
    base = env_id.split("/")[-1].split("-")[0]
    if base == "LunarLander" and isinstance(action_space, gym.spaces.Box):
        return "LunarLanderContinuous"
    return base


def _number(v: float) -> str:
    s = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _key(action: Any) -> tuple:
    """A hashable key for an action (rounded so float noise does not split one action in two)."""
    arr = np.asarray(action)
    return tuple(np.round(arr.astype(np.float64).ravel(), 4).tolist())


@dataclass(frozen=True)
class ActionNames:
    """Names and key glyphs of one env's actions.

    discrete:   Discrete action -> name
    components: Box component names (empty: unnamed, described as a tuple)
    vectors:    (action key, name) of Box vectors with a name of their own
    keys:       (action, key glyphs) in keymap order, e.g. (0, "←"); one entry per key combination
    idle:       the action sent while no key is held (None: not shown)
    """

    space: gym.Space
    discrete: Mapping[int, str]
    components: tuple[str, ...] = ()
    vectors: tuple[tuple[tuple, str], ...] = ()
    keys: tuple[tuple[Any, str], ...] = ()
    idle: Any = None

    @classmethod
    def for_env(cls, env_id: str, action_space: gym.Space, *, named: Sequence[tuple[Any, str]] = (),
                table: Mapping[str, Any] | None = None, keys: Sequence[tuple[Any, str]] = (), idle: Any = None) -> "ActionNames":
        """The built-in names of ``env_id``'s actions, overridden by a keymap file's ``[names]``
        ``table`` and its named entries ``named`` ((action, name) pairs, already valid actions)."""
        family = env_family(env_id, action_space)
        discrete: dict[int, str] = {}
        components: tuple[str, ...] = ()
        vectors: dict[tuple, str] = {}
        if isinstance(action_space, gym.spaces.Discrete):
            start, n = int(action_space.start), int(action_space.n)
            builtin = _DISCRETE.get(family, ())
            for i in range(n):
                discrete[start + i] = builtin[i] if len(builtin) == n else f"action {start + i}"
        elif isinstance(action_space, gym.spaces.Box):
            dims = int(np.prod(action_space.shape))
            builtin_c = _COMPONENTS.get(family, ())
            components = builtin_c if len(builtin_c) == dims else ()
            for vec, name in _VECTORS.get(family, ()):
                if len(vec) == dims:
                    vectors[_key(vec)] = name
        parsed = parse_names_table(table or {}, action_space)
        discrete.update(parsed.get("discrete", {}))
        components = parsed.get("components", components)
        for action, name in named:
            if isinstance(action_space, gym.spaces.Discrete):
                discrete[int(action)] = name
            else:
                vectors[_key(action)] = name
        return cls(action_space, discrete, tuple(components), tuple(vectors.items()), tuple(keys), idle)

    def name(self, action: Any) -> str:
        """"push left", "steer -0.6, gas 0.3", "action 2"; "-" for no action."""
        if action is None:
            return "-"
        arr = np.asarray(action)
        if isinstance(self.space, gym.spaces.Discrete) and arr.size == 1:
            a = int(arr.reshape(()))
            return self.discrete.get(a, f"action {a}")
        key = _key(arr)
        for vec, name in self.vectors:
            if len(vec) == len(key) and np.allclose(vec, key, atol=1e-3):
                return name
        values = arr.astype(np.float64).ravel()
        if not self.components or len(self.components) != len(values):
            return "action (" + ", ".join(_number(v) for v in values) + ")"
        low = np.asarray(self.space.low, np.float64).ravel()  # a sign on components that go both ways: "torque +2"
        parts = [f"{c} {'+' if v > 0 and lo < 0 else ''}{_number(v)}" for c, v, lo in zip(self.components, values, low) if _number(v) != "0"]
        return ", ".join(parts) if parts else ", ".join(f"{c} 0" for c in self.components)

    def key_glyphs(self, action: Any) -> str:
        """The keys that give ``action`` ("←", "↑+← / W+A"), or "" when no key gives exactly it."""
        if action is None:
            return ""
        key = _key(action)
        return " / ".join(g for a, g in self.keys if _key(a) == key)

    def describe(self, action: Any) -> str:
        """The name with its keys, for prompts: "push left (←)"."""
        glyphs = self.key_glyphs(action)
        return self.name(action) + (f" ({glyphs})" if glyphs else "")

    def rows(self) -> list[tuple[str, str]]:
        """(key glyphs, name) per action the keymap gives, in keymap order, then what no key does."""
        out: list[tuple[str, str]] = []
        seen: set[tuple] = set()
        for action, _ in self.keys:
            k = _key(action)
            if k not in seen:
                seen.add(k)
                out.append((self.key_glyphs(action), self.name(action)))
        if self.idle is not None and _key(self.idle) not in seen:
            out.append(("no key", self.name(self.idle)))
        return out


def parse_names_table(table: Any, action_space: gym.Space) -> dict[str, Any]:
    """Validate a keymap's ``[names]`` table: ``"0" = "push left"`` per Discrete action, or
    ``components = ["steer", "gas", "brake"]`` for a 1-D Box. Returns ``{"discrete": {...}}`` or
    ``{"components": (...)}``; anything else is a ConfigError naming the entry."""
    if not isinstance(table, Mapping):
        raise ConfigError("keymap [names] must be a table: action -> name, or components = [...]")
    out: dict[str, Any] = {}
    if isinstance(action_space, gym.spaces.Discrete):
        names: dict[int, str] = {}
        for k, v in table.items():
            try:
                a = int(str(k).strip())
            except ValueError:
                raise ConfigError(f"keymap [names] entry {k!r} is not an action number of {action_space}") from None
            if not action_space.contains(np.int64(a)):
                raise ConfigError(f"keymap [names] entry {k!r} is not an action of {action_space}")
            names[a] = check_name(v, f"[names] {k!r}")
        if names:
            out["discrete"] = names
        return out
    if isinstance(action_space, gym.spaces.Box):
        unknown = [str(k) for k in table if k != "components"]
        if unknown:
            raise ConfigError(f"keymap [names] for Box actions takes only components = [...], not {unknown}")
        if "components" in table:
            comps = table["components"]
            dims = int(np.prod(action_space.shape))
            if not isinstance(comps, list) or len(comps) != dims:
                raise ConfigError(f"keymap [names] components must list {dims} names, one per action dimension of {action_space}")
            out["components"] = tuple(check_name(c, "[names] components") for c in comps)
        return out
    if table:
        raise ConfigError(f"keymap [names] applies to Discrete or Box actions, not {action_space}")
    return out


def check_name(value: Any, where: str) -> str:
    """A name as shown on screen: a short one-line string."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME or any(c in value for c in "\n\r\t"):
        raise ConfigError(f"keymap {where} must be a name of 1 to {MAX_NAME} characters on one line, got {value!r}")
    return value.strip()


def action_names_of(session: Any) -> ActionNames | None:
    """The session's action names: the keymap's (set by the app loop), else the env's built-in
    names without keys; None without a session (e.g. one-shot)."""
    if session is None:
        return None
    names = getattr(session, "action_names", None)
    if names is None:
        names = ActionNames.for_env(session.settings.env_id, session.env.action_space)
        session.action_names = names
    return names
