"""Reading recordings: a session folder, a packed file, a single episode file, or many.

Readers never lock and never need SWMR: a session's ``episodes/`` folder only ever gains
complete files (atomic renames), so listing it and opening what is listed is safe while a
writer appends; :meth:`Recording.refresh` picks up episodes finished since.
"""

from __future__ import annotations

import stat
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from ilcore import spaces as sp
from ilcore.data import format as fmt
from ilcore.data.labels import apply_records, effective_label_rows, parse_lines, read_overlay_file
from ilcore.data.validate import (EpisodeLayout, attr_json_object, attr_text, check_actions, check_episode,
                                  check_overlay, check_overlay_steps, episode_meta, json_text, reading,
                                  stored_space)
from ilcore.errors import FormatError, SpaceMismatchError
from ilcore.types import Episode, Label

# A real import (ilcore.spaces has loaded gymnasium already) so typing.get_type_hints resolves.
from gymnasium import spaces as gym_spaces  # noqa: E402

if TYPE_CHECKING:
    import h5py


MAX_SESSION_JSON_BYTES = 1 << 20  # session.json holds a few spaces; megabytes of it is not a session


def check_path(path: Path) -> None:
    """Refuse paths no file system call should see: too long or not encodable as a file name."""
    text = str(path)
    if len(text) > 4096:
        raise FormatError(f"The path {text[:60]}... is longer than 4096 characters.")
    if "\x00" in text:
        raise FormatError(f"The path {text[:60]!r} contains a NUL character.")


def read_session_json(folder: Path) -> dict[str, Any]:
    """The parsed ``session.json`` of a session folder (spaces as gymnasium spaces)."""
    path = folder / fmt.SESSION_FILE
    check_path(path)
    if not folder.is_dir():
        raise FormatError(f"{folder} does not exist.") if not folder.exists() else \
            FormatError(f"{folder} is not a folder.")
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise FormatError(f"{path} is not a regular file.")
        if st.st_size > MAX_SESSION_JSON_BYTES:
            raise FormatError(f"{path} is {st.st_size} bytes, too large to be a session description.")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FormatError(f"{folder} is not a recording session (it has no {fmt.SESSION_FILE}).") from None
    except OSError as exc:
        raise FormatError(f"{path} cannot be read ({exc.strerror or type(exc).__name__}).") from None
    data = json_text(raw, str(path))
    if not isinstance(data, dict) or data.get("format") != fmt.FORMAT_SESSION:
        raise FormatError(f"{path} is not an ilcore session description.")
    fmt.check_header(data, fmt.FORMAT_SESSION, str(path))
    for key in ("env_id", "observation_space", "action_space"):
        if key not in data:
            raise FormatError(f"{path} lacks the field {key!r}.")
    if not isinstance(data["env_id"], str) or not data["env_id"]:
        raise FormatError(f"{path} has an env_id that is not a name.")
    env_kwargs = data.get("env_kwargs") or {}
    if not isinstance(env_kwargs, dict):
        raise FormatError(f"{path} has env_kwargs that are not a JSON object.")
    return {
        "env_id": data["env_id"],
        "env_kwargs": env_kwargs,
        "observation_space": stored_space(data["observation_space"], "observation", str(path)),
        "action_space": stored_space(data["action_space"], "action", str(path)),
        "created": data.get("created"),
    }


@dataclass
class EpisodeHandle:
    """An open episode group and where it lives (for messages and lazy re-opening)."""

    group: "h5py.Group"
    where: str  # human-readable location
    file: Path  # the HDF5 file holding it
    name: str  # the group's name inside that file ("/" or "episodes/<id>")


