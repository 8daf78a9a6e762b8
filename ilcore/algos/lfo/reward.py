"""Imitation reward from an embedding: follow a demonstration frame by frame.

    r_t = -alpha * |phi(o_t) - phi(d_t)|^2 - beta * sqrt(gamma + |phi(o_t) - phi(d_t)|^2)

where ``d_t`` is the demonstration frame aligned with time t (frame index t, scaled by
``time_scale`` and clamped to the demo's last frame). The squared term gives a smooth pull
when far, the square-root (Huber-like) term a sharp reward for getting very close.
:class:`EmbeddingImitationReward` is a gymnasium wrapper that RL finetuning can put around any env.
"""

from __future__ import annotations

from typing import Any, Callable, SupportsFloat

import gymnasium as gym
import numpy as np

from ilcore.errors import ConfigError


def imitation_reward(squared_distance: np.ndarray | float, alpha: float = 1.0, beta: float = 1.0,
                     gamma: float = 1e-3) -> np.ndarray | float:
    """The reward for embedding squared distance(s) ``|phi(o) - phi(d)|^2`` (any shape)."""
    d2 = np.asarray(squared_distance, dtype=np.float64)
    out = -alpha * d2 - beta * np.sqrt(gamma + d2)
    return float(out) if out.ndim == 0 else out


class EmbeddingImitationReward(gym.Wrapper):
    """Replace (or add to) the env reward with the embedding imitation reward.

    Args:
        env: the env to wrap.
        embedding: anything with ``encode(frames (N, *frame_shape)) -> (N, E)`` (a
            :class:`~ilcore.algos.lfo.tcn.TimeContrastiveEmbedding`).
        demo_frames: the demonstration's frames ``(T_d, *frame_shape)``, reset frame first.
        frame_fn: ``frame_fn(obs, env) -> frame`` giving what the embedding sees after each
            reset/step; None uses the observation itself (it must have the embedding's shape).
        alpha, beta, gamma: the reward's coefficients (see the module docstring).
        env_reward_weight: weight of the env's own reward added to the imitation reward
            (0: imitation reward only).
        time_scale: demo frames per env step (e.g. 0.5 when the demo was twice as fast).

    Each step's ``info`` gets ``imitation_reward``, ``env_reward`` and ``embedding_distance``.
    """

    def __init__(
        self,
        env: gym.Env,
        embedding: Any,
        demo_frames: np.ndarray,
        *,
        frame_fn: Callable[[Any, gym.Env], np.ndarray] | None = None,
        alpha: float = 1.0,
        beta: float = 1.0,
        gamma: float = 1e-3,
        env_reward_weight: float = 0.0,
        time_scale: float = 1.0,
    ) -> None:
        super().__init__(env)
        demo_frames = np.asarray(demo_frames)
        if len(demo_frames) == 0:
            raise ConfigError("The imitation reward needs a demonstration with at least one frame.")
        if gamma < 0 or alpha < 0 or beta < 0 or not time_scale > 0:
            raise ConfigError("alpha, beta and gamma must be >= 0 and time_scale > 0.")
        self.embedding = embedding
        self.demo_embedding = np.asarray(embedding.encode(demo_frames), dtype=np.float64)  # (T_d, E)
        self.frame_fn = frame_fn or (lambda obs, _env: np.asarray(obs))
        self.alpha, self.beta, self.gamma = float(alpha), float(beta), float(gamma)
        self.env_reward_weight = float(env_reward_weight)
        self.time_scale = float(time_scale)
        self._t = 0

    def _distance(self, obs: Any) -> float:
        frame = self.frame_fn(obs, self.env)
        z = np.asarray(self.embedding.encode(np.asarray(frame)[None]), dtype=np.float64)[0]
        k = min(int(round(self._t * self.time_scale)), len(self.demo_embedding) - 1)
        return float(((z - self.demo_embedding[k]) ** 2).sum())

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._t = 0
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, env_reward, terminated, truncated, info = self.env.step(action)
        self._t += 1  # obs is frame t of the episode (the reset frame is 0)
        d2 = self._distance(obs)
        r = imitation_reward(d2, self.alpha, self.beta, self.gamma)
        info = dict(info)
        info.update(imitation_reward=r, env_reward=float(env_reward), embedding_distance=d2)
        return obs, r + self.env_reward_weight * float(env_reward), terminated, truncated, info
