"""Review replay frames: averaged down (thin lines stay smooth), one per env step, shared by clips."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from app.session import REPLAY_FRAMES, FrameHistory, downscale


def pole(x: int, width: int = 600, height: int = 400) -> np.ndarray:
    """A white one-pixel vertical line at column x: CartPole's pole seen edge-on."""
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    frame[:, x] = 255
    return frame


def test_a_thin_line_moving_one_pixel_moves_smoothly():
    # Picking every other pixel showed a one-pixel pole only on even columns: it blinked and jumped.
    # Averaging shows it at half brightness wherever it is, so it never vanishes.
    for x in range(300, 306):
        small = downscale(pole(x))
        assert small.shape == (200, 300, 3)
        assert small[:, x // 2].min() == 128 and small.sum() == 128 * 3 * 200


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 64), w=st.integers(1, 200), width=st.integers(1, 100), channels=st.sampled_from([1, 3, 4]), seed=st.integers(0, 2**16))
def test_downscale_is_the_block_mean(h, w, width, channels, seed):
    frame = np.random.default_rng(seed).integers(0, 256, size=(h, w, channels), dtype=np.uint8)
    small = downscale(frame, width)
    k = -(-w // width)
    assert small.dtype == np.uint8
    assert small.shape == ((h // k), (w // k), channels) if k > 1 else small.shape == frame.shape
    assert small.shape[1] <= max(width, 1) or k == 1
    if k > 1 and small.size:
        ref = frame[: (h // k) * k, : (w // k) * k].reshape(h // k, k, w // k, k, channels).astype(float).mean(axis=(1, 3))
        assert np.abs(small.astype(float) - np.floor(ref + 0.5)).max() == 0


def test_history_keeps_one_frame_per_step_and_clips_share_frames():
    history = FrameHistory()
    for step in range(40):
        history.push(pole(step))
    clip = history.clip()
    assert len(clip) == REPLAY_FRAMES
    # the last REPLAY_FRAMES steps, in order, each its own frame
    assert [int(np.argmax(f[0, :, 0])) for f in clip] == [s // 2 for s in range(40 - REPLAY_FRAMES, 40)]
    history.push(pole(40))
    later = history.clip()
    assert all(a is b for a, b in zip(clip[1:], later[:-1]))  # overlapping clips hold the same arrays
    assert int(np.argmax(later[-1][0, :, 0])) == 20


def test_history_copies_frames_an_env_may_reuse():
    buffer = pole(10)
    history = FrameHistory()
    history.push(buffer)
    buffer[:] = 0  # an env rendering into the same array again
    history.push(buffer)
    first, second = history.clip()
    assert first.max() == 128 and second.max() == 0
