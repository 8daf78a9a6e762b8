"""Time-contrastive networks (Sermanet et al. 2018): embeddings learned from unlabelled video.

- Single-view TCN: frames of one episode within ``positive_window`` steps of the anchor are
  positives; frames more than ``negative_window`` steps away are negatives.
- Multi-view TCN: when an episode carries V >= 2 synchronised views (two cameras, two visual
  styles, a permuted state vector...), the simultaneous frame in another view is the positive
  and a temporally distant frame (in either view) the negative, so the embedding must keep what
  changes over time and drop what differs between views.

The loss is the triplet loss on L2-normalised embeddings,
``max(0, |f(a) - f(p)|^2 - |f(a) - f(n)|^2 + margin)``.

Inputs are episodes as arrays ``(V, T, *frame_shape)``: uint8 images ``(H, W, C)`` (a small CNN,
the policies' :class:`~ilcore.policies.networks.EnsembleCNN` with one member) or float vectors
``(D,)`` (an MLP). Quality measures (:func:`alignment_error`, :func:`view_invariance`) take
embeddings ``(T, E)`` of held-out episodes.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from ilcore.errors import ConfigError
from ilcore.policies.networks import EnsembleCNN
from ilcore.progress import progress_bar, show_status

CHECKPOINT_FORMAT = "ilcore-tcn"
CONFIG_FILE = "tcn.json"
WEIGHTS_FILE = "tcn_weights.pt"


@dataclass
class TCNConfig:
    """Options of :func:`train_tcn`.

    embedding_dim: size E of the (L2-normalised) embedding.
    positive_window: single-view positives are 1..positive_window steps from the anchor.
    negative_window: negatives are more than negative_window steps from the anchor.
    margin: triplet margin (squared distances on the unit sphere lie in [0, 4]).
    steps: gradient steps (each on ``batch_size`` triplets).
    batch_size: triplets per step.
    lr: Adam learning rate.
    cnn_features: width of the image encoder before the embedding layer.
    hidden: MLP widths for vector inputs.
    multi_view: use synchronised views as positives; None: whenever episodes carry >= 2 views.
    seed: initial weights and triplet sampling.
    """

    embedding_dim: int = 32
    positive_window: int = 2
    negative_window: int = 10
    margin: float = 0.2
    steps: int = 500
    batch_size: int = 64
    lr: float = 1e-3
    cnn_features: int = 128
    hidden: Sequence[int] = (128, 128)
    multi_view: bool | None = None
    seed: int = 0

    def check(self) -> None:
        if self.embedding_dim < 1:
            raise ConfigError(f"embedding_dim must be >= 1, got {self.embedding_dim}.")
        if self.positive_window < 1:
            raise ConfigError(f"positive_window must be >= 1, got {self.positive_window}.")
        if self.negative_window < self.positive_window:
            raise ConfigError(f"negative_window ({self.negative_window}) must be >= positive_window "
                              f"({self.positive_window}).")
        if self.steps < 0 or self.batch_size < 1:
            raise ConfigError(f"steps must be >= 0 and batch_size >= 1, got {self.steps} and {self.batch_size}.")
        if not self.lr > 0 or not self.margin >= 0:
            raise ConfigError(f"lr must be > 0 and margin >= 0, got {self.lr} and {self.margin}.")


class TimeContrastiveNetwork(nn.Module):
    """Frames ``(N, *frame_shape)`` -> unit-length embeddings ``(N, E)``.

    Image frames (uint8 HWC) go through a one-member :class:`EnsembleCNN`; vector frames are
    normalised with stored mean/std and go through an MLP.
    """

    mean: torch.Tensor  # vector frames' normalisation (registered buffers, saved with the weights)
    std: torch.Tensor

    def __init__(self, frame_shape: Sequence[int], is_image: bool, config: TCNConfig) -> None:
        super().__init__()

        self.frame_shape = tuple(int(s) for s in frame_shape)
        self.is_image = bool(is_image)
        if self.is_image:
            self.cnn = EnsembleCNN(1, self.frame_shape, int(config.cnn_features))
            width = int(config.cnn_features)
            self.body: nn.Module = nn.Identity()
        else:
            d = int(np.prod(self.frame_shape))
            self.register_buffer("mean", torch.zeros(d))
            self.register_buffer("std", torch.ones(d))
            layers: list[nn.Module] = []
            width = d
            for h in config.hidden:
                layers += [nn.Linear(width, int(h)), nn.ReLU()]
                width = int(h)
            self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, int(config.embedding_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.is_image:
            h = self.cnn(x.unsqueeze(0))[0]  # (1, N, F) -> (N, F)
        else:
            h = self.body((x.reshape(len(x), -1).float() - self.mean) / self.std)
        return nn.functional.normalize(self.head(h), dim=-1)


class TimeContrastiveEmbedding:
    """A trained (or random) TCN with numpy in/out; usable as a BCO encoder.

    ``observation_space`` is the embedding's Box ``(E,)`` in [-1, 1]; ``input_shape`` the frame shape.
    """

    def __init__(self, network: TimeContrastiveNetwork, config: TCNConfig) -> None:
        self.network = network.eval()
        self.config = config
        self.input_shape = network.frame_shape
        self.is_image = network.is_image
        e = int(config.embedding_dim)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (e,), dtype=np.float32)

    @classmethod
    def untrained(cls, frame_shape: Sequence[int], is_image: bool, config: TCNConfig | None = None) -> "TimeContrastiveEmbedding":
        """A randomly initialised network (the "random network" baseline), seeded by ``config.seed``."""
        cfg = config or TCNConfig()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            return cls(TimeContrastiveNetwork(frame_shape, is_image, cfg), cfg)

    def encode(self, frames: Any, batch_size: int = 512) -> np.ndarray:
        """``(N, *frame_shape)`` -> ``(N, E)`` float32 unit vectors."""
        frames = np.asarray(frames)
        if frames.shape[1:] != self.input_shape:
            raise ConfigError(f"The embedding takes frames of shape {self.input_shape}, got {frames.shape[1:]}.")
        dtype = torch.uint8 if self.is_image else torch.float32
        out = []
        with torch.inference_mode():
            for lo in range(0, len(frames), batch_size):
                out.append(self.network(torch.as_tensor(frames[lo:lo + batch_size], dtype=dtype)).numpy())
        if not out:
            return np.zeros((0, self.config.embedding_dim), np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)

    def save(self, path: str | os.PathLike[str]) -> Path:
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        doc = {"format": CHECKPOINT_FORMAT, "frame_shape": list(self.input_shape), "is_image": self.is_image,
               "config": {**asdict(self.config), "hidden": list(self.config.hidden)}}
        torch.save({k: v.detach().cpu() for k, v in self.network.state_dict().items()}, folder / WEIGHTS_FILE)
        (folder / CONFIG_FILE).write_text(json.dumps(doc, indent=1))
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "TimeContrastiveEmbedding":
        folder = Path(path)
        try:
            doc = json.loads((folder / CONFIG_FILE).read_text())
        except (OSError, ValueError):
            raise ConfigError(f"No readable TCN checkpoint at {folder} (expected {CONFIG_FILE}).") from None
        if not isinstance(doc, dict) or doc.get("format") != CHECKPOINT_FORMAT:
            raise ConfigError(f"{folder / CONFIG_FILE} is not an ilcore TCN checkpoint.")
        try:
            cfg = TCNConfig(**doc["config"])
            net = TimeContrastiveNetwork(doc["frame_shape"], bool(doc["is_image"]), cfg)
            net.load_state_dict(torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True))
        except Exception as exc:  # any damage reads the same to a person
            raise ConfigError(f"The TCN checkpoint at {folder} is unreadable ({type(exc).__name__}).") from None
        return cls(net, cfg)


@dataclass
class TCNResult:
    """The trained embedding and its history: ``loss`` (mean triplet loss per logged block of
    steps), ``active`` (share of triplets still violating the margin), ``step``, ``seconds``."""

    embedding: TimeContrastiveEmbedding
    history: dict[str, list[float]] = field(default_factory=dict)


def _check_episodes(episodes: Sequence[np.ndarray]) -> tuple[tuple[int, ...], bool, int]:
    if not episodes:
        raise ConfigError("TCN training needs at least one episode of frames.")
    first = np.asarray(episodes[0])
    if first.ndim < 3:
        raise ConfigError(f"Episodes must be arrays (V, T, *frame_shape), got shape {first.shape}.")
    views, frame_shape = first.shape[0], first.shape[2:]
    for ep in episodes:
        if ep.shape[0] != views or ep.shape[2:] != frame_shape:
            raise ConfigError(f"All episodes must have {views} views of frames {frame_shape}, got {ep.shape}.")
    is_image = first.dtype == np.uint8 and len(frame_shape) == 3 and frame_shape[-1] in (1, 3, 4)
    return tuple(int(s) for s in frame_shape), is_image, views


def sample_triplets(lengths: np.ndarray, views: int, n: int, config: TCNConfig, multi_view: bool,
                    rng: np.random.Generator) -> np.ndarray:
    """``(n, 3, 3)`` int64 triplets of (episode, view, time) for anchor, positive, negative.

    Episodes are drawn in proportion to their length; only episodes long enough to hold a
    negative (T > negative_window + 1) are used.
    """
    usable = np.flatnonzero(lengths > config.negative_window + 1)
    if len(usable) == 0:
        raise ConfigError(f"Every episode is too short for negative_window={config.negative_window}; "
                          "record longer episodes or lower the window.")
    p = lengths[usable] / lengths[usable].sum()
    out = np.empty((n, 3, 3), dtype=np.int64)
    eps = rng.choice(usable, size=n, p=p)
    neg = config.negative_window
    for i, e in enumerate(eps.tolist()):
        t_len = int(lengths[e])
        while True:  # an anchor needs at least one frame more than `neg` steps away
            t = int(rng.integers(t_len))
            if t > neg or t < t_len - neg - 1:
                break
        va = int(rng.integers(views))
        if multi_view:
            vp, tp = int((va + 1 + rng.integers(views - 1)) % views), t
            vn = va if rng.random() < 0.5 else vp  # same-view negatives force view-invariance
        else:
            vp = vn = va
            while True:
                tp = t + int(rng.integers(1, config.positive_window + 1)) * (1 if rng.random() < 0.5 else -1)
                if 0 <= tp < t_len:
                    break
        n_before, n_after = max(0, t - neg), max(0, t_len - (t + neg + 1))
        k = int(rng.integers(n_before + n_after))
        tn = k if k < n_before else t + neg + 1 + (k - n_before)
        out[i] = ((e, va, t), (e, vp, tp), (e, vn, tn))
    return out


def train_tcn(
    episodes: Sequence[np.ndarray],
    config: TCNConfig | None = None,
    *,
    embedding: TimeContrastiveEmbedding | None = None,
    log_every: int = 25,
    progress: bool = False,
    callback: Callable[[int, float], bool | None] | None = None,
) -> TCNResult:
    """Train a TCN on episodes ``(V, T_i, *frame_shape)`` (V = 1: single-view).

    ``embedding`` continues training an existing network. ``callback(step, mean_loss)`` runs
    every ``log_every`` steps; returning False stops.
    """
    cfg = config or TCNConfig()
    cfg.check()
    frame_shape, is_image, views = _check_episodes(episodes)
    multi_view = views >= 2 if cfg.multi_view is None else bool(cfg.multi_view)
    if multi_view and views < 2:
        raise ConfigError("Multi-view TCN needs episodes with at least two synchronised views.")
    lengths = np.asarray([ep.shape[1] for ep in episodes], dtype=np.int64)
    if embedding is None:
        embedding = TimeContrastiveEmbedding.untrained(frame_shape, is_image, cfg)
        if not is_image:
            flat = np.concatenate([ep.reshape(-1, int(np.prod(frame_shape))) for ep in episodes]).astype(np.float64)
            std = flat.std(0)
            embedding.network.mean.copy_(torch.as_tensor(flat.mean(0), dtype=torch.float32))
            embedding.network.std.copy_(torch.as_tensor(np.where(std < 1e-6, 1.0, std), dtype=torch.float32))
    net = embedding.network
    dtype = torch.uint8 if is_image else torch.float32
    rng = np.random.default_rng(cfg.seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    history: dict[str, list[float]] = {"step": [], "loss": [], "active": [], "seconds": []}
    started = time.perf_counter()
    loss_sum, active_sum, count = 0.0, 0.0, 0
    net.train()
    bar = progress_bar(range(1, cfg.steps + 1), desc="tcn", unit="step", enabled=progress)
    for step in bar:
        trip = sample_triplets(lengths, views, cfg.batch_size, cfg, multi_view, rng)  # (B, 3, 3)
        rows = trip.reshape(-1, 3)  # (episode, view, time) per frame
        frames = np.stack([episodes[e][v, t] for e, v, t in rows.tolist()])
        z = net(torch.as_tensor(frames, dtype=dtype)).reshape(cfg.batch_size, 3, -1)
        d_pos = (z[:, 0] - z[:, 1]).pow(2).sum(-1)
        d_neg = (z[:, 0] - z[:, 2]).pow(2).sum(-1)
        hinge = torch.relu(d_pos - d_neg + cfg.margin)
        loss = hinge.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += float(loss.detach())
        active_sum += float((hinge > 0).float().mean())
        count += 1
        if step % log_every == 0 or step == cfg.steps:
            mean_loss = loss_sum / count
            history["step"].append(step)
            history["loss"].append(mean_loss)
            history["active"].append(active_sum / count)
            history["seconds"].append(time.perf_counter() - started)
            show_status(bar, loss=f"{mean_loss:.4f}")
            loss_sum, active_sum, count = 0.0, 0.0, 0
            if callback is not None and callback(step, mean_loss) is False:
                break
    bar.close()
    net.eval()
    return TCNResult(embedding=embedding, history=history)


# ----------------------------------------------------------------------------- quality measures


def _nearest(query: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Index of the nearest key (squared Euclidean) for each query row: (Q,)."""
    q = np.asarray(query, np.float64)
    k = np.asarray(keys, np.float64)
    d = (q * q).sum(1)[:, None] - 2.0 * q @ k.T + (k * k).sum(1)[None, :]
    return np.argmin(d, axis=1)


