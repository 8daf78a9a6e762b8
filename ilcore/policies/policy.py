"""The learned policy: an ensemble of K members run in one vectorised pass, and its checkpoints.

Shapes: K members, N samples. Observations go in as nested numpy batches (leading N) or, inside
training loops, as flat leaf tensors ``{path: Tensor}`` (see :meth:`Policy.obs_to_tensors`) with
either a shared leading ``(N, ...)`` or a per-member ``(K, N, ...)`` layout (``per_member=True``,
used when each member trains on its own minibatch).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces as gspaces
from torch import nn

from ilcore import spaces as ispaces
from ilcore.errors import ConfigError, FormatError, SpaceMismatchError
from ilcore.policies import checkpoint
from ilcore.policies.heads import ActionDist, CategoricalHead, GaussianHead
from ilcore.policies.networks import EnsembleCNN, EnsembleMLP, random_shift
from ilcore.types import Nested

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.pt"
CHECKPOINT_FORMAT = "ilcore-policy"
CHECKPOINT_VERSION = 1
HEADS = ("categorical", "gaussian", "mse")

ObsTensors = dict[str, torch.Tensor]


@dataclass
class PolicyConfig:
    """Everything needed to rebuild a policy's network (JSON-able; stored as config.json).

    observation_space / action_space: ``ilcore.spaces.space_to_json`` descriptions.
    hidden: MLP widths after the observation encoder.
    head: "categorical" (Discrete, MultiDiscrete, MultiBinary), "gaussian" (Box; tanh-squashed
        when both bounds are finite) or "mse" (Box, mean regression).
    ensemble: K >= 1 members.
    cnn_features: width of each image encoder's output.
    obs_norm: ``{leaf path: {"mean": [...], "std": [...]}}`` for vector leaves (flattened).
    version: bumped by trainers each time they publish new weights.
    meta: free JSON (env id, where the data came from, ...).
    """

    observation_space: dict[str, Any]
    action_space: dict[str, Any]
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    head: str = "categorical"
    ensemble: int = 1
    cnn_features: int = 512
    obs_norm: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    version: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PolicyOutput:
    """What :meth:`Policy.predict_ensemble` returns for a batch of N observations.

    action: ``(N, *action_shape)`` the ensemble's action (mean of member means for Box, argmax of
        the mean member probabilities for discrete actions), env dtype.
    uncertainty: ``(N,)`` float64 member disagreement: mean over action dims of the variance
        across members of the member means (Box; [-1, 1] units when bounded), or the
        Jensen-Shannon divergence of the member distributions in nats (discrete). 0 when K = 1.
    member_actions: ``(K, N, *action_shape)`` each member's deterministic action.
    vote_disagreement: ``(N,)`` 1 - largest share of members voting the same action (discrete
        actions; mean over dims), None for Box.
    """

    action: np.ndarray
    uncertainty: np.ndarray
    member_actions: np.ndarray
    vote_disagreement: np.ndarray | None = None


def default_head(action_space: gym.Space) -> str:
    return "gaussian" if isinstance(action_space, gspaces.Box) else "categorical"


class ObservationEncoder(nn.Module):
    """Nested observation leaves -> ``(K, N, F)`` features.

    Vector Box leaves: flattened, normalised with stored mean/std (plus optional Gaussian
    state noise in normalised units). Image leaves (uint8 HWC): one :class:`EnsembleCNN` each.
    Discrete / MultiDiscrete: one-hot. MultiBinary: the bits as floats.
    """

    def __init__(self, space: gym.Space, ensemble: int, cnn_features: int) -> None:
        super().__init__()
        self.ensemble = ensemble
        self.leaves: list[tuple[str, str, Any]] = []  # (path, kind, info)
        self.cnns = nn.ModuleDict()
        self.vector_paths: list[str] = []
        width = 0
        for i, (path, leaf) in enumerate(ispaces.flat_items(space)):
            if ispaces.is_image(leaf):
                self.cnns[str(i)] = EnsembleCNN(ensemble, ispaces.leaf_shape(leaf), cnn_features)
                self.leaves.append((path, "image", str(i)))
                width += cnn_features
            elif isinstance(leaf, gspaces.Box):
                d = int(np.prod(leaf.shape, dtype=np.int64))
                self.register_buffer(f"obs_mean_{i}", torch.zeros(d))
                self.register_buffer(f"obs_std_{i}", torch.ones(d))
                self.leaves.append((path, "vector", (f"obs_mean_{i}", f"obs_std_{i}")))
                self.vector_paths.append(path)
                width += d
            elif isinstance(leaf, gspaces.Discrete):
                self.leaves.append((path, "discrete", (int(leaf.n), int(leaf.start))))
                width += int(leaf.n)
            elif isinstance(leaf, gspaces.MultiDiscrete):
                nvec = [int(n) for n in np.asarray(leaf.nvec).ravel()]
                start = torch.as_tensor(np.asarray(leaf.start, dtype=np.int64).ravel())
                self.register_buffer(f"md_start_{i}", start, persistent=False)
                self.leaves.append((path, "multidiscrete", (i, max(nvec), nvec)))
                width += sum(nvec)
            elif isinstance(leaf, gspaces.MultiBinary):
                self.leaves.append((path, "binary", None))
                width += int(np.prod(leaf.shape, dtype=np.int64))
            else:  # flat_items only yields the leaf types above
                raise ConfigError(f"Observation leaf {path!r} of type {type(leaf).__name__} is not supported.")
        self.out_features = width

    def norm_stats(self) -> dict[str, dict[str, list[float]]]:
        out = {}
        for path, kind, (mean_name, std_name) in (leaf for leaf in self.leaves if leaf[1] == "vector"):
            out[path] = {"mean": getattr(self, mean_name).tolist(), "std": getattr(self, std_name).tolist()}
        return out

    def set_norm_stats(self, stats: Mapping[str, Mapping[str, Sequence[float]]]) -> None:
        for path, kind, names in self.leaves:
            if kind == "vector" and path in stats:
                mean = getattr(self, names[0])
                mean.copy_(torch.as_tensor(np.asarray(stats[path]["mean"], dtype=np.float32)).reshape(mean.shape))
                std = getattr(self, names[1])
                std.copy_(torch.as_tensor(np.asarray(stats[path]["std"], dtype=np.float32)).reshape(std.shape))

    def forward(
        self,
        obs: Mapping[str, torch.Tensor],
        *,
        per_member: bool = False,
        state_noise: float = 0.0,
        image_shift: int = 0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Features ``(K, N, F)``. ``state_noise`` and ``image_shift`` are training augmentations
        drawn from ``generator``: Gaussian noise on normalised vector leaves, and a random shift of
        up to ``image_shift`` pixels (replicate padding, see :func:`random_shift`) of image leaves,
        drawn independently for every member and sample."""
        k = self.ensemble
        lead_dims = 2 if per_member else 1
        flat_parts: list[torch.Tensor] = []
        image_parts: list[torch.Tensor] = []
        for path, kind, info in self.leaves:
            x = obs[path]
            lead = x.shape[:lead_dims]
            if kind == "vector":
                v = (x.reshape(*lead, -1).float() - getattr(self, info[0])) / getattr(self, info[1])
                if state_noise > 0:
                    v = v + state_noise * torch.randn(v.shape, generator=generator, device=v.device)
                flat_parts.append(v)
            elif kind == "image":
                if not per_member:
                    x = x.unsqueeze(0).expand(k, *x.shape)
                if image_shift > 0:
                    x = random_shift(x, image_shift, generator)
                image_parts.append(self.cnns[info](x))
            elif kind == "discrete":
                n, start = info
                flat_parts.append(nn.functional.one_hot(x.long().reshape(lead) - start, n).float())
            elif kind == "multidiscrete":
                i, width, nvec = info
                idx = x.long().reshape(*lead, -1) - getattr(self, f"md_start_{i}")
                hot = nn.functional.one_hot(idx, width)  # (*lead, D, width)
                flat_parts.append(torch.cat([hot[..., d, :n] for d, n in enumerate(nvec)], -1).float())
            else:  # binary
                flat_parts.append(x.reshape(*lead, -1).float())
        parts: list[torch.Tensor] = []
        if flat_parts:
            f = torch.cat(flat_parts, -1) if len(flat_parts) > 1 else flat_parts[0]
            # A shared input is broadcast to every member without copying.
            parts.append(f if per_member else f.unsqueeze(0).expand(k, *f.shape))
        parts.extend(image_parts)
        return torch.cat(parts, -1) if len(parts) > 1 else parts[0]


