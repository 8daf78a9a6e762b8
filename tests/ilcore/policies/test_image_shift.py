"""Random-shift augmentation of image observations (DrQ): where content lands, independence of
the draws, identity at 0, seeded repeats, and its wiring through the encoder and BC."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces as S

from ilcore.algos.bc import BCConfig, train_bc
from ilcore.errors import ConfigError
from ilcore.policies import make_policy
from ilcore.policies.networks import random_shift
from tests.support.demos import Transitions


def _dot_frames(k: int, n: int, size: int = 24, at: tuple[int, int] = (11, 13)) -> torch.Tensor:
    """(K, N, size, size, 3) black frames with one bright pixel at ``at``."""
    x = torch.zeros(k, n, size, size, 3, dtype=torch.uint8)
    x[:, :, at[0], at[1], :] = 255
    return x


def _dot_positions(frames: torch.Tensor) -> torch.Tensor:
    """(M, 2) row/col of the single bright pixel of each frame; asserts there is exactly one."""
    bright = frames.reshape(-1, *frames.shape[-3:])[..., 0] == 255  # (M, H, W)
    assert bright.sum(dim=(1, 2)).eq(1).all()
    return torch.stack([bright.any(2).float().argmax(1), bright.any(1).float().argmax(1)], 1)


def test_a_bright_pixel_lands_within_the_pad_and_every_frame_draws_its_own_shift():
    pad, at = 4, (11, 13)
    x = _dot_frames(3, 200, at=at)
    out = random_shift(x, pad, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    pos = _dot_positions(out).reshape(3, 200, 2)
    offset = pos - torch.tensor(at)
    assert offset.abs().max() <= pad
    # Every offset in [-pad, pad] occurs on both axes: the whole range is drawn, not a sub-range.
    for axis in range(2):
        assert set(offset[..., axis].flatten().tolist()) == set(range(-pad, pad + 1))
    # Members see the same sample shifted differently, and samples within a member differ.
    assert (pos[0] != pos[1]).any(1).float().mean() > 0.8
    assert len({tuple(p) for p in pos[0].tolist()}) > 40


def test_the_shift_is_replicate_pad_then_crop():
    pad, size = 2, 9
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (30, size, size, 3), dtype=np.uint8)
    out = random_shift(torch.from_numpy(frames), pad, torch.Generator().manual_seed(1)).numpy()
    padded = np.pad(frames, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    crops = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)]
    for i in range(len(frames)):
        matches = [c for c in crops if np.array_equal(out[i], padded[i, c[0]:c[0] + size, c[1]:c[1] + size])]
        assert matches, f"frame {i} is no crop of its replicate-padded frame"


def test_zero_shift_is_the_identity_and_a_seed_repeats_the_draws():
    x = torch.randint(0, 256, (2, 5, 16, 16, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert random_shift(x, 0, torch.Generator().manual_seed(0)) is x
    a = random_shift(x, 3, torch.Generator().manual_seed(7))
    b = random_shift(x, 3, torch.Generator().manual_seed(7))
    c = random_shift(x, 3, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_the_encoder_shifts_each_member_of_a_shared_input_and_leaves_vectors_alone():
    space = S.Dict({"img": S.Box(0, 255, (16, 16, 3), np.uint8), "pos": S.Box(-5, 5, (2,), np.float32)})
    policy = make_policy(space, S.Discrete(3), hidden=(8,), ensemble=3, cnn_features=16, seed=0)
    gen = torch.Generator().manual_seed(0)
    obs = {"img": torch.randint(0, 256, (6, 16, 16, 3), dtype=torch.uint8, generator=gen),
           "pos": torch.randn(6, 2, generator=gen)}
    enc = policy.encoder
    plain = enc(obs)
    assert torch.equal(enc(obs, image_shift=0, generator=torch.Generator().manual_seed(5)), plain)
    shifted = enc(obs, image_shift=4, generator=torch.Generator().manual_seed(5))
    # The same draws applied by hand to the member-expanded frames give the same features.
    by_hand = {"img": random_shift(obs["img"].expand(3, *obs["img"].shape), 4, torch.Generator().manual_seed(5)),
               "pos": obs["pos"].expand(3, *obs["pos"].shape)}
    assert torch.equal(shifted, enc(by_hand, per_member=True))
    assert not torch.equal(shifted, plain)
    # The vector leaf's features (the first 2 columns) are untouched.
    assert torch.equal(shifted[..., :2], plain[..., :2])


def _image_demos(n: int = 96) -> Transitions:
    """Frames whose label is which third of the frame holds a bright bar (no env needed)."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, n)
    obs = np.zeros((n, 16, 16, 1), np.uint8)
    for i, lab in enumerate(labels):
        obs[i, :, 5 * lab:5 * lab + 4, 0] = 200
    episode = np.arange(n) % 4
    return Transitions(obs, labels.astype(np.int64), np.ones(n, np.float32), episode, np.ones(n, bool),
                       np.zeros(n, bool), S.Box(0, 255, (16, 16, 1), np.uint8), S.Discrete(3))


@pytest.mark.slow
def test_bc_with_image_shift_repeats_with_its_seed_and_differs_from_no_shift():
    data = _image_demos()
    cfg = BCConfig(epochs=2, batch_size=32, ensemble=2, hidden=(8,), seed=3, valid_fraction=0.0, patience=None,
                   image_shift=4, device="cpu")
    a = train_bc(data, cfg, progress=False).policy
    b = train_bc(data, cfg, progress=False).policy
    c = train_bc(data, BCConfig(**{**cfg.__dict__, "image_shift": 0}), progress=False).policy
    pa, pb, pc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb)
    assert not torch.allclose(pa, pc)


def test_a_negative_image_shift_is_refused():
    with pytest.raises(ConfigError, match="image_shift"):
        BCConfig(image_shift=-1).check()
