"""Export an ``ilcore`` policy (and critic) to a stable-baselines3 PPO model, so users can continue there.

stable-baselines3 is an optional extra (``pip install ilcore[sb3]``); it is imported only when
:func:`export_to_sb3` is called. The exported model uses SB3's stock ``MlpPolicy`` (ReLU, the
policy's hidden widths), so ``PPO.load`` needs nothing from ilcore.

What carries over exactly: the deterministic action. The observation normalisation is folded
into the first layer (``W' = W / std``, ``b' = b - (mean / std) W``); discrete logits copy over
as they are. A tanh-squashed Gaussian head becomes SB3's gSDE policy with ``squash_output=True``,
whose deterministic action ``unscale(tanh(mean))`` equals ilcore's ``center + half * tanh(mean)``.
What does not: SB3 has no state-dependent log-std, so the exploration noise of continuous policies
restarts from ``log_std_init`` (gSDE's own parameter) and the stochastic actions differ.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces as gspaces
from torch import nn

from ilcore import spaces as ispaces
from ilcore.algos.rl.critic import Critic
from ilcore.errors import ConfigError
from ilcore.policies import Policy
from ilcore.policies.heads import GaussianHead
from ilcore.policies.networks import EnsembleLinear


def _member_linears(layers: nn.Module, member: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(weight (out, in), bias (out,))`` of member ``member`` for each EnsembleLinear in order."""
    return [(m.weight[member].T.detach().clone(), m.bias[member, 0].detach().clone())
            for m in layers.modules() if isinstance(m, EnsembleLinear)]


def _fold_normalisation(weight: torch.Tensor, bias: torch.Tensor, norm: dict[str, dict[str, list[float]]]
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Absorb ``x -> (x - mean) / std`` into the layer ``y = W x + b`` that reads it."""
    if not norm:
        return weight, bias
    (stats,) = norm.values()
    mean = torch.as_tensor(stats["mean"], dtype=torch.float64)
    std = torch.as_tensor(stats["std"], dtype=torch.float64)
    w = weight.double() / std
    b = bias.double() - w @ mean
    return w.float(), b.float()


def _copy(dst: nn.Linear, weight: torch.Tensor, bias: torch.Tensor) -> None:
    if tuple(dst.weight.shape) != tuple(weight.shape):
        raise ConfigError(f"SB3 layer of shape {tuple(dst.weight.shape)} cannot take weights {tuple(weight.shape)}.")
    with torch.no_grad():
        dst.weight.copy_(weight)
        dst.bias.copy_(bias)


def _check_exportable(policy: Policy) -> None:
    obs = policy.observation_space
    if not isinstance(obs, gspaces.Box) or ispaces.is_image(obs):
        raise ConfigError("Only policies over a flat (non-image) Box observation space can be exported to SB3.")
    act = policy.action_space
    if isinstance(act, gspaces.Box):
        if not isinstance(policy.head, GaussianHead):
            raise ConfigError("A Box-action policy needs a Gaussian or mse head to be exported to SB3.")
        if len(act.shape) != 1:
            raise ConfigError(f"SB3 export supports 1-D Box actions, not shape {act.shape}.")
    elif not isinstance(act, gspaces.Discrete):
        raise ConfigError(f"SB3 export supports Discrete and Box actions, not {type(act).__name__}.")


def export_to_sb3(
    policy: Policy,
    env: gym.Env | str | Any,
    *,
    critic: Critic | None = None,
    member: int = 0,
    log_std_init: float = -2.0,
    **ppo_kwargs: Any,
) -> Any:
    """A ``stable_baselines3.PPO`` whose deterministic actions equal ``policy``'s.

    Args:
        policy: an ilcore policy over a flat Box observation space with Discrete or 1-D Box actions.
        env: what SB3 should train on next (a gym env, a VecEnv or an env id); its spaces must match.
        critic: the ilcore critic trained beside the policy (copied into SB3's value net); None
            leaves SB3's freshly initialised value net (``[64, 64]``).
        member: which ensemble member to export (SB3 policies are single networks); for K = 1
            the exported model acts exactly like the policy.
        log_std_init: gSDE's initial log-std for continuous actions (see the module docstring).
        **ppo_kwargs: passed on to ``PPO(...)`` (learning rate, n_steps, ...).

    Raises:
        ConfigError: a policy SB3's MlpPolicy cannot represent, a bad member index, or a
            critic built for other observations.
    """
    try:
        from stable_baselines3 import PPO
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigError("Exporting to stable-baselines3 needs it installed: pip install 'ilcore[sb3]'.") from None

    _check_exportable(policy)
    if not 0 <= member < policy.ensemble:
        raise ConfigError(f"member must be in [0, {policy.ensemble}), got {member}.")
    if critic is not None:
        if ispaces.space_key(critic.observation_space) != ispaces.space_key(policy.observation_space):
            raise ConfigError("The critic was built for other observations than the policy.")
    continuous = isinstance(policy.action_space, gspaces.Box)
    squashed = continuous and bool(policy.head.squashed)
    policy_kwargs: dict[str, Any] = {
        "net_arch": {"pi": list(policy.hidden), "vf": list(critic.hidden) if critic is not None else [64, 64]},
        "activation_fn": nn.ReLU,
        "ortho_init": False,  # the weights are overwritten anyway
    }
    extra: dict[str, Any] = {}
    if squashed:
        # Only SB3's gSDE distribution squashes with tanh; plain DiagGaussian would clip instead.
        policy_kwargs.update(squash_output=True, log_std_init=log_std_init)
        extra["use_sde"] = True
    elif continuous:
        policy_kwargs["log_std_init"] = log_std_init
    ppo_kwargs.setdefault("device", "cpu")
    model = PPO("MlpPolicy", env, policy_kwargs=policy_kwargs, **extra, **ppo_kwargs)
    policy.check_spaces(model.observation_space, model.action_space, where="the SB3 env")

    sb3 = model.policy
    norm = policy.encoder.norm_stats()
    layers = _member_linears(policy.trunk, member) + _member_linears(policy.head, member)
    if continuous:  # the head emits [mean, log-std] (or just the mean for mse); SB3 needs the mean
        w, b = layers[-1]
        d = int(np.prod(policy.action_space.shape or ()))
        layers[-1] = (w[:d], b[:d])
    layers[0] = _fold_normalisation(*layers[0], norm)
    targets = [m for m in sb3.mlp_extractor.policy_net if isinstance(m, nn.Linear)] + [sb3.action_net]
    for dst, (w, b) in zip(targets, layers, strict=True):
        _copy(dst, w, b)

    if critic is not None:
        c_layers = _member_linears(critic.mlp, member if critic.ensemble > 1 else 0)
        c_layers[0] = _fold_normalisation(*c_layers[0], critic.encoder.norm_stats())
        c_targets = [m for m in sb3.mlp_extractor.value_net if isinstance(m, nn.Linear)] + [sb3.value_net]
        for dst, (w, b) in zip(c_targets, c_layers, strict=True):
            _copy(dst, w, b)
    return model
