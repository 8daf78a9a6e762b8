"""Inverse dynamics model ``p(a | s, s')``: which action turned s into s'?

The model is an ordinary :class:`ilcore.policies.Policy` whose "observation" is the pair: for a
flat vector state the pair is ``{"s": s, "delta": s' - s}`` (the change is what reveals the action,
and a separate leaf gets its own normalisation, so small changes are not drowned by large states);
for any other space (images, dicts) it is ``{"s": s, "s_next": s'}`` and each image gets its own
CNN. Training is plain behavioural cloning on the pair (:func:`ilcore.algos.bc.train_bc`), so every
policy head, ensemble and checkpoint feature carries over.

Shapes: N pairs; ``obs`` / ``next_obs`` nested batches with leading N, ``actions`` (N, *action_shape).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces as gspaces

from ilcore import spaces as ispaces
from ilcore.algos.bc import BCConfig, train_bc
from ilcore.data.dataset import split_by_episode
from ilcore.errors import ConfigError
from ilcore.policies import Policy
from ilcore.types import Nested

IDM_META_KEY = "inverse_dynamics"


def _is_flat_vector(space: gym.Space) -> bool:
    return isinstance(space, gspaces.Box) and not ispaces.is_image(space) and np.issubdtype(space.dtype, np.floating)


def pair_space(observation_space: gym.Space) -> gspaces.Dict:
    """The observation space of the IDM's input pair for states in ``observation_space``."""
    if _is_flat_vector(observation_space):
        shape = observation_space.shape
        delta = gspaces.Box(-np.inf, np.inf, shape, dtype=np.float32)
        return gspaces.Dict({"s": observation_space, "delta": delta})
    return gspaces.Dict({"s": observation_space, "s_next": observation_space})


def make_pairs(observation_space: gym.Space, obs: Nested, next_obs: Nested) -> dict[str, Nested]:
    """The nested pair batch (see :func:`pair_space`) for N transitions ``obs -> next_obs``."""
    if _is_flat_vector(observation_space):
        s = np.asarray(obs, dtype=np.float32)
        return {"s": s, "delta": np.asarray(next_obs, dtype=np.float32) - s}
    return {"s": obs, "s_next": next_obs}


@dataclass
class PairData:
    """IDM training data in the shape :func:`ilcore.algos.bc.train_bc` reads.

    obs:     pair batch (leaves (N, ...)), see :func:`make_pairs`
    actions: (N, *action_shape) the actions that were executed
    weights: (N,) float32
    episode: (N,) int64 episode index, used to hold out whole episodes for validation
    train_mask / valid_mask: (N,) bool, or None to let train_bc split by episode
    """

    obs: Nested
    actions: np.ndarray
    weights: np.ndarray
    episode: np.ndarray
    observation_space: gym.Space
    action_space: gym.Space
    train_mask: np.ndarray | None = None
    valid_mask: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.weights)


@dataclass(frozen=True)
class LabelAgreement:
    """How well inferred labels match true ones over N steps.

    accuracy:       share of exactly matching actions (discrete spaces; for Box, the share within
                    ``tolerance`` x half-range in every dimension)
    mean_abs_error: mean |inferred - true| in half-range units (Box only, else None)
    n:              number of steps compared
    """

    accuracy: float
    mean_abs_error: float | None
    n: int
    tolerance: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "mean_abs_error": self.mean_abs_error, "n": self.n,
                "tolerance": self.tolerance}


def label_agreement(action_space: gym.Space, inferred: np.ndarray, true: np.ndarray,
                    tolerance: float = 0.1) -> LabelAgreement:
    """Compare inferred actions with the true ones (both (N, *action_shape))."""
    inferred, true = np.asarray(inferred), np.asarray(true)
    n = len(true)
    if n == 0:
        return LabelAgreement(float("nan"), None, 0)
    if isinstance(action_space, gspaces.Box):
        low, high = action_space.low.astype(np.float64), action_space.high.astype(np.float64)
        half = np.where(np.isfinite(high - low), (high - low) / 2.0, 1.0)
        err = np.abs(inferred.astype(np.float64) - true.astype(np.float64)) / half
        err = err.reshape(n, -1)
        return LabelAgreement(float(np.mean(np.all(err <= tolerance, axis=1))), float(err.mean()), n, tolerance)
    match = (inferred.reshape(n, -1) == true.reshape(n, -1)).all(axis=1)
    return LabelAgreement(float(match.mean()), None, n)


