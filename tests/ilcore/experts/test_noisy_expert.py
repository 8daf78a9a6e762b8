"""NoisyExpert: the noise has the promised statistics, stays in bounds and is reproducible."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from ilcore.errors import ConfigError
from ilcore.experts import Expert, NoisyExpert


class ConstantExpert(Expert):
    """Always the same action: isolates the noise from any controller."""

    def __init__(self, action_space: gym.Space, action: Any) -> None:
        super().__init__(action_space)
        self.action = action
        self.resets = 0

    def act(self, obs: Any) -> Any:
        return self.action

    def reset(self) -> None:
        self.resets += 1


def test_discrete_noise_replaces_the_action_at_the_given_rate() -> None:
    space = gym.spaces.Discrete(4)
    noisy = NoisyExpert(ConstantExpert(space, 1), noise=0.4, rng=0)
    draws = np.array([noisy.act(None) for _ in range(20_000)])
    # A random action equals the expert's 1 time in 4, so the action changes with p = 0.4 * 3/4.
    assert np.mean(draws != 1) == pytest.approx(0.3, abs=0.015)
    # The replacements are uniform over the other actions.
    others = draws[draws != 1]
    for a in (0, 2, 3):
        assert np.mean(others == a) == pytest.approx(1 / 3, abs=0.03)
    assert all(space.contains(int(a)) for a in np.unique(draws))


def test_discrete_noise_respects_a_shifted_start() -> None:
    space = gym.spaces.Discrete(3, start=-1)
    noisy = NoisyExpert(ConstantExpert(space, 0), noise=1.0, rng=1)
    assert set(noisy.act(None) for _ in range(500)) == {-1, 0, 1}


def test_box_noise_has_the_scaled_std_and_keeps_the_clean_label() -> None:
    space = gym.spaces.Box(low=np.array([-2.0, 0.0], np.float32), high=np.array([2.0, 10.0], np.float32))
    clean = np.array([0.0, 5.0], np.float32)
    noisy = NoisyExpert(ConstantExpert(space, clean), noise=0.1, rng=0)
    draws = []
    for _ in range(5_000):
        executed, label = noisy.act_with_label(None)
        assert label is clean
        draws.append(executed)
    draws = np.array(draws)
    assert draws.dtype == np.float32
    # std = noise * half range per dimension: 0.1 * 2 and 0.1 * 5; mean stays on the clean action.
    np.testing.assert_allclose(draws.std(axis=0), [0.2, 0.5], rtol=0.05)
    np.testing.assert_allclose(draws.mean(axis=0), clean, atol=0.03)


def test_box_noise_is_clipped_to_the_bounds() -> None:
    space = gym.spaces.Box(low=-1.0, high=1.0, shape=(3,), dtype=np.float32)
    noisy = NoisyExpert(ConstantExpert(space, np.ones(3, np.float32)), noise=0.5, rng=0)
    draws = np.array([noisy.act(None) for _ in range(2_000)])
    assert draws.max() <= 1.0 and draws.min() >= -1.0
    assert np.mean(draws == 1.0) == pytest.approx(0.5, abs=0.05)  # half the noise pushes past the bound
    assert all(space.contains(d) for d in draws[:100])


def test_zero_noise_is_the_expert_and_seeds_reproduce() -> None:
    space = gym.spaces.Box(low=-1.0, high=1.0, shape=(2,), dtype=np.float32)
    expert = ConstantExpert(space, np.array([0.3, -0.3], np.float32))
    np.testing.assert_array_equal(NoisyExpert(expert, 0.0, rng=0).act(None), expert.action)
    first = NoisyExpert(expert, 0.2, rng=7).act(None)
    second = NoisyExpert(expert, 0.2, rng=7).act(None)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, expert.action)
    np.testing.assert_array_equal(NoisyExpert(expert, 0.2, rng=np.random.default_rng(7)).act(None), first)


def test_reset_reaches_the_wrapped_expert() -> None:
    expert = ConstantExpert(gym.spaces.Discrete(2), 0)
    noisy = NoisyExpert(expert, 0.1, rng=0)
    noisy.reset()
    assert expert.resets == 1
    assert noisy.documented_return is None


@pytest.mark.parametrize(
    ("space", "noise"),
    [(gym.spaces.Discrete(2), 1.5), (gym.spaces.Discrete(2), -0.1), (gym.spaces.Box(-1, 1, (1,)), float("nan")),
     (gym.spaces.MultiBinary(3), 0.1)],
)
def test_bad_noise_or_space_is_a_config_error(space: gym.Space, noise: float) -> None:
    with pytest.raises(ConfigError):
        NoisyExpert(ConstantExpert(space, space.sample()), noise, rng=0)
