import tempfile
from pathlib import Path

import h5py
import numpy as np
from gymnasium import spaces
from hypothesis import given, settings
from hypothesis import strategies as st

from ilcore import spaces as sp
from ilcore.data import SessionWriter, load_transitions, open_recording
from ilcore.types import Actor
from tests.support.strategies import any_space


@settings(max_examples=20, deadline=None)
@given(any_space, any_space, st.lists(st.integers(0, 6), min_size=1, max_size=3), st.integers(0, 2**31 - 1))
def test_random_episodes_round_trip(obs_space, act_space, lengths, seed):
    obs_space.seed(seed)
    act_space.seed(seed + 1)
    rng = np.random.default_rng(seed)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s"
        with SessionWriter(path, env_id="Any-v0", observation_space=obs_space, action_space=act_space,
                           env_kwargs={"k": [1, 2]}) as w:
            for n in lengths:
                obs = [obs_space.sample() for _ in range(n + 1)]
                acts = [act_space.sample() for _ in range(n)]
                labelled = sorted(set(rng.integers(0, n + 1, size=n).tolist())) if n else []
                rec = w.begin_episode(obs[0], seed=n, round=2, policy_version=7, attrs={"note": "é"})
                label_action = act_space.sample()
                for t in range(n + 1):
                    if t in labelled:  # labels are given as the state is visited
                        rec.label(t, label_action, source="human", reason="beta", latency_ms=12.5)
                    if t == n:
                        break
                    rec.step(acts[t], Actor.HUMAN, float(t) / 3, False, t == n - 1, obs[t + 1], info={"x": t * 0.5})
                written.append((rec.finish(), obs, acts, labelled))
        rec = open_recording(path)
        assert rec.env_kwargs == {"k": [1, 2]}
        assert sp.space_key(rec.observation_space) == sp.space_key(obs_space)
        for (eid, obs, acts, labelled), ep in zip(written, rec.episodes()):
            assert ep.id == eid and ep.length == len(acts)
            assert ep.meta.seed == len(acts) and ep.meta.round == 2 and ep.meta.policy_version == 7
            assert ep.meta.attrs["note"] == "é"
            assert ep.truncated == (len(acts) > 0) and not ep.terminated
            same_batch(obs_space, ep.observations, sp.stack(obs_space, obs))
            same_batch(act_space, ep.actions, sp.stack(act_space, acts))
            assert [lab.step for lab in ep.labels] == labelled
            assert all(lab.latency_ms == 12.5 and lab.reason == "beta" for lab in ep.labels)
        data = load_transitions(path, valid_fraction=0.0)
        n_expected = sum(sum(1 for t in lab if t < len(a)) for _, _, a, lab in written)
        assert len(data) == n_expected
        sp.check_batch(act_space, data.actions, n_expected)


def same_batch(space, a, b):
    fa, fb = sp.flat_from_nested(space, a), sp.flat_from_nested(space, b)
    for path in fb:
        assert fa[path].dtype == fb[path].dtype
        np.testing.assert_array_equal(fa[path], fb[path])


def test_images_are_chunked_per_frame_compressed_and_lazy(tmp_path):
    obs_space = spaces.Dict({"img": spaces.Box(0, 255, (16, 12, 3), np.uint8), "v": spaces.Box(-1, 1, (2,))})
    act_space = spaces.Box(-1, 1, (2,), np.float32)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(11, 16, 12, 3), dtype=np.uint8)
    with SessionWriter(tmp_path / "s", env_id="Img-v0", observation_space=obs_space, action_space=act_space) as w:
        rec = w.begin_episode({"img": frames[0], "v": np.zeros(2, np.float32)})
        for t in range(10):
            rec.label(t, np.full(2, t / 10, np.float32), source="human", reason="demo")
            rec.step(np.zeros(2, np.float32), Actor.HUMAN, 0.0, False, False,
                     {"img": frames[t + 1], "v": np.full(2, t / 10, np.float32)})
        eid = rec.finish()
    with h5py.File(tmp_path / "s" / "episodes" / f"{eid}.h5") as f:
        ds = f["observations/img"]
        assert ds.chunks == (1, 16, 12, 3)
        assert ds.compression in ("gzip", "lzf")
        assert f["observations/v"].chunks is None  # low-dim leaves stay contiguous
    data = load_transitions(tmp_path / "s", valid_fraction=0.0)
    lazy = data.obs["img"]
    assert not isinstance(lazy, np.ndarray) and lazy.shape == (10, 16, 12, 3)
    np.testing.assert_array_equal(lazy[np.array([7, 2, 7])], frames[[7, 2, 7]])
    np.testing.assert_array_equal(data.next_obs["img"][np.array([0, 9])], frames[[1, 10]])
    np.testing.assert_array_equal(np.asarray(data.subset(np.array([3, 4])).obs["img"]), frames[[3, 4]])
    eager = load_transitions(tmp_path / "s", valid_fraction=0.0, lazy_images=False)
    np.testing.assert_array_equal(eager.obs["img"], frames[:10])