class InverseDynamicsModel:
    """``p(a | s, s')`` as a policy over the pair space; ``.policy`` is the underlying network."""

    def __init__(self, policy: Any, observation_space: gym.Space) -> None:
        self.policy = policy
        self.observation_space = observation_space
        self.action_space = policy.action_space
        expected = pair_space(observation_space)
        if ispaces.space_key(policy.observation_space) != ispaces.space_key(expected):
            raise ConfigError("The policy given as an inverse dynamics model does not take (s, s') pairs of this space.")

    def _pair_batches(self, obs: Nested, next_obs: Nested, batch_size: int) -> Iterator[dict[str, Nested]]:
        """The pair batch of N transitions in chunks of at most ``batch_size``."""
        n = ispaces.batch_len(obs)
        pairs = make_pairs(self.observation_space, obs, next_obs)
        for lo in range(0, n, batch_size):
            idx = np.arange(lo, min(n, lo + batch_size))
            yield ispaces.map_leaves(lambda a: np.asarray(a[idx]), pairs)

    def predict(self, obs: Nested, next_obs: Nested, batch_size: int = 4096) -> np.ndarray:
        """The most likely action for each of N transitions: (N, *action_shape)."""
        out = [self.policy.act_batch(batch) for batch in self._pair_batches(obs, next_obs, batch_size)]
        if not out:
            return np.zeros((0, *ispaces.leaf_shape(self.action_space)), dtype=ispaces.leaf_dtype(self.action_space))
        return np.concatenate(out)

    def probabilities(self, obs: Nested, next_obs: Nested, batch_size: int = 4096) -> np.ndarray:
        """``p(a | s, s')`` for each of N transitions of a Discrete action space: ``(N, n)``.

        The ensemble's mixture when the IDM has several members. Used for soft labels: where two
        actions lead to the same next state, the demo pair is split between them instead of
        being given to whichever the argmax happens to pick.
        """
        if not isinstance(self.action_space, gspaces.Discrete):
            raise ConfigError("IDM probabilities are defined for Discrete action spaces only.")
        out = [np.zeros((0, int(self.action_space.n)), np.float32)]
        with torch.no_grad():
            for batch in self._pair_batches(obs, next_obs, batch_size):
                log_p = self.policy.dist(self.policy.obs_to_tensors(batch)).log_p  # (K, B, 1, n)
                out.append(log_p.exp().mean(0)[:, 0].cpu().numpy().astype(np.float32))
        return np.concatenate(out)

    def save(self, path: str | Path) -> Path:
        """A normal policy checkpoint plus the state space, so :meth:`load` can rebuild pairs."""
        self.policy.meta[IDM_META_KEY] = {"observation_space": ispaces.space_to_json(self.observation_space)}
        return self.policy.save(path)

    @classmethod
    def load(cls, path: str | Path) -> "InverseDynamicsModel":
        policy = Policy.load(path)
        info = policy.meta.get(IDM_META_KEY)
        if not isinstance(info, dict) or "observation_space" not in info:
            raise ConfigError(f"The checkpoint {path} is a policy, not an inverse dynamics model.")
        return cls(policy, ispaces.space_from_json(info["observation_space"]))


@dataclass
class IDMResult:
    """A trained IDM, its BC history (``train_loss`` / ``valid_loss`` per epoch) and its
    agreement with the executed actions on the held-out episodes (None without a split)."""

    idm: InverseDynamicsModel
    history: dict[str, list[float]] = field(default_factory=dict)
    valid_agreement: LabelAgreement | None = None


def train_idm(
    obs: Nested,
    actions: np.ndarray,
    next_obs: Nested,
    *,
    observation_space: gym.Space,
    action_space: gym.Space,
    episode: np.ndarray | None = None,
    config: Any = None,
    progress: bool = False,
) -> IDMResult:
    """Fit an IDM on N executed transitions ``(obs, actions, next_obs)`` with behavioural cloning.

    ``episode`` (N,) groups transitions so validation holds out whole episodes (None: one
    group, no validation). ``config`` is a :class:`ilcore.algos.bc.BCConfig`.
    """
    cfg = config or BCConfig(epochs=30, hidden=(64, 64), patience=5)
    n = ispaces.batch_len(obs)
    if n == 0:
        raise ConfigError("The inverse dynamics model needs at least one (s, a, s') transition to train on.")
    episode = np.zeros(n, dtype=np.int64) if episode is None else np.asarray(episode, dtype=np.int64)
    train_mask, valid_mask = split_by_episode(episode, cfg.valid_fraction, cfg.seed)
    data = PairData(
        obs=make_pairs(observation_space, obs, next_obs),
        actions=np.asarray(actions),
        weights=np.ones(n, dtype=np.float32),
        episode=episode,
        observation_space=pair_space(observation_space),
        action_space=action_space,
        train_mask=train_mask,
        valid_mask=valid_mask,
    )
    result = train_bc(data, replace(cfg), progress=progress)
    _warn_if_input_ignored(result.history, np.asarray(actions)[train_mask], action_space)
    idm = InverseDynamicsModel(result.policy, observation_space)
    agreement = None
    if valid_mask.any():
        idx = np.flatnonzero(valid_mask)
        sub = lambda a: np.asarray(a[idx])  # noqa: E731
        predicted = idm.predict(ispaces.map_leaves(sub, obs), ispaces.map_leaves(sub, next_obs))
        agreement = label_agreement(action_space, predicted, np.asarray(actions)[idx])
    return IDMResult(idm=idm, history=result.history, valid_agreement=agreement)


def _warn_if_input_ignored(history: dict[str, list[float]], train_actions: np.ndarray, action_space: gym.Space) -> None:
    """Warn when the IDM's best validation loss is no better than guessing from action frequencies.

    Image IDMs can sit at that plateau for several epochs before they find the change between
    frames; early stopping with a small patience then keeps a model that labels every pair with
    the most frequent action.
    """
    if not isinstance(action_space, gspaces.Discrete) or len(train_actions) == 0:
        return
    valid = [v for v in history.get("valid_loss", []) if np.isfinite(v)]
    if not valid:
        return
    freq = np.bincount(np.asarray(train_actions, np.int64) - int(action_space.start), minlength=int(action_space.n))
    p = freq[freq > 0] / freq.sum()
    prior_nll = float(-(p * np.log(p)).sum())
    if prior_nll > 0 and min(valid) > 0.95 * prior_nll:
        warnings.warn(
            f"The inverse dynamics model learned little beyond the action frequencies (validation NLL "
            f"{min(valid):.3f} vs {prior_nll:.3f} for guessing them): train it longer, without early "
            "stopping (patience=None), or on more exploration.", stacklevel=3)


def describe_agreement(agreement: LabelAgreement | None) -> str:
    if agreement is None:
        return "-"
    text = f"{100 * agreement.accuracy:.1f}%"
    if agreement.mean_abs_error is not None:
        text += f" (MAE {agreement.mean_abs_error:.3f})"
    return text
