"""Which scripted expert drives which env: :func:`make_expert` and :func:`available_experts`."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from ilcore.errors import ConfigError
from ilcore.eval import check_env_id, env_spaces, make_env
from ilcore.experts.base import Expert
from ilcore.experts.car_racing import CarRacingExpert
from ilcore.experts.classic import (
    AcrobotExpert,
    CartPoleExpert,
    MountainCarContinuousExpert,
    MountainCarExpert,
    PendulumExpert,
)
from ilcore.experts.lunar_lander import LunarLanderExpert
from ilcore.experts.particles import ParticleSequenceExpert

EXPERT_CLASSES: tuple[type[Expert], ...] = (
    CartPoleExpert,
    MountainCarExpert,
    MountainCarContinuousExpert,
    PendulumExpert,
    AcrobotExpert,
    LunarLanderExpert,
    CarRacingExpert,
    ParticleSequenceExpert,
)


def available_experts() -> list[str]:
    """The env ids that have a scripted expert, sorted."""
    return sorted(env_id for cls in EXPERT_CLASSES for env_id in cls.env_ids)


def make_expert(env_id: str, env: gym.Env | None = None, **env_kwargs: Any) -> Expert:
    """The scripted expert for ``env_id``, bound to ``env`` when one is given.

    Args:
        env_id: a gymnasium id listed by :func:`available_experts`.
        env: the env the expert will label; its action space is used (so env kwargs such as
            ``continuous=True`` are honoured) and experts that read simulator state are bound
            to it. Required for experts with ``needs_env`` before they act.
        **env_kwargs: the kwargs the env is (or would be) made with, used to find the action
            space when ``env`` is None (e.g. ``make_expert("LunarLander-v3", continuous=True)``).

    Raises:
        ConfigError: unknown env id, or no scripted expert for it.
    """
    cls = next((c for c in EXPERT_CLASSES if env_id in c.env_ids), None)
    if cls is None:
        check_env_id(env_id)
        raise ConfigError(
            f"There is no scripted expert for {env_id!r}; experts exist for {', '.join(available_experts())}."
        )
    if env is not None:
        action_space = env.action_space
    else:
        action_space = _action_space_of(env_id, env_kwargs)
    expert = cls(action_space)
    if env is not None:
        expert.bind(env)
    return expert


def _action_space_of(env_id: str, env_kwargs: dict[str, Any]) -> gym.Space:
    # Building the env is the only reliable way to know its action space for given kwargs;
    # these envs are cheap to construct and nothing is rendered until reset.
    return env_spaces(env_id, env_kwargs)[1]


def expert_rollouts(env_id: str, episodes: int, *, seed: int = 0, **env_kwargs: Any
                    ) -> tuple[gym.Space, list[np.ndarray], list[np.ndarray]]:
    """Run the scripted expert for ``episodes`` episodes (episode i reset with ``seed + i``), in memory.

    Returns the observation space, per-episode observations ``(T+1, *obs_shape)`` and per-episode
    executed actions ``(T, *action_shape)``; for vector observations (use ``ilcore record`` to
    write a session instead).
    """
    env = make_env(env_id, env_kwargs)
    try:
        expert = make_expert(env_id, env=env)
        seqs, acts = [], []
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            expert.reset()
            o_list, a_list = [obs], []
            done = False
            while not done:
                a = expert.act(obs)
                obs, _, terminated, truncated, _ = env.step(a)
                o_list.append(obs)
                a_list.append(np.asarray(a))
                done = terminated or truncated
            seqs.append(np.stack(o_list))
            acts.append(np.stack(a_list))
        return env.observation_space, seqs, acts
    finally:
        env.close()
