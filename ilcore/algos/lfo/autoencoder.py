"""A plain convolutional autoencoder: the "learn from pixels without time" baseline for TCN.

The encoder is the TCN's image encoder (a one-member :class:`~ilcore.policies.networks.EnsembleCNN`
and a linear layer to ``embedding_dim``), so a comparison with :mod:`.tcn` differs only in the
training signal: here the code must let a small decoder rebuild the frame (mean squared error on
pixels scaled to [0, 1]); there it must put nearby-in-time frames close together. Frames of every
view given are pooled, so a two-view autoencoder sees both renderings but is never told which
frames are simultaneous.

Inputs are episodes as arrays ``(V, T, H, W, C)`` uint8, as for :func:`.tcn.train_tcn`; the
embedding is the raw (not normalised) code ``(N, E)``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from ilcore.errors import ConfigError
from ilcore.policies.networks import EnsembleCNN
from ilcore.progress import progress_bar, show_status


@dataclass
class AutoencoderConfig:
    """Options of :func:`train_autoencoder`.

    embedding_dim: size E of the code (the bottleneck).
    cnn_features: width of the image encoder before the code layer.
    decoder_channels: channels of the decoder's three upsampling stages, widest first.
    steps: gradient steps.
    batch_size: frames per step (a TCN step of B triplets looks at 3B frames).
    lr: Adam learning rate.
    seed: initial weights and frame sampling.
    """

    embedding_dim: int = 32
    cnn_features: int = 128
    decoder_channels: Sequence[int] = (64, 32, 16)
    steps: int = 500
    batch_size: int = 192
    lr: float = 1e-3
    seed: int = 0

    @classmethod
    def matching(cls, tcn_config: Any) -> "AutoencoderConfig":
        """The config whose encoder, code size, step count, learning rate, seed and frames per
        step equal a :class:`.tcn.TCNConfig`'s, for a like-for-like comparison."""
        return cls(embedding_dim=int(tcn_config.embedding_dim), cnn_features=int(tcn_config.cnn_features),
                   steps=int(tcn_config.steps), batch_size=3 * int(tcn_config.batch_size), lr=float(tcn_config.lr),
                   seed=int(tcn_config.seed))

    def check(self) -> None:
        if self.embedding_dim < 1 or self.cnn_features < 1:
            raise ConfigError(f"embedding_dim and cnn_features must be >= 1, got {self.embedding_dim} and "
                              f"{self.cnn_features}.")
        if len(self.decoder_channels) != 3 or min(self.decoder_channels) < 1:
            raise ConfigError(f"decoder_channels must be three positive widths, got {tuple(self.decoder_channels)}.")
        if self.steps < 0 or self.batch_size < 1:
            raise ConfigError(f"steps must be >= 0 and batch_size >= 1, got {self.steps} and {self.batch_size}.")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}.")


class ConvAutoencoder(nn.Module):
    """Frames ``(N, H, W, C)`` uint8 -> codes ``(N, E)`` -> reconstructions ``(N, H, W, C)`` in [0, 1].

    Decoder: a linear layer to a ``(c0, ceil(H/8), ceil(W/8))`` grid, three stride-2 transposed
    convolutions (each doubling the size), a sigmoid, and a crop to ``(H, W)``.
    """

    def __init__(self, frame_shape: Sequence[int], config: AutoencoderConfig) -> None:
        super().__init__()

        self.frame_shape = tuple(int(s) for s in frame_shape)
        height, width, channels = self.frame_shape
        self.cnn = EnsembleCNN(1, self.frame_shape, int(config.cnn_features))
        self.code = nn.Linear(int(config.cnn_features), int(config.embedding_dim))
        c0, c1, c2 = (int(c) for c in config.decoder_channels)
        self.grid = (c0, math.ceil(height / 8), math.ceil(width / 8))
        self.expand = nn.Linear(int(config.embedding_dim), c0 * self.grid[1] * self.grid[2])
        self.upsample = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(c0, c1, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(c1, c2, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(c2, channels, 4, stride=2, padding=1),
        )

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """``(N, H, W, C)`` uint8 -> ``(N, E)`` float."""
        return self.code(self.cnn(frames.unsqueeze(0))[0])

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """``(N, E)`` -> ``(N, H, W, C)`` float in [0, 1]."""
        height, width, _ = self.frame_shape
        x = self.expand(codes).reshape(len(codes), *self.grid)
        x = torch.sigmoid(self.upsample(x))[:, :, :height, :width]  # (N, C, H', W') cropped
        return x.permute(0, 2, 3, 1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(frames))


class FrameAutoencoder:
    """A trained (or untrained) :class:`ConvAutoencoder` with numpy in/out.

    ``encode`` fits :func:`.tcn.embedding_quality`; ``observation_space`` (the code's Box ``(E,)``)
    lets it stand in as a BCO encoder too.
    """

    def __init__(self, network: ConvAutoencoder, config: AutoencoderConfig) -> None:
        self.network = network.eval()
        self.config = config
        self.input_shape = network.frame_shape
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (int(config.embedding_dim),), dtype=np.float32)

    @classmethod
    def untrained(cls, frame_shape: Sequence[int], config: AutoencoderConfig | None = None) -> "FrameAutoencoder":
        """Randomly initialised weights, seeded by ``config.seed`` (the global torch RNG is left as it was)."""
        cfg = config or AutoencoderConfig()
        cfg.check()
        if len(frame_shape) != 3 or int(frame_shape[-1]) not in (1, 3, 4):
            raise ConfigError(f"The autoencoder takes image frames (H, W, C) with C in 1, 3, 4, got {tuple(frame_shape)}.")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            return cls(ConvAutoencoder(frame_shape, cfg), cfg)

    def _batches(self, frames: Any, batch_size: int, fn: Callable[[torch.Tensor], torch.Tensor]) -> list[np.ndarray]:
        frames = np.asarray(frames)
        if frames.shape[1:] != self.input_shape or frames.dtype != np.uint8:
            raise ConfigError(f"The autoencoder takes uint8 frames of shape {self.input_shape}, "
                              f"got {frames.dtype} {frames.shape[1:]}.")
        with torch.inference_mode():
            return [fn(torch.as_tensor(frames[lo:lo + batch_size])).numpy() for lo in range(0, len(frames), batch_size)]

    def encode(self, frames: Any, batch_size: int = 512) -> np.ndarray:
        """``(N, H, W, C)`` uint8 -> ``(N, E)`` float32 codes."""
        out = self._batches(frames, batch_size, self.network.encode)
        if not out:
            return np.zeros((0, self.config.embedding_dim), np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)

    def reconstruct(self, frames: Any, batch_size: int = 512) -> np.ndarray:
        """``(N, H, W, C)`` uint8 -> ``(N, H, W, C)`` uint8 reconstructions."""
        out = self._batches(frames, batch_size, self.network)
        if not out:
            return np.zeros((0, *self.input_shape), np.uint8)
        return np.clip(np.rint(np.concatenate(out) * 255.0), 0, 255).astype(np.uint8)

    def reconstruction_error(self, frames: Any) -> float:
        """Mean squared error of the reconstructions, pixels in [0, 1] (the training loss on ``frames``)."""
        frames = np.asarray(frames)
        out = self._batches(frames, 512, self.network)
        if not out:
            return math.nan
        return float(np.mean((np.concatenate(out) - frames.astype(np.float32) / 255.0) ** 2))


