"""Policy.predict keeps stable-baselines3's contract; exported policies act like the Policy without ilcore."""

from __future__ import annotations

import json
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from ilcore.errors import ConfigError, SpaceMismatchError
from ilcore.policies import make_policy
from ilcore.policies.export import export_policy

DICT_SPACE = spaces.Dict({"img": spaces.Box(0, 255, (16, 16, 3), np.uint8),
                          "v": spaces.Box(-1, 1, (3,), np.float32)})


def test_predict_one_observation_gives_one_action():
    env = gym.make("CartPole-v1")
    policy = make_policy(env.observation_space, env.action_space, hidden=(8,), ensemble=3, seed=0)
    obs, _ = env.reset(seed=0)
    action, state = policy.predict(obs, deterministic=True)
    assert state is None and np.shape(action) == ()
    assert env.action_space.contains(int(action))
    batch = np.stack([obs, obs * 0.5, obs * 2, obs])
    actions, _ = policy.predict(batch)
    assert actions.shape == (4,)
    np.testing.assert_array_equal(actions, policy.predict_ensemble(batch).action)
    assert actions[0] == action


def test_predict_box_actions_and_dict_observations():
    policy = make_policy(DICT_SPACE, spaces.Box(-1, 1, (2,), np.float32), hidden=(8,), ensemble=2,
                         cnn_features=8, seed=0)
    DICT_SPACE.seed(0)
    one = DICT_SPACE.sample()
    action, _ = policy.predict(one)
    assert action.shape == (2,)
    batch = {k: np.stack([one[k], DICT_SPACE.sample()[k]]) for k in one}
    actions, _ = policy.predict(batch)
    assert actions.shape == (2, 2)
    np.testing.assert_allclose(actions[0], action, atol=1e-6)
    stochastic, _ = policy.predict(batch, deterministic=False)
    assert stochastic.shape == (2, 2)


def test_predict_refuses_shapes_that_are_neither_one_nor_a_batch():
    policy = make_policy(spaces.Box(-1, 1, (4,), np.float32), spaces.Discrete(2), hidden=(8,), seed=0)
    with pytest.raises(SpaceMismatchError, match=r"expects \(4,\) for one observation or \(N, 4\)"):
        policy.predict(np.zeros((2, 3, 4), np.float32))
    mixed = make_policy(DICT_SPACE, spaces.Discrete(2), hidden=(8,), cnn_features=8, seed=0)
    with pytest.raises(SpaceMismatchError, match="disagree"):
        mixed.predict({"img": np.zeros((16, 16, 3), np.uint8), "v": np.zeros((5, 3), np.float32)})


# Runs with ilcore made unimportable: the exported file must need torch alone.
_LOAD_WITHOUT_ILCORE = """
import json, sys
sys.modules["ilcore"] = None
import numpy as np, torch
files = {"ilcore.json": ""}
net = torch.jit.load(sys.argv[1], _extra_files=files)
spec = json.loads(files["ilcore.json"])
arrays = np.load(sys.argv[2])
inputs = [torch.as_tensor(arrays[str(i)]) for i in range(len(spec["inputs"]))]
print(json.dumps({"action": net(*inputs).tolist(), "paths": [i["path"] for i in spec["inputs"]]}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("obs_space, act_space", [
    (spaces.Box(-5, 5, (3,), np.float32), spaces.Box(-2, 2, (1,), np.float32)),
    (DICT_SPACE, spaces.Discrete(3)),
    (spaces.Box(-1, 1, (4,), np.float32), spaces.MultiDiscrete([3, 4])),
])
def test_exported_torchscript_acts_like_the_policy_without_ilcore(tmp_path, obs_space, act_space):
    policy = make_policy(obs_space, act_space, hidden=(16,), ensemble=3, cnn_features=8, seed=1)
    path = export_policy(policy, tmp_path / "policy.pt")
    obs_space.seed(3)
    samples = [obs_space.sample() for _ in range(5)]  # a batch size other than the traced one
    if isinstance(obs_space, spaces.Dict):
        batch = {k: np.stack([s[k] for s in samples]) for k in obs_space.spaces}
        leaves = [batch[k] for k in obs_space.spaces]
    else:
        batch = np.stack(samples)
        leaves = [batch]
    np.savez(tmp_path / "obs.npz", **{str(i): leaf for i, leaf in enumerate(leaves)})
    out = subprocess.run([sys.executable, "-c", _LOAD_WITHOUT_ILCORE, str(path), str(tmp_path / "obs.npz")],
                         capture_output=True, text=True, check=True, timeout=120)
    got = json.loads(out.stdout)
    np.testing.assert_allclose(np.asarray(got["action"]), policy.act_batch(batch), atol=1e-5)
    # The module is on the same footing in-process too: no grad, no ilcore types in its signature.
    net = torch.jit.load(str(path))
    assert not net(*[torch.as_tensor(x) for x in leaves]).requires_grad


def test_export_refuses_unknown_formats_and_folders(tmp_path):
    policy = make_policy(spaces.Box(-1, 1, (2,), np.float32), spaces.Discrete(2), hidden=(4,), seed=0)
    with pytest.raises(ConfigError, match="Unknown export format"):
        export_policy(policy, tmp_path / "p.onnx", "onnx")
    with pytest.raises(ConfigError, match="is a folder"):
        export_policy(policy, tmp_path)
