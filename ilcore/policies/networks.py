"""Ensemble building blocks: every layer holds K members' parameters stacked on a leading axis.

Shapes: K ensemble members, N samples, D features. Every module here maps member-major
tensors ``(K, N, ...)`` to ``(K, N, ...)`` in ONE batched call (``torch.baddbmm`` for linear
layers, grouped convolution for conv layers), so K members cost one kernel launch per layer
instead of K. An input shared by all members is passed as ``x.expand(K, ...)``, which costs no copy.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ilcore.errors import ConfigError


class EnsembleLinear(nn.Module):
    """K independent affine maps ``(K, N, in) -> (K, N, out)``.

    Parameters: ``weight (K, in, out)``, ``bias (K, 1, out)``; each member is initialised like
    ``nn.Linear`` (uniform in +-1/sqrt(in)) from its own random draws, so members start apart.
    """

    def __init__(self, ensemble: int, in_features: int, out_features: int, *, init_scale: float = 1.0) -> None:
        super().__init__()
        self.ensemble, self.in_features, self.out_features = ensemble, in_features, out_features
        bound = init_scale / math.sqrt(max(in_features, 1))
        self.weight = nn.Parameter(torch.empty(ensemble, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(ensemble, 1, out_features).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)

    def extra_repr(self) -> str:
        return f"ensemble={self.ensemble}, in_features={self.in_features}, out_features={self.out_features}"


class EnsembleMLP(nn.Module):
    """Stacked MLP ``(K, N, in) -> (K, N, out)``: Linear-ReLU per hidden size, then a linear output.

    With ``out_features=None`` the last hidden layer (after ReLU) is the output.
    """

    def __init__(
        self,
        ensemble: int,
        in_features: int,
        hidden: Sequence[int],
        out_features: int | None,
        *,
        out_init_scale: float = 1.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [EnsembleLinear(ensemble, width, h), nn.ReLU()]
            width = h
        if out_features is not None:
            # A small output layer starts the policy near uniform / zero-mean, which trains faster.
            layers.append(EnsembleLinear(ensemble, width, out_features, init_scale=out_init_scale))
            width = out_features
        self.net = nn.Sequential(*layers)
        self.out_features = width
        self.relu_after = [True] * len(hidden) + ([False] if out_features is not None else [])
        # A plain list (not registered again): the same modules as in self.net, for the fast path.
        self._linears: list[EnsembleLinear] = [m for m in layers if isinstance(m, EnsembleLinear)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Calls the kernels directly instead of going through nn.Sequential: for the small nets
        # of BC the per-module call overhead is a measurable share of a training step.
        h = x
        for layer, relu in zip(self._linears, self.relu_after):
            h = torch.baddbmm(layer.bias, h, layer.weight)
            if relu:
                h = torch.relu(h)
        return h


class EnsembleConv2d(nn.Module):
    """K independent conv layers run as one grouped convolution.

    Input ``(N, K*C_in, H, W)`` with member k's channels in block k; output ``(N, K*C_out, H', W')``
    in the same layout. Parameters: ``weight (K, C_out, C_in, kh, kw)``, ``bias (K, C_out)``.
    """

    def __init__(self, ensemble: int, in_channels: int, out_channels: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.ensemble, self.stride = ensemble, stride
        bound = 1.0 / math.sqrt(in_channels * kernel * kernel)
        self.weight = nn.Parameter(
            torch.empty(ensemble, out_channels, in_channels, kernel, kernel).uniform_(-bound, bound)
        )
        self.bias = nn.Parameter(torch.empty(ensemble, out_channels).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, c_out = self.weight.shape[:2]
        return nn.functional.conv2d(
            x, self.weight.flatten(0, 1), self.bias.flatten(), stride=self.stride, groups=self.ensemble
        )


def _conv_stack_spec(height: int, width: int) -> list[tuple[int, int, int]]:
    """(channels, kernel, stride) per layer: the Nature-DQN stack, or a gentler one for small images."""
    if min(height, width) >= 36:
        return [(32, 8, 4), (64, 4, 2), (64, 3, 1)]
    # Small frames (e.g. 16x16 grid worlds) would shrink to nothing under stride 4.
    return [(16, 3, 1), (32, 3, 2), (32, 3, 1)]


class EnsembleCNN(nn.Module):
    """Image encoder ``(K, N, H, W, C) uint8 -> (K, N, features)`` float.

    Pixels are scaled to [0, 1] and moved to channels-first inside, so callers pass frames as
    stored (uint8, channels-last). Conv stack as in :func:`_conv_stack_spec`, then a linear
    layer with ReLU to ``features``.
    """

    def __init__(self, ensemble: int, image_shape: Sequence[int], features: int = 512) -> None:
        super().__init__()
        height, width, channels = (int(s) for s in image_shape)
        self.ensemble = ensemble
        convs: list[nn.Module] = []
        c_in, h, w = channels, height, width
        for c_out, kernel, stride in _conv_stack_spec(height, width):
            convs += [EnsembleConv2d(ensemble, c_in, c_out, kernel, stride), nn.ReLU()]
            c_in, h, w = c_out, (h - kernel) // stride + 1, (w - kernel) // stride + 1
        if h < 1 or w < 1:
            raise ConfigError(f"An image observation of shape {tuple(image_shape)} is too small for the "
                              "policy's conv stack.")
        self.convs = nn.Sequential(*convs)
        self.conv_out = c_in * h * w
        self.fc = EnsembleLinear(ensemble, self.conv_out, features)
        self.out_features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, n, h, w, c = x.shape
        # (K, N, H, W, C) -> (N, K*C, H, W): member blocks along channels for the grouped convs.
        x = x.permute(1, 0, 4, 2, 3).reshape(n, k * c, h, w).float().div_(255.0)
        y = self.convs(x)  # (N, K*C', h', w')
        y = y.reshape(n, k, -1).transpose(0, 1)  # (K, N, C'*h'*w')
        return torch.relu(self.fc(y))


def random_shift(x: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random-shift augmentation of channels-last frames ``(..., H, W, C)``, as DrQ's: pad each
    frame by ``pad`` pixels replicating its border, then crop back to ``H x W`` at a random offset.

    Every frame (every leading index, so every ensemble member and every sample) draws its own
    integer shift in ``[-pad, pad]`` along each axis from ``generator``. Padding then cropping is
    the same as reading each output pixel from the input at the shifted row and column clamped to
    the frame, so this is one gather on the frames as stored (uint8 stays uint8, nothing is
    padded or converted to float), with no Python loop over samples. ``pad=0`` returns ``x``.
    """
    if pad <= 0:
        return x
    h, w, c = x.shape[-3:]
    frames = x.reshape(-1, h, w, c)
    m, device = frames.shape[0], x.device
    shifts = torch.randint(-pad, pad + 1, (m, 2), generator=generator, device=device)
    rows = (torch.arange(h, device=device) + shifts[:, :1]).clamp_(0, h - 1)  # (M, H)
    cols = (torch.arange(w, device=device) + shifts[:, 1:]).clamp_(0, w - 1)  # (M, W)
    idx = torch.arange(m, device=device)[:, None, None]
    return frames[idx, rows[:, :, None], cols[:, None, :]].reshape(x.shape)
