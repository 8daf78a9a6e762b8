"""The expert interface and DART-style noise injection.

An :class:`Expert` maps ONE observation to ONE action of the env's action space. Imitation
algorithms such as DAgger ask the expert about states the learner visits, which may be far
from anything the expert would reach itself, so every expert here is a function of the
observation (plus, for experts that need privileged state, the bound env's current state);
internal state, if any, is a cache that :meth:`Expert.reset` clears. Experts are
:class:`ilcore.types.Acts`, so anything that takes a policy (``ilcore.eval.evaluate``) takes one.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from ilcore import spaces as ispaces
from ilcore.errors import ConfigError
from ilcore.types import Acts, Nested


class Expert(Acts):
    """A scripted policy for one environment.

    Subclasses set ``env_ids`` (the gymnasium ids they solve), ``documented_return`` (mean
    return over seeds 0..19 measured by ``benchmarks/experts.py``) and implement :meth:`act`.

    Attributes:
        action_space: the env's action space; actions returned by :meth:`act` are members.
        documented_return: measured mean episode return, or None if never measured.
        needs_env: True when :meth:`act` reads privileged state from a bound env.
    """

    env_ids: ClassVar[tuple[str, ...]] = ()
    documented_return: ClassVar[float | None] = None
    needs_env: ClassVar[bool] = False

    def __init__(self, action_space: gym.Space) -> None:
        self.action_space = action_space
        self._env: gym.Env | None = None

    def act(self, obs: Any) -> Any:
        """The expert's action for a single (unbatched) observation."""
        raise NotImplementedError

    def act_batch(self, obs_batch: Nested) -> np.ndarray:
        """One action per observation of a batch (leading axis), stacked; :meth:`act` row by row.

        Refused for experts that read simulator state (``needs_env``): the bound env holds one
        state, which the other rows of a batch from N envs are not.
        """
        if self.needs_env:
            raise ConfigError(
                f"{type(self).__name__} reads the state of its one bound env, so it acts on single observations only."
            )
        return np.stack([np.asarray(self.act(ispaces.index(obs_batch, i))) for i in range(ispaces.batch_len(obs_batch))])

    def reset(self) -> None:
        """Called at episode start; clears any per-episode cache."""

    def bind(self, env: gym.Env) -> "Expert":
        """Give the expert access to the env's privileged state (wrappers are looked through).

        Returns self so that ``make_expert(...).bind(env)`` reads naturally.
        """
        self._env = env.unwrapped
        return self

    @property
    def env(self) -> gym.Env:
        """The bound (unwrapped) env; raises ConfigError if :meth:`bind` was never called."""
        if self._env is None:
            raise ConfigError(
                f"{type(self).__name__} reads the simulator state, so call expert.bind(env) before asking it to act."
            )
        return self._env


class NoisyExpert(Expert):
    """DART-style noise injection around another expert's action.

    The executed action is perturbed so that recorded demonstrations cover the states a
    slightly-wrong learner drifts into; the clean action (``clean_action``) stays the label.

    - Box actions: ``a + N(0, (noise * (high - low) / 2)^2)`` per dimension, clipped to the
      bounds; for unbounded dimensions the scale is ``noise`` itself.
    - Discrete actions: with probability ``noise`` a uniformly random action (which may equal
      the expert's), otherwise the expert's action.

    Args:
        expert: the expert whose action is perturbed.
        noise: >= 0 (Discrete: <= 1); 0 returns the expert's action unchanged.
        rng: a numpy Generator or an int seed (None: fresh entropy).
    """

    def __init__(self, expert: Expert, noise: float, rng: np.random.Generator | int | None = None) -> None:
        super().__init__(expert.action_space)
        space = expert.action_space
        if not np.isfinite(noise) or noise < 0:
            raise ConfigError(f"noise must be a finite number >= 0, got {noise}.")
        if isinstance(space, gym.spaces.Discrete) and noise > 1:
            raise ConfigError(f"noise for a discrete action space is a probability in [0, 1], got {noise}.")
        if not isinstance(space, (gym.spaces.Discrete, gym.spaces.Box)):
            raise ConfigError(f"NoisyExpert supports Box and Discrete action spaces, not {type(space).__name__}.")
        self.expert = expert
        self.noise = float(noise)
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.clean_action: Any = None  # the expert's action behind the last act() call
        if isinstance(space, gym.spaces.Box):
            finite = np.isfinite(space.low) & np.isfinite(space.high)
            half_range = np.where(finite, (space.high.astype(np.float64) - space.low) / 2.0, 1.0)
            self._sigma = self.noise * half_range  # shape = action shape

    @property
    def documented_return(self) -> float | None:  # type: ignore[override]
        # The noisy expert scores lower than the clean one; only the clean figure is measured.
        return None

    @property
    def needs_env(self) -> bool:  # type: ignore[override]
        return self.expert.needs_env

    def bind(self, env: gym.Env) -> "NoisyExpert":
        self.expert.bind(env)
        super().bind(env)
        return self

    def reset(self) -> None:
        self.expert.reset()
        self.clean_action = None

    def act(self, obs: Any) -> Any:
        clean = self.expert.act(obs)
        self.clean_action = clean
        return self.perturb(clean)

    def act_with_label(self, obs: Any) -> tuple[Any, Any]:
        """(executed noisy action, clean expert action) for one observation."""
        noisy = self.act(obs)
        return noisy, self.clean_action

    def perturb(self, action: Any) -> Any:
        """A noisy copy of ``action`` (an element of the action space)."""
        space = self.action_space
        if self.noise == 0:
            return action
        if isinstance(space, gym.spaces.Discrete):
            if self.rng.random() < self.noise:
                return int(space.start + self.rng.integers(space.n))
            return action
        assert isinstance(space, gym.spaces.Box)  # __init__ refused every other space
        noisy = np.asarray(action, dtype=np.float64) + self.rng.normal(size=space.shape) * self._sigma
        return np.clip(noisy, space.low, space.high).astype(space.dtype)
