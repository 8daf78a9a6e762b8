import gymnasium as gym
import numpy as np
import pytest

from ilcore.algos.lfo.reward import EmbeddingImitationReward, imitation_reward
from ilcore.algos.lfo.tcn import (
    TCNConfig,
    TimeContrastiveEmbedding,
    alignment_error,
    embedding_quality,
    sample_triplets,
    train_tcn,
    view_invariance,
)
from ilcore.envs.views import ImageView

from tests.support.demos import make_moving_square_video

CFG = TCNConfig(steps=60, batch_size=32, positive_window=2, negative_window=8, embedding_dim=16,
                cnn_features=64, seed=0)


def test_triplets_respect_the_windows():
    trip = sample_triplets(np.array([12, 40]), 1, 500, CFG, False, np.random.default_rng(0))
    anchor, pos, neg = trip[:, 0], trip[:, 1], trip[:, 2]
    gap_pos, gap_neg = np.abs(anchor[:, 2] - pos[:, 2]), np.abs(anchor[:, 2] - neg[:, 2])
    assert gap_pos.min() >= 1 and gap_pos.max() <= CFG.positive_window and gap_neg.min() > CFG.negative_window
    multi = sample_triplets(np.array([30]), 2, 200, CFG, True, np.random.default_rng(0))
    assert np.all(multi[:, 0, 2] == multi[:, 1, 2]) and np.all(multi[:, 0, 1] != multi[:, 1, 1])


def test_alignment_and_view_invariance_measures():
    t = np.linspace(0, 1, 20)[:, None]
    assert alignment_error(t, np.linspace(0, 1, 30)[:, None]) < 0.03
    assert alignment_error(t, t[::-1]) > 0.45
    assert view_invariance(t, t + 1e-3) == 1.0
    assert view_invariance(t, t[::-1]) < 0.1


@pytest.mark.slow
def test_single_view_tcn_loss_falls_and_beats_a_random_network_on_alignment(tmp_path):
    rng = np.random.default_rng(0)
    train = [make_moving_square_video(rng) for _ in range(8)]
    held_out = [make_moving_square_video(rng) for _ in range(4)]
    result = train_tcn(train, CFG, log_every=10)
    losses = result.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    trained = embedding_quality(result.embedding.encode, held_out)["alignment_error"]
    random_net = TimeContrastiveEmbedding.untrained((16, 16, 3), True, CFG)
    baseline = embedding_quality(random_net.encode, held_out)["alignment_error"]
    assert trained < baseline - 0.03, (trained, baseline)
    result.embedding.save(tmp_path / "tcn")
    again = TimeContrastiveEmbedding.load(tmp_path / "tcn")
    np.testing.assert_allclose(again.encode(held_out[0][0]), result.embedding.encode(held_out[0][0]), atol=1e-6)


@pytest.mark.slow
def test_multi_view_tcn_matches_simultaneous_frames_across_views():
    rng = np.random.default_rng(1)
    other_view = ImageView(mirror=True, channels=(2, 0, 1), invert=True)

    def two_views(video):
        return np.stack([video[0], other_view(video[0])])

    train = [two_views(make_moving_square_video(rng)) for _ in range(8)]
    held_out = [two_views(make_moving_square_video(rng)) for _ in range(3)]
    result = train_tcn(train, CFG)
    trained = embedding_quality(result.embedding.encode, held_out)["view_invariance_pm2"]
    random_net = TimeContrastiveEmbedding.untrained((16, 16, 3), True, CFG)
    baseline = embedding_quality(random_net.encode, held_out)["view_invariance_pm2"]
    assert trained > baseline + 0.2, (trained, baseline)


class _Identity:
    def encode(self, frames):
        return np.asarray(frames, dtype=np.float32).reshape(len(frames), -1)


def test_imitation_reward_formula_and_wrapper():
    assert imitation_reward(0.0, 1.0, 1.0, 1e-2) == pytest.approx(-0.1)
    assert imitation_reward(4.0, 0.5, 2.0, 0.0) == pytest.approx(-2.0 - 4.0)
    env = gym.make("CartPole-v1")
    demo = np.zeros((3, 4), np.float32)  # a demo that stays at the origin
    wrapped = EmbeddingImitationReward(env, _Identity(), demo, alpha=1.0, beta=0.0, env_reward_weight=0.0)
    obs, _ = wrapped.reset(seed=0)
    obs, reward, *_, info = wrapped.step(0)
    assert reward == pytest.approx(-float(np.sum(obs.astype(np.float64) ** 2)), rel=1e-5)
    assert info["env_reward"] == 1.0 and info["imitation_reward"] == reward
