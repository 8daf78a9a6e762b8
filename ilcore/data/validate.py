"""Checks every reader runs on an episode group before it allocates or trains.

A recording is data from outside (a file shared by someone, a disk that filled up, a crafted
file), so nothing in it is trusted: :func:`check_episode` reads the episode's attributes and
its datasets' metadata (shapes, dtypes, links, storage; no bulk data) and the label arrays,
which are small, and refuses anything that does not match the format and the recording's
spaces with one sentence naming the file. Readers then allocate exactly what the checked
layout says: arrays of the episode's length T (at most ``MAX_EPISODE_STEPS``), whose data is
present in the file.

Overlay records (``labels.jsonl`` or a packed file's ``overlay``) are checked by
:func:`check_overlay`: their actions against the action space, their episodes against the
recording, their steps against the episode they label.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

import numpy as np

from ilcore import spaces as sp
from ilcore.data import format as fmt
from ilcore.errors import FormatError, SpaceMismatchError
from ilcore.types import EpisodeMeta

if TYPE_CHECKING:
    import h5py
    from gymnasium import spaces as gym_spaces

INT_LIMIT = 2**62  # integers in attributes (seeds, rounds, versions) stay far inside int64


@dataclass(frozen=True)
class EpisodeLayout:
    """What a checked episode group holds (T steps, L file labels).

    label_steps, label_source, label_reason: (L,) int64 arrays (codes index ``vocabulary``);
    label_actions: nested, leaves (L, ...), every value inside the action space.
    """

    length: int  # T
    observation_only: bool  # truncated, incomplete and info_names are only read when checked in full
    terminated: bool
    truncated: bool
    incomplete: bool
    info_names: tuple[str, ...]
    vocabulary: Mapping[str, list[str]]
    label_steps: np.ndarray
    label_source: np.ndarray
    label_reason: np.ndarray
    label_actions: Any
    actors: Any = None  # the checked low-level 'actors' dataset, (T,), read by the loader without reopening


def attr_int(attrs: Any, name: str, where: str, *, lo: int = -INT_LIMIT, hi: int = INT_LIMIT,
             default: Any = ...) -> Any:
    """An integer attribute in [lo, hi] (numpy integers accepted; bools, floats, text refused)."""
    try:
        raw = attrs[name]  # one lookup: each attribute access is an HDF5 call
    except KeyError:
        if default is ...:
            raise FormatError(f"{where} is damaged: the attribute {name!r} is missing.") from None
        return default
    value = raw.item() if isinstance(raw, np.generic) else raw
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise FormatError(f"{where} has an invalid {name!r} attribute {fmt.short_repr(raw)} "
                          f"(an integer in [{lo}, {hi}] is expected).")
    return value


def attr_bool(attrs: Any, name: str, where: str) -> bool:
    """A boolean attribute (absent: False); h5py gives numpy bools, older tools 0/1 integers."""
    try:
        raw = attrs[name]
    except KeyError:
        return False
    value = raw.item() if isinstance(raw, np.generic) else raw
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    raise FormatError(f"{where} has an invalid {name!r} attribute {fmt.short_repr(raw)} (true or false is expected).")


def attr_text(attrs: Any, name: str, where: str, default: str | None = None) -> str:
    try:
        raw = attrs[name]
    except KeyError:
        if default is None:
            raise FormatError(f"{where} is damaged: the attribute {name!r} is missing.") from None
        return default
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError(f"{where} has an attribute {name!r} that is not UTF-8 text.") from None
    if not isinstance(raw, str):
        raise FormatError(f"{where} has an invalid {name!r} attribute {fmt.short_repr(raw)} (text is expected).")
    return raw


def attr_json_object(attrs: Any, name: str, where: str) -> dict[str, Any]:
    """An attribute holding a JSON object (absent: empty)."""
    if name not in attrs:
        return {}
    value = json_text(attr_text(attrs, name, where), f"the {name!r} attribute of {where}")
    if not isinstance(value, dict):
        raise FormatError(f"The {name!r} attribute of {where} is not a JSON object.")
    return value


def json_text(text: str | bytes, where: str) -> Any:
    """Parse JSON text; malformed, non-UTF-8 or absurdly nested text is one FormatError."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return json.loads(text)
    except UnicodeDecodeError:
        raise FormatError(f"{_cap(where)} is not UTF-8 text.") from None
    except RecursionError:
        raise FormatError(f"{_cap(where)} is nested too deeply to be a recording's metadata.") from None
    except (TypeError, ValueError):
        raise FormatError(f"{_cap(where)} is not valid JSON.") from None


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def stored_space(value: Any, name: str, where: str) -> "gym_spaces.Space":
    """A space described in a file (bounded by :func:`ilcore.spaces.space_from_json`)."""
    return sp.space_from_json(value, f"The {name} space in {where}")


