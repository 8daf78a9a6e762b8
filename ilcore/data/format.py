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

import io
import json
import math
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
from gymnasium import spaces as gym_spaces

from ilcore import fileio
from ilcore import spaces as sp
from ilcore.errors import ConfigError, FormatError
from ilcore.types import Label

if TYPE_CHECKING:
    # h5py (about 90 ms to import) is imported inside the functions that open files: the CLI's
    # --help loads ilcore.data through its commands and must not pay for it.
    import h5py

FORMAT_SESSION = "ilcore-session"
FORMAT_EPISODE = "ilcore-episode"
FORMAT_PACKED = "ilcore-packed"
SCHEMA_VERSION = 1

SESSION_FILE = "session.json"
EPISODES_DIR = "episodes"
DISCARDED_DIR = "discarded"
CORRUPT_DIR = "corrupt"  # autosaves found unreadable when a session was reopened for writing
OVERLAY_FILE = "labels.jsonl"
LOCK_FILE = "writer.lock"
EPISODE_SUFFIX = ".h5"
PARTIAL_SUFFIX = ".partial.h5"
TMP_SUFFIX = fileio.TMP_SUFFIX
ACTOR_UNKNOWN = 255  # actors value of observation-only episodes: nobody's action was recorded

IMAGE_COMPRESSION = "gzip"
IMAGE_COMPRESSION_LEVEL = 4


def leaf_name(root: str, path: str) -> str:
    """HDF5 name of a leaf dataset: ``root`` itself for a leaf space, else ``root/path``."""
    return f"{root}/{path}" if path else root


