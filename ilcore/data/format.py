"""The on-disk recording format: names, schema version, and episode <-> HDF5 group.

``docs/format.md`` is the written spec; keep the two in step. An episode is stored as an
HDF5 group (the root of an episode file, or ``episodes/<id>`` inside a packed file):

    attrs: format, schema_version, episode_id, env_id, env_kwargs (JSON), seed?, round,
           policy_version?, attrs (JSON), length T, terminated, truncated, incomplete,
           created, observation_space (JSON), action_space (JSON)
    observations[/<leaf path>]  (T+1, *leaf shape)
    actions[/<leaf path>]       (T, *leaf shape); absent when attr observation_only is true
    actors (T,) uint8 (ACTOR_UNKNOWN in observation-only episodes), rewards (T,) float64, wall_time (T,) float64, infos/<name> (T,)
    labels/ step (L,) int64, action[/<leaf path>] (L, ...), source (L,) uint8 code,
            reason (L,) uint8 code, round (L,) int64, latency_ms (L,) float64,
            time (L,) float64; attr vocabulary = JSON {"source": [...], "reason": [...]}
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ilcore import spaces as sp
from ilcore.errors import FormatError
from ilcore.types import Label

if TYPE_CHECKING:
    import h5py
    from gymnasium import spaces as gym_spaces

FORMAT_SESSION = "ilcore-session"
FORMAT_EPISODE = "ilcore-episode"
FORMAT_PACKED = "ilcore-packed"
SCHEMA_VERSION = 1

SESSION_FILE = "session.json"
EPISODES_DIR = "episodes"
DISCARDED_DIR = "discarded"
OVERLAY_FILE = "labels.jsonl"
LOCK_FILE = "writer.lock"
EPISODE_SUFFIX = ".h5"
PARTIAL_SUFFIX = ".partial.h5"
TMP_SUFFIX = ".tmp"
ACTOR_UNKNOWN = 255  # actors value of observation-only episodes: nobody's action was recorded

IMAGE_COMPRESSION = "gzip"
IMAGE_COMPRESSION_LEVEL = 4


def leaf_name(root: str, path: str) -> str:
    """HDF5 name of a leaf dataset: ``root`` itself for a leaf space, else ``root/path``."""
    return f"{root}/{path}" if path else root


def check_header(attrs: Any, expected: str, where: str) -> None:
    """Refuse foreign HDF5 objects and newer schema versions with one sentence."""
    fmt = attrs.get("format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode()
    if fmt != expected:
        if fmt in (FORMAT_EPISODE, FORMAT_PACKED, FORMAT_SESSION):
            raise FormatError(f"{where} is an ilcore {fmt.split('-')[1]} file, not the {expected.split('-')[1]} "
                              "expected here.")
        raise FormatError(f"{where} is an HDF5 file but not an ilcore recording.")
    version = int(attrs.get("schema_version", -1))
    if version > SCHEMA_VERSION:
        raise FormatError(f"{where} uses recording schema version {version}, newer than version {SCHEMA_VERSION} "
                          "that this ilcore reads; upgrade ilcore to open it.")
    if version < 1:
        raise FormatError(f"{where} has an invalid recording schema version {version}.")


def open_h5(path: Path | str, where: str | None = None) -> "h5py.File":
    """Open an HDF5 file read-only, turning h5py's errors into one-sentence FormatErrors."""
    import h5py

    where = where or str(path)
    try:
        return h5py.File(path, "r")
    except FileNotFoundError:
        raise FormatError(f"{where} does not exist.") from None
    except OSError:
        raise FormatError(f"{where} is not a readable HDF5 file (it is truncated, corrupt or of another type).") \
            from None


