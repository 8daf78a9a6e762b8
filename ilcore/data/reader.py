"""Reading recordings: a session folder, a packed file, a single episode file, or many.

Readers never lock and never need SWMR: a session's ``episodes/`` folder only ever gains
complete files (atomic renames), so listing it and opening what is listed is safe while a
writer appends; :meth:`Recording.refresh` picks up episodes finished since.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from ilcore import spaces as sp
from ilcore.data import format as fmt
from ilcore.data.labels import apply_records, parse_lines, read_overlay_file
from ilcore.errors import FormatError, SpaceMismatchError
from ilcore.types import Episode, EpisodeMeta

# A real import (ilcore.spaces has loaded gymnasium already) so typing.get_type_hints resolves.
from gymnasium import spaces as gym_spaces  # noqa: E402

if TYPE_CHECKING:
    import h5py


def read_session_json(folder: Path) -> dict[str, Any]:
    """The parsed ``session.json`` of a session folder (spaces as gymnasium spaces)."""
    path = folder / fmt.SESSION_FILE
    if not folder.is_dir():
        raise FormatError(f"{folder} does not exist.") if not folder.exists() else \
            FormatError(f"{folder} is not a folder.")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FormatError(f"{folder} is not a recording session (it has no {fmt.SESSION_FILE}).") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise FormatError(f"{path} is not valid JSON.") from None
    if not isinstance(data, dict) or data.get("format") != fmt.FORMAT_SESSION:
        raise FormatError(f"{path} is not an ilcore session description.")
    fmt.check_header(data, fmt.FORMAT_SESSION, str(path))
    try:
        return {
            "env_id": str(data["env_id"]),
            "env_kwargs": dict(data.get("env_kwargs") or {}),
            "observation_space": sp.space_from_json(data["observation_space"]),
            "action_space": sp.space_from_json(data["action_space"]),
            "created": data.get("created"),
        }
    except KeyError as exc:
        raise FormatError(f"{path} lacks the field {exc.args[0]!r}.") from None


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

    def refresh(self) -> None:
        episodes = self.folder / fmt.EPISODES_DIR
        names = []
        if episodes.is_dir():
            for entry in episodes.iterdir():
                n = entry.name
                if n.endswith(fmt.EPISODE_SUFFIX) and not n.endswith(fmt.PARTIAL_SUFFIX):
                    names.append(n[: -len(fmt.EPISODE_SUFFIX)])
        self._ids = sorted(names)
        self._records = read_overlay_file(self.folder / fmt.OVERLAY_FILE)

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


class _FileSource(_Source):
    """A packed file (many episodes) or a lone episode file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.label = str(path)
        with fmt.open_h5(path) as f:
            kind = f.attrs.get("format")
            kind = kind.decode() if isinstance(kind, bytes) else kind
            self.packed = kind == fmt.FORMAT_PACKED
            fmt.check_header(f.attrs, fmt.FORMAT_PACKED if self.packed else fmt.FORMAT_EPISODE, str(path))
            a = f.attrs
            try:
                self.env_id = str(a["env_id"])
                self.env_kwargs = fmt.loads(a["env_kwargs"], str(path))
                self.observation_space = sp.space_from_json(fmt.loads(a["observation_space"], str(path)))
                self.action_space = sp.space_from_json(fmt.loads(a["action_space"], str(path)))
            except KeyError as exc:
                raise FormatError(f"{path} lacks the attribute {exc.args[0]!r}.") from None
            if self.packed:
                self._ids = sorted(f["episodes"].keys()) if "episodes" in f else []
                lines = [s.decode() if isinstance(s, bytes) else str(s) for s in f["overlay"][()]] \
                    if "overlay" in f else []
                self._records = parse_lines(lines, str(path))
            else:
                self._ids = [str(a.get("episode_id", path.stem))]
                self._records = []

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
                        try:
                            group = f[name]
                        except KeyError:
                            raise FormatError(f"{self.path} has no episode {local!r}.") from None
                        fmt.check_header(group.attrs, fmt.FORMAT_EPISODE, where)
                    else:
                        name, where, group = "/", str(self.path), f
                    yield local, EpisodeHandle(group, where, self.path, name)

            yield gen()


