"""View shifts: the same env seen another way (third-person demonstrations, multi-view TCN).

A *view* is a fixed, deterministic function of what the env shows. Two families:

- :class:`ImageView` changes a rendered frame ``(H, W, C) uint8``: mirrored, recoloured
  (channel permutation and per-channel gain), re-cropped, resized.
- :class:`StateView` changes a state vector ``(D,)``: permuted, rescaled, offset.

Wrappers expose a view as the env's observation: :class:`PixelObservation` turns any
``render_mode="rgb_array"`` env into an image-observation env (frames resized with numpy, no
extra dependency), :class:`ViewShiftedState` applies a :class:`StateView` to a Box observation.
Everything here is pure numpy; nothing imports pygame (gymnasium's own renderers may).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ilcore.errors import ConfigError


def render_rgb(env: Any) -> np.ndarray:
    """``env.render()`` of an env made with ``render_mode="rgb_array"``: one ``(H, W, 3)`` frame."""
    frame = env.render()
    if not isinstance(frame, np.ndarray):
        raise ConfigError(f"The env's render() gave {type(frame).__name__}, not an RGB frame: "
                          "make it with render_mode='rgb_array'.")
    return frame


def resize_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-average resize of ``(H, W, C)`` uint8 to ``(h, w, C)`` uint8, ``size = (h, w)``.

    Each output pixel is the mean of the source rows/columns that fall in its bin, which avoids
    the aliasing of nearest-neighbour subsampling (thin lines such as a pole survive shrinking).
    Upscaling repeats pixels.
    """
    frame = np.asarray(frame)
    if frame.ndim != 3:
        raise ConfigError(f"A frame must be (H, W, C), got shape {frame.shape}.")
    out_h, out_w = int(size[0]), int(size[1])
    if out_h < 1 or out_w < 1:
        raise ConfigError(f"A frame size must be positive, got {size}.")
    h, w, _ = frame.shape
    if (h, w) == (out_h, out_w):
        return frame.astype(np.uint8, copy=True)
    # Subsample by an integer stride first while each output bin keeps >= 3 source pixels per
    # axis: a 400x600 render shrinks ~10x faster, and the bins still average out thin lines.
    stride_h, stride_w = max(1, h // (3 * out_h)), max(1, w // (3 * out_w))
    x = frame[::stride_h, ::stride_w].astype(np.float32)
    x = _bin_mean(x, out_h, axis=0)
    x = _bin_mean(x, out_w, axis=1)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _bin_mean(x: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    n_in = x.shape[axis]
    if n_out >= n_in:
        idx = (np.arange(n_out) * n_in) // n_out  # upscale: repeat
        return np.take(x, idx, axis=axis)
    starts = (np.arange(n_out) * n_in) // n_out
    sums = np.add.reduceat(x, starts, axis=axis)
    counts = np.diff(np.append(starts, n_in)).astype(np.float32)
    shape = [1] * x.ndim
    shape[axis] = n_out
    return sums / counts.reshape(shape)


@dataclass(frozen=True)
class ImageView:
    """A fixed visual transform of rendered frames, applied in this order:

    crop:    ``(top, left, height, width)`` as fractions of the frame, or None for the whole frame
    size:    ``(h, w)`` output size after cropping (None: the input frame's size, so a crop zooms)
    mirror:  flip left-right
    channels: output channel c takes input channel ``channels[c]`` (a recolouring), or None
    gain:    per-output-channel multiplier (after the permutation), or None
    invert:  ``255 - x`` (a strong recolouring that keeps every edge)
    """

    crop: tuple[float, float, float, float] | None = None
    size: tuple[int, int] | None = None
    mirror: bool = False
    channels: tuple[int, ...] | None = None
    gain: tuple[float, ...] | None = None
    invert: bool = False

    def __post_init__(self) -> None:
        if self.crop is not None:
            top, left, height, width = self.crop
            if not (0 <= top < 1 and 0 <= left < 1 and 0 < height <= 1 - top + 1e-9 and 0 < width <= 1 - left + 1e-9):
                raise ConfigError(f"crop must be fractions (top, left, height, width) inside the frame, got {self.crop}.")

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """``(H, W, C)`` or a batch ``(N, H, W, C)`` uint8 -> transformed uint8 of the same rank."""
        frame = np.asarray(frame)
        if frame.ndim == 4:
            return np.stack([self(f) for f in frame]) if len(frame) else frame
        x = frame
        in_size = frame.shape[:2]
        if self.crop is not None:
            h, w = x.shape[:2]
            top, left, height, width = self.crop
            r0, c0 = int(round(top * h)), int(round(left * w))
            x = x[r0:r0 + max(1, int(round(height * h))), c0:c0 + max(1, int(round(width * w)))]
        target = self.size if self.size is not None else in_size
        if tuple(x.shape[:2]) != tuple(target):
            x = resize_frame(x, target)
        if self.mirror:
            x = x[:, ::-1]
        if self.channels is not None:
            x = x[..., list(self.channels)]
        if self.gain is not None:
            x = np.clip(x.astype(np.float32) * np.asarray(self.gain, np.float32), 0, 255)
        if self.invert:
            x = 255 - x.astype(np.float32)
        return np.ascontiguousarray(x, dtype=np.uint8)


@dataclass(frozen=True)
class StateView:
    """``y = scale * x[permutation] + offset`` for a state vector ``x (D,)`` (or a batch ``(N, D)``)."""

    permutation: tuple[int, ...] | None = None
    scale: tuple[float, ...] | None = None
    offset: tuple[float, ...] | None = None

    @classmethod
    def random(cls, dim: int, seed: int, *, scale_range: tuple[float, float] = (0.3, 3.0),
               flip_signs: bool = True) -> "StateView":
        """A random permutation with random positive (or, with ``flip_signs``, signed) scales."""
        rng = np.random.default_rng(seed)
        scale = rng.uniform(*scale_range, size=dim)
        if flip_signs:
            scale *= rng.choice([-1.0, 1.0], size=dim)
        return cls(tuple(int(i) for i in rng.permutation(dim)), tuple(float(s) for s in scale),
                   tuple(float(o) for o in rng.normal(0.0, 0.5, size=dim)))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        y = x[..., list(self.permutation)] if self.permutation is not None else x
        y = y.astype(np.float64)
        if self.scale is not None:
            y = y * np.asarray(self.scale)
        if self.offset is not None:
            y = y + np.asarray(self.offset)
        return y.astype(x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        """The state ``x`` that this view shows as ``y``."""
        y = np.asarray(y, dtype=np.float64)
        if self.offset is not None:
            y = y - np.asarray(self.offset)
        if self.scale is not None:
            y = y / np.asarray(self.scale)
        if self.permutation is not None:
            x = np.empty_like(y)
            x[..., list(self.permutation)] = y
            y = x
        return y.astype(np.float32)

    def transform_space(self, space: spaces.Box) -> spaces.Box:
        """The Box that viewed observations live in (bounds mapped, re-sorted where a scale is negative)."""
        low, high = self(space.low.astype(np.float64)), self(space.high.astype(np.float64))
        lo, hi = np.minimum(low, high), np.maximum(low, high)
        return spaces.Box(lo.astype(np.float32), hi.astype(np.float32), dtype=np.float32)


class PixelObservation(gym.ObservationWrapper):
    """Observations become the rendered frame, resized to ``size`` and passed through ``view``.

    The wrapped env must be made with ``render_mode="rgb_array"``. The observation space is a
    uint8 Box ``(h, w, 3)``, which :mod:`ilcore.policies` encodes with a CNN.
    """

    def __init__(self, env: gym.Env, size: tuple[int, int] = (64, 64), view: ImageView | None = None) -> None:
        super().__init__(env)
        if env.render_mode != "rgb_array":
            raise ConfigError(f"PixelObservation needs an env made with render_mode='rgb_array', not {env.render_mode!r}.")
        self.size = (int(size[0]), int(size[1]))
        self.view = view or ImageView()
        probe = self.view(np.zeros((*self.size, 3), np.uint8))
        self.observation_space = spaces.Box(0, 255, probe.shape, dtype=np.uint8)

    def frame(self) -> np.ndarray:
        """The current frame as this wrapper shows it, ``(h, w, 3)`` uint8."""
        return self.view(resize_frame(render_rgb(self.env), self.size))

    def observation(self, observation: Any) -> np.ndarray:
        # The state has already advanced when this is called, so the render matches it.
        return self.frame()


class ViewShiftedState(gym.ObservationWrapper):
    """A Box observation seen through a :class:`StateView` (permuted / rescaled / offset)."""

    def __init__(self, env: gym.Env, view: StateView) -> None:
        super().__init__(env)
        if not isinstance(env.observation_space, spaces.Box) or len(env.observation_space.shape) != 1:
            raise ConfigError(f"ViewShiftedState needs a flat Box observation, not {env.observation_space}.")
        dim = env.observation_space.shape[0]
        for name, value in (("permutation", view.permutation), ("scale", view.scale), ("offset", view.offset)):
            if value is not None and len(value) != dim:
                raise ConfigError(f"The view's {name} has {len(value)} entries but observations have {dim}.")
        if view.permutation is not None and sorted(view.permutation) != list(range(dim)):
            raise ConfigError(f"The view's permutation {view.permutation} is not a permutation of 0..{dim - 1}.")
        self.view = view
        self.observation_space = view.transform_space(env.observation_space)

    def observation(self, observation: Any) -> np.ndarray:
        return self.view(np.asarray(observation, dtype=np.float32))


# Named views used by the TCN benchmark and the tests (frozen values, not mutable state).
MIRRORED = ImageView(mirror=True)
MIRRORED_RECOLOURED = ImageView(mirror=True, channels=(2, 0, 1), invert=True)


def render_view(view: ImageView, size: tuple[int, int] = (64, 64)) -> Any:
    """A ``frame_fn(obs, env)`` giving ``view(resize(env.render(), size))`` (env made with
    ``render_mode="rgb_array"``)."""

    def frame(_obs: Any, env: gym.Env) -> np.ndarray:
        return view(resize_frame(render_rgb(env), size))

    return frame


def state_view(view: StateView | None = None) -> Any:
    """A ``frame_fn(obs, env)`` giving the (optionally view-shifted) state vector."""

    def frame(obs: Any, _env: gym.Env) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float32)
        return x if view is None else view(x)

    return frame


class _RenderOnce:
    """Stands in for an env inside frame functions: ``render()`` runs once per state, however
    many views read it (rendering costs milliseconds per frame)."""

    def __init__(self, env: gym.Env) -> None:
        self._env = env
        self._frame: np.ndarray | None = None

    def invalidate(self) -> None:
        self._frame = None

    def render(self) -> np.ndarray:
        if self._frame is None:
            self._frame = render_rgb(self._env)
        return self._frame

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)


def record_views(
    env: gym.Env,
    act: Any,
    *,
    episodes: int,
    seed: int,
    frame_fns: Sequence[Any],
    reset: Any = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Roll ``act(obs) -> action`` out for ``episodes`` episodes and record every view.

    ``frame_fns`` are ``frame_fn(obs, env)`` callables (see :func:`render_view`,
    :func:`state_view`), evaluated on the same state, so the views are synchronised. Episode i
    is reset with ``seed + i``; ``reset()`` (e.g. an expert's) is called at each episode start.

    Returns (views, actions): views[i] is ``(V, T_i + 1, *frame_shape)`` (reset frame first),
    actions[i] is ``(T_i, *action_shape)``.
    """
    all_views: list[np.ndarray] = []
    all_actions: list[np.ndarray] = []
    cached = _RenderOnce(env)
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        if reset is not None:
            reset()
        cached.invalidate()
        frames = [[fn(obs, cached)] for fn in frame_fns]
        actions = []
        while True:
            action = act(obs)
            obs, _, terminated, truncated, _ = env.step(action)
            actions.append(np.asarray(action))
            cached.invalidate()
            for fn, out in zip(frame_fns, frames):
                out.append(fn(obs, cached))
            if terminated or truncated:
                break
        all_views.append(np.stack([np.stack(f) for f in frames]))
        all_actions.append(np.stack(actions))
    return all_views, all_actions