def alignment_error(embedding_a: np.ndarray, embedding_b: np.ndarray) -> float:
    """Temporal alignment error between two demos of the same task, in [0, 1].

    Each frame of one demo is matched to the frame of the other with the nearest embedding; the
    error is the mean |normalised time of the frame - normalised time of its match| (times
    divided by T - 1), averaged over both directions. 0 means matches happen at the same
    relative time; matching at random gives about 1/3.
    """
    ta, tb = len(embedding_a), len(embedding_b)
    if ta < 2 or tb < 2:
        raise ConfigError("Alignment error needs two episodes of at least two frames each.")
    ab = _nearest(embedding_a, embedding_b) / (tb - 1) - np.arange(ta) / (ta - 1)
    ba = _nearest(embedding_b, embedding_a) / (ta - 1) - np.arange(tb) / (tb - 1)
    return float((np.abs(ab).mean() + np.abs(ba).mean()) / 2.0)


def view_invariance(embedding_view_a: np.ndarray, embedding_view_b: np.ndarray, tolerance: int = 0) -> float:
    """Share of frames (T of them, synchronised in two views, embeddings (T, E)) whose nearest
    neighbour among the other view's frames is the simultaneous one (within ``tolerance``
    steps), averaged over both directions. Chance is about (2 * tolerance + 1) / T."""
    if len(embedding_view_a) != len(embedding_view_b):
        raise ConfigError("View invariance needs the same number of frames in both views.")
    t = np.arange(len(embedding_view_a))
    ab = np.abs(_nearest(embedding_view_a, embedding_view_b) - t) <= tolerance
    ba = np.abs(_nearest(embedding_view_b, embedding_view_a) - t) <= tolerance
    return float((ab.mean() + ba.mean()) / 2.0)


