import numpy as np
import pytest
from gymnasium import spaces
from hypothesis import given, settings
from hypothesis import strategies as st

from ilcore import spaces as sp
from ilcore.errors import FormatError, SpaceMismatchError
from tests.support.strategies import any_space


def same_space(a, b):
    assert type(a) is type(b)
    if isinstance(a, spaces.Dict):
        assert list(a.spaces) == list(b.spaces)  # key order survives
        for k in a.spaces:
            same_space(a[k], b[k])
    elif isinstance(a, spaces.Tuple):
        assert len(a.spaces) == len(b.spaces)
        for x, y in zip(a.spaces, b.spaces):
            same_space(x, y)
    elif isinstance(a, spaces.Box):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a.low, b.low)
        np.testing.assert_array_equal(a.high, b.high)
    else:
        assert a == b


@settings(max_examples=60, deadline=None)
@given(any_space)
def test_json_round_trip_is_exact(space):
    import json

    text = json.dumps(sp.space_to_json(space))  # must be plain JSON
    back = sp.space_from_json(json.loads(text))
    same_space(space, back)
    assert sp.space_key(space) == sp.space_key(back)


@settings(max_examples=40, deadline=None)
@given(any_space, st.integers(0, 4))
def test_stack_flat_and_index_round_trip(space, n):
    space.seed(n)
    samples = [space.sample() for _ in range(n)]
    batch = sp.stack(space, samples)
    sp.check_batch(space, batch, n)
    assert sp.batch_len(batch) == n
    flat = sp.flat_from_nested(space, batch)
    assert list(flat) == [p for p, _ in sp.flat_items(space)]
    again = sp.nested_from_flat(space, flat)
    for i in range(n):
        one = sp.flat_from_nested(space, sp.index(again, i))
        for path, value in sp.flat_from_nested(space, samples[i]).items():
            np.testing.assert_array_equal(one[path], np.asarray(value))


def test_flat_paths_name_nested_leaves():
    space = spaces.Tuple([spaces.Dict({"img": spaces.Box(0, 255, (2, 2, 3), np.uint8)}), spaces.Discrete(2)])
    assert [p for p, _ in sp.flat_items(space)] == ["0/img", "1"]
    assert sp.flat_items(spaces.Discrete(2))[0][0] == ""


def test_is_image():
    assert sp.is_image(spaces.Box(0, 255, (8, 8, 3), np.uint8))
    assert sp.is_image(spaces.Box(0, 255, (8, 8, 1), np.uint8))
    assert not sp.is_image(spaces.Box(0, 255, (8, 8, 2), np.uint8))
    assert not sp.is_image(spaces.Box(0, 1, (8, 8, 3), np.float32))
    assert not sp.is_image(spaces.Discrete(3))


def test_check_batch_names_the_leaf_that_does_not_fit():
    space = spaces.Dict({"a": spaces.Discrete(3), "b": spaces.Box(0, 1, (2,), np.float32)})
    with pytest.raises(SpaceMismatchError, match="'b' has shape"):
        sp.check_batch(space, {"a": np.zeros(4, np.int64), "b": np.zeros((4, 3), np.float32)}, 4)
    with pytest.raises(SpaceMismatchError, match="'a' holds values outside"):
        sp.check_batch(space, {"a": np.array([0, 3]), "b": np.zeros((2, 2), np.float32)}, 2)
    with pytest.raises(SpaceMismatchError, match="'b' is missing"):
        sp.check_batch(space, {"a": np.zeros(1, np.int64)}, 1)


def test_unsupported_and_malformed_spaces_are_refused():
    with pytest.raises(SpaceMismatchError, match="cannot be recorded"):
        sp.space_to_json(spaces.Text(5))
    with pytest.raises(SpaceMismatchError, match="cannot be recorded"):
        sp.space_to_json(spaces.Dict({"a/b": spaces.Discrete(2)}))
    with pytest.raises(FormatError, match="unknown type"):
        sp.space_from_json({"type": "Graph"})
    with pytest.raises(FormatError, match="malformed"):
        sp.space_from_json({"type": "Box", "dtype": "float32"})
