import gymnasium as gym
import numpy as np
import pytest

from ilcore.envs.views import (
    MIRRORED,
    ImageView,
    PixelObservation,
    StateView,
    ViewShiftedState,
    record_views,
    render_view,
    resize_frame,
    state_view,
)
from ilcore.errors import ConfigError


def test_resize_averages_areas_and_keeps_constant_images():
    flat = np.full((40, 60, 3), 77, np.uint8)
    assert np.all(resize_frame(flat, (8, 8)) == 77)
    stripes = np.zeros((4, 4, 1), np.uint8)
    stripes[:, ::2] = 200
    assert np.all(resize_frame(stripes, (2, 2)) == 100)
    assert resize_frame(stripes, (8, 8)).shape == (8, 8, 1)
    with pytest.raises(ConfigError):
        resize_frame(np.zeros((4, 4)), (2, 2))


def test_image_views_are_deterministic_transforms():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    np.testing.assert_array_equal(MIRRORED(MIRRORED(frame)), frame)
    recolour = ImageView(channels=(2, 0, 1))
    np.testing.assert_array_equal(recolour(frame)[..., 0], frame[..., 2])
    np.testing.assert_array_equal(ImageView(invert=True)(frame), 255 - frame)
    crop = ImageView(crop=(0.0, 0.0, 0.5, 0.5))
    assert crop(frame).shape == frame.shape  # a crop zooms back to the input size
    assert ImageView(size=(4, 4))(np.stack([frame, frame])).shape == (2, 4, 4, 3)
    with pytest.raises(ConfigError):
        ImageView(crop=(0.5, 0.5, 0.9, 0.9))


def test_state_view_inverts_and_wraps_an_env():
    view = StateView.random(4, seed=3)
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(view.inverse(view(x)), x, atol=1e-5)
    env = ViewShiftedState(gym.make("CartPole-v1"), view)
    obs, _ = env.reset(seed=0)
    raw, _ = gym.make("CartPole-v1").reset(seed=0)
    np.testing.assert_allclose(obs, view(raw), rtol=1e-6)
    assert env.observation_space.shape == (4,)
    with pytest.raises(ConfigError):
        ViewShiftedState(gym.make("CartPole-v1"), StateView(permutation=(0, 0, 1, 2)))


def test_pixel_observation_and_synchronised_views():
    env = PixelObservation(gym.make("CartPole-v1", render_mode="rgb_array"), size=(32, 32), view=MIRRORED)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (32, 32, 3) and obs.dtype == np.uint8 and env.observation_space.contains(obs)
    with pytest.raises(ConfigError):
        PixelObservation(gym.make("CartPole-v1"))

    base = gym.make("CartPole-v1", render_mode="rgb_array")
    views, actions = record_views(base, lambda _o: 0, episodes=2, seed=0,
                                  frame_fns=[render_view(ImageView(), (24, 24)), render_view(MIRRORED, (24, 24)),
                                             ])
    assert len(views) == 2 and views[0].shape[0] == 2 and views[0].shape[1] == len(actions[0]) + 1
    np.testing.assert_array_equal(views[0][1], views[0][0][:, :, ::-1])  # same instant, mirrored
    states, _ = record_views(gym.make("CartPole-v1"), lambda _o: 1, episodes=1, seed=0,
                             frame_fns=[state_view(), state_view(StateView(scale=(2.0, 2.0, 2.0, 2.0)))])
    np.testing.assert_allclose(states[0][1], 2 * states[0][0], rtol=1e-6)