@dataclass
class AutoencoderResult:
    """The trained autoencoder and its history: ``loss`` (mean reconstruction MSE per logged
    block of steps), ``step``, ``seconds``."""

    autoencoder: FrameAutoencoder
    history: dict[str, list[float]] = field(default_factory=dict)


def _frame_index(episodes: Sequence[np.ndarray]) -> np.ndarray:
    """``(F, 3)`` int64 rows (episode, view, time) of every frame of every view."""
    rows = []
    for e, ep in enumerate(episodes):
        v, t = np.meshgrid(np.arange(ep.shape[0]), np.arange(ep.shape[1]), indexing="ij")
        rows.append(np.stack([np.full(v.size, e), v.ravel(), t.ravel()], axis=1))
    return np.concatenate(rows).astype(np.int64)


def train_autoencoder(
    episodes: Sequence[np.ndarray],
    config: AutoencoderConfig | None = None,
    *,
    log_every: int = 25,
    progress: bool = False,
    callback: Callable[[int, float], bool | None] | None = None,
) -> AutoencoderResult:
    """Train a convolutional autoencoder on every frame of episodes ``(V, T_i, H, W, C)`` uint8.

    Each step reconstructs ``batch_size`` frames drawn uniformly (with replacement) from all
    views of all episodes. ``callback(step, mean_loss)`` runs every ``log_every`` steps;
    returning False stops.
    """
    cfg = config or AutoencoderConfig()
    cfg.check()
    if not episodes:
        raise ConfigError("Autoencoder training needs at least one episode of frames.")
    first = np.asarray(episodes[0])
    if first.ndim != 5 or first.dtype != np.uint8:
        raise ConfigError(f"Episodes must be uint8 arrays (V, T, H, W, C), got {first.dtype} {first.shape}.")
    frame_shape = first.shape[2:]
    for ep in episodes:
        if ep.shape[2:] != frame_shape or ep.dtype != np.uint8:
            raise ConfigError(f"All episodes must hold uint8 frames {frame_shape}, got {ep.dtype} {ep.shape}.")
    model = FrameAutoencoder.untrained(frame_shape, cfg)
    net = model.network
    index = _frame_index(episodes)
    rng = np.random.default_rng(cfg.seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    history: dict[str, list[float]] = {"step": [], "loss": [], "seconds": []}
    started = time.perf_counter()
    loss_sum, count = 0.0, 0
    net.train()
    bar = progress_bar(range(1, cfg.steps + 1), desc="autoencoder", unit="step", enabled=progress)
    for step in bar:
        rows = index[rng.integers(len(index), size=cfg.batch_size)]
        frames = torch.as_tensor(np.stack([episodes[e][v, t] for e, v, t in rows.tolist()]))
        loss = nn.functional.mse_loss(net(frames), frames.float() / 255.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += float(loss.detach())
        count += 1
        if step % log_every == 0 or step == cfg.steps:
            mean_loss = loss_sum / count
            history["step"].append(step)
            history["loss"].append(mean_loss)
            history["seconds"].append(time.perf_counter() - started)
            show_status(bar, loss=f"{mean_loss:.4f}")
            loss_sum, count = 0.0, 0
            if callback is not None and callback(step, mean_loss) is False:
                break
    bar.close()
    net.eval()
    return AutoencoderResult(autoencoder=model, history=history)
