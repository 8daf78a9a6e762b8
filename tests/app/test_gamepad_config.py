"""A gamepad mapping file, however malformed, is a GamepadConfig or one ConfigError."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.input.gamepad import GAMEPAD_ENTRIES, GamepadConfig, gamepad_config_from_dict
from ilcore.errors import ConfigError

SPACES = [gym.spaces.Discrete(3), gym.spaces.Box(np.array([-1.0, 0.0, 0.0], np.float32), np.ones(3, np.float32))]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 10), st.floats(allow_nan=True), st.text(max_size=6))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=6), inner, max_size=4)), max_leaves=12)
tables = st.dictionaries(st.one_of(st.sampled_from(GAMEPAD_ENTRIES), st.text(max_size=6)), values, max_size=5)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(data=st.one_of(tables, values), space=st.sampled_from(SPACES))
def test_any_table_is_a_config_or_one_sentence(data, space):
    try:
        config = gamepad_config_from_dict(data, space)
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc)
    else:
        assert isinstance(config, GamepadConfig)


@pytest.mark.parametrize("data, fragment", [
    ({"deadzone": "lots"}, "deadzone must be a number"),
    ({"deadzon": 0.1}, "unknown entries ['deadzon']"),
    ({"axes": {"x": "left_x"}}, "wrong type"),
    ({"takeover": 5}, "takeover must be a control name"),
    ([1, 2], "must be a table"),
])
def test_bad_gamepad_entries_name_what_is_wrong(data, fragment):
    with pytest.raises(ConfigError) as info:
        gamepad_config_from_dict(data, SPACES[1])
    assert fragment in str(info.value)
