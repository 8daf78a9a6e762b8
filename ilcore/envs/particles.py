"""Particle sequence reaching: a task family for one-shot imitation.

A point moves in the square [-1, 1]^2 among ``n_landmarks`` coloured landmarks. A *task* is an
ordered visit of ``task_length`` distinct landmarks (Duan et al. 2017's particle reaching,
extended to sequences). Tasks are enumerable (every ordered choice of landmarks, in
lexicographic order) and split into train and held-out sets by id. Landmark and point positions
are drawn anew every episode; landmark *colours* (their indices) are what a task refers to, so a
demonstration recorded on one layout tells which landmarks to visit on any other.

The observation does not contain the task, only the state a demonstration can show:

    obs = [point_xy (2),
           (bearing_x, bearing_y, range) of each landmark i from the point (3 * n_landmarks),
           visited_i for each i (n_landmarks)]            float32, shape (2 + 4 * n_landmarks,)

The bearing is the unit vector from the point to the landmark and the range its distance (a
range-and-bearing sensor); this layout, rather than raw offsets, lets a small network head for a
chosen landmark without having to learn a division.

``visited_i`` is 1 once landmark i has been reached *as the next landmark of the task*; reaching
any other landmark does nothing. Actions are a commanded velocity in [-1, 1]^2 (scaled by
``max_speed`` per step). Reward is +1 for each landmark reached in order; the episode
terminates with ``info["is_success"] = True`` when the whole sequence is done, and is
truncated after ``max_episode_steps``.
"""

from __future__ import annotations

import itertools
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ilcore.errors import ConfigError

ENV_ID = "ilcore/ParticleSequence-v0"

# Distinct, colour-blind-friendly-ish colours (RGB), one per landmark index.
LANDMARK_COLOURS: tuple[tuple[int, int, int], ...] = (
    (230, 60, 60),  # red
    (60, 130, 230),  # blue
    (70, 190, 90),  # green
    (240, 190, 40),  # yellow
    (170, 90, 210),  # purple
    (40, 200, 200),  # cyan
    (240, 130, 40),  # orange
    (150, 150, 150),  # grey
)
LANDMARK_NAMES: tuple[str, ...] = ("red", "blue", "green", "yellow", "purple", "cyan", "orange", "grey")

HELD_OUT_EVERY = 4  # task ids with id % 4 == 3 are held out: a quarter of the family


def task_list(n_landmarks: int = 4, task_length: int = 3) -> list[tuple[int, ...]]:
    """Every task of the family: ordered tuples of distinct landmark indices, task id = position."""
    _check_sizes(n_landmarks, task_length)
    return list(itertools.permutations(range(n_landmarks), task_length))