def check_episode(group: "h5py.Group", where: str, observation_space: "gym_spaces.Space",
                  action_space: "gym_spaces.Space", space_keys: tuple[str, str] | None = None, *,
                  full: bool = True) -> EpisodeLayout:
    """Check an episode group against the format and the recording's spaces (see the module doc).

    ``space_keys``: :func:`ilcore.spaces.space_key` of the two spaces (computed once per
    recording): also compare the episode's own space attributes (:func:`check_space_attrs`).
    The metadata a reader shows (seed, round, attrs) is parsed by :func:`episode_meta`.
    ``full=False`` (the training loader) skips the datasets the caller does not read and the
    attributes it does not use; the caller then reads with shape-checked
    :func:`ilcore.data.format.read_dataset`, which refuses before allocating just the same."""
    a = group.attrs  # the header was checked when the handle was opened (open_many)
    if space_keys is not None:
        check_space_attrs(a, where, space_keys)
    actors = fmt.open_dataset(group, "actors", where, kinds="iu")
    if len(actors.shape) != 1:
        raise FormatError(f"{where} is damaged: the dataset 'actors' has shape {actors.shape}, expected (T,).")
    length = attr_int(a, "length", where, lo=0, hi=fmt.MAX_EPISODE_STEPS)
    if actors.shape[0] != length:
        raise FormatError(f"{where} is damaged: it says it has {length} steps but holds {actors.shape[0]} actors.")
    observation_only = attr_bool(a, "observation_only", where)
    if full:
        for path, leaf in sp.flat_items(observation_space):
            fmt.open_dataset(group, fmt.leaf_name("observations", path), where, (length + 1, *sp.leaf_shape(leaf)))
        if not observation_only:
            for path, leaf in sp.flat_items(action_space):
                fmt.open_dataset(group, fmt.leaf_name("actions", path), where, (length, *sp.leaf_shape(leaf)))
        for name in ("rewards", "wall_time"):
            fmt.open_dataset(group, name, where, (length,))
    info_names: tuple[str, ...] = ()
    if full and "infos" in group:
        infos = fmt.open_group(group, "infos", where)
        info_names = tuple(infos.keys())
        for name in info_names:
            fmt.open_dataset(infos, name, f"{where} (infos)", (length,))

    labels = fmt.open_group(group, "labels", where)
    vocab = _vocabulary(labels, where)
    steps_ds = fmt.open_dataset(labels, "step", where, kinds="iu")
    if len(steps_ds.shape) != 1 or steps_ds.shape[0] > fmt.MAX_LABELS_PER_STEP * (length + 1):
        raise FormatError(f"{where} is damaged: its labels/step dataset has shape {steps_ds.shape} for "
                          f"{length} steps.")
    n_labels = steps_ds.shape[0]
    steps = fmt.read_opened(steps_ds, "step", where).astype(np.int64, copy=False)
    if n_labels and (steps.min() < 0 or steps.max() > length):
        raise FormatError(f"{where} is damaged: it has a label at step {int(steps.min() if steps.min() < 0 else steps.max())}, "
                          f"outside its {length} steps.")
    codes = {}
    for name in ("source", "reason"):
        c = fmt.read_dataset(labels, name, where, (n_labels,), kinds="iu").astype(np.int64, copy=False)
        if n_labels and (c.min() < 0 or c.max() >= len(vocab[name])):
            raise FormatError(f"{where} is damaged: a label {name} code is not in its vocabulary.")
        codes[name] = c
    label_actions = fmt.read_nested(labels, "action", action_space, where, n_labels)
    try:
        sp.check_batch(action_space, label_actions, n_labels, bounded=True)
    except SpaceMismatchError as exc:
        raise SpaceMismatchError(f"{where} holds labels that do not fit the action space {action_space}: "
                                 f"{_inner(exc)}.") from None
    return EpisodeLayout(
        length=length,
        observation_only=observation_only,
        terminated=attr_bool(a, "terminated", where),
        truncated=attr_bool(a, "truncated", where) if full else False,
        incomplete=attr_bool(a, "incomplete", where) if full else False,
        info_names=info_names,
        vocabulary=vocab,
        label_steps=steps,
        label_source=codes["source"],
        label_reason=codes["reason"],
        label_actions=label_actions,
        actors=actors,
    )


def check_space_attrs(attrs: Any, where: str, space_keys: tuple[str, str]) -> None:
    """An episode whose own space attributes differ from its recording's was recorded for other spaces."""
    for name, key in zip(("observation", "action"), space_keys):
        attr = f"{name}_space"
        if attr in attrs:  # absent in files of older tools; present means it must match
            mine = json_text(attr_text(attrs, attr, where), f"the {attr} attribute of {where}")
            if json.dumps(mine, sort_keys=True, separators=(",", ":")) != key:
                raise SpaceMismatchError(f"{where} was recorded with another {name} space than its "
                                         "recording declares.")


