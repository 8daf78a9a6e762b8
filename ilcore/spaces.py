"""Gymnasium spaces <-> JSON, and helpers for "nested arrays".

A nested array mirrors a space: a numpy array for a leaf space (Box, Discrete,
MultiDiscrete, MultiBinary), a ``dict`` (in the space's key order) for Dict and a
``tuple`` for Tuple. Batched nested arrays carry a leading axis N on every leaf:

    Box(shape S)        -> (N, *S) of the Box dtype
    Discrete            -> (N,) int64
    MultiDiscrete(nvec) -> (N, *nvec.shape) of the space dtype (int64 by default)
    MultiBinary(n)      -> (N, *shape) int8

Leaves are addressed by a *flat path*: ``""`` for a space that is itself a leaf,
``"pos"`` for a Dict key, ``"0/img"`` for key ``img`` inside the first Tuple entry.
The recording format stores each leaf as one HDF5 dataset under its path.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from gymnasium import spaces

from ilcore.errors import FormatError, SpaceMismatchError
from ilcore.types import Nested

_LEAF_TYPES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


# ----------------------------------------------------------------------------- JSON


def _encode_number(x: Any) -> Any:
    """JSON has no inf/nan: encode them as strings; everything else stays exact."""
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    f = float(x)
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    if math.isnan(f):
        return "nan"
    return f  # repr of a float64 round-trips exactly; float32 values widen exactly


def _encode_array(a: np.ndarray) -> Any:
    """A uniform array becomes one number (compact for images), else a nested list."""
    a = np.asarray(a)
    if a.size > 0:
        first = a.flat[0]
        if a.dtype.kind == "f" and np.isnan(first):
            uniform = bool(np.all(np.isnan(a)))
        else:
            uniform = bool(np.all(a == first))
        if uniform:
            return _encode_number(first)
    return _nested_list(a.tolist())


def _nested_list(x: Any) -> Any:
    if isinstance(x, list):
        return [_nested_list(v) for v in x]
    return _encode_number(x)


def _decode_numbers(x: Any) -> Any:
    if isinstance(x, list):
        return [_decode_numbers(v) for v in x]
    if isinstance(x, str):
        return float(x)  # "inf", "-inf", "nan"
    return x


def _decode_array(x: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    arr = np.asarray(_decode_numbers(x))
    if arr.ndim == 0:
        return np.full(shape, arr.item(), dtype=dtype)
    return arr.astype(dtype).reshape(shape)


def space_to_json(space: spaces.Space) -> dict[str, Any]:
    """Describe a space as a JSON-able dict that :func:`space_from_json` turns back exactly."""
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "dtype": np.dtype(space.dtype).str,
            "shape": list(space.shape),
            "low": _encode_array(space.low),
            "high": _encode_array(space.high),
        }
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "dtype": np.dtype(space.dtype).str,
            "nvec": _nested_list(space.nvec.tolist()),
            "start": _nested_list(space.start.tolist()),
        }
    if isinstance(space, spaces.MultiBinary):
        n = space.n
        return {"type": "MultiBinary", "n": int(n) if isinstance(n, (int, np.integer)) else [int(v) for v in n]}
    if isinstance(space, spaces.Dict):
        for key in space.spaces:
            _check_key(key)
        # A list of pairs, so the key order survives any JSON tool.
        return {"type": "Dict", "spaces": [[k, space_to_json(s)] for k, s in space.spaces.items()]}
    if isinstance(space, spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_json(s) for s in space.spaces]}
    raise SpaceMismatchError(f"The space type {type(space).__name__} cannot be recorded (supported: Box, Discrete, "
                             "MultiDiscrete, MultiBinary, Dict, Tuple).")


def _check_key(key: Any) -> None:
    # Keys become HDF5 names, where "/" separates groups and "." means "this group".
    if not isinstance(key, str) or not key or "/" in key or key == ".":
        raise SpaceMismatchError(f"The Dict space key {key!r} cannot be recorded (keys must be non-empty strings "
                                 "without '/').")


# Bounds on a space read from a file: a few bytes of JSON must not make a reader allocate
# gigabytes (a Box of shape [100000, 100000]) or recurse without end. 2**24 elements is a
# 4096 x 4096 RGBA frame; real observation and action spaces are far smaller.
MAX_LEAF_ELEMENTS = 2**24
MAX_SPACE_DEPTH = 32
MAX_SPACE_LEAVES = 4096
MAX_DISCRETE_N = 2**62  # values and n + start must stay inside int64


def space_from_json(d: Mapping[str, Any], where: str = "A stored space description") -> spaces.Space:
    """Inverse of :func:`space_to_json`; raises FormatError (naming ``where``) on a description it
    cannot read or one beyond the bounds above."""
    counter = [0]
    try:
        return _space_from_json(d, 0, counter)
    except _SpaceError as exc:
        reason = str(exc)
    except (KeyError, TypeError, ValueError, OverflowError, IndexError, AssertionError, RecursionError,
            SpaceMismatchError) as exc:
        detail = str(exc).rstrip(".").replace(". ", "; ")[:200]
        reason = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    raise FormatError(f"{where} is malformed ({reason}).")


class _SpaceError(Exception):
    """Why a stored space description is refused (message without the location)."""


def _int(value: Any, what: str, lo: int, hi: int) -> int:
    """An integer field of a space description, within [lo, hi] (bools and fractions refused)."""
    if isinstance(value, np.integer):
        value = int(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _SpaceError(f"{what} is not an integer")
    if not lo <= value <= hi:
        raise _SpaceError(f"{what} {value if abs(value) < 10**20 else 'of ' + str(len(str(value))) + ' digits'} "
                          f"is outside [{lo}, {hi}]")
    return value


def _shape(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or len(value) > 8:
        raise _SpaceError(f"{what} is not a list of at most 8 sizes")
    shape = tuple(_int(v, f"a size in {what}", 0, MAX_LEAF_ELEMENTS) for v in value)
    if math.prod(shape) > MAX_LEAF_ELEMENTS:
        raise _SpaceError(f"{what} {list(shape)} holds more than {MAX_LEAF_ELEMENTS} elements")
    return shape


def _numeric_dtype(value: Any, kinds: str) -> np.dtype:
    if not isinstance(value, str):
        raise _SpaceError("dtype is not a string")
    dtype = np.dtype(value)
    if dtype.kind not in kinds or dtype.fields is not None or dtype.shape:
        raise _SpaceError(f"dtype {value!r} is not a plain numeric type")
    return dtype


def _space_from_json(d: Any, depth: int, counter: list[int]) -> spaces.Space:
    if not isinstance(d, Mapping):
        raise _SpaceError("a space is not a JSON object")
    if depth > MAX_SPACE_DEPTH:
        raise _SpaceError(f"spaces are nested more than {MAX_SPACE_DEPTH} deep")
    kind = d.get("type")
    if kind in ("Box", "Discrete", "MultiDiscrete", "MultiBinary"):
        counter[0] += 1
        if counter[0] > MAX_SPACE_LEAVES:
            raise _SpaceError(f"it has more than {MAX_SPACE_LEAVES} leaf spaces")
    if kind == "Box":
        dtype = _numeric_dtype(d["dtype"], "biuf")
        shape = _shape(d["shape"], "the Box shape")
        return spaces.Box(
            low=_decode_array(d["low"], shape, dtype),
            high=_decode_array(d["high"], shape, dtype),
            shape=shape,
            dtype=dtype,
        )
    if kind == "Discrete":
        n = _int(d["n"], "Discrete n", 1, MAX_DISCRETE_N)
        start = _int(d.get("start", 0), "Discrete start", -MAX_DISCRETE_N, MAX_DISCRETE_N)
        return spaces.Discrete(n, start=start)
    if kind == "MultiDiscrete":
        dtype = _numeric_dtype(d.get("dtype", "int64"), "iu")
        nvec = np.asarray(d["nvec"])
        if nvec.dtype.kind not in "iu" or nvec.size == 0 or nvec.size > MAX_LEAF_ELEMENTS or nvec.ndim > 8:
            raise _SpaceError("MultiDiscrete nvec is not a non-empty array of integers")
        if np.any(nvec < 1) or np.any(nvec > np.iinfo(dtype).max):
            raise _SpaceError(f"MultiDiscrete nvec holds a value outside [1, {np.iinfo(dtype).max}]")
        starts = np.asarray(d.get("start", 0))
        if starts.dtype.kind not in "iu":
            raise _SpaceError("MultiDiscrete start is not an integer array")
        return spaces.MultiDiscrete(nvec.astype(dtype), dtype=dtype, start=starts.astype(dtype))
    if kind == "MultiBinary":
        n = d["n"]
        if isinstance(n, list):
            return spaces.MultiBinary(list(_shape(n, "MultiBinary n")))
        return spaces.MultiBinary(_int(n, "MultiBinary n", 0, MAX_LEAF_ELEMENTS))
    if kind == "Dict":
        pairs = d["spaces"]
        if not isinstance(pairs, list) or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in pairs):
            raise _SpaceError("Dict spaces is not a list of [key, space] pairs")
        keys = [k for k, _ in pairs]
        for key in keys:
            _check_key(key)
        if len(set(keys)) != len(keys):
            raise _SpaceError("a Dict space repeats a key")
        # OrderedDict: gymnasium sorts the keys of a plain dict, which would lose the order.
        return spaces.Dict(OrderedDict((k, _space_from_json(s, depth + 1, counter)) for k, s in pairs))
    if kind == "Tuple":
        subs = d["spaces"]
        if not isinstance(subs, list):
            raise _SpaceError("Tuple spaces is not a list")
        return spaces.Tuple([_space_from_json(s, depth + 1, counter) for s in subs])
    text = repr(kind)
    raise _SpaceError(f"unknown type {text if len(text) <= 40 else text[:37] + '...'}")


def space_key(space: spaces.Space) -> str:
    """Canonical JSON text of a space; equal text means the same space."""
    return json.dumps(space_to_json(space), sort_keys=True, separators=(",", ":"))


def describe(space: spaces.Space) -> str:
    """Short human-readable form of a space for messages and tables."""
    return str(space)


# ----------------------------------------------------------------------------- leaves


def is_leaf(space: spaces.Space) -> bool:
    return isinstance(space, _LEAF_TYPES)


def leaf_dtype(space: spaces.Space) -> np.dtype:
    """The numpy dtype a leaf is stored and returned with."""
    if isinstance(space, spaces.Discrete):
        return np.dtype(np.int64)
    if isinstance(space, spaces.MultiBinary):
        return np.dtype(np.int8)
    if isinstance(space, (spaces.Box, spaces.MultiDiscrete)):
        return np.dtype(space.dtype)
    raise SpaceMismatchError(f"{type(space).__name__} is not a leaf space.")


def leaf_shape(space: spaces.Space) -> tuple[int, ...]:
    """Shape of one sample of a leaf (without the batch axis)."""
    if isinstance(space, spaces.Discrete):
        return ()
    assert space.shape is not None, "every leaf space other than Discrete has a shape"
    return tuple(space.shape)


def is_image(space: spaces.Space) -> bool:
    """True for a uint8 Box of shape (H, W, C) with C in {1, 3, 4} (stored one frame per chunk)."""
    return (
        isinstance(space, spaces.Box)
        and space.dtype == np.uint8
        and len(space.shape) == 3
        and space.shape[2] in (1, 3, 4)
    )


def flat_items(space: spaces.Space, prefix: str = "") -> list[tuple[str, spaces.Space]]:
    """Every leaf of ``space`` with its flat path, in the space's order."""
    if is_leaf(space):
        return [(prefix, space)]
    items: Iterable[tuple[str, spaces.Space]]
    if isinstance(space, spaces.Dict):
        items = space.spaces.items()
    elif isinstance(space, spaces.Tuple):
        items = ((str(i), s) for i, s in enumerate(space.spaces))
    else:
        space_to_json(space)  # raises the "cannot be recorded" error
        raise AssertionError
    out: list[tuple[str, spaces.Space]] = []
    for key, sub in items:
        out.extend(flat_items(sub, f"{prefix}/{key}" if prefix else key))
    return out