def task_split(n_landmarks: int = 4, task_length: int = 3) -> dict[str, list[int]]:
    """Task ids by split: ``{"train": [...], "held_out": [...]}``; deterministic by id."""
    n = len(task_list(n_landmarks, task_length))
    held_out = [i for i in range(n) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    train = [i for i in range(n) if i % HELD_OUT_EVERY != HELD_OUT_EVERY - 1]
    return {"train": train, "held_out": held_out}


def describe_task(task: tuple[int, ...]) -> str:
    """A task as a person reads it, e.g. ``"red -> green -> blue"``."""
    return " -> ".join(LANDMARK_NAMES[i] for i in task)


def _check_sizes(n_landmarks: int, task_length: int) -> None:
    if not 2 <= n_landmarks <= len(LANDMARK_COLOURS):
        raise ConfigError(f"n_landmarks must be between 2 and {len(LANDMARK_COLOURS)}, got {n_landmarks}.")
    if not 1 <= task_length <= n_landmarks:
        raise ConfigError(f"task_length must be between 1 and n_landmarks={n_landmarks}, got {task_length}.")


class ParticleSequenceEnv(gym.Env):
    """Visit coloured landmarks in a task's order. See the module docstring for obs/action layout.

    Args:
        n_landmarks: landmarks per episode (each has a fixed colour = its index).
        task_length: landmarks per task.
        task_id: a fixed task; None draws one per episode from ``task_pool``.
        task_pool: "train", "held_out" or "all": where a task is drawn from when task_id is None.
        max_speed: distance moved per step at full action.
        reach_radius: how close the point must come to a landmark to reach it.
        max_episode_steps: truncation limit; None = 20 steps per landmark of the task + 10.
        render_size: side of the rgb_array frame in pixels.

    ``reset(options={"task_id": k})`` picks the task for one episode.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(
        self,
        n_landmarks: int = 4,
        task_length: int = 3,
        task_id: int | None = None,
        task_pool: str = "train",
        max_speed: float = 0.15,
        reach_radius: float = 0.12,
        max_episode_steps: int | None = None,
        render_size: int = 256,
        render_mode: str | None = None,
    ) -> None:
        _check_sizes(n_landmarks, task_length)
        self.n_landmarks = n_landmarks
        self.task_length = task_length
        self.tasks = task_list(n_landmarks, task_length)
        splits = task_split(n_landmarks, task_length)
        if task_pool not in ("train", "held_out", "all"):
            raise ConfigError(f"task_pool must be 'train', 'held_out' or 'all', got {task_pool!r}.")
        self.task_pool = task_pool
        self._pool = list(range(len(self.tasks))) if task_pool == "all" else splits[task_pool]
        if task_id is not None:
            self._check_task_id(task_id)
        self.fixed_task_id = task_id
        self.max_speed = float(max_speed)
        self.reach_radius = float(reach_radius)
        self.max_episode_steps = (
            int(max_episode_steps) if max_episode_steps is not None else 20 * task_length + 10
        )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}.")
        self.render_mode = render_mode
        self.render_size = int(render_size)

        obs_dim = 2 + 4 * n_landmarks
        per_landmark_low = np.tile([-1.0, -1.0, 0.0], n_landmarks)
        per_landmark_high = np.tile([1.0, 1.0, 2.0 * np.sqrt(2.0)], n_landmarks)
        low = np.concatenate([-np.ones(2), per_landmark_low, np.zeros(n_landmarks)])
        high = np.concatenate([np.ones(2), per_landmark_high, np.ones(n_landmarks)])
        self.observation_space = spaces.Box(low.astype(np.float32), high.astype(np.float32), (obs_dim,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)

        # Episode state; set by reset().
        self.point = np.zeros(2)
        self.landmarks = np.zeros((n_landmarks, 2))
        self.task_id = -1
        self.task: tuple[int, ...] = ()
        self.stage = 0  # number of task landmarks reached so far
        self.elapsed = 0

    def _check_task_id(self, task_id: int) -> None:
        if not 0 <= int(task_id) < len(self.tasks):
            raise ConfigError(f"task_id must be in [0, {len(self.tasks)}), got {task_id}.")

    # -- gymnasium API -----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        task_id = (options or {}).get("task_id", self.fixed_task_id)
        if task_id is None:
            task_id = int(self._pool[self.np_random.integers(len(self._pool))])
        self._check_task_id(task_id)
        self.task_id = int(task_id)
        self.task = self.tasks[self.task_id]
        self.landmarks = self._sample_layout()
        # The point starts away from every landmark so no landmark is reached by standing still.
        while True:
            self.point = self.np_random.uniform(-0.9, 0.9, size=2)
            if np.min(np.linalg.norm(self.landmarks - self.point, axis=1)) > 2 * self.reach_radius:
                break
        self.stage = 0
        self.elapsed = 0
        return self._obs(), self._info()

    def _sample_layout(self) -> np.ndarray:
        """(n_landmarks, 2) positions, pairwise apart so reaching one never reaches another."""
        min_gap = 3 * self.reach_radius
        while True:
            pts = self.np_random.uniform(-0.8, 0.8, size=(self.n_landmarks, 2))
            gaps = np.linalg.norm(pts[:, None] - pts[None], axis=-1) + np.eye(self.n_landmarks) * 9
            if gaps.min() > min_gap:
                return pts

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self.task_id < 0:
            raise RuntimeError("call reset() before step()")
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        self.point = np.clip(self.point + a * self.max_speed, -1.0, 1.0)
        self.elapsed += 1
        reward = 0.0
        # Stepping on after success (allowed by gymnasium, undefined) just moves the point.
        target = self.next_target()
        if target is not None and np.linalg.norm(target - self.point) <= self.reach_radius:
            self.stage += 1
            reward = 1.0
        terminated = self.stage == self.task_length
        truncated = (not terminated) and self.elapsed >= self.max_episode_steps
        return self._obs(), reward, terminated, truncated, self._info()

    def _obs(self) -> np.ndarray:
        visited = np.zeros(self.n_landmarks)
        visited[list(self.task[: self.stage])] = 1.0
        offsets = self.landmarks - self.point  # (N, 2)
        ranges = np.linalg.norm(offsets, axis=1, keepdims=True)  # (N, 1)
        bearings = offsets / np.maximum(ranges, 1e-9)
        per_landmark = np.concatenate([bearings, ranges], axis=1).reshape(-1)
        return np.concatenate([self.point, per_landmark, visited]).astype(np.float32)

    def _info(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "stage": self.stage, "is_success": self.stage == self.task_length}

    # -- privileged state for the scripted expert ---------------------------------------------
    def next_target(self) -> np.ndarray | None:
        """(2,) position of the next landmark of the task, or None when the task is done."""
        if self.stage >= self.task_length:
            return None
        return self.landmarks[self.task[self.stage]].copy()

    # -- rendering -------------------------------------------------------------------------------
    def render(self) -> np.ndarray | None:
        """(S, S + S // 8, 3) uint8: the arena with a strip on top showing the task order."""
        if self.render_mode != "rgb_array":
            return None
        return render_frame(self, self.render_size)


def _world_to_px(xy: np.ndarray, size: int) -> np.ndarray:
    return (np.asarray(xy) + 1.0) * 0.5 * (size - 1)


def _disc(img: np.ndarray, centre: tuple[float, float], radius: float, colour: tuple[int, int, int],
          ring: float = 0.0) -> None:
    """Paint a filled disc (or, with ring > 0, an annulus of that thickness) in place."""
    h, w = img.shape[:2]
    cx, cy = centre
    x0, x1 = max(int(cx - radius - 1), 0), min(int(cx + radius + 2), w)
    y0, y1 = max(int(cy - radius - 1), 0), min(int(cy + radius + 2), h)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    d = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
    mask = d <= radius if ring <= 0 else (d <= radius) & (d > radius - ring)
    img[y0:y1, x0:x1][mask] = colour


def render_frame(env: ParticleSequenceEnv, size: int = 256) -> np.ndarray:
    """Draw the arena (landmarks, point, reach radius) and, above it, the task as coloured tiles
    in order; reached tiles are dimmed and the next one is outlined in white."""
    strip = max(size // 8, 12)
    img = np.full((size + strip, size, 3), 30, dtype=np.uint8)
    arena = img[strip:]
    arena[:] = (245, 245, 240)
    r_px = env.reach_radius * 0.5 * (size - 1)
    next_idx = env.task[env.stage] if 0 <= env.stage < len(env.task) else None
    for i, pos in enumerate(env.landmarks):
        c = _world_to_px(pos, size)
        colour = LANDMARK_COLOURS[i]
        # Screen y grows downward, world y upward.
        centre = (c[0], size - 1 - c[1])
        _disc(arena, centre, r_px, colour)
        if i == next_idx:
            _disc(arena, centre, r_px + 4, (20, 20, 20), ring=2)
    p = _world_to_px(env.point, size)
    _disc(arena, (p[0], size - 1 - p[1]), max(size / 50, 3), (20, 20, 20))
    # Task strip: one tile per task landmark, left to right.
    tile = strip - 4
    for k, lm in enumerate(env.task):
        x0, y0 = 4 + k * (tile + 6), 2
        tile_colour = np.array(LANDMARK_COLOURS[lm])
        if k < env.stage:
            tile_colour = (tile_colour * 0.35 + 30 * 0.65).astype(np.uint8)
        img[y0 : y0 + tile, x0 : x0 + tile] = tile_colour
        if k == env.stage:
            img[y0 : y0 + tile, x0 : x0 + 2] = 255
            img[y0 : y0 + tile, x0 + tile - 2 : x0 + tile] = 255
            img[y0 : y0 + 2, x0 : x0 + tile] = 255
            img[y0 + tile - 2 : y0 + tile, x0 : x0 + tile] = 255
    return img
