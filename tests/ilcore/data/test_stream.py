"""Streamed image training: the auto rule, frames read in worker processes, and the same result
as the in-memory path (same split, same relabels, same minibatches)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from gymnasium import spaces

from ilcore.algos.bc import BCConfig, train_bc
from ilcore.data import SessionWriter, load_transitions
from ilcore.data.stream import (BatchOrder, FrameBatches, choose_data_mode, decoded_bytes, frame_loader,
                                lazy_leaves)
from ilcore.errors import ConfigError
from ilcore.types import Actor, Label

OBS = spaces.Dict({"img": spaces.Box(0, 255, (16, 16, 3), np.uint8), "v": spaces.Box(-1, 1, (2,), np.float32)})
ACT = spaces.Discrete(3)


def frame(e: int, t: int) -> np.ndarray:
    """A frame that tells its (episode, step) apart and encodes the right action (bright third)."""
    img = np.full((16, 16, 3), 10 * e, np.uint8)
    img[:, (t % 3) * 5:(t % 3) * 5 + 5] = 250
    img[0, 0] = t
    return img


def write_session(path, episodes: int = 6, steps: int = 12, relabel: bool = True):
    with SessionWriter(path, env_id="Img-v0", observation_space=OBS, action_space=ACT) as w:
        ids = []
        for e in range(episodes):
            rec = w.begin_episode({"img": frame(e, 0), "v": np.zeros(2, np.float32)})
            for t in range(steps):
                rec.label(t, (t + 1) % 3 if t == 3 else t % 3, source="scripted", reason="demo")
                rec.step(t % 3, Actor.SCRIPTED, 0.0, False, t == steps - 1,
                         {"img": frame(e, t + 1), "v": np.full(2, t / steps, np.float32)})
            ids.append(rec.finish())
        if relabel:  # a later label on step 3 of every episode: the latest label must win in both paths
            for eid in ids:
                w.add_label(Label(eid, 3, 0, source="human", reason="review"))
    return path


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return write_session(tmp_path_factory.mktemp("stream") / "s")


def test_auto_rule_streams_only_images_that_do_not_fit(session):
    data = load_transitions(session, valid_fraction=0.2)
    frames = lazy_leaves(data.observation_space, data.obs)
    assert set(frames) == {"img"}
    need = decoded_bytes(frames)
    assert need == len(data) * 16 * 16 * 3
    # In memory while 2 copies fit in half the RAM; streamed beyond; twice as strict for 2 processes.
    assert choose_data_mode(frames, "auto", available=4 * need) == "memory"
    assert choose_data_mode(frames, "auto", available=4 * need - 1) == "stream"
    assert choose_data_mode(frames, "auto", available=4 * need, processes=2) == "stream"
    assert choose_data_mode(frames, "memory", available=1) == "memory"
    assert choose_data_mode(frames, "stream", available=10**15) == "stream"
    assert choose_data_mode({}, "stream") == "memory"  # nothing on disk to stream
    with pytest.raises(ConfigError, match="data-mode"):
        choose_data_mode(frames, "disk")
    with pytest.raises(ConfigError, match="data_mode"):
        BCConfig(data_mode="disk").check()


def test_frame_batches_read_per_member_rows_in_worker_processes(session):
    data = load_transitions(session, valid_fraction=0.0)
    frames = lazy_leaves(data.observation_space, data.obs)
    expected = np.asarray(data.obs["img"])
    rows = [np.array([[5, 1, 5], [0, 2, 70]]), np.array([[3], [3]])]  # duplicates and (K, B) layout
    ds = FrameBatches(frames)
    np.testing.assert_array_equal(ds[rows[0]]["img"].numpy(), expected[rows[0]])
    # Open handles never travel to a spawned worker: the pickle drops them and a copy reopens.
    copy = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(copy[rows[1]]["img"].numpy(), expected[rows[1]])
    order = BatchOrder()
    loader = frame_loader(frames, order, workers=1, pin_memory=False)
    for _ in range(2):  # persistent workers pick up each epoch's new order
        order.set(rows[::-1])
        got = [b["img"].numpy() for b in loader]
        assert len(got) == 2
        for g, r in zip(got, rows[::-1]):
            np.testing.assert_array_equal(g, expected[r])
        rows = [r[:, ::-1].copy() for r in rows]


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 1])
def test_streamed_training_matches_in_memory(session, workers):
    data = load_transitions(session, valid_fraction=0.2, seed=1)
    assert data.valid_mask.any() and data.train_mask.any()
    at3 = data.step == 3
    assert (data.actions[at3] == 0).all()  # the overlay's relabel is what both paths train on
    cfg = dict(epochs=3, batch_size=16, hidden=(16,), ensemble=2, seed=0, device="cpu", patience=None)
    memory = train_bc(data, BCConfig(**cfg, data_mode="memory"), progress=False)
    stream = train_bc(data, BCConfig(**cfg, data_mode="stream", workers=workers), progress=False)
    np.testing.assert_allclose(stream.history["train_loss"], memory.history["train_loss"], rtol=1e-5)
    np.testing.assert_allclose(stream.history["valid_loss"], memory.history["valid_loss"], rtol=1e-5)
    for (name, a), b in zip(memory.policy.state_dict().items(), stream.policy.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.slow
def test_steps_per_epoch_caps_minibatches(session):
    data = load_transitions(session, valid_fraction=0.0)
    res = train_bc(data, BCConfig(epochs=2, batch_size=8, hidden=(8,), steps_per_epoch=2, data_mode="stream",
                                  workers=0, device="cpu"), progress=False)
    assert res.history["samples"] == [16, 32]
    with pytest.raises(ConfigError, match="steps_per_epoch"):
        BCConfig(steps_per_epoch=0).check()


@pytest.mark.slow
def test_stream_learns_the_image_task(tmp_path):
    """The action is visible only in the image; streamed BC must learn it (seeded, real progress)."""
    path = write_session(tmp_path / "learn", episodes=8, steps=24, relabel=False)
    data = load_transitions(path, valid_fraction=0.25, seed=0)
    res = train_bc(data, BCConfig(epochs=12, batch_size=32, hidden=(32,), lr=3e-3, seed=0, data_mode="stream",
                                  workers=1, device="cpu", patience=None), progress=False)
    assert res.history["valid_loss"][-1] < 0.5 * res.history["valid_loss"][0]
    valid = data.valid()
    pred = res.policy.act_batch({"img": np.asarray(valid.obs["img"]), "v": valid.obs["v"]})
    assert (pred == valid.actions).mean() > 0.9


def test_lazy_frames_hold_a_bounded_number_of_files_without_chunk_cache(session):
    """Each open HDF5 file costs memory, so a reader keeps only the most recently used few open."""
    data = load_transitions(session, valid_fraction=0.0)
    frames = lazy_leaves(data.observation_space, data.obs)["img"]
    expected = np.asarray(frames.take(slice(None)))  # a separate reader with its own files
    frames.max_open_files = 2  # 6 episode files: every pass below must close and reopen some
    rows = np.random.default_rng(0).integers(0, len(frames), 60)
    np.testing.assert_array_equal(frames[rows], expected[rows])
    open_now = [handle for handle, _ in frames._files.values()]
    assert len(open_now) == 2
    assert all(f.id.get_access_plist().get_cache()[2] == 0 for f in open_now)  # rdcc_nbytes
    np.testing.assert_array_equal(frames[rows[::-1]], expected[rows[::-1]])
    frames.close()
    assert not frames._files and not any(f.id.valid for f in open_now)


@pytest.mark.parametrize("layout", [
    dict(chunks=(1, 6, 5, 3), compression="gzip"),   # what SessionWriter writes: read as raw chunks
    dict(chunks=(1, 6, 5, 3)),                       # uncompressed one-frame chunks: raw too
    dict(chunks=(2, 6, 5, 3), compression="gzip"),   # two frames per chunk: through h5py
    dict(chunks=(1, 6, 5, 3), compression="gzip", shuffle=True),  # another filter: through h5py
    dict(),                                          # contiguous: through h5py
])
def test_lazy_frames_read_every_layout_alike(tmp_path, layout):
    """The raw-chunk fast path and h5py's path give the same frames; other layouts fall back."""
    import h5py

    from ilcore.data.dataset import LazyFrames

    frames = np.random.default_rng(1).integers(0, 256, (9, 6, 5, 3), dtype=np.uint8)
    path = tmp_path / "ep.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("obs", data=frames, **layout)
    lazy = LazyFrames([(path, "obs", 9), (path, "obs", 9)], (6, 5, 3), np.dtype(np.uint8))
    rows = np.array([17, 0, 3, 3, 8, 9, 12])
    np.testing.assert_array_equal(lazy[rows], np.concatenate([frames, frames])[rows])
    lazy.close()


def test_a_damaged_chunk_reads_as_h5py_reports_it(tmp_path):
    """A chunk whose deflate stream is broken is not turned into garbage by the fast path: the
    read falls back to h5py, which raises its error (that load_transitions' callers report)."""
    import h5py

    from ilcore.data.dataset import LazyFrames

    frames = np.random.default_rng(2).integers(0, 256, (4, 6, 5, 3), dtype=np.uint8)
    path = tmp_path / "ep.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("obs", data=frames, chunks=(1, 6, 5, 3), compression="gzip")
        offset = ds.id.get_chunk_info(2).byte_offset
    raw = bytearray(path.read_bytes())
    raw[offset:offset + 8] = b"\xff" * 8
    path.write_bytes(bytes(raw))
    lazy = LazyFrames([(path, "obs", 4)], (6, 5, 3), np.dtype(np.uint8))
    np.testing.assert_array_equal(lazy[np.array([0, 1, 3])], frames[[0, 1, 3]])
    with pytest.raises(OSError):
        lazy[np.array([2])]
    lazy.close()