def flat_from_nested(space: spaces.Space, nested: Nested) -> dict[str, Any]:
    """``{path: leaf value}`` for every leaf, in the space's order."""
    out: dict[str, Any] = {}

    def walk(sp: spaces.Space, value: Any, path: str) -> None:
        if is_leaf(sp):
            out[path] = value
        elif isinstance(sp, spaces.Dict):
            if not isinstance(value, Mapping):
                raise SpaceMismatchError(f"Expected a dict at {path or 'the top level'}, got {type(value).__name__}.")
            for key, sub in sp.spaces.items():
                if key not in value:
                    raise SpaceMismatchError(f"The key {_join(path, key)!r} is missing from the data.")
                walk(sub, value[key], _join(path, key))
        elif isinstance(sp, spaces.Tuple):
            if not isinstance(value, (tuple, list)) or len(value) != len(sp.spaces):
                raise SpaceMismatchError(
                    f"Expected a tuple of {len(sp.spaces)} at {path or 'the top level'}, got {type(value).__name__}."
                )
            for i, sub in enumerate(sp.spaces):
                walk(sub, value[i], _join(path, str(i)))
        else:
            space_to_json(sp)

    walk(space, nested, "")
    return out


def _join(prefix: str, key: str) -> str:
    return f"{prefix}/{key}" if prefix else key


