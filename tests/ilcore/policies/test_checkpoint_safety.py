"""Crafted or damaged checkpoints are refused with one ConfigError before anything large is
allocated; NaN never reaches a checkpoint; a checkpoint is never half written."""

from __future__ import annotations

import json
import math
import os
import resource

import numpy as np
import pytest
import torch
from gymnasium import spaces as S
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ilcore.errors import ConfigError, FormatError
from ilcore.policies import Policy, make_policy
from ilcore.policies import checkpoint

# A refusal may cost some memory (torch's import, the meta build); an allocation attempt of
# the crafted sizes (7 G to 676 G values) would cost gigabytes or fail.
RSS_SLACK_MB = 300


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


@pytest.fixture
def saved(tmp_path):
    policy = make_policy(S.Box(-1, 1, (4,)), S.Discrete(2), hidden=(8,), seed=0)
    policy.fit_obs_normalization(np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32))
    policy.save(tmp_path / "run")
    return tmp_path / "run"


def _edit(run, **changes):
    path = run / "config.json"
    doc = json.loads(path.read_text())
    for key, value in changes.items():
        if value is _DROP:
            doc.pop(key, None)
        else:
            doc[key] = value
    path.write_text(json.dumps(doc))


_DROP = object()

BOMBS = {
    "hidden 1e9": {"hidden": [1_000_000_000]},
    "hidden 1e5 x 1e5": {"hidden": [100_000, 100_000]},
    "ensemble 1e7": {"ensemble": 10**7},
    "hidden 1e30": {"hidden": [10**30]},
    "hidden 10000 layers": {"hidden": [4] * 10_000},
    "cnn_features 0": {"cnn_features": 0},
    "format_version x": {"format_version": "x"},
    "format_version null": {"format_version": None},
    "format_version list": {"format_version": [1]},
    "format_version bool": {"format_version": True},
    "format_version 0": {"format_version": 0},
    "format_version missing": {"format_version": _DROP},
    "format_version newer": {"format_version": 99},
    "hidden text": {"hidden": "256,256"},
    "hidden negative": {"hidden": [-4]},
    "hidden float": {"hidden": [8.5]},
    "ensemble 0": {"ensemble": 0},
    "ensemble text": {"ensemble": "3"},
    "head unknown": {"head": "laser"},
    "version negative": {"version": -1},
    "meta list": {"meta": [1, 2]},
    "obs_norm too short": {"obs_norm": {"": {"mean": [0.0], "std": [1.0]}}},
    "obs_norm too long": {"obs_norm": {"": {"mean": [0.0] * 5, "std": [1.0] * 5}}},
    "obs_norm NaN": {"obs_norm": {"": {"mean": [math.nan] * 4, "std": [1.0] * 4}}},
    "obs_norm zero std": {"obs_norm": {"": {"mean": [0.0] * 4, "std": [0.0] * 4}}},
    "obs_norm unknown leaf": {"obs_norm": {"x": {"mean": [0.0] * 4, "std": [1.0] * 4}}},
    "obs_norm list": {"obs_norm": [1]},
    "observation_space missing": {"observation_space": _DROP},
    "action_space garbage": {"action_space": {"type": "Hyperbox"}},
    "Box obs 1e5 x 1e5": {"observation_space": {"type": "Box", "dtype": "float32", "shape": [100000, 100000],
                                                "low": -1.0, "high": 1.0}},
    "Discrete obs 1e30": {"observation_space": {"type": "Discrete", "n": 10**30}},
}


@pytest.mark.parametrize("case", list(BOMBS))
def test_crafted_config_is_one_config_error_without_allocating(saved, case):
    _edit(saved, **BOMBS[case])
    before = _rss_mb()
    with pytest.raises(ConfigError) as err:
        Policy.load(saved)
    assert "\n" not in str(err.value)
    assert _rss_mb() - before < RSS_SLACK_MB


