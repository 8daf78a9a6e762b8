"""Reward shaping toward a reference policy: ``r_total = r_env + lambda * log pi_BC(a | s) + sum_j f_j``.

The bonus keeps RL near the demonstrator (textbook §20.5); extra reward functions (for example a
learned TCN progress reward) are added on top. Two wrappers share one bonus function:
:class:`BCLogProbReward` for a single ``gym.Env`` and :class:`VectorBCLogProbReward` for a
NEXT_STEP-autoreset vector env, where the bonus is computed for all N envs in one forward pass.

``lambda`` decays by the factor ``decay`` after every finished episode, so the shaping can fade
out as RL takes over. The env's own reward is kept in ``info["env_reward"]``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
import torch

from ilcore import spaces as ispaces
from ilcore.errors import ConfigError
from ilcore.policies import Policy
from ilcore.types import Nested

# f(obs (N, ...), actions (N, ...), next_obs (N, ...)) -> extra reward (N,). next_obs is the
# observation the step produced (the final one when the episode ended there).
RewardFn = Callable[[Nested, Any, Nested], np.ndarray]


def bc_log_prob(reference: Policy, obs_batch: Nested, actions: Any) -> np.ndarray:
    """``log pi_ref(a | s)`` per sample ``(N,)`` float64, for a nested obs batch and env actions ``(N, ...)``.

    For an ensemble reference (K > 1) it is the log-probability of the ensemble's mixture,
    ``log mean_k pi_k(a | s)``, the probability the ensemble as a whole gives the action.
    """
    with torch.inference_mode():
        lp = reference.log_prob(reference.obs_to_tensors(obs_batch), reference.actions_to_tensor(actions))  # (K, N)
        if lp.shape[0] > 1:
            lp = torch.logsumexp(lp, 0) - math.log(lp.shape[0])
        else:
            lp = lp[0]
    return lp.double().cpu().numpy()


def _check_weight(weight: float, decay: float) -> None:
    if not math.isfinite(weight):
        raise ConfigError(f"The shaping weight must be a finite number, got {weight}.")
    if not 0.0 < decay <= 1.0:
        raise ConfigError(f"The shaping decay must be in (0, 1], got {decay}.")


class _Shaper:
    """The shared bonus computation: weight, decay and extra reward functions."""

    def __init__(self, reference: Policy | None, weight: float, decay: float, extra_rewards: Sequence[RewardFn]) -> None:
        _check_weight(weight, decay)
        if reference is None and weight != 0.0:
            raise ConfigError("Log-probability shaping needs a reference policy; pass one or set the weight to 0.")
        self.reference = reference
        self.weight = float(weight)
        self.decay = float(decay)
        self.extra_rewards = list(extra_rewards)

    def bonus(self, obs: Nested, actions: Any, next_obs: Nested, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(total bonus (N,), the log-prob part before weighting (N,) or zeros)."""
        log_p = np.zeros(n)
        total = np.zeros(n)
        if self.weight != 0.0 and self.reference is not None:
            log_p = bc_log_prob(self.reference, obs, actions)
            total = self.weight * log_p
        for fn in self.extra_rewards:
            total = total + np.asarray(fn(obs, actions, next_obs), dtype=np.float64).reshape(n)
        return total, log_p


class BCLogProbReward(gym.Wrapper):
    """Adds ``weight * log pi_ref(a | s)`` and any ``extra_rewards`` to a single env's reward.

    ``s`` is the observation the action was chosen at. ``weight`` is multiplied by ``decay`` after
    every finished episode. info gets ``env_reward`` (the unshaped reward), ``shaping_bonus`` and
    ``bc_log_prob``.
    """

    def __init__(self, env: gym.Env, reference: Policy | None, weight: float, *, decay: float = 1.0,
                 extra_rewards: Sequence[RewardFn] = ()) -> None:
        super().__init__(env)
        if reference is not None:
            reference.check_spaces(env.observation_space, env.action_space, where="the wrapped env")
        self.shaper = _Shaper(reference, weight, decay, extra_rewards)
        self._last_obs: Any = None

    @property
    def weight(self) -> float:
        return self.shaper.weight

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._last_obs = obs
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        if self._last_obs is None:
            raise gym.error.ResetNeeded("Call reset() before step().")
        obs, reward, terminated, truncated, info = self.env.step(action)
        one = lambda x: ispaces.map_leaves(lambda v: np.asarray(v)[None], x)  # noqa: E731
        bonus, log_p = self.shaper.bonus(one(self._last_obs), np.asarray(action)[None], one(obs), 1)
        info = dict(info)
        info.update(env_reward=float(reward), shaping_bonus=float(bonus[0]), bc_log_prob=float(log_p[0]))
        self._last_obs = obs
        if terminated or truncated:
            self.shaper.weight *= self.shaper.decay
        return obs, float(reward) + float(bonus[0]), terminated, truncated, info


class VectorBCLogProbReward(gym.vector.VectorWrapper):
    """The vector-env form of :class:`BCLogProbReward` for NEXT_STEP autoreset.

    On the step right after an env's episode ended, that env only resets (its action is ignored
    and its reward is 0), so it gets no bonus. ``weight`` decays once per finished episode in
    any env. info gets ``env_reward (N,)`` and ``shaping_bonus (N,)`` (with their ``_`` masks).
    """

    def __init__(self, env: gym.vector.VectorEnv, reference: Policy | None, weight: float, *, decay: float = 1.0,
                 extra_rewards: Sequence[RewardFn] = ()) -> None:
        super().__init__(env)
        mode = env.metadata.get("autoreset_mode")
        if mode is not None and mode != gym.vector.AutoresetMode.NEXT_STEP:
            raise ConfigError(f"VectorBCLogProbReward needs NEXT_STEP autoreset, the env uses {mode}.")
        if reference is not None:
            reference.check_spaces(env.single_observation_space, env.single_action_space, where="the wrapped env")
        self.shaper = _Shaper(reference, weight, decay, extra_rewards)
        self._last_obs: Any = None
        self._resetting = np.zeros(env.num_envs, dtype=bool)

    @property
    def weight(self) -> float:
        return self.shaper.weight

    def reset(self, *, seed: int | list[int | None] | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        # VectorEnv.reset's stub types seed as one int; the Sync/Async envs also take a list per env
        obs, info = self.env.reset(seed=seed, options=options)  # type: ignore[arg-type]
        self._last_obs = obs
        self._resetting[:] = False
        return obs, info

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._last_obs is None:
            raise gym.error.ResetNeeded("Call reset() before step().")
        obs, reward, terminated, truncated, info = self.env.step(actions)
        n = self.num_envs
        bonus, _ = self.shaper.bonus(self._last_obs, actions, obs, n)
        bonus[self._resetting] = 0.0
        info = dict(info)
        everyone = np.ones(n, dtype=bool)
        info.update(env_reward=np.asarray(reward), _env_reward=everyone, shaping_bonus=bonus, _shaping_bonus=everyone)
        done = np.logical_or(terminated, truncated)
        self.shaper.weight *= self.shaper.decay ** int(done.sum())
        self._resetting = done
        self._last_obs = obs
        return obs, np.asarray(reward, dtype=np.float64) + bonus, terminated, truncated, info
