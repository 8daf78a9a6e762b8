"""`ilcore export robomimic` writes robomimic's layout; robomimic's own dataset class reads it when installed."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from ilcore.cli.main import main
from ilcore.data import open_recording


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    out = tmp_path_factory.mktemp("rm") / "rec"
    assert main(["record", "--env", "CartPole-v1", "--episodes", "5", "--out", str(out), "--noise", "0.2",
                 "--seed", "1", "--json"]) == 0
    return out


def test_layout_matches_the_recording(recording, tmp_path, capsys):
    out = tmp_path / "demo.hdf5"
    assert main(["export", "robomimic", str(recording), "--out", str(out), "--valid-fraction", "0.2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["demos"] == 5 and summary["train"] == 4 and summary["valid"] == 1
    episodes = list(open_recording(recording).episodes())
    with h5py.File(out, "r") as f:
        assert f["data"].attrs["total"] == sum(len(e.wall_time) for e in episodes) == summary["total"]
        env_args = json.loads(f["data"].attrs["env_args"])
        assert env_args == {"env_name": "CartPole-v1", "type": 2, "env_kwargs": {}}
        names = sorted(n.decode() for n in np.concatenate([f["mask/train"][()], f["mask/valid"][()]]))
        assert names == sorted(f"demo_{i}" for i in range(5))
        for i, ep in enumerate(episodes):
            demo = f[f"data/demo_{i}"]
            t = len(ep.wall_time)
            assert demo.attrs["num_samples"] == t
            np.testing.assert_array_equal(demo["obs/state"][()], ep.observations[:t])
            np.testing.assert_array_equal(demo["next_obs/state"][()], ep.observations[1:])
            np.testing.assert_array_equal(demo["actions"][()], np.asarray(ep.actions).reshape(t, 1))
            np.testing.assert_array_equal(demo["rewards"][()], ep.rewards)
            assert demo["dones"][()].sum() == int(ep.terminated) and demo["dones"][-1] == int(ep.terminated)


def test_label_actions_are_the_clean_expert_labels(recording, tmp_path):
    out = tmp_path / "labels.hdf5"
    assert main(["export", "robomimic", str(recording), "--out", str(out), "--actions", "label"]) == 0
    ep = next(open_recording(recording).episodes())
    labels = ep.effective_labels()
    with h5py.File(out, "r") as f:
        got = f["data/demo_0/actions"][()].ravel()
    np.testing.assert_array_equal(got, [labels[s].action for s in range(len(got))])
    assert (got != np.asarray(ep.actions)).any()  # --noise made executed actions differ from labels


def test_robomimic_reads_it(recording, tmp_path):
    pytest.importorskip("robomimic")
    try:
        import robomimic.utils.obs_utils as obs_utils
        from robomimic.utils.dataset import SequenceDataset
    except ImportError as exc:  # robomimic installed without its optional extras
        pytest.skip(f"robomimic's dataset class does not import here ({exc})")
    out = tmp_path / "demo.hdf5"
    assert main(["export", "robomimic", str(recording), "--out", str(out)]) == 0
    obs_utils.initialize_obs_modality_mapping_from_dict({"low_dim": ["state"]})
    ds = SequenceDataset(str(out), obs_keys=("state",), dataset_keys=("actions", "rewards", "dones"),
                         filter_by_attribute="train", hdf5_cache_mode=None, hdf5_use_swmr=False)
    with h5py.File(out, "r") as f:
        train = [n.decode() for n in f["mask/train"][()]]
        assert len(ds) == sum(int(f[f"data/{n}"].attrs["num_samples"]) for n in train)
        first = f[f"data/{train[0]}"]
        sample = ds[0]
        np.testing.assert_allclose(sample["obs"]["state"][0], first["obs/state"][0])
        np.testing.assert_allclose(sample["actions"][0], first["actions"][0])
