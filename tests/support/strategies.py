"""Hypothesis strategies shared by the spaces and recording round-trip tests."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from gymnasium import spaces
from hypothesis import strategies as st

DTYPES = [np.float32, np.float64, np.float16, np.int32, np.int64, np.uint8, np.int8]


@st.composite
def boxes(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=3)))
    if dtype.kind == "f":
        low = draw(st.sampled_from([-np.inf, -1.0, 0.0, -0.1]))
        high = draw(st.sampled_from([np.inf, 1.0, 2.5, 0.3]))
        if draw(st.booleans()) and shape:
            lo = np.array(draw(st.lists(st.floats(-5, 0, width=16), min_size=int(np.prod(shape)),
                                        max_size=int(np.prod(shape)))), dtype=dtype).reshape(shape)
            return spaces.Box(lo, np.full(shape, high, dtype), shape, dtype)
        return spaces.Box(low, high, shape, dtype)
    info = np.iinfo(dtype)
    # Full-range int64 bounds overflow gymnasium's sampler, so keep integer boxes modest.
    return spaces.Box(max(int(info.min), -100) if draw(st.booleans()) else 0, min(int(info.max), 100), shape, dtype)


leaves = st.one_of(
    boxes(),
    st.builds(lambda n, s: spaces.Discrete(n, start=s), st.integers(1, 9), st.integers(-3, 3)),
    st.builds(lambda v: spaces.MultiDiscrete(v), st.lists(st.integers(1, 5), min_size=1, max_size=3)),
    st.builds(lambda n: spaces.MultiBinary(n), st.one_of(st.integers(1, 4), st.lists(st.integers(1, 3), min_size=1,
                                                                                        max_size=2))),
    st.just(spaces.Box(0, 255, (4, 5, 3), np.uint8)),
)
keys = st.text(alphabet="abcxyz_0", min_size=1, max_size=4)
any_space = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(st.tuples(keys, inner), min_size=1, max_size=3, unique_by=lambda kv: kv[0]).map(
            lambda kvs: spaces.Dict(OrderedDict(kvs))),
        st.lists(inner, min_size=1, max_size=3).map(lambda s: spaces.Tuple(s)),
    ),
    max_leaves=6,
)