def short_repr(value: Any, limit: int = 40) -> str:
    """repr() cut to ``limit`` characters, for naming a bad value in a one-line message."""
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_header(attrs: Any, expected: str, where: str) -> None:
    """Refuse foreign HDF5 objects and newer schema versions with one sentence."""
    fmt = attrs.get("format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode("utf-8", errors="replace")
    if not isinstance(fmt, str) or fmt != expected:
        if isinstance(fmt, str) and fmt in (FORMAT_EPISODE, FORMAT_PACKED, FORMAT_SESSION):
            raise FormatError(f"{where} is an ilcore {fmt.split('-')[1]} file, not the {expected.split('-')[1]} "
                              "expected here.")
        raise FormatError(f"{where} is an HDF5 file but not an ilcore recording.")
    raw = attrs.get("schema_version", None)
    version = raw.item() if isinstance(raw, np.generic) else raw
    if isinstance(version, bool) or not isinstance(version, int):
        raise FormatError(f"{where} has an invalid recording schema version {short_repr(raw)}.")
    if version > SCHEMA_VERSION:
        raise FormatError(f"{where} uses recording schema version {short_repr(version)}, newer than version "
                          f"{SCHEMA_VERSION} that this ilcore reads; upgrade ilcore to open it.")
    if version < 1:
        raise FormatError(f"{where} has an invalid recording schema version {short_repr(version)}.")


def check_regular_file(path: Path | str, where: str | None = None) -> None:
    """Refuse a path that is missing, unreadable or not a regular file, before anything opens it
    (opening a FIFO named like an episode would block forever)."""
    where = where or str(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FormatError(f"{where} does not exist.") from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise FormatError(f"{where} cannot be read ({reason}).") from None
    if not stat.S_ISREG(mode):
        raise FormatError(f"{where} is not a regular file.")


def open_h5(path: Path | str, where: str | None = None, *, chunk_cache_bytes: int | None = None) -> "h5py.File":
    """Open an HDF5 file read-only, turning h5py's errors into one-sentence FormatErrors.

    Only regular files are opened (a FIFO or device would block or never end).
    ``chunk_cache_bytes``: HDF5's chunk cache per dataset (None: h5py's 1 MB default)."""
    import h5py

    where = where or str(path)
    check_regular_file(path, where)
    try:
        return h5py.File(path, "r", rdcc_nbytes=chunk_cache_bytes)
    except FileNotFoundError:
        raise FormatError(f"{where} does not exist.") from None
    except (OSError, ValueError, UnicodeError):
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
    if isinstance(space, gym_spaces.Dict):
        return {k: nested_from_json(s, value[k]) for k, s in space.spaces.items()}
    if isinstance(space, gym_spaces.Tuple):
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
                if len(vocab) == 256:  # the codes are uint8
                    raise ConfigError("An episode's labels may use at most 256 distinct sources "
                                      "and 256 distinct reasons.")
                vocab.append(value)
            codes[i] = vocab.index(value)
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

    A crash at any point leaves either the old file (or none) or the complete new one. The
    HDF5 image is built in memory and written with plain file writes: HDF5 never sees the disk,
    so a full disk is one clean StorageError (the temp file removed) instead of HDF5 failing
    inside its own object finalisers, which crashed the process (exit 139).
    """
    import h5py

    image = io.BytesIO()
    with h5py.File(image, "w") as f:
        write_episode_group(f, content, observation_space, action_space)
    fileio.write_bytes_atomic(path, image.getbuffer(), what=f"episode file {path}")


fsync_path = fileio.fsync_path
fsync_dir = fileio.fsync_dir


def write_json_atomic(path: Path, obj: Any) -> None:
    fileio.write_json_atomic(path, obj, default=_json_default)


# ----------------------------------------------------------------------------- reading one group


# Bounds a reader trusts before it allocates: an episode longer than this is refused, and every
# array it reads must be as large as its episode says and actually stored in the file.
MAX_EPISODE_STEPS = 10_000_000
MAX_LABELS_PER_STEP = 16  # file labels per step (demo, live query, intervention, ...); more is damage

NUMERIC_KINDS = "biuf"


def read_nested(group: "h5py.Group", root: str, space: "gym_spaces.Space", where: str, n: int) -> Any:
    """Read every leaf of ``space`` stored under ``root`` (``n`` rows each) into a nested array."""
    flat = {}
    for path, leaf in sp.flat_items(space):
        flat[path] = read_dataset(group, leaf_name(root, path), where, (n, *sp.leaf_shape(leaf)))
    return sp.nested_from_flat(space, flat)


def _hard_link(group: "h5py.Group", name: str, where: str) -> None:
    """Every component of ``name`` must be a plain (hard) link: soft links may loop and external
    links point into other files (any file on the machine)."""
    import h5py

    parts = name.split("/")
    for i in range(len(parts)):
        prefix = "/".join(parts[: i + 1])
        try:
            kind = group.id.links.get_info(prefix.encode()).type
        except (KeyError, RuntimeError):
            raise FormatError(f"{where} is damaged: {prefix!r} is missing.") from None
        if kind != h5py.h5l.TYPE_HARD:
            raise FormatError(f"{where} holds a soft or external link at {prefix!r}, which recordings never use.")


def open_group(group: "h5py.Group", name: str, where: str) -> "h5py.Group":
    """A sub-group reached through hard links only."""
    import h5py

    _hard_link(group, name, where)
    obj = group[name]
    if not isinstance(obj, h5py.Group):
        raise FormatError(f"{where} is damaged: {name!r} is not a group.")
    return obj


def open_dataset(group: "h5py.Group", name: str, where: str, shape: tuple[int, ...] | None = None,
                 kinds: str = NUMERIC_KINDS) -> Any:
    """The low-level dataset ``name``, checked before anything is read: reached through hard
    links, stored inside this file, of a plain dtype of one of ``kinds``, of exactly ``shape``
    (when given) and with all its data present (a dataset declared huge but never written is
    refused instead of allocated)."""
    import h5py

    _hard_link(group, name, where)
    try:
        dsid = h5py.h5d.open(group.id, name.encode())
    except KeyError:
        raise FormatError(f"{where} is damaged: {name!r} is not a dataset.") from None
    dtype, have = dsid.dtype, dsid.shape  # each property is an HDF5 call: read once
    if dtype.kind not in kinds or dtype.fields is not None or dtype.shape:
        raise FormatError(f"{where} is damaged: the dataset {name!r} has the unexpected type {dtype}.")
    if shape is not None and have != tuple(shape):
        raise FormatError(f"{where} is damaged: the dataset {name!r} has shape {have}, expected "
                          f"{tuple(shape)}.")
    dcpl = dsid.get_create_plist()
    layout = dcpl.get_layout()
    if layout not in (h5py.h5d.COMPACT, h5py.h5d.CONTIGUOUS, h5py.h5d.CHUNKED) or dcpl.get_external_count():
        raise FormatError(f"{where} is damaged: the dataset {name!r} keeps its data outside the file.")
    count = math.prod(have)
    if count and layout == h5py.h5d.CHUNKED:
        expected = math.prod(-(-n // c) for n, c in zip(have, dcpl.get_chunk()))
        present = dsid.get_num_chunks()
    elif count and layout == h5py.h5d.CONTIGUOUS:
        expected, present = count * dtype.itemsize, dsid.get_storage_size()
    else:
        expected = present = 0
    if present < expected:
        raise FormatError(f"{where} is damaged: the dataset {name!r} declares shape {have} but holds "
                          "less data than that.")
    return dsid


def read_dataset(group: "h5py.Group", name: str, where: str, shape: tuple[int, ...] | None = None,
                 kinds: str = NUMERIC_KINDS) -> np.ndarray:
    """Read a whole dataset, checked first by :func:`open_dataset`. Plain numeric datasets go
    through h5py's low-level API, which skips the high-level object's per-call bookkeeping (the
    loader reads thousands of small datasets, where that bookkeeping costs as much as the data)."""
    import h5py

    return read_opened(open_dataset(group, name, where, shape, kinds), name, where)


def read_opened(dsid: Any, name: str, where: str) -> np.ndarray:
    """Read all of a dataset already checked by :func:`open_dataset`."""
    import h5py

    try:
        out = np.empty(dsid.shape, dtype=dsid.dtype)
        if out.size:
            dsid.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
        return out
    except (OSError, ValueError, TypeError):
        raise FormatError(f"{where} is damaged: the dataset {name!r} cannot be read.") from None
