"""Scripted experts: each reaches its bar, labels any state, and the registry refuses clearly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from ilcore.errors import ConfigError
from ilcore.experts import Expert, available_experts, make_expert


def mean_return(env_id: str, seeds: range, *, skip_pixels: bool = False, **env_kwargs: Any) -> tuple[float, list[bool]]:
    """Mean return of the env's expert over ``seeds`` and whether each episode terminated."""
    # The env checker would warn that a skipped frame (None) is not in the observation space.
    env = gym.make(env_id, disable_env_checker=skip_pixels, **env_kwargs)
    if skip_pixels:
        # CarRacing draws its 96x96 frame with pygame every step, most of the step's cost; an
        # expert that reads the simulator does not look at it, and the physics is unchanged.
        env.unwrapped._render = lambda mode: None
    expert = make_expert(env_id, env=env)
    returns, terminated_flags = [], []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        expert.reset()
        total, terminated, truncated = 0.0, False, False
        while not (terminated or truncated):
            obs, reward, terminated, truncated, _ = env.step(expert.act(obs))
            total += float(reward)
        returns.append(total)
        terminated_flags.append(bool(terminated))
    env.close()
    return float(np.mean(returns)), terminated_flags


def test_cartpole_balances_to_the_time_limit() -> None:
    mean, _ = mean_return("CartPole-v1", range(3))
    assert mean >= 495


def test_pendulum_swings_up_and_balances() -> None:
    mean, _ = mean_return("Pendulum-v1", range(10))
    assert mean >= -200


def test_pendulum_expert_is_a_smooth_function_of_the_state() -> None:
    # Imitation learners fit a continuous law far better than bang-bang: along fine lines through
    # state space (the angle wrap and the top included) neighbouring states get neighbouring
    # torques, i.e. a bounded slope; a sign switch or a mode switch would jump by up to 4.
    expert = make_expert("Pendulum-v1")

    def torques(theta: np.ndarray, theta_dot: np.ndarray) -> np.ndarray:
        return np.array([float(expert.act(np.array([np.cos(t), np.sin(t), w], np.float32))[0])
                         for t, w in zip(theta, theta_dot)])

    n = 4001
    theta_line = np.linspace(-np.pi - 0.1, np.pi + 0.1, n)
    for w in (-6.0, -2.0, -0.3, 0.0, 0.3, 2.0, 6.0):
        jumps = np.abs(np.diff(torques(theta_line, np.full(n, w))))
        assert jumps.max() <= 50.0 * (theta_line[1] - theta_line[0]), w
    speed_line = np.linspace(-8.0, 8.0, n)
    for th in (np.pi, 2.5, 1.0, 0.5, 0.1, 0.0, -0.5, -2.0):
        jumps = np.abs(np.diff(torques(np.full(n, th), speed_line)))
        assert jumps.max() <= 50.0 * (speed_line[1] - speed_line[0]), th


def test_pendulum_expert_starts_the_swing_from_rest_at_the_bottom() -> None:
    expert = make_expert("Pendulum-v1")
    torque = float(expert.act(np.array([-1.0, 0.0, 0.0], np.float32))[0])
    assert torque != 0.0 and abs(torque) <= 2.0


@pytest.mark.parametrize("continuous", [False, True])
def test_lunar_lander_lands(continuous: bool) -> None:
    mean, _ = mean_return("LunarLander-v3", range(5), continuous=continuous)
    assert mean >= 200


def test_mountain_car_reaches_the_flag_every_time() -> None:
    mean, terminated = mean_return("MountainCar-v0", range(5))
    assert all(terminated)
    assert mean >= -130


def test_mountain_car_continuous_reaches_the_flag() -> None:
    mean, terminated = mean_return("MountainCarContinuous-v0", range(3))
    assert all(terminated)
    assert mean >= 85


def test_acrobot_swings_above_the_bar() -> None:
    mean, terminated = mean_return("Acrobot-v1", range(5))
    assert all(terminated)
    assert mean >= -100


@pytest.mark.slow
def test_car_racing_drives_a_lap() -> None:
    # Full-rendering figures over 20 seeds are in benchmarks/results/experts.json.
    mean, terminated = mean_return("CarRacing-v3", range(3), skip_pixels=True)
    assert all(terminated)  # lap completed before the 1000-step limit
    assert mean >= 700


@pytest.mark.slow
def test_car_racing_recovers_from_a_learner_spinning_the_car() -> None:
    # DAgger hands the expert whatever state the learner left: here 120 steps of full lock and
    # full gas leave the car spinning on the grass; the expert must still drive most of the lap.
    env = gym.make("CarRacing-v3", disable_env_checker=True)
    env.unwrapped._render = lambda mode: None  # see mean_return(skip_pixels=True)
    expert = make_expert("CarRacing-v3", env=env)
    env.reset(seed=3)
    expert.reset()
    total = 0.0
    for t in range(1000):
        action = np.array([-1.0, 1.0, 0.0], np.float32) if t < 120 else expert.act(None)
        _, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        if terminated or truncated:
            break
    assert env.unwrapped.tile_visited_count >= 0.9 * len(env.unwrapped.track)
    assert total >= 700
    env.close()


