"""Scripted experts for gymnasium's classic-control tasks.

Each is a closed-form controller of the current observation, so it can label any state a
learner visits. Gains were tuned on seeds 0..19 (see ``benchmarks/experts.py``).
"""

from __future__ import annotations

import numpy as np

from ilcore.experts.base import Expert


class CartPoleExpert(Expert):
    """CartPole-v1: linear state feedback on (x, x_dot, theta, theta_dot).

    obs: (4,) float32 [cart position, cart velocity, pole angle, pole angular velocity].
    Pushes right (action 1) when the weighted sum is positive: the pole terms keep it upright,
    the small cart terms stop the slow drift towards the track edge.
    """

    env_ids = ("CartPole-v1",)
    documented_return = 500.0
    GAINS = (0.02, 0.1, 1.0, 0.5)

    def act(self, obs: np.ndarray) -> int:
        x, x_dot, theta, theta_dot = (float(v) for v in np.asarray(obs).reshape(4))
        k_x, k_xd, k_th, k_thd = self.GAINS
        return int(k_x * x + k_xd * x_dot + k_th * theta + k_thd * theta_dot > 0.0)


class MountainCarExpert(Expert):
    """MountainCar-v0: push along the velocity to pump energy into the oscillation.

    obs: (2,) float32 [position, velocity]. The switching line is tilted slightly with the
    position (``v > 0.004 * (p + 0.5)``) so that a car at rest left of the valley floor swings
    left first, which reaches the flag a few steps sooner on average than plain sign(v).
    Actions: 0 push left, 2 push right (1, no push, is never useful here).
    """

    env_ids = ("MountainCar-v0",)
    documented_return = -108.7

    def act(self, obs: np.ndarray) -> int:
        position, velocity = (float(v) for v in np.asarray(obs).reshape(2))
        return 2 if velocity > 0.004 * (position + 0.5) else 0


class MountainCarContinuousExpert(Expert):
    """MountainCarContinuous-v0: full force along the velocity (bang-bang energy pumping).

    obs: (2,) float32 [position, velocity]; action: (1,) float32 in [-1, 1]. Full force costs
    0.1 per step but reaching the flag sooner more than pays for it.
    """

    env_ids = ("MountainCarContinuous-v0",)
    documented_return = 89.4

    def act(self, obs: np.ndarray) -> np.ndarray:
        _, velocity = (float(v) for v in np.asarray(obs).reshape(2))
        return np.array([1.0 if velocity >= 0.0 else -1.0], dtype=np.float32)


class PendulumExpert(Expert):
    """Pendulum-v1: smooth energy-shaping swing-up, blended into PD stabilisation near the top.

    obs: (3,) float32 [cos(theta), sin(theta), theta_dot] with theta = 0 upright; action: (1,)
    float32 torque in [-2, 2]. The env integrates theta_ddot = 15 sin(theta) + 3 u, so
    E = theta_dot^2 / 2 + 15 (cos(theta) - 1) is conserved without torque and is 0 exactly when
    balanced at the top; dE/dt = 3 u theta_dot, hence u ~ -E * theta_dot drives E to 0.

    The action is a continuous, Lipschitz function of the observation (imitation learners fit
    it far better than a bang-bang law): the pump saturates through tanh instead of a sign, a
    small bump exp(-theta_dot^2) (1 - cos theta) / 2 starts the swing from rest at the bottom,
    and a sigmoid gate in cos(theta) and |theta_dot| hands over to PD near the top. The gate is
    ~0 near theta = +-pi, so the wrap of atan2 there does not show in the action.
    """

    env_ids = ("Pendulum-v1",)
    documented_return = -147.1
    GRAVITY_TERM = 15.0  # 3 g / (2 l) with g = 10, l = 1
    KP, KD = 10.0, 2.0  # PD gains near the top
    K_ENERGY = 0.05  # pump gain inside the tanh (bang-bang is the limit of a large gain)
    REST_KICK = 0.3  # torque that starts the swing from rest at the bottom
    GATE_COS, GATE_COS_SLOPE = 0.8, 20.0  # PD weight 1/2 at ~37 degrees from upright
    GATE_SPEED, GATE_SPEED_SLOPE = 4.0, 2.0  # ... and at |theta_dot| = 4 rad/s
    MAX_TORQUE = 2.0

    def act(self, obs: np.ndarray) -> np.ndarray:
        cos_th, sin_th, theta_dot = (float(v) for v in np.asarray(obs).reshape(3))
        energy = 0.5 * theta_dot**2 + self.GRAVITY_TERM * (cos_th - 1.0)
        swing = (self.MAX_TORQUE * np.tanh(-self.K_ENERGY * energy * theta_dot)
                 + self.REST_KICK * np.exp(-theta_dot**2) * 0.5 * (1.0 - cos_th))
        theta = float(np.arctan2(sin_th, cos_th))
        stabilise = -(self.KP * theta + self.KD * theta_dot)
        gate = _sigmoid(self.GATE_COS_SLOPE * (cos_th - self.GATE_COS)) * _sigmoid(
            self.GATE_SPEED_SLOPE * (self.GATE_SPEED - abs(theta_dot)))
        torque = gate * stabilise + (1.0 - gate) * swing
        return np.array([np.clip(torque, -self.MAX_TORQUE, self.MAX_TORQUE)], dtype=np.float32)


def _sigmoid(x: float) -> float:
    return float(0.5 * (1.0 + np.tanh(0.5 * x)))  # overflow-free logistic


class AcrobotExpert(Expert):
    """Acrobot-v1: torque the elbow along its own angular velocity.

    obs: (6,) float32 [cos t1, sin t1, cos t2, sin t2, t1_dot, t2_dot]. Pushing the second link
    in the direction it already turns adds energy every swing (a pumping strategy), which gets
    the tip over the bar in under ~100 steps. Actions: 0 torque -1, 2 torque +1.
    """

    env_ids = ("Acrobot-v1",)
    documented_return = -77.9

    def act(self, obs: np.ndarray) -> int:
        t2_dot = float(np.asarray(obs).reshape(6)[5])
        return 2 if t2_dot > 0.0 else 0
