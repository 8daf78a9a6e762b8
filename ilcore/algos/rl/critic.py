"""The state-value network PPO trains beside a policy (the Policy class has no value head).

Shapes: K members, N samples. A :class:`Critic` has as many members as the policy it serves, so
member k's value function is fitted to the returns of the envs member k drove.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any, Mapping, Sequence

import gymnasium as gym
import torch
from torch import nn

from ilcore import spaces as ispaces
from ilcore.errors import ConfigError
from ilcore.policies import ObsTensors, Policy
from ilcore.policies.networks import EnsembleMLP
from ilcore.policies.policy import ObservationEncoder

CRITIC_CONFIG_FILE = "critic.json"
CRITIC_WEIGHTS_FILE = "critic.pt"
CRITIC_FORMAT = "ilcore-critic"


class Critic(nn.Module):
    """An ensemble of K state-value functions ``V_k(s)``: observation leaves -> ``(K, N)``.

    It encodes observations like the policy does (same normalisation statistics when built with
    :meth:`for_policy`), then runs an MLP of widths ``hidden`` with a scalar output.
    """

    def __init__(
        self,
        observation_space: gym.Space,
        *,
        ensemble: int = 1,
        hidden: Sequence[int] = (64, 64),
        cnn_features: int = 512,
        obs_norm: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
    ) -> None:
        super().__init__()
        if ensemble < 1:
            raise ConfigError(f"A critic needs at least 1 member, got {ensemble}.")
        self.observation_space = observation_space
        self.ensemble = int(ensemble)
        self.hidden = [int(h) for h in hidden]
        self.cnn_features = int(cnn_features)
        self.encoder = ObservationEncoder(observation_space, self.ensemble, self.cnn_features)
        self.mlp = EnsembleMLP(self.ensemble, self.encoder.out_features, self.hidden, 1)
        if obs_norm:
            self.encoder.set_norm_stats(obs_norm)

    @classmethod
    def for_policy(cls, policy: Policy, hidden: Sequence[int] = (64, 64), seed: int | None = None) -> "Critic":
        """A fresh critic with the policy's members, observation space and normalisation."""
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            return cls(policy.observation_space, ensemble=policy.ensemble, hidden=hidden,
                       cnn_features=policy.cnn_features, obs_norm=policy.encoder.norm_stats())

    def forward(self, obs_t: ObsTensors, *, per_member: bool = False) -> torch.Tensor:
        """Values ``(K, N)`` for leaf tensors ``(N, ...)`` (or ``(K, N, ...)`` with ``per_member``)."""
        return self.mlp(self.encoder(obs_t, per_member=per_member)).squeeze(-1)

    def config(self) -> dict[str, Any]:
        return {
            "format": CRITIC_FORMAT,
            "observation_space": ispaces.space_to_json(self.observation_space),
            "ensemble": self.ensemble,
            "hidden": list(self.hidden),
            "cnn_features": self.cnn_features,
            "obs_norm": self.encoder.norm_stats(),
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``critic.json`` and ``critic.pt`` into the folder ``path`` (beside a policy checkpoint)."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{CRITIC_WEIGHTS_FILE}.tmp"
        torch.save({k: v.detach().cpu() for k, v in self.state_dict().items()}, tmp)
        os.replace(tmp, folder / CRITIC_WEIGHTS_FILE)
        tmp = folder / f".{CRITIC_CONFIG_FILE}.tmp"
        tmp.write_text(json.dumps(self.config(), indent=1, allow_nan=False))
        os.replace(tmp, folder / CRITIC_CONFIG_FILE)
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Critic":
        """Rebuild a critic saved with :meth:`save`; raises ConfigError on anything unreadable."""
        folder = Path(path)
        cfg_path = folder / CRITIC_CONFIG_FILE
        try:
            doc = json.loads(cfg_path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"No critic at {folder} (expected {cfg_path}).") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"The critic config {cfg_path} is not readable JSON ({exc}).") from None
        if not isinstance(doc, dict) or doc.get("format") != CRITIC_FORMAT:
            raise ConfigError(f"{cfg_path} is not an ilcore critic.")
        try:
            critic = cls(ispaces.space_from_json(doc["observation_space"]), ensemble=int(doc["ensemble"]),
                         hidden=doc["hidden"], cnn_features=int(doc["cnn_features"]), obs_norm=doc["obs_norm"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"The critic config {cfg_path} is malformed ({exc}).") from None
        weights = folder / CRITIC_WEIGHTS_FILE
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            critic.load_state_dict(state)
        except FileNotFoundError:
            raise ConfigError(f"The critic at {folder} has no {CRITIC_WEIGHTS_FILE}.") from None
        except pickle.UnpicklingError:
            raise ConfigError(f"Refusing {weights}: it holds pickled objects beyond plain tensors.") from None
        except Exception as exc:  # corrupt file or wrong shapes: unreadable to a person alike
            raise ConfigError(f"The critic weights {weights} are unreadable ({type(exc).__name__}).") from None
        return critic