def nested_from_flat(space: spaces.Space, flat: Mapping[str, Any], prefix: str = "") -> Nested:
    """Inverse of :func:`flat_from_nested` (Dicts keep the space's key order)."""
    if is_leaf(space):
        return flat[prefix]
    if isinstance(space, spaces.Dict):
        return {k: nested_from_flat(s, flat, _join(prefix, k)) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(nested_from_flat(s, flat, _join(prefix, str(i))) for i, s in enumerate(space.spaces))
    space_to_json(space)
    raise AssertionError


# ----------------------------------------------------------------------------- batches


def stack(space: spaces.Space, samples: Sequence[Nested]) -> Nested:
    """Stack single samples into a batch: every leaf gains a leading axis of len(samples)."""
    n = len(samples)
    leaves = flat_items(space)
    columns: dict[str, list[Any]] = {path: [] for path, _ in leaves}
    if len(leaves) == 1 and leaves[0][0] == "":
        columns[""] = list(samples)
    else:
        for sample in samples:
            for path, value in flat_from_nested(space, sample).items():
                columns[path].append(value)
    out: dict[str, np.ndarray] = {}
    for path, leaf in leaves:
        shape = leaf_shape(leaf)
        if n == 0:
            out[path] = np.zeros((0, *shape), dtype=leaf_dtype(leaf))
        else:
            arr = np.asarray(columns[path], dtype=leaf_dtype(leaf))
            if arr.shape != (n, *shape):
                raise SpaceMismatchError(
                    f"Samples at {path or 'the top level'} have shape {arr.shape[1:]}, expected {shape}."
                )
            out[path] = arr
    return nested_from_flat(space, out)


def map_leaves(fn: Any, nested: Nested) -> Nested:
    """Apply ``fn`` to every leaf array, keeping the structure."""
    if isinstance(nested, Mapping):
        return {k: map_leaves(fn, v) for k, v in nested.items()}
    if isinstance(nested, tuple):
        return tuple(map_leaves(fn, v) for v in nested)
    return fn(nested)


def index(nested: Nested, i: Any) -> Nested:
    """``leaf[i]`` on every leaf (an int gives one sample, a slice or index array a sub-batch)."""
    return map_leaves(lambda a: a[i], nested)


def batch_len(nested: Nested) -> int:
    """The leading-axis length shared by the leaves (of the first leaf)."""
    while isinstance(nested, (Mapping, tuple)):
        nested = next(iter(nested.values())) if isinstance(nested, Mapping) else nested[0]
    return len(nested)


def concatenate(space: spaces.Space, batches: Sequence[Nested]) -> Nested:
    """Concatenate batches along the leading axis."""
    if not batches:
        return stack(space, [])
    flats = [flat_from_nested(space, b) for b in batches]
    return nested_from_flat(space, {path: np.concatenate([f[path] for f in flats]) for path, _ in flat_items(space)})


def check_batch(space: spaces.Space, nested: Nested, n: int, *, bounded: bool = False) -> None:
    """Raise SpaceMismatchError naming the first leaf whose shape, dtype or values do not fit.

    Box bounds are not checked by default (envs such as CartPole observe outside their
    bounds); with ``bounded`` (actions) a Box value must be finite and inside its bounds. The
    integer ranges of Discrete, MultiDiscrete and MultiBinary are always checked.
    """
    leaves = dict(flat_items(space))
    for path, value in flat_from_nested(space, nested).items():
        leaf = leaves[path]
        name = path or "the data"
        arr = np.asarray(value)
        shape = (n, *leaf_shape(leaf))
        if arr.shape != shape:
            raise SpaceMismatchError(f"Leaf {name!r} has shape {arr.shape}, expected {shape} for {leaf}.")
        want = leaf_dtype(leaf)
        if arr.dtype != want and not np.can_cast(arr.dtype, want, casting="same_kind"):
            raise SpaceMismatchError(f"Leaf {name!r} has dtype {arr.dtype}, which does not fit {leaf}.")
        if arr.size == 0:
            continue
        if isinstance(leaf, spaces.Discrete):
            lo, hi = int(leaf.start), int(leaf.start + leaf.n)
            bad = (arr < lo) | (arr >= hi)
        elif isinstance(leaf, spaces.MultiDiscrete):
            bad = (arr < leaf.start) | (arr >= leaf.start + leaf.nvec)
        elif isinstance(leaf, spaces.MultiBinary):
            bad = (arr != 0) & (arr != 1)
        elif bounded and isinstance(leaf, spaces.Box):
            if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
                raise SpaceMismatchError(f"Leaf {name!r} holds NaN or infinite values.")
            bad = (arr < leaf.low) | (arr > leaf.high)
        else:
            continue
        if np.any(bad):
            raise SpaceMismatchError(f"Leaf {name!r} holds values outside {leaf}.")
