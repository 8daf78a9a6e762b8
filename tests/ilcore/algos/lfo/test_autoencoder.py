import numpy as np
import pytest

from ilcore.algos.lfo.autoencoder import AutoencoderConfig, FrameAutoencoder, train_autoencoder
from ilcore.algos.lfo.tcn import TCNConfig, TimeContrastiveEmbedding, embedding_quality
from ilcore.errors import ConfigError

from tests.support.demos import make_moving_square_video

CFG = AutoencoderConfig(embedding_dim=16, cnn_features=64, decoder_channels=(32, 16, 8), steps=300, batch_size=48,
                        seed=0)


@pytest.mark.slow
def test_reconstruction_loss_falls_clearly_and_holds_on_unseen_episodes():
    rng = np.random.default_rng(0)
    train = [make_moving_square_video(rng) for _ in range(16)]
    held_out = [make_moving_square_video(rng) for _ in range(2)]
    result = train_autoencoder(train, CFG, log_every=10)
    losses = result.history["loss"]
    assert result.history["step"][-1] == CFG.steps
    assert losses[-1] < 0.5 * losses[0], losses
    frames = np.concatenate([ep[0] for ep in held_out])
    untrained = FrameAutoencoder.untrained((16, 16, 3), CFG).reconstruction_error(frames)
    trained = result.autoencoder.reconstruction_error(frames)
    assert trained < 0.5 * untrained, (trained, untrained)
    # Same frames, same code: a deterministic embedding of the size asked for.
    codes = result.autoencoder.encode(frames)
    assert codes.shape == (len(frames), CFG.embedding_dim) and codes.dtype == np.float32
    np.testing.assert_array_equal(codes, result.autoencoder.encode(frames))
    assert result.autoencoder.reconstruct(frames[:3]).shape == (3, 16, 16, 3)
    quality = embedding_quality(result.autoencoder.encode, held_out)
    assert 0.0 <= quality["alignment_error"] <= 1.0


def test_the_encoder_is_the_tcn_encoder_and_matching_copies_the_tcn_budget():
    tcn_cfg = TCNConfig(embedding_dim=16, cnn_features=64, steps=123, batch_size=20, lr=3e-4, seed=4)
    cfg = AutoencoderConfig.matching(tcn_cfg)
    assert (cfg.embedding_dim, cfg.cnn_features, cfg.steps, cfg.batch_size, cfg.lr, cfg.seed) == (16, 64, 123, 60, 3e-4, 4)
    ae = FrameAutoencoder.untrained((16, 16, 3), cfg).network
    tcn = TimeContrastiveEmbedding.untrained((16, 16, 3), True, tcn_cfg).network
    shapes = lambda module: [tuple(p.shape) for p in module.parameters()]  # noqa: E731
    assert shapes(ae.cnn) == shapes(tcn.cnn) and shapes(ae.code) == shapes(tcn.head)


@pytest.mark.slow
def test_two_view_training_pools_both_views_and_odd_sizes_reconstruct_to_shape():
    rng = np.random.default_rng(2)
    video = rng.integers(0, 256, (2, 12, 20, 18, 3), dtype=np.uint8)  # two views, 20x18 frames
    result = train_autoencoder([video], AutoencoderConfig(embedding_dim=4, cnn_features=8, decoder_channels=(8, 8, 4),
                                                          steps=2, batch_size=4))
    assert result.autoencoder.reconstruct(video[1]).shape == (12, 20, 18, 3)


def test_bad_input_is_refused_with_a_config_error():
    with pytest.raises(ConfigError, match="uint8"):
        train_autoencoder([np.zeros((1, 30, 4), np.float32)], CFG)
    with pytest.raises(ConfigError, match="at least one"):
        train_autoencoder([], CFG)
    with pytest.raises(ConfigError, match="decoder_channels"):
        AutoencoderConfig(decoder_channels=(8, 8)).check()
    ae = FrameAutoencoder.untrained((16, 16, 3), CFG)
    with pytest.raises(ConfigError, match="shape"):
        ae.encode(np.zeros((2, 8, 8, 3), np.uint8))
