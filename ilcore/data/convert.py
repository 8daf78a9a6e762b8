"""Interop with Minari datasets (the ``minari`` extra, imported only when used).

Minari stores ``episode_N`` groups with T+1 observations and separate terminations and
truncations, like this format, so episodes map one to one:

- export: executed actions, rewards, terminated/truncated at the last step; images are
  stored without JPEG (lossless). Labels have no place in Minari and are not exported.
- import: every step becomes a demonstration labelled with its executed action
  (source "minari", reason "demo", actor SCRIPTED), as a new session folder.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import gymnasium as gym
import numpy as np

from ilcore import spaces as sp
from ilcore.data.reader import Recording, open_recording
from ilcore.data.writer import SessionWriter
from ilcore.errors import ConfigError, FormatError, UserError
from ilcore.types import Actor, QueryReason

if TYPE_CHECKING:
    import minari


def _minari() -> Any:
    try:
        import minari
    except ImportError:
        raise ConfigError("Minari support needs the optional extra: pip install 'ilcore[minari]'.") from None
    return minari


@contextmanager
def _datasets_root(out_dir: str | Path | None) -> Iterator[None]:
    """Point Minari at ``out_dir`` for the duration of one call (it reads MINARI_DATASETS_PATH)."""
    if out_dir is None:
        yield
        return
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(Path(out_dir).resolve())
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def export_minari(
    recording_or_paths: "Recording | str | Path | Sequence[str | Path]",
    dataset_id: str,
    *,
    out_dir: str | Path | None = None,
    algorithm_name: str = "ilcore",
    author: str | None = None,
    description: str | None = None,
    include_incomplete: bool = True,
) -> Path:
    """Write a recording as a Minari dataset; returns the dataset's folder.

    ``out_dir`` is the Minari datasets root (default: Minari's own, MINARI_DATASETS_PATH or
    ~/.minari/datasets); the dataset lands in ``out_dir/<dataset_id>``.
    """
    minari = _minari()
    from minari.data_collector.episode_buffer import EpisodeBuffer

    rec = open_recording(recording_or_paths)
    if out_dir is not None:
        root = Path(out_dir)
        if root.exists() and not root.is_dir():
            raise UserError(f"{root} exists and is not a folder; --out names the Minari datasets folder.")
        if (root / dataset_id).exists():
            raise UserError(f"{root / dataset_id} already exists; choose another dataset id or remove it first.")
    buffers: list[Any] = []  # minari EpisodeBuffers (minari has no type information)
    for i, ep in enumerate(rec.episodes()):
        if ep.actions is None or ep.length == 0:
            continue
        if ep.meta.attrs.get("incomplete") and not include_incomplete:
            continue
        terminations = np.zeros(ep.length, dtype=bool)
        truncations = np.zeros(ep.length, dtype=bool)
        terminations[-1] = ep.terminated
        # Minari expects every episode to end; one cut short by a crash ends as truncated.
        truncations[-1] = ep.truncated or not ep.terminated
        buffers.append(EpisodeBuffer(
            id=len(buffers),
            seed=ep.meta.seed,
            observations=ep.observations,
            actions=ep.actions,
            rewards=list(np.asarray(ep.rewards, dtype=np.float64)) if ep.rewards is not None
            else [0.0] * ep.length,
            terminations=list(terminations),
            truncations=list(truncations),
            infos={},
        ))
    if not buffers:
        raise UserError("The recording has no episodes with steps to export.")
    env_spec = _env_spec(rec.env_id, rec.env_kwargs)
    with _datasets_root(out_dir), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Minari nags about optional metadata (author, permalink)
        try:
            ds = minari.create_dataset_from_buffers(
                dataset_id,
                buffers,
                env=env_spec,
                algorithm_name=algorithm_name,
                author=author,
                description=description or f"Exported by ilcore from {', '.join(s.label for s in rec.sources)}.",
                observation_space=rec.observation_space,
                action_space=rec.action_space,
                jpeg_encoding=False,  # lossless: recordings are exact
            )
        except ValueError as exc:
            raise UserError(f"Minari refused the dataset id {dataset_id!r}: {exc}") from None
        path = Path(ds.storage.data_path).parent
    return path


def _env_spec(env_id: str, env_kwargs: dict[str, Any]) -> Any:
    try:
        spec = gym.spec(env_id)
    except Exception:  # an env that is not registered here: Minari then stores no spec
        return None
    if env_kwargs:
        spec = replace(spec, kwargs={**spec.kwargs, **env_kwargs})
    return spec


MAX_MINARI_METADATA_BYTES = 16 << 20


def _load_minari(id_or_path: str | Path) -> "minari.MinariDataset":
    minari = _minari()
    path = Path(id_or_path)
    if path.exists():
        data = path / "data" if (path / "data").is_dir() else path
        meta = data / "metadata.json"
        if not meta.is_file():
            raise FormatError(f"{path} is not a Minari dataset (no metadata.json).")
        if meta.stat().st_size > MAX_MINARI_METADATA_BYTES:
            raise FormatError(f"{meta} is too large to be Minari metadata.")
        with _foreign(path):
            return minari.MinariDataset(data)
    try:
        return minari.load_dataset(str(id_or_path))
    except (FileNotFoundError, ValueError) as exc:
        raise FormatError(f"There is no local Minari dataset {str(id_or_path)!r} ({exc}).") from None


@contextmanager
def _foreign(origin: Any) -> Iterator[None]:
    """Minari reading a damaged dataset fails in many ways (KeyError, OSError, JSON errors deep
    inside it); the person needs one sentence, not its traceback. Our own errors pass through."""
    try:
        yield
    except UserError:
        raise
    except (MemoryError, RecursionError, OSError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            AssertionError, OverflowError) as exc:
        raise FormatError(f"{origin} is not a readable Minari dataset ({type(exc).__name__}).") from None


def import_minari(id_or_path: str | Path, out: str | Path, *, env_id: str | None = None) -> Path:
    """Turn a Minari dataset (a local id or a dataset folder) into a new session folder at ``out``."""
    out = Path(out)
    if out.exists():
        raise UserError(f"{out} already exists; choose a new folder for the imported session.")
    ds = _load_minari(id_or_path)
    with _foreign(id_or_path):
        spec = ds.spec.env_spec if hasattr(ds, "spec") else None
        env_id = env_id or (spec.id if spec is not None else None) or "unknown"
        env_kwargs = dict(spec.kwargs) if spec is not None and spec.kwargs else {}
        env_kwargs = {k: v for k, v in env_kwargs.items() if _jsonable(v)}
        obs_space, act_space = ds.observation_space, ds.action_space
        # The spaces become this session's: hold them to the bounds of a recorded space.
        for name, space in (("observation", obs_space), ("action", act_space)):
            sp.space_from_json(sp.space_to_json(space), f"The {name} space of the Minari dataset {id_or_path}")
        try:
            with SessionWriter(out, env_id=env_id, observation_space=obs_space, action_space=act_space,
                               env_kwargs=env_kwargs, autosave_interval=None) as writer:
                for ep in ds.iterate_episodes():
                    _import_episode(writer, ep, obs_space, act_space, str(id_or_path))
        except BaseException:
            # The folder is new (checked above): a failed import leaves nothing half-made behind.
            shutil.rmtree(out, ignore_errors=True)
            raise
    return out


def _import_episode(writer: SessionWriter, ep: Any, obs_space: Any, act_space: Any, origin: str) -> None:
    t = len(ep.rewards)
    obs = ep.observations
    acts = ep.actions
    if sp.batch_len(obs) != t + 1:
        raise FormatError(f"Minari episode {ep.id} of {origin} has {sp.batch_len(obs)} observations for {t} steps.")
    rec = writer.begin_episode(sp.index(obs, 0), seed=getattr(ep, "seed", None) if isinstance(
        getattr(ep, "seed", None), int) else None, attrs={"imported_from": origin, "minari_episode": int(ep.id)})
    terms, truncs = np.asarray(ep.terminations, dtype=bool), np.asarray(ep.truncations, dtype=bool)
    for i in range(t):
        action = sp.index(acts, i)
        rec.label(i, action, source="minari", reason=QueryReason.DEMO.value)
        rec.step(action, Actor.SCRIPTED, float(ep.rewards[i]), bool(terms[i]), bool(truncs[i]),
                 sp.index(obs, i + 1), wall_time=0.0)
    rec.finish()


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False
