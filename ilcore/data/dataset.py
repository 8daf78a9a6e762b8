"""Episodes -> flat transitions for training (``load_transitions``).

Speed matters here (a million low-dimensional transitions should load at close to raw
h5py speed), so every dataset is read whole, once per episode, the arrays are
concatenated once, and labels are merged with numpy; only overlay records (labels given
after recording, usually few) are walked in Python.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ilcore import spaces as sp
from ilcore.data import format as fmt
from ilcore.data.labels import effective_label_rows, label_from_record
from ilcore.data.reader import Recording, open_recording
from ilcore.data.validate import check_actions, check_observations, reading
from ilcore.errors import FormatError, UserError
from ilcore.types import Actor, Nested

# A real import (ilcore.spaces has loaded gymnasium already) so typing.get_type_hints resolves.
from gymnasium import spaces as gym_spaces  # noqa: E402

ACTOR_NAMES = np.array([a.name.lower() for a in sorted(Actor, key=int)])


class LazyFrames:
    """Image frames read from HDF5 on demand: ``frames[idx]`` returns (len(idx), H, W, C) uint8.

    Built over segments (file, dataset, rows) concatenated in order, then viewed through an
    index array. Open files are cached per instance and per process (h5py handles do not
    survive a fork), and closed by :meth:`close`.
    """

    def __init__(self, segments: Sequence[tuple[Path, str, int]], frame_shape: tuple[int, ...],
                 dtype: np.dtype, view: np.ndarray | None = None) -> None:
        self._segments = list(segments)
        counts = np.asarray([n for _, _, n in self._segments], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(counts)])
        self._view = np.arange(self._starts[-1], dtype=np.int64) if view is None else view
        self.frame_shape = tuple(frame_shape)
        self.dtype = np.dtype(dtype)
        self._files: dict[Path, Any] = {}
        self._pid = os.getpid()

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self._view), *self.frame_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.frame_shape)

    def __len__(self) -> int:
        return len(self._view)

    def take(self, index: Any) -> "LazyFrames":
        """A lazy sub-view (nothing is read)."""
        return LazyFrames(self._segments, self.frame_shape, self.dtype, self._view[index])

    def __getitem__(self, index: Any) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            return self._read(self._view[np.asarray([index])])[0]
        return self._read(np.atleast_1d(self._view[index]))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self._read(self._view)
        return out if dtype is None else out.astype(dtype)

    def _read(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), *self.frame_shape), dtype=self.dtype)
        if len(rows) == 0:
            return out
        seg = np.searchsorted(self._starts, rows, side="right") - 1
        for s in np.unique(seg):
            where = np.flatnonzero(seg == s)
            path, name, _ = self._segments[s]
            ds, raw = self._dataset(path, name)
            local = rows[where] - self._starts[s]
            for k, row in zip(where.tolist(), local.tolist()):
                if raw is None or not _read_chunk(ds, raw, row, out[k]):
                    # One frame per chunk: reading frame by frame decodes exactly the chunks needed.
                    ds.read_direct(out, np.s_[row], np.s_[k])
        return out

    # Each open HDF5 file costs ~0.6 MB (HDF5's metadata cache), so keeping every episode open
    # made a streamed run's memory grow with the episode count; the least recently used file is
    # closed instead. A random minibatch touches many episodes in file order, so a cap below the
    # number of episodes a batch touches reopens every one of them (~0.4 ms each, more than a
    # frame's decode): 64 files hold 20-episode data whole and cost ~40 MB whatever the data size.
    max_open_files: int = 64

    def _dataset(self, path: Path, name: str) -> tuple[Any, str | None]:
        """The open dataset ``name`` of ``path`` and how its chunks can be read raw (see
        :func:`_raw_chunk_codec`); handles are cached with the file (looking a dataset up costs
        about as much as decoding a frame)."""
        if self._pid != os.getpid():
            self._files, self._pid = {}, os.getpid()
        entry = self._files.pop(path, None)  # re-inserted below: dict order is the recency order
        if entry is None:
            while self._files and len(self._files) >= self.max_open_files:
                self._files.pop(next(iter(self._files)))[0].close()
            # No chunk cache: a chunk holds one frame, read once per batch, so caching only held memory.
            entry = (fmt.open_h5(path, chunk_cache_bytes=0), {})
        self._files[path] = entry
        handle, datasets = entry
        if name not in datasets:
            ds = handle[name]
            datasets[name] = (ds, _raw_chunk_codec(ds, self.frame_shape, self.dtype))
        return datasets[name]

    def close(self) -> None:
        files, self._files = self._files, {}
        if self._pid == os.getpid():
            for handle, _ in files.values():
                handle.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_files"] = {}
        return state


def _raw_chunk_codec(ds: Any, frame_shape: tuple[int, ...], dtype: np.dtype) -> str | None:
    """"deflate" or "none" when every chunk of ``ds`` is exactly one frame stored with at most
    HDF5's deflate filter (what SessionWriter writes), so a frame can be read as its raw chunk and
    inflated with zlib: about 4x less CPU than ``read_direct``'s path through HDF5's filter
    pipeline (benchmarks/streaming.py). None for any other layout (read through h5py)."""
    import h5py  # lazy, as in ilcore.data.format: the CLI's --help loads this module

    if ds.chunks != (1, *frame_shape) or ds.dtype != dtype or not ds.dtype.isnative:
        return None
    plist = ds.id.get_create_plist()
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    if not filters:
        return "none"
    return "deflate" if filters == [h5py.h5z.FILTER_DEFLATE] else None


def _read_chunk(ds: Any, codec: str, row: int, out: np.ndarray) -> bool:
    """Read frame ``row`` of ``ds`` as its raw chunk into ``out``; False where the chunk is not
    the plain stored frame (never written, a filter skipped, a size that does not match) so the
    caller reads it through h5py, which also gives a damaged chunk its usual error."""
    try:
        mask, chunk = ds.id.read_direct_chunk((row,) + (0,) * (ds.ndim - 1))
        if mask:
            return False
        frame = zlib.decompress(chunk, bufsize=out.nbytes) if codec == "deflate" else chunk
    except (OSError, ValueError, KeyError, zlib.error):
        return False
    if len(frame) != out.nbytes:
        return False
    out[...] = np.frombuffer(frame, dtype=out.dtype).reshape(out.shape)
    return True


@dataclass
class TransitionData:
    """Flat transitions, one per labelled step (N of them).

    obs:        nested, leaves (N, ...); image leaves may be :class:`LazyFrames`
    next_obs:   nested, leaves (N, ...), the observation after the step (for LfO)
    actions:    nested, leaves (N, ...): the effective label (labels="label") or the executed
                action (labels="action")
    weights:    (N,) float32, 1.0 unless changed by the caller
    episode:    (N,) int64 index into ``episode_ids``
    step:       (N,) int64 step within the episode
    reason:     (N,) str, the label's reason ("executed" for labels="action")
    source:     (N,) str, the label's source (the actor's name for labels="action")
    actor:      (N,) uint8 Actor that executed the step
    terminal:   (N,) bool, the last step of an episode that terminated (not truncated)
    train_mask / valid_mask: (N,) bool, split by whole episodes
    """

    obs: Nested
    next_obs: Nested | None
    actions: Nested
    weights: np.ndarray
    episode: np.ndarray
    step: np.ndarray
    reason: np.ndarray
    source: np.ndarray
    actor: np.ndarray
    terminal: np.ndarray
    train_mask: np.ndarray
    valid_mask: np.ndarray
    observation_space: "gym_spaces.Space"
    action_space: "gym_spaces.Space"
    episode_ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.weights)

    def subset(self, index: Any) -> "TransitionData":
        """Rows ``index`` (int array or bool mask) of every field; lazy leaves stay lazy."""
        idx = np.flatnonzero(index) if np.asarray(index).dtype == bool else np.asarray(index, dtype=np.int64)

        def pick(a: Any) -> Any:
            return a.take(idx) if isinstance(a, LazyFrames) else a[idx]

        return replace(
            self,
            obs=sp.map_leaves(pick, self.obs),
            next_obs=None if self.next_obs is None else sp.map_leaves(pick, self.next_obs),
            actions=sp.map_leaves(pick, self.actions),
            **{name: getattr(self, name)[idx] for name in (
                "weights", "episode", "step", "reason", "source", "actor", "terminal", "train_mask", "valid_mask")},
        )

    def train(self) -> "TransitionData":
        return self.subset(self.train_mask)

    def valid(self) -> "TransitionData":
        return self.subset(self.valid_mask)


def load_transitions(
    recording_or_paths: "Recording | str | Path | Sequence[str | Path]",
    *,
    labels: str = "label",
    valid_fraction: float = 0.1,
    seed: int = 0,
    lazy_images: bool = True,
) -> TransitionData:
    """Flatten a recording into transitions.

    labels="label": one transition per step with an effective label (episode-file labels
    and the overlay merged, latest wins, retracted ones removed); unlabelled steps are
    skipped, and so are labels of the final observation (it has no next observation).
    labels="action": one transition per executed step, the target being the executed action.
    ``valid_fraction`` of the episodes (at least one when there are two or more) form the
    validation split, chosen with ``seed``.
    """
    if labels not in ("label", "action"):
        raise UserError(f"labels must be 'label' or 'action', not {labels!r}.")
    if not 0.0 <= valid_fraction < 1.0:
        raise UserError(f"valid_fraction must be in [0, 1), not {valid_fraction}.")
    rec = open_recording(recording_or_paths)
    obs_space, act_space = rec.observation_space, rec.action_space
    obs_leaves = sp.flat_items(obs_space)
    act_leaves = sp.flat_items(act_space)
    lazy_paths = {p for p, leaf in obs_leaves if lazy_images and sp.is_image(leaf)}
    use_labels = labels == "label"

    episode_ids: list[str] = []
    obs_parts: dict[str, list[np.ndarray]] = {p: [] for p, _ in obs_leaves if p not in lazy_paths}
    lazy_segments: dict[str, list[tuple[Path, str, int]]] = {p: [] for p in lazy_paths}
    target_parts: dict[str, list[np.ndarray]] = {p: [] for p, _ in act_leaves}
    extra_actions: list[Any] = []
    actor_parts: list[np.ndarray] = []
    ep_parts, step_parts, obs_index_parts, target_index_parts = [], [], [], []
    source_code_parts, reason_code_parts, terminal_parts = [], [], []
    vocab: dict[str, int] = {}

    def code(name: str) -> int:
        c = vocab.get(name)
        if c is None:
            c = vocab[name] = len(vocab)
        return c

    obs_offset = 0  # rows of observations read so far (T+1 per episode)
    target_offset = 0  # rows of target actions read so far (file labels, or executed actions)
    for k, source in enumerate(rec.sources):
        overlay = rec.overlay_by_episode(k)
        with reading(source.label), source.open_many(source.local_ids()) as handles:
            for local, h in handles:
                g, where = h.group, h.where
                records = overlay.get(local, [])
                # Checked before anything is allocated: shapes, dtypes, labels, overlay steps.
                layout = rec.check(h, records)
                if not use_labels and layout.observation_only:
                    continue  # no executed actions to train on (labels given later still count)
                length = layout.length
                actors = fmt.read_opened(layout.actors, "actors", where)
                e = len(episode_ids)
                episode_ids.append(rec._global(k, local))
                for path, leaf in obs_leaves:
                    name = fmt.leaf_name("observations", path)
                    if path in lazy_paths:
                        fmt.open_dataset(g, name, where, (length + 1, *sp.leaf_shape(leaf)))  # read later, frame by frame
                        dataset_path = name if h.name == "/" else f"{h.name}/{name}"
                        lazy_segments[path].append((h.file, dataset_path, length + 1))
                    else:
                        part = fmt.read_dataset(g, name, where, (length + 1, *sp.leaf_shape(leaf)))
                        check_observations(part, where)
                        obs_parts[path].append(part)
                if use_labels:
                    file_steps = layout.label_steps
                    n_file = len(file_steps)
                    steps, rows = effective_label_rows(file_steps, length, records)
                    for path, value in sp.flat_from_nested(act_space, layout.label_actions).items():
                        target_parts[path].append(value)
                    voc = layout.vocabulary
                    src_lut = np.asarray([code(s) for s in voc["source"]] or [0], dtype=np.int64)
                    rsn_lut = np.asarray([code(s) for s in voc["reason"]] or [0], dtype=np.int64)
                    file_rows = rows >= 0
                    src = np.empty(len(rows), dtype=np.int64)
                    rsn = np.empty(len(rows), dtype=np.int64)
                    if file_rows.all():
                        src[:] = src_lut[layout.label_source[rows]]
                        rsn[:] = rsn_lut[layout.label_reason[rows]]
                        target_rows = rows + target_offset
                    else:
                        fr = rows[file_rows]
                        src[file_rows] = src_lut[layout.label_source[fr]]
                        rsn[file_rows] = rsn_lut[layout.label_reason[fr]]
                        label_records = [r for r in records if r["op"] == "label"]
                        target_rows = np.empty(len(rows), dtype=np.int64)
                        target_rows[file_rows] = fr + target_offset
                        # Overlay labels go to a side table; negative ids are resolved after the loop.
                        for i in np.flatnonzero(~file_rows).tolist():
                            r = label_records[-rows[i] - 1]
                            lbl = label_from_record(r, act_space)
                            src[i], rsn[i] = code(lbl.source), code(lbl.reason)
                            extra_actions.append(lbl.action)
                            target_rows[i] = -len(extra_actions)
                    target_offset += n_file
                else:
                    steps = np.arange(length, dtype=np.int64)
                    executed = fmt.read_nested(g, "actions", act_space, where, length)
                    check_actions(act_space, executed, length, where)
                    for path, value in sp.flat_from_nested(act_space, executed).items():
                        target_parts[path].append(value)
                    target_rows = steps + target_offset
                    if len(actors) and int(actors.max()) >= len(ACTOR_NAMES):
                        raise FormatError(f"{where} is damaged: it names an actor code {int(actors.max())} "
                                          "that does not exist.")
                    src = np.asarray([code(n) for n in ACTOR_NAMES], dtype=np.int64)[actors]
                    rsn = np.full(length, code("executed"), dtype=np.int64)
                    target_offset += length
                actor_parts.append(actors)
                ep_parts.append(np.full(len(steps), e, dtype=np.int64))
                step_parts.append(steps)
                obs_index_parts.append(steps + obs_offset)
                target_index_parts.append(target_rows)
                source_code_parts.append(src)
                reason_code_parts.append(rsn)
                term = np.zeros(len(steps), dtype=bool)
                if layout.terminated and len(steps):
                    term[steps == length - 1] = True
                terminal_parts.append(term)
                obs_offset += length + 1

    def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
        return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype=dtype)

    obs_index = cat(obs_index_parts, np.int64)
    step = cat(step_parts, np.int64)
    episode = cat(ep_parts, np.int64)
    actor_all = cat(actor_parts, np.uint8)
    # actors are per executed step: their global row is obs row minus the episode index
    actor = actor_all[obs_index - episode] if len(obs_index) else np.zeros(0, dtype=np.uint8)

    obs_flat: dict[str, Any] = {}
    next_flat: dict[str, Any] = {}
    for path, leaf in obs_leaves:
        if path in lazy_paths:
            frames = LazyFrames(lazy_segments[path], sp.leaf_shape(leaf), sp.leaf_dtype(leaf))
            obs_flat[path], next_flat[path] = frames.take(obs_index), frames.take(obs_index + 1)
        else:
            if obs_parts[path]:
                full = np.concatenate(obs_parts[path])
            else:
                full = np.zeros((0, *sp.leaf_shape(leaf)), dtype=sp.leaf_dtype(leaf))
            obs_flat[path], next_flat[path] = full[obs_index], full[obs_index + 1]

    target_index = cat(target_index_parts, np.int64)
    extra = sp.flat_from_nested(act_space, sp.stack(act_space, extra_actions)) if extra_actions else None
    act_flat: dict[str, np.ndarray] = {}
    for path, leaf in act_leaves:
        parts = target_parts[path]
        table = np.concatenate(parts) if parts else np.zeros((0, *sp.leaf_shape(leaf)), dtype=sp.leaf_dtype(leaf))
        if extra is not None:
            n_table = len(table)
            table = np.concatenate([table, extra[path].astype(table.dtype, copy=False)])
            idx = np.where(target_index < 0, n_table + (-target_index - 1), target_index)
        else:
            idx = target_index
        act_flat[path] = table[idx]

    names = np.asarray(list(vocab), dtype=str) if vocab else np.zeros(0, dtype=str)
    source_names = names[cat(source_code_parts, np.int64)] if len(names) else np.zeros(0, dtype=str)
    reason_names = names[cat(reason_code_parts, np.int64)] if len(names) else np.zeros(0, dtype=str)

    train_mask, valid_mask = split_by_episode(episode, valid_fraction, seed)
    return TransitionData(
        obs=sp.nested_from_flat(obs_space, obs_flat),
        next_obs=sp.nested_from_flat(obs_space, next_flat),
        actions=sp.nested_from_flat(act_space, act_flat),
        weights=np.ones(len(step), dtype=np.float32),
        episode=episode,
        step=step,
        reason=reason_names,
        source=source_names,
        actor=actor,
        terminal=cat(terminal_parts, bool),
        train_mask=train_mask,
        valid_mask=valid_mask,
        observation_space=obs_space,
        action_space=act_space,
        episode_ids=episode_ids,
    )


def split_by_episode(episode: np.ndarray, valid_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (train, valid) masks putting whole episodes in validation (at least one when asked
    and more than one episode exists), so validation measures states the learner never saw."""
    episode = np.asarray(episode)
    ids = np.unique(episode)
    n_valid = int(round(valid_fraction * len(ids)))
    if valid_fraction > 0 and len(ids) > 1:
        n_valid = min(max(n_valid, 1), len(ids) - 1)
    else:
        n_valid = 0
    chosen = np.random.default_rng(seed).permutation(ids)[:n_valid]
    valid = np.isin(episode, chosen)
    return ~valid, valid