def dumps(obj: Any) -> str:
    """JSON text for attributes and the overlay (numpy scalars and arrays allowed)."""
    return json.dumps(obj, default=_json_default, separators=(",", ":"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def loads(text: Any, where: str) -> Any:
    if isinstance(text, bytes):
        text = text.decode()
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        raise FormatError(f"{where} holds malformed JSON metadata.") from None


# ----------------------------------------------------------------------------- actions <-> JSON


def nested_to_json(nested: Any) -> Any:
    """One (unbatched) nested value as JSON: arrays become lists, tuples lists, dicts objects."""
    if isinstance(nested, Mapping):
        return {k: nested_to_json(v) for k, v in nested.items()}
    if isinstance(nested, tuple):
        return [nested_to_json(v) for v in nested]
    return np.asarray(nested).tolist()


def nested_from_json(space: "gym_spaces.Space", value: Any) -> Any:
    """Inverse of :func:`nested_to_json` for one sample of ``space`` (leaf dtypes restored)."""
    from gymnasium import spaces as gs

    if isinstance(space, gs.Dict):
        return {k: nested_from_json(s, value[k]) for k, s in space.spaces.items()}
    if isinstance(space, gs.Tuple):
        return tuple(nested_from_json(s, v) for s, v in zip(space.spaces, value))
    return np.asarray(value, dtype=sp.leaf_dtype(space)).reshape(sp.leaf_shape(space))


# ----------------------------------------------------------------------------- episode content


@dataclass
class EpisodeContent:
    """Everything one episode file holds, as the writer hands it over (flat leaf dicts)."""

    episode_id: str
    env_id: str
    env_kwargs: Mapping[str, Any]
    observations: dict[str, np.ndarray]  # path -> (T+1, ...)
    actions: dict[str, np.ndarray] | None  # path -> (T, ...); None: observation-only episode
    actors: np.ndarray  # (T,) uint8
    rewards: np.ndarray  # (T,) float64
    wall_time: np.ndarray  # (T,) float64
    infos: dict[str, np.ndarray]  # name -> (T,)
    terminated: bool
    truncated: bool
    incomplete: bool
    labels: Sequence[Label]
    seed: int | None = None
    round: int = 0
    policy_version: int | None = None
    attrs: Mapping[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)

    @property
    def length(self) -> int:
        return len(self.wall_time)


def write_episode_group(
    group: "h5py.Group",
    content: EpisodeContent,
    observation_space: "gym_spaces.Space",
    action_space: "gym_spaces.Space",
) -> None:
    """Write one episode into an empty HDF5 group (see the module docstring for the layout)."""
    a = group.attrs
    a["format"] = FORMAT_EPISODE
    a["schema_version"] = SCHEMA_VERSION
    a["episode_id"] = content.episode_id
    a["env_id"] = content.env_id
    a["env_kwargs"] = dumps(dict(content.env_kwargs))
    if content.seed is not None:
        a["seed"] = int(content.seed)
    a["round"] = int(content.round)
    if content.policy_version is not None:
        a["policy_version"] = int(content.policy_version)
    a["attrs"] = dumps(dict(content.attrs))
    a["length"] = int(content.length)
    a["terminated"] = bool(content.terminated)
    a["truncated"] = bool(content.truncated)
    a["incomplete"] = bool(content.incomplete)
    a["created"] = float(content.created)
    if content.actions is None:
        a["observation_only"] = True
    a["observation_space"] = dumps(sp.space_to_json(observation_space))
    a["action_space"] = dumps(sp.space_to_json(action_space))

    obs_leaves = dict(sp.flat_items(observation_space))
    for path, arr in content.observations.items():
        _write_leaf(group, leaf_name("observations", path), arr, obs_leaves[path])
    act_leaves = dict(sp.flat_items(action_space))
    for path, arr in (content.actions or {}).items():
        _write_leaf(group, leaf_name("actions", path), arr, act_leaves[path])
    group.create_dataset("actors", data=np.asarray(content.actors, dtype=np.uint8))
    group.create_dataset("rewards", data=np.asarray(content.rewards, dtype=np.float64))
    group.create_dataset("wall_time", data=np.asarray(content.wall_time, dtype=np.float64))
    infos = group.create_group("infos")
    for name, values in content.infos.items():
        infos.create_dataset(name, data=values)
    _write_labels(group.create_group("labels"), content.labels, action_space)


def _write_leaf(group: "h5py.Group", name: str, arr: np.ndarray, leaf: "gym_spaces.Space") -> None:
    if sp.is_image(leaf) and len(arr) > 0:
        # One frame per chunk keeps a random frame one small decompression away.
        group.create_dataset(
            name,
            data=arr,
            chunks=(1, *arr.shape[1:]),
            compression=IMAGE_COMPRESSION,
            compression_opts=IMAGE_COMPRESSION_LEVEL,
        )
    else:
        # Low-dimensional leaves stay contiguous and uncompressed: whole-dataset reads are fastest.
        group.create_dataset(name, data=arr)


def _write_labels(group: "h5py.Group", labels: Sequence[Label], action_space: "gym_spaces.Space") -> None:
    sources: list[str] = []
    reasons: list[str] = []
    source_code = np.zeros(len(labels), dtype=np.uint8)
    reason_code = np.zeros(len(labels), dtype=np.uint8)
    for i, lab in enumerate(labels):
        for value, vocab, codes in ((lab.source, sources, source_code), (lab.reason, reasons, reason_code)):
            value = str(value.value if hasattr(value, "value") else value)
            if value not in vocab:
                vocab.append(value)
            codes[i] = vocab.index(value)
    if len(sources) > 256 or len(reasons) > 256:
        raise ValueError("an episode may use at most 256 distinct label sources and reasons")
    group.attrs["vocabulary"] = dumps({"source": sources, "reason": reasons})
    group.create_dataset("step", data=np.asarray([lab.step for lab in labels], dtype=np.int64))
    group.create_dataset("source", data=source_code)
    group.create_dataset("reason", data=reason_code)
    group.create_dataset("round", data=np.asarray([lab.round for lab in labels], dtype=np.int64))
    group.create_dataset("latency_ms", data=np.asarray([lab.latency_ms for lab in labels], dtype=np.float64))
    group.create_dataset("time", data=np.asarray([lab.time for lab in labels], dtype=np.float64))
    actions = sp.flat_from_nested(action_space, sp.stack(action_space, [lab.action for lab in labels]))
    leaves = dict(sp.flat_items(action_space))
    for path, arr in actions.items():
        _write_leaf(group, leaf_name("action", path), arr, leaves[path])


def write_episode_file(
    path: Path,
    content: EpisodeContent,
    observation_space: "gym_spaces.Space",
    action_space: "gym_spaces.Space",
) -> None:
    """Write an episode file atomically: temp name, fsync, os.replace, fsync the folder.

    A crash at any point leaves either the old file (or none) or the complete new one.
    """
    import h5py

    tmp = path.with_name(f"{path.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        with h5py.File(tmp, "w") as f:
            write_episode_group(f, content, observation_space, action_space)
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}{TMP_SUFFIX}")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, default=_json_default)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


# ----------------------------------------------------------------------------- reading one group


def is_observation_only(group: "h5py.Group") -> bool:
    """True for an episode recorded without actions (watch-only demos, imported frames)."""
    return bool(group.attrs.get("observation_only", False))


def read_nested(group: "h5py.Group", root: str, space: "gym_spaces.Space", where: str) -> Any:
    """Read every leaf of ``space`` stored under ``root`` into a nested array."""
    flat = {}
    for path, _ in sp.flat_items(space):
        flat[path] = read_dataset(group, leaf_name(root, path), where)
    return sp.nested_from_flat(space, flat)


def read_dataset(group: "h5py.Group", name: str, where: str) -> np.ndarray:
    """Read a whole dataset. Plain numeric datasets go through h5py's low-level API, which
    skips the high-level object's per-call bookkeeping (the loader reads thousands of small
    datasets, where that bookkeeping costs as much as the data)."""
    import h5py

    try:
        dsid = h5py.h5d.open(group.id, name.encode())
        dtype = dsid.dtype
        if dtype.kind in "biuf" and dtype.fields is None:
            out = np.empty(dsid.shape, dtype=dtype)
            if out.size:
                dsid.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
            return out
        return group[name][()]
    except KeyError:
        raise FormatError(f"{where} is damaged: the dataset {name!r} is missing.") from None
    except OSError:
        raise FormatError(f"{where} is damaged: the dataset {name!r} cannot be read.") from None


def read_file_labels(group: "h5py.Group", action_space: "gym_spaces.Space", episode_id: str,
                     where: str) -> list[Label]:
    """Labels stored in an episode group, in the order they were given."""
    labels = group.get("labels")
    if labels is None:
        raise FormatError(f"{where} is damaged: the labels group is missing.")
    vocab = loads(labels.attrs.get("vocabulary", "{}"), where)
    steps = read_dataset(labels, "step", where)
    source = read_dataset(labels, "source", where)
    reason = read_dataset(labels, "reason", where)
    rounds = read_dataset(labels, "round", where)
    latency = read_dataset(labels, "latency_ms", where)
    times = read_dataset(labels, "time", where)
    actions = read_nested(labels, "action", action_space, where)
    try:
        return [
            Label(
                episode=episode_id,
                step=int(steps[i]),
                action=sp.index(actions, i),
                source=vocab["source"][source[i]],
                reason=vocab["reason"][reason[i]],
                round=int(rounds[i]),
                latency_ms=float(latency[i]),
                time=float(times[i]),
            )
            for i in range(len(steps))
        ]
    except (KeyError, IndexError, ValueError):
        raise FormatError(f"{where} is damaged: its label arrays do not agree.") from None