class _Source:
    """One folder or file of a recording."""

    label: str
    env_id: str
    env_kwargs: dict[str, Any]
    observation_space: "gym_spaces.Space"
    action_space: "gym_spaces.Space"

    def local_ids(self) -> list[str]:
        raise NotImplementedError

    def refresh(self) -> None:
        raise NotImplementedError

    def overlay_records(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    @contextmanager
    def open_many(self, ids: Sequence[str]) -> Iterator[Iterator[tuple[str, EpisodeHandle]]]:
        raise NotImplementedError
        yield  # pragma: no cover


class _SessionSource(_Source):
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.label = str(folder)
        info = read_session_json(folder)
        self.env_id = info["env_id"]
        self.env_kwargs = info["env_kwargs"]
        self.observation_space = info["observation_space"]
        self.action_space = info["action_space"]
        self._ids: list[str] = []
        self._records: list[dict[str, Any]] = []
        self.refresh()

    def _list(self, folder_name: str) -> list[str]:
        folder = self.folder / folder_name
        names = []
        if folder.is_dir():
            for entry in folder.iterdir():
                n = entry.name
                if n.endswith(fmt.EPISODE_SUFFIX) and not n.endswith(fmt.PARTIAL_SUFFIX):
                    names.append(n[: -len(fmt.EPISODE_SUFFIX)])
        return sorted(names)

    def refresh(self) -> None:
        overlay = self.folder / fmt.OVERLAY_FILE
        try:
            self._ids = self._list(fmt.EPISODES_DIR)
            records = read_overlay_file(overlay)
            # Overlay labels of discarded episodes stay (for audit); they are not loaded.
            known = set(self._ids) | set(self._list(fmt.DISCARDED_DIR))
            if any(r["episode"] not in known for r in records):
                # An episode may have finished between the listing and the overlay read.
                self._ids = self._list(fmt.EPISODES_DIR)
                known |= set(self._ids)
        except OSError as exc:
            raise FormatError(f"{self.folder} cannot be listed ({exc.strerror or type(exc).__name__}).") from None
        check_overlay(records, self.action_space, known, str(overlay))
        self._records = records

    def local_ids(self) -> list[str]:
        return list(self._ids)

    def overlay_records(self) -> list[dict[str, Any]]:
        return self._records

    @contextmanager
    def open_many(self, ids: Sequence[str]) -> Iterator[Iterator[tuple[str, EpisodeHandle]]]:
        def gen() -> Iterator[tuple[str, EpisodeHandle]]:
            for local in ids:
                path = self.folder / fmt.EPISODES_DIR / f"{local}{fmt.EPISODE_SUFFIX}"
                where = str(path)
                with fmt.open_h5(path, where) as f:
                    fmt.check_header(f.attrs, fmt.FORMAT_EPISODE, where)
                    yield local, EpisodeHandle(f, where, path, "/")

        yield gen()


MAX_OVERLAY_RECORDS = 100_000_000  # a packed overlay larger than this is damage, not labels


class _FileSource(_Source):
    """A packed file (many episodes) or a lone episode file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.label = where = str(path)
        with fmt.open_h5(path) as f:
            kind = f.attrs.get("format")
            kind = kind.decode("utf-8", errors="replace") if isinstance(kind, bytes) else kind
            self.packed = kind == fmt.FORMAT_PACKED
            fmt.check_header(f.attrs, fmt.FORMAT_PACKED if self.packed else fmt.FORMAT_EPISODE, where)
            a = f.attrs
            self.env_id = attr_text(a, "env_id", where)
            self.env_kwargs = attr_json_object(a, "env_kwargs", where)
            self.observation_space = stored_space(json_text(attr_text(a, "observation_space", where),
                                                            f"the observation space of {where}"), "observation", where)
            self.action_space = stored_space(json_text(attr_text(a, "action_space", where),
                                                       f"the action space of {where}"), "action", where)
            if self.packed:
                self._ids = sorted(fmt.open_group(f, "episodes", where).keys()) if "episodes" in f else []
                self._records = parse_lines(self._overlay_lines(f, where), where) if "overlay" in f else []
                check_overlay(self._records, self.action_space, set(self._ids), f"the overlay of {where}")
            else:
                self._ids = [attr_text(a, "episode_id", where, default=path.stem)]
                self._records = []

    @staticmethod
    def _overlay_lines(f: "h5py.File", where: str) -> list[str]:
        dsid = fmt.open_dataset(f, "overlay", where, kinds="OSU")
        if len(dsid.shape) != 1 or dsid.shape[0] > MAX_OVERLAY_RECORDS:
            raise FormatError(f"{where} is damaged: its overlay has shape {dsid.shape}.")
        try:
            values = f["overlay"][()]
        except (OSError, ValueError, TypeError):
            raise FormatError(f"{where} is damaged: its overlay cannot be read.") from None
        lines = []
        for v in values:
            if isinstance(v, bytes):
                v = v.decode("utf-8", errors="replace")
            if not isinstance(v, str):
                raise FormatError(f"{where} is damaged: its overlay does not hold text.")
            lines.append(v)
        return lines

    def refresh(self) -> None:
        pass  # a file source never changes under a reader

    def local_ids(self) -> list[str]:
        return list(self._ids)

    def overlay_records(self) -> list[dict[str, Any]]:
        return self._records

    @contextmanager
    def open_many(self, ids: Sequence[str]) -> Iterator[Iterator[tuple[str, EpisodeHandle]]]:
        with fmt.open_h5(self.path) as f:
            def gen() -> Iterator[tuple[str, EpisodeHandle]]:
                for local in ids:
                    if self.packed:
                        name = f"episodes/{local}"
                        where = f"{self.path} (episode {local})"
                        if local not in self._ids:
                            raise FormatError(f"{self.path} has no episode {local!r}.")
                        group = fmt.open_group(f, name, where)
                        fmt.check_header(group.attrs, fmt.FORMAT_EPISODE, where)
                    else:
                        name, where, group = "/", str(self.path), f
                    yield local, EpisodeHandle(group, where, self.path, name)

            yield gen()


def _open_source(path: Path) -> _Source:
    check_path(path)
    try:
        is_dir = path.is_dir()
        exists = is_dir or path.exists()
    except OSError as exc:
        raise FormatError(f"{path} cannot be read ({exc.strerror or type(exc).__name__}).") from None
    if is_dir:
        return _SessionSource(path)
    if not exists:
        raise FormatError(f"{path} does not exist.")
    return _FileSource(path)


class Recording:
    """Read access to one or more recording sources sharing the same env and spaces.

    Episode ids are the session's own ids (``ep_000003``) for a single source, and
    ``"<k>:<id>"`` (k = the source's position) when several sources are open together.
    """

    def __init__(self, sources: Sequence[_Source]) -> None:
        if not sources:
            raise FormatError("No recording was given.")
        first = sources[0]
        for other in sources[1:]:
            for name in ("observation", "action"):
                a, b = getattr(first, f"{name}_space"), getattr(other, f"{name}_space")
                if sp.space_key(a) != sp.space_key(b):
                    raise SpaceMismatchError(f"{first.label} and {other.label} have different {name} spaces "
                                             f"({a} vs {b}).")
        self.sources = list(sources)
        self.observation_space: "gym_spaces.Space" = first.observation_space
        self.action_space: "gym_spaces.Space" = first.action_space
        self.env_id: str = first.env_id
        self.env_kwargs: dict[str, Any] = dict(first.env_kwargs)
        self._space_keys: tuple[str, str] | None = None

    # -- ids -------------------------------------------------------------------------

    def _global(self, k: int, local: str) -> str:
        return local if len(self.sources) == 1 else f"{k}:{local}"

    def _split(self, episode_id: str) -> tuple[int, str]:
        if len(self.sources) == 1:
            return 0, episode_id
        k, sep, local = episode_id.partition(":")
        if not sep or not k.isdigit() or int(k) >= len(self.sources):
            raise FormatError(f"There is no episode {episode_id!r} in this recording.")
        return int(k), local

    def episode_ids(self) -> list[str]:
        return [self._global(k, local) for k, s in enumerate(self.sources) for local in s.local_ids()]

    def refresh(self) -> None:
        """Pick up episodes finished (and labels added) since opening."""
        for s in self.sources:
            s.refresh()

    def overlay_by_episode(self, k: int) -> dict[str, list[dict[str, Any]]]:
        """Overlay records of source k grouped by local episode id, in file order."""
        out: dict[str, list[dict[str, Any]]] = {}
        for rec in self.sources[k].overlay_records():
            out.setdefault(str(rec["episode"]), []).append(rec)
        return out

    # -- episodes --------------------------------------------------------------------

    def load_episode(self, episode_id: str) -> Episode:
        """One episode with its active labels (overlay applied, retracted ones removed)."""
        k, local = self._split(episode_id)
        source = self.sources[k]
        if local not in source.local_ids():
            raise FormatError(f"There is no episode {episode_id!r} in {source.label}.")
        records = self.overlay_by_episode(k).get(local, [])
        with source.open_many([local]) as it:
            for _, handle in it:
                return self._read_episode(handle, episode_id, records)
        raise AssertionError

    def episodes(self) -> Iterator[Episode]:
        """Every episode in order, read one at a time."""
        for k, source in enumerate(self.sources):
            overlay = self.overlay_by_episode(k)
            with source.open_many(source.local_ids()) as it:
                for local, handle in it:
                    yield self._read_episode(handle, self._global(k, local), overlay.get(local, []))

    def check(self, h: EpisodeHandle, records: Sequence[dict[str, Any]], *, thorough: bool = False) -> EpisodeLayout:
        """Check an episode (and the overlay records that label it) before reading its data;
        ``thorough`` checks every dataset's metadata, compares the episode's own space
        attributes with the recording's and reads its executed actions to check them against
        the action space. Without it only what the training loader reads is checked."""
        if thorough and self._space_keys is None:
            self._space_keys = (sp.space_key(self.observation_space), sp.space_key(self.action_space))
        with reading(h.where):
            layout = check_episode(h.group, h.where, self.observation_space, self.action_space,
                                   self._space_keys if thorough else None, full=thorough)
            check_overlay_steps(records, layout.length, h.where)
            if thorough and not layout.observation_only:
                executed = fmt.read_nested(h.group, "actions", self.action_space, h.where, layout.length)
                check_actions(self.action_space, executed, layout.length, h.where)
        return layout

    def _read_episode(self, h: EpisodeHandle, episode_id: str, records: list[dict[str, Any]]) -> Episode:
        with reading(h.where):
            return self._read_checked_episode(h, episode_id, records)

    def _read_checked_episode(self, h: EpisodeHandle, episode_id: str, records: list[dict[str, Any]]) -> Episode:
        g, where = h.group, h.where
        if self._space_keys is None:
            self._space_keys = (sp.space_key(self.observation_space), sp.space_key(self.action_space))
        layout = check_episode(g, where, self.observation_space, self.action_space, self._space_keys)
        check_overlay_steps(records, layout.length, where)
        t = layout.length
        obs = fmt.read_nested(g, "observations", self.observation_space, where, t + 1)
        actions = None
        if not layout.observation_only:
            actions = fmt.read_nested(g, "actions", self.action_space, where, t)
            check_actions(self.action_space, actions, t, where)
        infos = {}
        if layout.info_names:
            infos_group = fmt.open_group(g, "infos", where)
            infos = {name: fmt.read_dataset(infos_group, name, where, (t,)) for name in layout.info_names}
        labels = g["labels"]
        rounds = fmt.read_dataset(labels, "round", where, (len(layout.label_steps),))
        latency = fmt.read_dataset(labels, "latency_ms", where, (len(layout.label_steps),))
        times = fmt.read_dataset(labels, "time", where, (len(layout.label_steps),))
        file_labels = [
            Label(
                episode=episode_id,
                step=int(layout.label_steps[i]),
                action=sp.index(layout.label_actions, i),
                source=layout.vocabulary["source"][layout.label_source[i]],
                reason=layout.vocabulary["reason"][layout.label_reason[i]],
                round=int(rounds[i]),
                latency_ms=float(latency[i]),
                time=float(times[i]),
            )
            for i in range(len(layout.label_steps))
        ]
        try:
            return Episode(
                id=episode_id,
                observations=obs,
                actions=actions,
                actors=None if layout.observation_only else fmt.read_dataset(g, "actors", where, (t,), kinds="iu"),
                rewards=_known_rewards(fmt.read_dataset(g, "rewards", where, (t,))),
                terminated=layout.terminated,
                truncated=layout.truncated,
                infos=infos,
                wall_time=fmt.read_dataset(g, "wall_time", where, (t,)),
                meta=episode_meta(g, where, self.env_id),
                labels=tuple(apply_records(file_labels, records, self.action_space, episode_id)),
            )
        except ValueError as exc:
            raise FormatError(f"{where} is damaged: {exc}.") from None

    # -- summary ---------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """What ``ilcore info --json`` prints (labels counted as effective labels, one per step).

        Every episode is checked (attributes, dataset shapes and types, labels, executed actions
        against the action space); observations are not read."""
        n_steps = 0
        n_episodes = 0
        returns: list[float] = []
        incomplete = 0
        by_source: dict[str, int] = {}
        by_reason: dict[str, int] = {}
        for k, source in enumerate(self.sources):
            overlay = self.overlay_by_episode(k)
            with reading(source.label), source.open_many(source.local_ids()) as it:
                for local, h in it:
                    g, where = h.group, h.where
                    records = overlay.get(local, [])
                    layout = self.check(h, records, thorough=True)
                    length = layout.length
                    n_steps += length
                    n_episodes += 1
                    ret = float(np.sum(fmt.read_dataset(g, "rewards", where, (length,))))
                    if not np.isnan(ret):  # observation-only episodes may have unknown rewards
                        returns.append(ret)
                    incomplete += layout.incomplete
                    vocab = layout.vocabulary
                    _, rows = effective_label_rows(layout.label_steps, length + 1, records)
                    extras = [r for r in records if r["op"] == "label"]
                    for row in rows.tolist():
                        if row >= 0:
                            s = vocab["source"][layout.label_source[row]]
                            r = vocab["reason"][layout.label_reason[row]]
                        else:
                            rec = extras[-row - 1]
                            s, r = str(rec["source"]), str(rec["reason"])
                        by_source[s] = by_source.get(s, 0) + 1
                        by_reason[r] = by_reason.get(r, 0) + 1
        return {
            "episodes": n_episodes,
            "steps": n_steps,
            "labels_by_source": dict(sorted(by_source.items())),
            "labels_by_reason": dict(sorted(by_reason.items())),
            "returns": {
                "mean": float(np.mean(returns)) if returns else None,
                "min": float(np.min(returns)) if returns else None,
                "max": float(np.max(returns)) if returns else None,
            },
            "env_id": self.env_id,
            "observation_space": sp.space_to_json(self.observation_space),
            "action_space": sp.space_to_json(self.action_space),
            "incomplete_episodes": incomplete,
            "sources": [s.label for s in self.sources],
        }


def _known_rewards(rewards: np.ndarray) -> np.ndarray | None:
    """None when an observation-only episode was recorded without rewards (all NaN)."""
    return None if len(rewards) and bool(np.all(np.isnan(rewards))) else rewards


def open_recording(
    paths: "str | Path | Recording | Sequence[str | Path]",
    *,
    env_id: str | None = None,
    observation_space: "gym_spaces.Space | None" = None,
    action_space: "gym_spaces.Space | None" = None,
) -> Recording:
    """Open a session folder, a packed or episode file, or several of them together.

    If ``env_id`` or spaces are given, the recording must match them (SpaceMismatchError).
    """
    if isinstance(paths, Recording):
        rec = paths
    else:
        if isinstance(paths, (str, Path)):
            paths = [paths]
        rec = Recording([_open_source(Path(p)) for p in paths])
    where = ", ".join(s.label for s in rec.sources)
    if env_id is not None and rec.env_id != env_id:
        raise SpaceMismatchError(f"{where} was recorded on {rec.env_id}, not {env_id}.")
    for name, want in (("observation", observation_space), ("action", action_space)):
        have = getattr(rec, f"{name}_space")
        if want is not None and sp.space_key(want) != sp.space_key(have):
            raise SpaceMismatchError(f"{where} has {name} space {have}, but {want} was expected.")
    return rec
