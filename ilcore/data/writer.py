"""Crash-safe recording: one atomically written HDF5 file per finished episode.

Guarantees (see docs/format.md, "Crash safety"):
- a finished episode is written to a temp name, fsynced and ``os.replace``-d into
  ``episodes/``; a SIGKILL at any moment leaves every file there complete;
- the episode in progress is autosaved about once a second (same atomic dance) as
  ``<id>.partial.h5``, marked incomplete; resuming turns it into a normal, incomplete episode,
  so a crash loses at most the last second;
- labels given later go to the append-only overlay, fsynced per label;
- a lock file keeps a second writer out; the lock of a dead process is taken over;
- opening a session for writing removes the temp files a killed writer left, and moves an
  autosave that cannot be read to ``corrupt/`` (see :attr:`SessionWriter.recovery_messages`)
  instead of promoting it;
- a failed write (full disk, ...) raises one StorageError, leaves no temp file, keeps every
  finished episode and the last autosave of the one in progress, and (at close, or when
  opening fails) always releases the lock.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ilcore import fileio
from ilcore import spaces as sp
from ilcore.data import format as fmt
from ilcore.data.labels import OverlayWriter, label_record, retract_record
from ilcore.data.reader import open_recording, read_session_json
from ilcore.errors import FormatError, SpaceMismatchError, StorageError, UserError
from ilcore.types import Actor, Label

# A real import (ilcore.spaces has loaded gymnasium already) so typing.get_type_hints resolves.
from gymnasium import spaces as gym_spaces  # noqa: E402


def default_session_path(env_id: str, parent: str | Path = "recordings") -> Path:
    """A fresh session folder name under ``parent``: ``<env id>-<UTC date-time>``."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in env_id)
    return Path(parent) / f"{safe}-{stamp}"


def episode_id_for(index: int) -> str:
    return f"ep_{index:06d}"


def _index_of(name: str) -> int | None:
    stem = name.split(".", 1)[0]
    if stem.startswith("ep_") and stem[3:].isdigit():
        return int(stem[3:])
    return None