def test_the_parameter_cap_is_stated(saved):
    _edit(saved, hidden=[100_000, 100_000])
    with pytest.raises(ConfigError, match=f"more than the {checkpoint.MAX_PARAMETERS:,}"):
        Policy.load(saved)


def test_weights_that_do_not_fit_the_config_are_refused(saved, tmp_path):
    state = torch.load(saved / "weights.pt", weights_only=True)
    name = next(iter(k for k in state if k.endswith("weight")))
    bad = dict(state)
    bad[name] = torch.zeros(3, 3)
    torch.save(bad, saved / "weights.pt")
    with pytest.raises(ConfigError, match="do not match"):
        Policy.load(saved)
    bad = dict(state)
    bad.pop(name)
    torch.save(bad, saved / "weights.pt")
    with pytest.raises(ConfigError, match="missing"):
        Policy.load(saved)
    bad = dict(state)
    bad[name] = torch.full_like(state[name], math.nan)
    torch.save(bad, saved / "weights.pt")
    with pytest.raises(ConfigError, match="NaN or infinite"):
        Policy.load(saved)
    torch.save([1, 2, 3], saved / "weights.pt")
    with pytest.raises(ConfigError, match="state dict"):
        Policy.load(saved)


def test_non_regular_checkpoint_files_are_refused_without_blocking(saved):
    (saved / "weights.pt").unlink()
    os.mkfifo(saved / "weights.pt")  # opening a FIFO for reading would block forever
    with pytest.raises(ConfigError, match="not a regular file"):
        Policy.load(saved)
    (saved / "weights.pt").unlink()
    (saved / "config.json").unlink()
    (saved / "config.json").mkdir()
    with pytest.raises(ConfigError, match="not a regular file"):
        Policy.load(saved)


def test_nan_observations_are_refused_before_training():
    policy = make_policy(S.Box(-1, 1, (2,)), S.Discrete(2), hidden=(4,), seed=0)
    obs = np.zeros((10, 2), np.float32)
    obs[3, 1] = np.nan
    with pytest.raises(FormatError, match="NaN or infinite"):
        policy.fit_obs_normalization(obs)


def test_nan_weights_are_refused_before_anything_is_written(tmp_path):
    policy = make_policy(S.Box(-1, 1, (2,)), S.Discrete(2), hidden=(4,), seed=0)
    with torch.no_grad():
        next(policy.parameters())[0].fill_(math.inf)
    with pytest.raises(ConfigError, match="NaN or infinite"):
        policy.save(tmp_path / "run")
    assert not (tmp_path / "run").exists() or list((tmp_path / "run").iterdir()) == []


def test_a_policy_saved_over_an_old_one_loads_as_the_new_one(saved):
    policy = Policy.load(saved)
    policy.version = 3
    policy.save(saved)
    assert Policy.load(saved).version == 3
    assert sorted(p.name for p in saved.iterdir()) == ["config.json", "weights.pt"]


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["hidden", "ensemble", "cnn_features", "head", "obs_norm", "version", "meta",
                              "format_version", "observation_space", "action_space"]),
       value=_json_values)
def test_any_json_in_any_field_loads_or_is_one_config_error(saved, field, value):
    original = (saved / "config.json").read_text()
    try:
        doc = json.loads(original)
        doc[field] = value
        (saved / "config.json").write_text(json.dumps(doc))
        try:
            Policy.load(saved)
        except ConfigError as exc:
            assert "\n" not in str(exc)
    finally:
        (saved / "config.json").write_text(original)


def test_a_huge_image_feature_width_is_refused(tmp_path):
    obs = S.Box(0, 255, (16, 16, 3), np.uint8)
    make_policy(obs, S.Discrete(2), hidden=(8,), cnn_features=8, seed=0).save(tmp_path / "run")
    _edit(tmp_path / "run", cnn_features=10**12)
    before = _rss_mb()
    with pytest.raises(ConfigError, match="refusing to allocate"):
        Policy.load(tmp_path / "run")
    assert _rss_mb() - before < RSS_SLACK_MB