class Policy(nn.Module):
    """An ensemble policy over a gymnasium observation space and a leaf action space.

    Build with :func:`make_policy` or :meth:`from_config`; restore with :meth:`load`.
    ``version`` is an int that trainers bump when they publish new weights.
    It is an :class:`ilcore.types.Acts` (:meth:`act`, :meth:`act_batch`) by shape, not by base
    class: a Protocol base would give this ``nn.Module`` an ABC metaclass; a test checks it.
    """

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        if config.ensemble < 1:
            raise ConfigError(f"An ensemble needs at least 1 member, got {config.ensemble}.")
        if config.head not in HEADS:
            raise ConfigError(f"Unknown policy head {config.head!r}; choose one of {', '.join(HEADS)}.")
        self.observation_space = ispaces.space_from_json(config.observation_space)
        self.action_space = ispaces.space_from_json(config.action_space)
        self.hidden = [int(h) for h in config.hidden]
        self.head_name = config.head
        self.ensemble = int(config.ensemble)
        self.cnn_features = int(config.cnn_features)
        self.version = int(config.version)
        self.meta = dict(config.meta)
        self.encoder = ObservationEncoder(self.observation_space, self.ensemble, self.cnn_features)
        self.trunk = EnsembleMLP(self.ensemble, self.encoder.out_features, self.hidden, None)
        self.head = _make_head(self.action_space, config.head, self.ensemble, self.trunk.out_features)
        self.action_shape = ispaces.leaf_shape(self.action_space)
        self.action_dtype = ispaces.leaf_dtype(self.action_space)
        self._obs_paths = [p for p, _ in ispaces.flat_items(self.observation_space)]
        self._obs_dtypes = {p: _obs_tensor_dtype(s) for p, s in ispaces.flat_items(self.observation_space)}
        if config.obs_norm:
            self.encoder.set_norm_stats(config.obs_norm)

    # ------------------------------------------------------------------ construction / config

    @classmethod
    def from_config(cls, config: PolicyConfig) -> "Policy":
        return cls(config)

    @property
    def config(self) -> PolicyConfig:
        return PolicyConfig(
            observation_space=ispaces.space_to_json(self.observation_space),
            action_space=ispaces.space_to_json(self.action_space),
            hidden=list(self.hidden),
            head=self.head_name,
            ensemble=self.ensemble,
            cnn_features=self.cnn_features,
            obs_norm=self.encoder.norm_stats(),
            version=int(self.version),
            meta=dict(self.meta),
        )

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ------------------------------------------------------------------ tensors in

    def obs_to_tensors(self, obs_batch: Nested) -> ObsTensors:
        """Nested numpy batch (leading N) -> ``{leaf path: Tensor (N, ...)}`` on the policy's device."""
        flat = ispaces.flat_from_nested(self.observation_space, obs_batch)
        dev = self.device
        return {p: torch.as_tensor(np.asarray(flat[p]), dtype=self._obs_dtypes[p], device=dev) for p in self._obs_paths}

    def actions_to_tensor(self, actions: Nested) -> torch.Tensor:
        """Env actions (leading N) -> a tensor ``(N, *action_shape)`` (int64 or float32)."""
        dtype = torch.float32 if isinstance(self.action_space, gspaces.Box) else torch.int64
        return torch.as_tensor(np.asarray(actions), dtype=dtype, device=self.device)

    def fit_obs_normalization(self, obs: ObsTensors | Nested, mask: np.ndarray | None = None) -> None:
        """Set each vector leaf's mean/std from data ``(N, ...)``; constant features get std 1.

        A feature with finite bounds gets a std of at least 1% of its half-range: statistics from a
        few dozen demo states (a pendulum that starts upright) otherwise scale an ordinary state
        later met by RL or DAgger into inputs of several hundred, and training diverges.
        """
        if not (isinstance(obs, Mapping) and all(isinstance(v, torch.Tensor) for v in obs.values())):
            obs = self.obs_to_tensors(obs)
        leaf_spaces = dict(ispaces.flat_items(self.observation_space))
        stats = {}
        for path in self.encoder.vector_paths:
            x = obs[path]
            x = x.reshape(x.shape[0], -1).double()
            if mask is not None:
                x = x[torch.as_tensor(mask, device=x.device)]
            if len(x) == 0:
                continue
            if not bool(torch.isfinite(x).all()):
                # NaN statistics would turn every weight NaN: refuse before training, not at save.
                where = f"observation leaf {path!r}" if path else "the observations"
                raise FormatError(f"The training data holds NaN or infinite values in {where}; "
                                  "refusing to train on it.")
            mean = x.mean(0)
            std = x.std(0, unbiased=False)
            std = torch.where(std < 1e-6, torch.ones_like(std), std)
            space = leaf_spaces[path]
            if isinstance(space, gspaces.Box):
                half = (np.asarray(space.high, np.float64) - np.asarray(space.low, np.float64)).reshape(-1) / 2.0
                floor = torch.as_tensor(np.where(np.isfinite(half), 0.01 * half, 0.0), dtype=std.dtype, device=std.device)
                std = torch.maximum(std, floor)
            stats[path] = {"mean": mean.tolist(), "std": std.tolist()}
        self.encoder.set_norm_stats(stats)

    # ------------------------------------------------------------------ forward

    def dist(
        self,
        obs_t: ObsTensors,
        *,
        per_member: bool = False,
        state_noise: float = 0.0,
        image_shift: int = 0,
        generator: torch.Generator | None = None,
    ) -> ActionDist:
        """Per-member action distributions for leaf tensors ``(N, ...)`` (or ``(K, N, ...)``);
        ``state_noise`` and ``image_shift`` are the training augmentations of
        :meth:`ObservationEncoder.forward`."""
        h = self.encoder(obs_t, per_member=per_member, state_noise=state_noise, image_shift=image_shift,
                         generator=generator)
        return self.head(self.trunk(h))

    forward = dist

    def log_prob(self, obs_t: ObsTensors, act_t: torch.Tensor, *, per_member: bool = False) -> torch.Tensor:
        """``log pi_k(a | s)`` as ``(K, N)``; ``act_t`` is ``(N, *action_shape)`` or ``(K, N, ...)``."""
        return self.dist(obs_t, per_member=per_member).log_prob(act_t)

    # ------------------------------------------------------------------ numpy in, numpy out

    def predict(
        self,
        observation: Nested,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        """stable-baselines3's contract: ``(action, None)`` for one observation or a batch.

        One observation (shaped like the observation space) gives one action without a batch
        axis; a batch ``(N, *obs_shape)`` (for Dict spaces: every leaf with the same leading N)
        gives ``(N, *action_shape)``. ``state`` and ``episode_start`` exist for SB3 callers and are
        ignored (the policy has no recurrent state). Unlike SB3 the default is deterministic, as in
        :meth:`act`. For disagreement and member actions use :meth:`predict_ensemble`.
        """
        single = self._is_single_observation(observation)
        batch = ispaces.map_leaves(lambda x: np.asarray(x)[None], observation) if single else observation
        actions = self.act_batch(batch, deterministic)
        return (actions[0] if single else actions), None

    def _is_single_observation(self, observation: Nested) -> bool:
        """True for one observation, False for a batch; raises SpaceMismatchError for neither."""
        flat = ispaces.flat_from_nested(self.observation_space, observation)
        verdicts = set()
        for path, leaf in ispaces.flat_items(self.observation_space):
            shape, want = np.shape(flat[path]), tuple(leaf.shape or ())
            if shape == want:
                verdicts.add(True)
            elif len(shape) == len(want) + 1 and shape[1:] == want:
                verdicts.add(False)
            else:
                raise SpaceMismatchError(
                    f"Observation {path or 'value'} has shape {shape}; the policy expects {want} for one "
                    f"observation or (N{''.join(f', {d}' for d in want)}) for a batch.")
        if len(verdicts) != 1:
            raise SpaceMismatchError("Observation leaves disagree on whether this is one observation or a batch.")
        return verdicts.pop()

    def predict_ensemble(self, obs_batch: Nested) -> PolicyOutput:
        """Ensemble action, disagreement and member actions for a nested batch of N observations."""
        with torch.inference_mode():
            d = self.dist(self.obs_to_tensors(obs_batch))
            vote = d.vote_disagreement()
            return PolicyOutput(
                action=self._to_numpy_action(d.ensemble_action()),
                uncertainty=d.disagreement().cpu().numpy(),
                member_actions=self._to_numpy_action(d.mode()),
                vote_disagreement=None if vote is None else vote.cpu().numpy(),
            )

    def act_batch(self, obs_batch: Nested, deterministic: bool = True, *,
                  generator: torch.Generator | None = None) -> np.ndarray:
        """Actions ``(N, *action_shape)`` for a nested batch; stochastic: a random member samples each."""
        with torch.inference_mode():
            d = self.dist(self.obs_to_tensors(obs_batch))
            if deterministic:
                return self._to_numpy_action(d.ensemble_action())
            members = d.sample(generator)  # (K, N, ...)
            n = members.shape[1]
            pick = torch.randint(self.ensemble, (n,), generator=generator, device=members.device)
            return self._to_numpy_action(members[pick, torch.arange(n, device=members.device)])

    def act(self, obs: Nested, deterministic: bool = True) -> Any:
        """The action for ONE env observation (numpy in, env action out; called every frame)."""
        batch = ispaces.map_leaves(lambda x: np.asarray(x)[None], obs)
        a = self.act_batch(batch, deterministic)[0]
        if isinstance(self.action_space, gspaces.Discrete):
            return int(a)
        return a

    def _to_numpy_action(self, a: torch.Tensor) -> np.ndarray:
        out = a.detach().cpu().numpy()
        if isinstance(self.action_space, gspaces.Box):
            # Squashing keeps bounded actions inside; clip for plain-Gaussian partly bounded boxes.
            out = np.clip(out, self.action_space.low, self.action_space.high)
        return out.astype(self.action_dtype, copy=False)

    # ------------------------------------------------------------------ checkpoints

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``config.json`` and ``weights.pt`` (a plain state_dict) into the folder ``path``.

        NaN/inf weights or statistics are refused (ConfigError) before anything is written; both
        files go to temp names first and are renamed into place only when both are written, so a
        failure (a full disk: StorageError) leaves the previous checkpoint, never a half of one.
        """
        doc = {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, **asdict(self.config)}
        return checkpoint.save_checkpoint(Path(path), CONFIG_FILE, doc, WEIGHTS_FILE, self.state_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Policy":
        """Rebuild a policy saved with :meth:`save`; raises ConfigError on anything unreadable.

        Nothing is allocated before the config is checked: field types and ranges, obs_norm
        lengths, a network of at most ``checkpoint.MAX_PARAMETERS`` values (counted on the meta
        device), and a weights file whose tensor names and shapes match it exactly, with finite
        values. Weights are read with ``torch.load(weights_only=True)``, which refuses any pickle
        that would construct arbitrary objects (and so could run code).
        """
        folder = Path(path)
        cfg_path = folder / CONFIG_FILE
        doc = checkpoint.read_config(cfg_path)
        checkpoint.check_format(doc, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, cfg_path)
        config = _config_from_doc(doc, cfg_path)
        shapes = checkpoint.shapes_on_meta(lambda: cls(config), f"The policy config {cfg_path}")
        state = checkpoint.load_weights(folder / WEIGHTS_FILE, shapes, cfg_path)
        try:
            policy = cls(config)
            policy.load_state_dict(state)
        except (TypeError, KeyError, ValueError, RuntimeError, FormatError) as exc:
            raise ConfigError(f"The policy config {cfg_path} is malformed ({exc}).") from None
        return policy

    # ------------------------------------------------------------------ space checks

    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space, where: str = "the env") -> None:
        """Raise SpaceMismatchError unless the given spaces are the ones this policy was built for."""
        if ispaces.space_key(observation_space) != ispaces.space_key(self.observation_space):
            raise SpaceMismatchError(
                f"The policy expects observations {self.observation_space} but {where} gives {observation_space}."
            )
        if ispaces.space_key(action_space) != ispaces.space_key(self.action_space):
            raise SpaceMismatchError(
                f"The policy acts in {self.action_space} but {where} expects {action_space}."
            )


# Far above any real network; the parameter cap is the real bound, these only keep the meta
# build itself (one module per layer) quick.
MAX_HIDDEN_LAYERS = 64
MAX_ENSEMBLE = 1024


def _config_from_doc(doc: Mapping[str, Any], cfg_path: Path) -> PolicyConfig:
    """A PolicyConfig from a checkpoint's JSON, every field's type and range checked."""
    def bad(what: str) -> ConfigError:
        return ConfigError(f"The policy config {cfg_path} is malformed ({what}).")

    def count(name: str, low: int, high: int | None = None) -> int:
        value = doc.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
            limit = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise bad(f"{name} must be an integer {limit}, got {checkpoint._short(value)}")
        return value

    for name in ("observation_space", "action_space"):
        if not isinstance(doc.get(name), dict):
            raise bad(f"{name} is missing or not an object")
    hidden = doc.get("hidden", [256, 256])
    if not isinstance(hidden, list) or len(hidden) > MAX_HIDDEN_LAYERS or not all(
            isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in hidden):
        raise bad(f"hidden must be a list of at most {MAX_HIDDEN_LAYERS} positive integers, "
                  f"got {checkpoint._short(hidden)}")
    head = doc.get("head", "categorical")
    if head not in HEADS:
        raise bad(f"head must be one of {', '.join(HEADS)}, got {checkpoint._short(head)}")
    ensemble = count("ensemble", 1, MAX_ENSEMBLE) if "ensemble" in doc else 1
    cnn_features = count("cnn_features", 1) if "cnn_features" in doc else 512
    version = count("version", 0) if "version" in doc else 0
    meta = doc.get("meta", {})
    if not isinstance(meta, dict):
        raise bad("meta must be an object")
    try:
        obs_space = ispaces.space_from_json(doc["observation_space"])
        ispaces.space_from_json(doc["action_space"])
    except FormatError as exc:
        raise bad(str(exc).rstrip(".")) from None
    obs_norm = doc.get("obs_norm", {})
    _check_obs_norm(obs_norm, obs_space, bad)
    return PolicyConfig(observation_space=doc["observation_space"], action_space=doc["action_space"],
                        hidden=list(hidden), head=head, ensemble=ensemble, cnn_features=cnn_features,
                        obs_norm=obs_norm, version=version, meta=meta)


def _check_obs_norm(obs_norm: Any, space: gym.Space, bad: Any) -> None:
    """obs_norm must give, for vector Box leaves only, finite means and positive finite stds of the leaf's size."""
    if not isinstance(obs_norm, dict):
        raise bad("obs_norm must be an object")
    sizes = {path: int(np.prod(leaf.shape, dtype=np.int64)) for path, leaf in ispaces.flat_items(space)
             if isinstance(leaf, gspaces.Box) and not ispaces.is_image(leaf)}
    for path, stats in obs_norm.items():
        if path not in sizes:
            raise bad(f"obs_norm names {checkpoint._short(path)}, which is not a vector observation leaf")
        if not isinstance(stats, dict):
            raise bad(f"obs_norm[{path!r}] must be an object with mean and std")
        for key in ("mean", "std"):
            values = stats.get(key)
            if not isinstance(values, list) or len(values) != sizes[path] or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
                raise bad(f"obs_norm[{path!r}][{key!r}] must be {sizes[path]} finite numbers")
        if not all(v > 0 for v in stats["std"]):
            raise bad(f"obs_norm[{path!r}]['std'] must be positive")


def _obs_tensor_dtype(leaf: gym.Space) -> torch.dtype:
    if ispaces.is_image(leaf):
        return torch.uint8  # converted to float inside the CNN, after batching, to save memory
    if isinstance(leaf, gspaces.Box):
        return torch.float32
    return torch.int64


def _make_head(action_space: gym.Space, head: str, ensemble: int, features: int) -> nn.Module:
    if isinstance(action_space, gspaces.Box):
        if head == "categorical":
            raise ConfigError("A categorical head needs a discrete action space; use 'gaussian' or 'mse' for Box actions.")
        return GaussianHead(ensemble, features, np.asarray(action_space.low), np.asarray(action_space.high),
                            mse=head == "mse")
    if head != "categorical":
        raise ConfigError(f"The {head!r} head needs a Box action space; use 'categorical' for {type(action_space).__name__}.")
    if isinstance(action_space, gspaces.Discrete):
        return CategoricalHead(ensemble, features, [int(action_space.n)], [int(action_space.start)], ())
    if isinstance(action_space, gspaces.MultiDiscrete):
        nvec = np.asarray(action_space.nvec).ravel()
        start = np.asarray(action_space.start, dtype=np.int64).ravel()
        return CategoricalHead(ensemble, features, nvec.tolist(), start.tolist(), tuple(action_space.shape))
    if isinstance(action_space, gspaces.MultiBinary):
        d = int(np.prod(action_space.shape, dtype=np.int64))
        return CategoricalHead(ensemble, features, [2] * d, [0] * d, tuple(action_space.shape))
    raise ConfigError(f"Policies act in Box, Discrete, MultiDiscrete or MultiBinary spaces, not {type(action_space).__name__}.")


def make_policy(
    observation_space: gym.Space,
    action_space: gym.Space,
    *,
    hidden: Sequence[int] = (256, 256),
    ensemble: int = 1,
    head: str | None = None,
    cnn_features: int = 512,
    seed: int | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Policy:
    """A fresh ensemble policy; ``head=None`` picks categorical for discrete and gaussian for Box actions.

    ``seed`` makes the initial weights reproducible without touching torch's global generator.
    """
    config = PolicyConfig(
        observation_space=ispaces.space_to_json(observation_space),
        action_space=ispaces.space_to_json(action_space),
        hidden=[int(h) for h in hidden],
        head=head or default_head(action_space),
        ensemble=int(ensemble),
        cnn_features=int(cnn_features),
        meta=dict(meta or {}),
    )
    if seed is None:
        return Policy(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Policy(config)