def _open_source(path: Path) -> _Source:
    if path.is_dir():
        return _SessionSource(path)
    if not path.exists():
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

    def _read_episode(self, h: EpisodeHandle, episode_id: str, records: list[dict[str, Any]]) -> Episode:
        g, where = h.group, h.where
        a = g.attrs
        length = int(a.get("length", -1))
        obs = fmt.read_nested(g, "observations", self.observation_space, where)
        observation_only = fmt.is_observation_only(g)
        actions = None if observation_only else fmt.read_nested(g, "actions", self.action_space, where)
        try:
            sp.check_batch(self.observation_space, obs, length + 1)
            if actions is not None:
                sp.check_batch(self.action_space, actions, length)
        except SpaceMismatchError as exc:
            raise SpaceMismatchError(f"{where} does not fit its recording's spaces: {exc}") from None
        infos_group = g.get("infos")
        infos = {name: infos_group[name][()] for name in infos_group} if infos_group is not None else {}
        meta = EpisodeMeta(
            env_id=str(a.get("env_id", self.env_id)),
            env_kwargs=fmt.loads(a.get("env_kwargs", "{}"), where),
            seed=int(a["seed"]) if "seed" in a else None,
            round=int(a.get("round", 0)),
            policy_version=int(a["policy_version"]) if "policy_version" in a else None,
            attrs={**fmt.loads(a.get("attrs", "{}"), where), "incomplete": bool(a.get("incomplete", False))},
        )
        file_labels = fmt.read_file_labels(g, self.action_space, episode_id, where)
        try:
            return Episode(
                id=episode_id,
                observations=obs,
                actions=actions,
                actors=None if observation_only else fmt.read_dataset(g, "actors", where),
                rewards=_known_rewards(fmt.read_dataset(g, "rewards", where)),
                terminated=bool(a.get("terminated", False)),
                truncated=bool(a.get("truncated", False)),
                infos=infos,
                wall_time=fmt.read_dataset(g, "wall_time", where),
                meta=meta,
                labels=tuple(apply_records(file_labels, records, self.action_space, episode_id)),
            )
        except ValueError as exc:
            raise FormatError(f"{where} is damaged: {exc}.") from None

    # -- summary ---------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """What ``ilcore info --json`` prints (labels counted as effective labels, one per step)."""
        from ilcore.data.dataset import effective_label_rows

        n_steps = 0
        n_episodes = 0
        returns: list[float] = []
        incomplete = 0
        by_source: dict[str, int] = {}
        by_reason: dict[str, int] = {}
        for k, source in enumerate(self.sources):
            overlay = self.overlay_by_episode(k)
            with source.open_many(source.local_ids()) as it:
                for local, h in it:
                    g, where = h.group, h.where
                    length = int(g.attrs.get("length", 0))
                    n_steps += length
                    n_episodes += 1
                    ret = float(np.sum(fmt.read_dataset(g, "rewards", where)))
                    if not np.isnan(ret):  # observation-only episodes may have unknown rewards
                        returns.append(ret)
                    incomplete += bool(g.attrs.get("incomplete", False))
                    lab = g["labels"]
                    vocab = fmt.loads(lab.attrs.get("vocabulary", "{}"), where)
                    steps = fmt.read_dataset(lab, "step", where)
                    _, rows = effective_label_rows(steps, length + 1, overlay.get(local, []))
                    src_codes = fmt.read_dataset(lab, "source", where)
                    rsn_codes = fmt.read_dataset(lab, "reason", where)
                    records = overlay.get(local, [])
                    extras = [r for r in records if r["op"] == "label"]
                    for row in rows.tolist():
                        if row >= 0:
                            s, r = vocab["source"][src_codes[row]], vocab["reason"][rsn_codes[row]]
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