def episode_meta(group: "h5py.Group", where: str, env_id: str) -> EpisodeMeta:
    """The typed per-episode facts of a checked episode group."""
    a = group.attrs
    return EpisodeMeta(
        env_id=attr_text(a, "env_id", where, default=env_id),
        env_kwargs=attr_json_object(a, "env_kwargs", where),
        seed=attr_int(a, "seed", where, default=None),
        round=attr_int(a, "round", where, lo=0, default=0),
        policy_version=attr_int(a, "policy_version", where, default=None),
        attrs={**attr_json_object(a, "attrs", where), "incomplete": attr_bool(a, "incomplete", where)},
    )


def _vocabulary(labels: "h5py.Group", where: str) -> dict[str, list[str]]:
    vocab = json_text(attr_text(labels.attrs, "vocabulary", where), f"the label vocabulary of {where}")
    if not (isinstance(vocab, dict) and all(
            isinstance(vocab.get(k), list) and all(isinstance(v, str) for v in vocab[k]) for k in ("source", "reason"))):
        raise FormatError(f"The label vocabulary of {where} is not two lists of names.")
    return vocab


def _inner(exc: Exception) -> str:
    """An inner error's sentence, ready to follow a colon inside another sentence."""
    text = str(exc).rstrip(".")
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


def check_actions(action_space: "gym_spaces.Space", actions: Any, n: int, where: str) -> None:
    """Executed actions (or training targets) must be inside the action space (finite, in bounds)."""
    try:
        sp.check_batch(action_space, actions, n, bounded=True)
    except SpaceMismatchError as exc:
        raise SpaceMismatchError(f"{where} holds actions that do not fit the action space {action_space}: "
                                 f"{_inner(exc)}.") from None


def check_observations(obs: np.ndarray, where: str) -> None:
    """Float observations must be finite: a NaN would train into NaN weights."""
    if obs.dtype.kind == "f" and obs.size and not np.isfinite(obs).all():
        raise SpaceMismatchError(f"{where} holds NaN or infinite observations.")


def check_overlay(records: Iterable[dict[str, Any]], action_space: "gym_spaces.Space",
                  known_episodes: set[str], where: str) -> None:
    """Overlay label actions must fit the action space and every record must name a known episode."""
    for rec in records:
        episode = rec["episode"]
        if episode not in known_episodes:
            raise FormatError(f"{where} has labels for the episode {fmt.short_repr(episode)}, which this "
                              "recording does not hold.")
        if rec["op"] != "label":
            continue
        try:
            if not _numeric_json(rec["action"], 0):
                raise TypeError
            action = fmt.nested_from_json(action_space, rec["action"])
        except (KeyError, TypeError, ValueError, IndexError, OverflowError):
            raise SpaceMismatchError(f"{where} has a label for episode {fmt.short_repr(episode)} step {rec['step']} "
                                     f"whose action {fmt.short_repr(rec['action'])} is not in {action_space}.") from None
        try:
            sp.check_batch(action_space, sp.stack(action_space, [action]), 1, bounded=True)
        except SpaceMismatchError:
            raise SpaceMismatchError(f"{where} has a label for episode {fmt.short_repr(episode)} step {rec['step']} "
                                     f"whose action {fmt.short_repr(rec['action'])} is not in {action_space}.") from None


def _numeric_json(value: Any, depth: int) -> bool:
    """True for numbers (not text, not null) nested in lists and objects, at most 16 deep."""
    if depth > 16:
        return False
    if isinstance(value, list):
        return all(_numeric_json(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(_numeric_json(v, depth + 1) for v in value.values())
    return isinstance(value, (int, float))


@contextmanager
def reading(where: str) -> Iterator[None]:
    """Errors HDF5 raises on damage the checks cannot see (a flipped bit in a heap or a chunk)
    become one sentence about ``where``."""
    try:
        yield
    except (OSError, RuntimeError, KeyError, ValueError) as exc:  # h5py: KeyError, UnicodeError on damage
        text = str(exc.args[0]) if exc.args else ""
        detail = text.splitlines()[0][:120].rstrip(".") if text else type(exc).__name__
        raise FormatError(f"{where} is damaged ({detail}).") from None


def check_overlay_steps(records: Iterable[dict[str, Any]], length: int, where: str) -> None:
    """Overlay records of one episode must label one of its T+1 observations."""
    for rec in records:
        if not 0 <= rec["step"] <= length:
            raise FormatError(f"The label overlay has a record for step {rec['step']} of {where}, which has "
                              f"{length} steps.")