LABEL_ANYWHERE = [
    ("CartPole-v1", {}),
    ("MountainCar-v0", {}),
    ("MountainCarContinuous-v0", {}),
    ("Pendulum-v1", {}),
    ("Acrobot-v1", {}),
    ("LunarLander-v3", {}),
    ("LunarLander-v3", {"continuous": True}),
]


@pytest.mark.parametrize(("env_id", "env_kwargs"), LABEL_ANYWHERE)
def test_experts_label_arbitrary_states(env_id: str, env_kwargs: dict[str, Any]) -> None:
    # DAgger asks about states the learner visits, so any observation must get a valid action.
    env = gym.make(env_id, **env_kwargs)
    expert = make_expert(env_id, env=env)
    env.observation_space.seed(0)
    for _ in range(300):
        obs = env.observation_space.sample()
        action = expert.act(obs)
        assert env.action_space.contains(action), (obs, action)
    # Extreme corners as well: the bounds themselves (finite ones) and zeros.
    space = env.observation_space
    for obs in (np.where(np.isfinite(space.low), space.low, -1e6), np.where(np.isfinite(space.high), space.high, 1e6),
                np.zeros(space.shape)):
        assert env.action_space.contains(expert.act(obs.astype(space.dtype)))


def test_car_racing_labels_arbitrary_car_poses() -> None:
    env = gym.make("CarRacing-v3")
    env.reset(seed=3)
    expert = make_expert("CarRacing-v3", env=env)
    hull = env.unwrapped.car.hull
    rng = np.random.default_rng(0)
    for _ in range(50):
        # Teleport the car anywhere on the playfield, any heading and speed; the obs is ignored.
        hull.position = tuple(rng.uniform(-300, 300, size=2))
        hull.angle = float(rng.uniform(-np.pi, np.pi))
        hull.linearVelocity = tuple(rng.uniform(-100, 100, size=2))
        obs = env.observation_space.sample()
        assert env.action_space.contains(expert.act(obs))
    env.close()


def test_car_racing_expert_asks_to_be_bound() -> None:
    expert = make_expert("CarRacing-v3")
    with pytest.raises(ConfigError, match="bind"):
        expert.act(np.zeros((96, 96, 3), np.uint8))


def test_registry_lists_the_required_envs() -> None:
    names = set(available_experts())
    assert {"CartPole-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1", "Acrobot-v1",
            "LunarLander-v3", "CarRacing-v3"} <= names


def test_env_kwargs_pick_the_action_space() -> None:
    assert isinstance(make_expert("LunarLander-v3").action_space, gym.spaces.Discrete)
    assert isinstance(make_expert("LunarLander-v3", continuous=True).action_space, gym.spaces.Box)
    env = gym.make("LunarLander-v3", continuous=True)
    assert isinstance(make_expert("LunarLander-v3", env=env).action_space, gym.spaces.Box)


def test_unknown_env_and_env_without_expert_raise_config_errors() -> None:
    with pytest.raises(ConfigError, match="Unknown env id"):
        make_expert("NoSuchEnv-v0")
    with pytest.raises(ConfigError, match="no scripted expert"):
        make_expert("FrozenLake-v1")


def test_experts_are_expert_instances_with_a_measured_return() -> None:
    for env_id in available_experts():
        expert = make_expert(env_id)
        assert isinstance(expert, Expert)
        assert expert.documented_return is not None


def test_documented_returns_match_the_benchmark_table() -> None:
    # The README quotes benchmarks/results/experts.json; the code must quote the same figures.
    path = Path(__file__).resolve().parents[3] / "benchmarks" / "results" / "experts.json"
    if not path.exists():
        pytest.skip("benchmarks/results/experts.json has not been generated")
    for row in json.loads(path.read_text())["rows"]:
        expert = make_expert(row["env_id"], **row["env_kwargs"])
        assert expert.documented_return == pytest.approx(row["mean"], abs=0.5), row["name"]


def test_expert_rollouts_returns_aligned_observation_and_action_sequences():
    from ilcore.experts import expert_rollouts

    space, seqs, acts = expert_rollouts("CartPole-v1", 2, seed=3)
    assert space.shape == (4,) and len(seqs) == len(acts) == 2
    for obs, act in zip(seqs, acts):
        assert obs.shape == (len(act) + 1, 4)
        assert len(act) == 500  # the CartPole expert balances to the time limit