class SessionLock:
    """``writer.lock`` holds "pid host"; a lock whose process is gone is taken over."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / fmt.LOCK_FILE
        self._held = False

    def acquire(self) -> None:
        me = f"{os.getpid()} {socket.gethostname()}\n".encode()
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._live_owner()
                if owner is not None:
                    raise UserError(f"The session {self.path.parent} is already being written by process {owner}.") \
                        from None
                self.path.unlink(missing_ok=True)  # stale: its writer died
                continue
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(me)
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError as exc:  # e.g. a full disk: an empty lock file must not stay behind
                self.path.unlink(missing_ok=True)
                raise fileio.storage_error(exc, f"take the writer lock of {self.path.parent}") from None
            self._held = True
            return
        raise UserError(f"Could not take the writer lock of the session {self.path.parent}.")

    def _live_owner(self) -> str | None:
        try:
            pid_text, _, host = self.path.read_text().strip().partition(" ")
            pid = int(pid_text)
        except (OSError, ValueError):
            return None  # unreadable or half-written lock: its writer died while taking it
        if host and host != socket.gethostname():
            return f"{pid} on {host}"  # cannot check another machine: assume it is alive
        if pid == os.getpid():
            return str(pid)
        return str(pid) if fileio.pid_alive(pid) else None

    def release(self) -> None:
        if self._held:
            self.path.unlink(missing_ok=True)
            self._held = False


class SessionWriter:
    """Writes one session folder. Use as a context manager (``close`` releases the lock).

    ``background=True`` moves file writes (autosaves and finished episodes) to one worker
    thread so a frame loop never waits on the disk; ``flush()`` waits for them and re-raises
    any error. ``autosave_interval`` (seconds, None to disable) bounds what a crash can lose
    of the episode in progress.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        env_id: str,
        observation_space: "gym_spaces.Space",
        action_space: "gym_spaces.Space",
        env_kwargs: Mapping[str, Any] | None = None,
        resume: bool = False,
        background: bool = False,
        autosave_interval: float | None = 1.0,
    ) -> None:
        self.path = Path(path)
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self.observation_space = observation_space
        self.action_space = action_space
        self.autosave_interval = autosave_interval
        self._obs_json = sp.space_to_json(observation_space)  # refuses unsupported spaces early
        self._act_json = sp.space_to_json(action_space)
        fmt.dumps(self.env_kwargs)  # env_kwargs must be JSON text-able
        self._lock = SessionLock(self.path)
        self._episodes = self.path / fmt.EPISODES_DIR
        self._overlay = OverlayWriter(self.path / fmt.OVERLAY_FILE)
        self._mutex = threading.Lock()
        self._open_recorders: dict[str, EpisodeRecorder] = {}
        self._pending: list[Future[None]] = []
        self._writing: set[str] = set()
        self._executor: ThreadPoolExecutor | None = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="ilcore-writer") if background else None
        )
        self._closed = False
        # What opening found and set aside (corrupt autosaves), for the caller to show.
        self.recovery_messages: list[str] = []

        session_file = self.path / fmt.SESSION_FILE
        created_folder = False
        try:
            if session_file.exists():
                if not resume:
                    raise UserError(f"The session {self.path} already exists; open it with resume=True to add "
                                    "episodes.")
                self._check_existing(session_file)
                self._lock.acquire()
            else:
                if self.path.exists() and any(self.path.iterdir()):
                    raise FormatError(f"{self.path} is a non-empty folder that is not a recording session.")
                with fileio.writing(f"create the session folder {self.path}"):
                    created_folder = not self.path.exists()
                    self.path.mkdir(parents=True, exist_ok=True)
                    self._lock.acquire()
                    self._episodes.mkdir(exist_ok=True)
                fmt.write_json_atomic(session_file, {
                    "format": fmt.FORMAT_SESSION,
                    "schema_version": fmt.SCHEMA_VERSION,
                    "env_id": env_id,
                    "env_kwargs": self.env_kwargs,
                    "observation_space": self._obs_json,
                    "action_space": self._act_json,
                    "created": datetime.now(timezone.utc).isoformat(),
                })
            with fileio.writing(f"prepare the session {self.path} for writing"):
                self._episodes.mkdir(exist_ok=True)
                self._recover()
            self._next_index = self._scan_next_index()
        except BaseException:
            # A refused or failed open must not keep the session locked, nor leave a half-made folder.
            self._lock.release()
            if self._executor is not None:
                self._executor.shutdown(wait=False)
            if created_folder and not session_file.exists():
                for leftover in (self._episodes, self.path):
                    try:
                        leftover.rmdir()
                    except OSError:
                        pass
            raise

    # -- opening ---------------------------------------------------------------------

    def _check_existing(self, session_file: Path) -> None:
        info = read_session_json(self.path)
        if info["env_id"] != self.env_id:
            raise SpaceMismatchError(f"The session {self.path} was recorded on {info['env_id']}, not {self.env_id}.")
        for name, mine in (("observation", self.observation_space), ("action", self.action_space)):
            theirs = info[f"{name}_space"]
            if sp.space_key(theirs) != sp.space_key(mine):
                raise SpaceMismatchError(f"The session {self.path} has {name} space {theirs}, not {mine}.")

    def _recover(self) -> None:
        """Finish what a crashed writer left (we hold the lock, so no other writer is live):
        temp files of unfinished atomic writes are removed, readable autosaves become
        incomplete episodes, unreadable ones are moved to ``corrupt/``."""
        for folder in (self.path, self._episodes):
            for entry in folder.iterdir():
                if fileio.tmp_owner_pid(entry.name) is not None and entry.is_file():
                    entry.unlink(missing_ok=True)  # an unfinished atomic write; never visible to readers
        for entry in sorted(self._episodes.iterdir()):
            if not entry.name.endswith(fmt.PARTIAL_SUFFIX):
                continue
            final = entry.with_name(entry.name[: -len(fmt.PARTIAL_SUFFIX)] + fmt.EPISODE_SUFFIX)
            if final.exists():
                entry.unlink()  # the finished file landed; the partial was about to be removed
                continue
            problem = self._autosave_problem(entry)
            if problem is None:
                os.replace(entry, final)  # written as incomplete=True already
                continue
            corrupt = self.path / fmt.CORRUPT_DIR
            corrupt.mkdir(exist_ok=True)
            target = corrupt / entry.name
            n = 1
            while target.exists():  # never overwrite an earlier one
                target = corrupt / f"{entry.name}.{n}"
                n += 1
            os.replace(entry, target)
            fmt.fsync_dir(corrupt)
            self.recovery_messages.append(
                f"The autosave {entry.name} could not be read ({problem}); it was moved to {target} "
                "and the episode it held was not restored.")
        fmt.fsync_dir(self._episodes)

    def _autosave_problem(self, path: Path) -> str | None:
        """None if the autosave reads back whole as an episode of this session, else why not."""
        if not path.is_file():
            return "it is not a regular file"
        try:
            rec = open_recording(path, env_id=self.env_id, observation_space=self.observation_space,
                                 action_space=self.action_space)
            if rec.episode_ids() != [path.name[: -len(fmt.PARTIAL_SUFFIX)]]:
                return "it names another episode"
            for _ in rec.episodes():
                pass
        except Exception as exc:  # noqa: BLE001 - anything unreadable is set aside, never promoted
            return str(exc).rstrip(".") if isinstance(exc, UserError) else type(exc).__name__
        return None

    def _scan_next_index(self) -> int:
        best = -1
        # corrupt/ too: a new episode must not take the id of one set aside there.
        for folder in (self._episodes, self.path / fmt.DISCARDED_DIR, self.path / fmt.CORRUPT_DIR):
            if folder.is_dir():
                for entry in folder.iterdir():
                    idx = _index_of(entry.name)
                    if idx is not None:
                        best = max(best, idx)
        return best + 1

    # -- episodes --------------------------------------------------------------------

    def begin_episode(
        self,
        first_obs: Any,
        *,
        seed: int | None = None,
        round: int = 0,
        policy_version: int | None = None,
        attrs: Mapping[str, Any] | None = None,
    ) -> "EpisodeRecorder":
        """Start recording an episode from its reset observation."""
        self._check_open()
        attrs = dict(attrs or {})
        fmt.dumps(attrs)  # attrs are stored as JSON text; refuse what cannot be
        with self._mutex:
            episode_id = episode_id_for(self._next_index)
            self._next_index += 1
        rec = EpisodeRecorder(self, episode_id, first_obs, seed=seed, round=round,
                              policy_version=policy_version, attrs=attrs)
        self._open_recorders[episode_id] = rec
        return rec

    def episode_ids(self) -> list[str]:
        """Finished episodes on disk (plus those still being written in the background)."""
        ids = {e.name[: -len(fmt.EPISODE_SUFFIX)] for e in self._episodes.iterdir()
               if e.name.endswith(fmt.EPISODE_SUFFIX) and not e.name.endswith(fmt.PARTIAL_SUFFIX)}
        return sorted(ids | set(self._queued_ids))

    @property
    def _queued_ids(self) -> set[str]:
        """Finished episodes whose file the worker thread has not written yet."""
        with self._mutex:
            return set(self._writing)

    def add_label(self, label: Label) -> None:
        """Append a label for a finished episode to the overlay (fsynced before returning)."""
        self._check_open()
        self._check_episode(label.episode, label.step)
        sp.check_batch(self.action_space, sp.stack(self.action_space, [label.action]), 1)
        self._overlay.append(label_record(label))

    def retract_label(self, episode: str, step: int) -> None:
        """Undo the latest active label at (episode, step); older labels become effective again."""
        self._check_open()
        self._check_episode(episode, step)
        self._overlay.append(retract_record(episode, step, time.time()))

    def discard_episode(self, episode_id: str) -> None:
        """Move a finished episode to ``discarded/``: loaders skip it, nothing is deleted."""
        self._check_open()
        self.flush()
        src = self._episodes / f"{episode_id}{fmt.EPISODE_SUFFIX}"
        if not src.exists():
            raise UserError(f"The session {self.path} has no finished episode {episode_id!r}.")
        dst_dir = self.path / fmt.DISCARDED_DIR
        with fileio.writing(f"move {src.name} to {dst_dir}"):
            dst_dir.mkdir(exist_ok=True)
            os.replace(src, dst_dir / src.name)
        fmt.fsync_dir(self._episodes)
        fmt.fsync_dir(dst_dir)

    def _check_episode(self, episode: str, step: int) -> None:
        if episode in self._queued_ids:
            self.flush()
        path = self._episodes / f"{episode}{fmt.EPISODE_SUFFIX}"
        if not path.exists():
            raise UserError(f"The session {self.path} has no finished episode {episode!r}.")
        with fmt.open_h5(path) as f:
            length = int(f.attrs.get("length", -1))
        if not 0 <= step <= length:
            raise UserError(f"Step {step} is outside episode {episode!r}, which has {length} steps.")

    # -- writes (inline or on the worker thread) -------------------------------------

    def _submit(self, fn: Any, *args: Any) -> None:
        if self._executor is None:
            fn(*args)
            return
        self._raise_failed()
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(self._executor.submit(fn, *args))

    def _raise_failed(self) -> None:
        """Re-raise (once) the first error of a finished background write, so a full disk stops
        the caller at its next step instead of only at close."""
        for fut in self._pending:
            if fut.done() and fut.exception() is not None:
                self._pending.remove(fut)
                fut.result()

    def flush(self) -> None:
        """Wait for background writes; re-raise the first error one of them hit."""
        pending, self._pending = self._pending, []
        first: BaseException | None = None
        for fut in pending:
            exc = fut.exception()
            if exc is not None and first is None:
                first = exc
        if first is not None:
            raise first

    def close(self) -> None:
        """Write episodes still open as incomplete ones, wait for writes, release the lock.

        An open episode without a single step (begun, then the program ended before the first
        action) holds no transition and is dropped rather than written: a resumed session would
        otherwise count it as a demonstration.
        """
        if self._closed:
            return
        first: BaseException | None = None
        try:
            for rec in list(self._open_recorders.values()):
                try:  # one failed write must not stop the others from being tried
                    if rec.num_steps == 0:
                        rec.discard()
                    else:
                        rec._finish(incomplete=True)
                except Exception as exc:  # noqa: BLE001 - re-raised below
                    first = first or exc
            try:
                self.flush()
            except Exception as exc:  # noqa: BLE001 - re-raised below
                first = first or exc
            if first is not None:
                raise first
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
            try:
                self._overlay.close()
            finally:
                self._lock.release()
                self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise UserError(f"The session writer for {self.path} is closed.")

    def __enter__(self) -> "SessionWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class EpisodeRecorder:
    """Collects one episode step by step; ``finish`` writes it atomically."""

    def __init__(self, writer: SessionWriter, episode_id: str, first_obs: Any, *, seed: int | None,
                 round: int, policy_version: int | None, attrs: dict[str, Any]) -> None:
        self._writer = writer
        self.episode_id = episode_id
        self.seed = seed
        self.round = round
        self.policy_version = policy_version
        self.attrs = attrs
        self._obs: list[Any] = [first_obs]
        self._actions: list[Any] = []
        self._actors: list[int] = []
        self._rewards: list[float] = []
        self._wall: list[float] = []
        self._infos: list[Mapping[str, Any] | None] = []
        self._labels: list[Label] = []
        self._observation_only: bool | None = None  # decided by the first step: step() or observe()
        self.terminated = False
        self.truncated = False
        self._done = False
        self._created = time.time()
        self._last_save = time.monotonic()
        self._save_cost = 0.0
        self._partial = writer._episodes / f"{episode_id}{fmt.PARTIAL_SUFFIX}"

    @property
    def num_steps(self) -> int:
        return len(self._actions)

    def step(self, action: Any, actor: Actor | int, reward: float, terminated: bool, truncated: bool,
             next_obs: Any, info: Mapping[str, Any] | None = None, wall_time: float | None = None) -> int:
        """Record one executed step; returns its index t (labels for obs t use this index)."""
        self._check_live()
        self._check_kind(observation_only=False)
        return self._append(action, int(actor), float(reward), terminated, truncated, next_obs, info, wall_time)

    def observe(self, next_obs: Any, *, reward: float | None = None, terminated: bool = False,
                truncated: bool = False, info: Mapping[str, Any] | None = None,
                wall_time: float | None = None) -> int:
        """Record one step whose action nobody knows (watch-only demos, imported videos).

        An episode is either observation-only (every step via ``observe``) or not; its file
        stores no actions, and its rewards are NaN unless given. Labels may still be added
        (e.g. inferred by an inverse dynamics model). Returns the step index.
        """
        self._check_live()
        self._check_kind(observation_only=True)
        return self._append(None, fmt.ACTOR_UNKNOWN, float("nan") if reward is None else float(reward),
                            terminated, truncated, next_obs, info, wall_time)

    def _check_kind(self, observation_only: bool) -> None:
        if self._observation_only is None:
            self._observation_only = observation_only
        elif self._observation_only != observation_only:
            kind = "observation-only" if self._observation_only else "with actions"
            raise UserError(f"Episode {self.episode_id} is recorded {kind}; it cannot mix step() and observe().")

    def _append(self, action: Any, actor: int, reward: float, terminated: bool, truncated: bool,
                next_obs: Any, info: Mapping[str, Any] | None, wall_time: float | None) -> int:
        self._actions.append(action)
        self._actors.append(actor)
        self._rewards.append(reward)
        self._obs.append(next_obs)
        self._infos.append(info)
        self._wall.append(time.time() if wall_time is None else float(wall_time))
        self.terminated = bool(terminated)
        self.truncated = bool(truncated)
        interval = self._writer.autosave_interval
        if interval is not None:
            now = time.monotonic()
            # Never spend more than ~10% of the time autosaving, however long the episode gets.
            if now - self._last_save >= max(interval, 10.0 * self._save_cost):
                self._last_save = now
                self._autosave()
        return len(self._actions) - 1

    def label(self, step: int, action: Any, *, source: str, reason: str, round: int = 0,
              latency_ms: float = 0.0) -> None:
        """A label given while recording (stored in the episode file). ``step`` may be the
        current observation's index (== steps so far), labelled before acting."""
        self._check_live()
        if not 0 <= step <= len(self._actions):
            raise UserError(f"Cannot label step {step} of episode {self.episode_id}, which has "
                            f"{len(self._actions)} steps so far.")
        self._labels.append(Label(self.episode_id, int(step), action, source=str(source),
                                  reason=str(getattr(reason, "value", reason)), round=int(round),
                                  latency_ms=float(latency_ms), time=time.time()))

    def save_progress(self) -> None:
        """Autosave now (e.g. when the person pauses); normally ``step`` does it about once a second."""
        self._check_live()
        self._last_save = time.monotonic()
        self._autosave()

    def finish(self) -> str:
        """Write the episode (atomically, replacing its autosave) and return its id."""
        self._check_live()
        return self._finish(incomplete=False)

    def discard(self) -> None:
        """Drop the episode in progress (its autosave too)."""
        self._check_live()
        self._done = True
        self._writer._open_recorders.pop(self.episode_id, None)
        self._writer._submit(_remove, self._partial)

    def _finish(self, incomplete: bool) -> str:
        content = self._content(incomplete=incomplete)  # may refuse bad data: the recorder stays live
        self._done = True
        self._writer._open_recorders.pop(self.episode_id, None)
        final = self._writer._episodes / f"{self.episode_id}{fmt.EPISODE_SUFFIX}"
        writer = self._writer
        with writer._mutex:
            writer._writing.add(self.episode_id)

        def write() -> None:
            try:
                fmt.write_episode_file(final, content, writer.observation_space, writer.action_space)
                self._partial.unlink(missing_ok=True)
            finally:
                with writer._mutex:
                    writer._writing.discard(self.episode_id)

        writer._submit(write)
        return self.episode_id

    def _autosave(self) -> None:
        content = self._content(incomplete=True)
        writer = self._writer
        partial = self._partial

        def write() -> None:
            if self._done:
                return  # finished meanwhile: the final file is queued behind this write
            start = time.monotonic()
            fmt.write_episode_file(partial, content, writer.observation_space, writer.action_space)
            self._save_cost = time.monotonic() - start

        writer._submit(write)

    def _content(self, incomplete: bool) -> fmt.EpisodeContent:
        w = self._writer
        t = len(self._actions)
        obs = sp.stack(w.observation_space, self._obs[: t + 1])
        sp.check_batch(w.observation_space, obs, t + 1)
        acts = None
        if not self._observation_only:
            acts = sp.stack(w.action_space, self._actions[:t])
            sp.check_batch(w.action_space, acts, t)
        for lab in self._labels:
            sp.check_batch(w.action_space, sp.stack(w.action_space, [lab.action]), 1)
        return fmt.EpisodeContent(
            episode_id=self.episode_id,
            env_id=w.env_id,
            env_kwargs=w.env_kwargs,
            observations=sp.flat_from_nested(w.observation_space, obs),
            actions=None if acts is None else sp.flat_from_nested(w.action_space, acts),
            actors=np.asarray(self._actors[:t], dtype=np.uint8),
            rewards=np.asarray(self._rewards[:t], dtype=np.float64),
            wall_time=np.asarray(self._wall[:t], dtype=np.float64),
            infos=_info_columns(self._infos[:t]),
            terminated=False if incomplete else self.terminated,
            truncated=False if incomplete else self.truncated,
            incomplete=incomplete,
            labels=list(self._labels),
            seed=self.seed,
            round=self.round,
            policy_version=self.policy_version,
            attrs=self.attrs,
            created=self._created,
        )

    def _check_live(self) -> None:
        if self._done:
            raise UserError(f"Episode {self.episode_id} is already finished or discarded.")