def embedding_quality(encode: Callable[[np.ndarray], np.ndarray], episodes: Sequence[np.ndarray],
                      tolerance: int = 2) -> dict[str, float]:
    """Alignment error (view 0, over every pair of episodes) and, for V >= 2, view-invariance
    (views 0 and 1, exact and within ``tolerance`` steps) of ``encode`` on held-out episodes."""
    emb = [[encode(ep[v]) for v in range(ep.shape[0])] for ep in episodes]
    errors = [alignment_error(emb[i][0], emb[j][0]) for i in range(len(emb)) for j in range(i + 1, len(emb))]
    out: dict[str, float] = {"alignment_error": float(np.mean(errors)) if errors else math.nan}
    if episodes and episodes[0].shape[0] >= 2:
        out["view_invariance"] = float(np.mean([view_invariance(e[0], e[1]) for e in emb]))
        out[f"view_invariance_pm{tolerance}"] = float(np.mean([view_invariance(e[0], e[1], tolerance) for e in emb]))
    return out


def pixel_features(frames: np.ndarray) -> np.ndarray:
    """The "pixels" baseline embedding: frames flattened to ``(N, prod(frame_shape))`` float32 in [0, 1]
    for images, as-is for vectors."""
    frames = np.asarray(frames)
    flat = frames.reshape(len(frames), -1).astype(np.float32)
    return flat / 255.0 if frames.dtype == np.uint8 else flat
