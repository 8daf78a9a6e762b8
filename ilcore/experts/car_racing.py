"""Scripted expert for CarRacing-v3 (continuous actions) from the simulator's track geometry.

The pixels are ignored: the expert reads the bound env's track (``env.unwrapped.track``, a
list of (alpha, beta, x, y) centre-line points about 3.5 units apart) and the car's hull
(position, angle, velocity), so it can label whatever state the car is in right now.

- Steering: pure pursuit on the centre line. The goal point lies a speed-dependent distance
  ahead of the nearest centre-line point; the arc through it gives a curvature, turned into a
  front-wheel angle with a bicycle model (the wheels turn at most 0.4 rad).
- Speed: each centre-line point has a speed limit sqrt(max lateral acceleration / curvature);
  the target speed now is the lowest limit ahead after allowing for braking distance
  (v^2 <= v_limit^2 + 2 * deceleration * distance). Full gas below target, proportional
  brake above it.
- Recovery (DAgger hands over whatever state a learner left): off the road the lookahead grows
  with the distance to the centre line and speed is capped, a goal behind the car means full
  lock towards it, and gas is cut while the rear wheels spin faster than the car moves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from ilcore.errors import ConfigError
from ilcore.experts.base import Expert


@dataclass(frozen=True)
class DrivingGains:
    """Tuning of :class:`CarRacingExpert` (units: simulator lengths and seconds)."""

    lookahead: float = 6.0  # pure-pursuit distance at standstill
    lookahead_per_speed: float = 0.15  # extra lookahead per unit of speed
    max_lateral_accel: float = 110.0  # sets the speed limit in curves
    deceleration: float = 60.0  # braking the planner assumes
    max_speed: float = 110.0  # the car tops out near 100 anyway
    plan_points: int = 60  # centre-line points (~210 units) checked for upcoming curves
    wheelbase: float = 2.5  # bicycle-model wheelbase of the car
    speed_margin: float = 3.0  # coast (no gas, no brake) this far above the target speed
    curvature_window: int = 2  # points each side averaged into a curvature
    recovery_speed: float = 20.0  # speed cap on grass or while turning round
    max_wheel_slip: float = 15.0  # rear-wheel surface speed above ground speed that cuts the gas


MAX_WHEEL_ANGLE = 0.4  # radians; CarRacing's steering joint limit
ROAD_HALF_WIDTH = 40 / 6  # CarRacing's TRACK_WIDTH: centre line to road edge


class CarRacingExpert(Expert):
    """CarRacing-v3 with the continuous (3,) action [steer, gas, brake]; needs ``bind(env)``.

    ``act(obs)`` ignores ``obs`` (a (96, 96, 3) uint8 frame) and reads the bound env.
    """

    env_ids = ("CarRacing-v3",)
    documented_return = 917.7
    needs_env = True

    def __init__(self, action_space: gym.Space, gains: DrivingGains | None = None) -> None:
        if not isinstance(action_space, gym.spaces.Box):
            raise ConfigError("The CarRacing expert drives the continuous action space only; make the env with continuous=True.")
        super().__init__(action_space)
        self.gains = gains or DrivingGains()
        # Cache of the current track's geometry; rebuilt whenever the env builds a new track.
        self._track_key: int | None = None
        self._points = np.zeros((0, 2))
        self._segment_lengths = np.zeros(0)
        self._speed_limits = np.zeros(0)

    def reset(self) -> None:
        self._track_key = None

    def _geometry(self) -> None:
        track = getattr(self.env, "track", None)
        if not track:
            raise ConfigError("The bound CarRacing env has no track yet; call env.reset() before asking the expert.")
        if self._track_key == id(track):
            return
        points = np.array([(p[2], p[3]) for p in track], dtype=np.float64)  # (N, 2)
        segments = np.roll(points, -1, axis=0) - points  # (N, 2), point i -> i+1, wrapping
        lengths = np.linalg.norm(segments, axis=1)
        heading = np.arctan2(segments[:, 1], segments[:, 0])
        turn = np.angle(np.exp(1j * (np.roll(heading, -1) - heading)))  # heading change at each point, wrapped
        w = self.gains.curvature_window
        summed_turn = sum(np.roll(turn, -offset) for offset in range(-w, w))
        curvature = np.abs(summed_turn) / (2 * w * lengths.mean())
        limits = np.sqrt(self.gains.max_lateral_accel / np.maximum(curvature, 1e-6))
        self._points, self._segment_lengths = points, lengths
        self._speed_limits = np.minimum(limits, self.gains.max_speed)
        self._track_key = id(track)

    def act(self, obs: Any = None) -> np.ndarray:
        """(3,) float32 [steer in [-1, 1] (+ is right), gas in [0, 1], brake in [0, 1]]."""
        self._geometry()
        g = self.gains
        car = self.env.car  # type: ignore[attr-defined]  # CarRacing's Box2D car, not part of gym.Env
        hull = car.hull
        position = np.array(hull.position, dtype=np.float64)
        angle = float(hull.angle)
        forward = np.array([-math.sin(angle), math.cos(angle)])  # the hull's local +y axis
        right = np.array([math.cos(angle), math.sin(angle)])
        speed = float(np.dot(np.array(hull.linearVelocity, dtype=np.float64), forward))

        n = len(self._points)
        squared = np.sum((self._points - position) ** 2, axis=1)
        nearest = int(np.argmin(squared))
        off_track = float(np.sqrt(squared[nearest]))  # distance to the centre line

        # Pure pursuit: walk along the centre line to the goal point. Off the road (a learner
        # may leave the car anywhere) the lookahead grows with the distance to the centre line,
        # so the goal stays ahead and the car rejoins at an angle instead of circling.
        lookahead = g.lookahead + g.lookahead_per_speed * max(speed, 0.0) + off_track
        goal, walked = nearest, 0.0
        while walked < lookahead:
            walked += self._segment_lengths[goal % n]
            goal += 1
        to_goal = self._points[goal % n] - position
        lateral, longitudinal = float(to_goal @ right), float(to_goal @ forward)
        if longitudinal > 0.0:
            curvature = 2.0 * lateral / max(lateral**2 + longitudinal**2, 1e-6)
            steer = float(np.clip(math.atan(curvature * g.wheelbase) / MAX_WHEEL_ANGLE, -1.0, 1.0))
        else:
            steer = 1.0 if lateral >= 0.0 else -1.0  # goal behind: full lock towards it

        # Speed: the slowest braking-reachable limit ahead.
        ahead = np.arange(nearest, nearest + g.plan_points) % n
        distance = np.concatenate([[0.0], np.cumsum(self._segment_lengths[ahead[:-1]])])
        target = float(np.min(np.sqrt(self._speed_limits[ahead] ** 2 + 2.0 * g.deceleration * distance)))
        if longitudinal <= 0.0 or off_track > ROAD_HALF_WIDTH:
            target = min(target, g.recovery_speed)  # turning round or on grass: grip is low
        # Traction control: spinning rear wheels (a learner may leave the car in a donut) give
        # no grip, so gas is cut until the wheel surface speed is back near the car's speed.
        rear_wheels = car.wheels[2:4]
        wheel_speed = float(np.mean([w.omega * w.wheel_rad for w in rear_wheels]))
        ground_speed = float(np.linalg.norm(np.array(hull.linearVelocity, dtype=np.float64)))
        spinning = wheel_speed > ground_speed + g.max_wheel_slip
        if speed < target and not spinning:
            gas, brake = 1.0, 0.0
        elif speed > target + g.speed_margin:
            gas, brake = 0.0, min(1.0, 0.1 * (speed - target))
        else:
            gas, brake = 0.0, 0.0
        return np.array([steer, gas, brake], dtype=np.float32)