def _remove(path: Path) -> None:
    with fileio.writing(f"remove {path}"):
        path.unlink(missing_ok=True)


def _info_columns(infos: list[Mapping[str, Any] | None]) -> dict[str, np.ndarray]:
    """Numeric scalar env-info values as (T,) columns; other values are skipped.

    A key missing at some steps becomes a float64 column with NaN there.
    """
    t = len(infos)
    values: dict[str, list[Any]] = {}
    for i, info in enumerate(infos):
        if not info:
            continue
        for key, value in info.items():
            if not isinstance(key, str) or not key or "/" in key or key == ".":
                continue
            if isinstance(value, np.ndarray) and value.ndim == 0:
                value = value[()]
            if not isinstance(value, (bool, int, float, np.bool_, np.integer, np.floating)):
                continue
            values.setdefault(key, [None] * t)[i] = value
    out: dict[str, np.ndarray] = {}
    for key, col in values.items():
        if any(v is None for v in col):
            out[key] = np.asarray([np.nan if v is None else float(v) for v in col], dtype=np.float64)
        elif all(isinstance(v, (bool, np.bool_)) for v in col):
            out[key] = np.asarray(col, dtype=bool)
        elif all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in col):
            try:
                out[key] = np.asarray(col, dtype=np.int64)
            except OverflowError:
                out[key] = np.asarray(col, dtype=np.float64)
        else:
            out[key] = np.asarray(col, dtype=np.float64)
    return out
