"""Export a recording in robomimic's HDF5 layout, so robomimic's trainers read it directly.

The layout (robomimic's dataset docs):

- ``data`` with attributes ``total`` (steps over all demos) and ``env_args`` (JSON:
  ``{"env_name", "type", "env_kwargs"}``; type 2 is robomimic's gym env type);
- ``data/demo_<i>`` (``i`` from 0, in recording order) with attribute ``num_samples`` and
  ``obs/<key>`` ``(T, ...)``, ``next_obs/<key>`` ``(T, ...)``, ``actions`` ``(T, D)``,
  ``rewards`` ``(T,)``, ``dones`` ``(T,)`` (1 on the last step of an episode that terminated;
  a time-limit truncation is not done);
- ``mask/train`` and ``mask/valid``: byte strings naming the demos of each split (whole episodes).

Observation keys: a Dict/Tuple space's leaf paths with ``/`` turned into ``.``; a plain space
uses ``state`` (vector) or ``image`` (uint8 H x W x C, robomimic's image-key convention).
Discrete actions become one column of integers. Each demo is written as it is read, so memory
holds one episode at a time; the file is written under a temporary name and renamed when done.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ilcore import spaces as ispaces
from ilcore.data.reader import open_recording
from ilcore.errors import ConfigError

GYM_ENV_TYPE = 2  # robomimic.envs.env_base.EnvType.GYM_TYPE


def obs_keys(observation_space: Any) -> dict[str, str]:
    """leaf path -> robomimic observation key."""
    items = ispaces.flat_items(observation_space)
    if len(items) == 1 and items[0][0] == "":
        return {"": "image" if ispaces.is_image(items[0][1]) else "state"}
    return {path: path.replace("/", ".") for path, _ in items}


def export_robomimic(
    paths: str | Path | Sequence[str | Path],
    out: str | os.PathLike[str],
    *,
    actions: str = "executed",
    valid_fraction: float = 0.1,
    seed: int = 0,
) -> dict[str, Any]:
    """Write the recording at ``paths`` to the robomimic HDF5 file ``out``.

    actions: "executed" (what the env was given) or "label" (each step's latest label; every
    step must have one). Returns ``{"out", "demos", "total", "train", "valid"}``.
    """
    import h5py  # lazy, as in ilcore.data.format: the CLI's --help loads this module

    if actions not in ("executed", "label"):
        raise ConfigError(f"actions must be 'executed' or 'label', got {actions!r}.")
    if not 0 <= valid_fraction < 1:
        raise ConfigError(f"The validation fraction must be in [0, 1), got {valid_fraction}.")
    recording = open_recording(paths)
    ids = recording.episode_ids()
    if not ids:
        raise ConfigError("The recording holds no episodes to export.")
    keys = obs_keys(recording.observation_space)
    rng = np.random.default_rng(seed)
    n_valid = min(max(int(round(valid_fraction * len(ids))), 1 if valid_fraction > 0 else 0), len(ids) - 1)
    valid = set(rng.permutation(len(ids))[:n_valid].tolist())
    target = Path(out)
    if target.is_dir():
        raise ConfigError(f"{target} is a folder; name the .hdf5 file to write.")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    total = 0
    try:
        with h5py.File(tmp, "w") as f:
            data = f.create_group("data")
            for i, episode in enumerate(recording.episodes()):
                total += _write_demo(data.create_group(f"demo_{i}"), episode, recording, keys, actions)
            data.attrs["total"] = total
            data.attrs["env_args"] = json.dumps({"env_name": recording.env_id, "type": GYM_ENV_TYPE,
                                                 "env_kwargs": dict(recording.env_kwargs or {})})
            names = [f"demo_{i}".encode() for i in range(len(ids))]
            mask = f.create_group("mask")
            mask.create_dataset("train", data=np.array([n for i, n in enumerate(names) if i not in valid], dtype="S"))
            mask.create_dataset("valid", data=np.array([n for i, n in enumerate(names) if i in valid], dtype="S"))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return {"out": str(target), "demos": len(ids), "total": total,
            "train": len(ids) - len(valid), "valid": len(valid)}


def _write_demo(group: Any, episode: Any, recording: Any, keys: dict[str, str], actions: str) -> int:
    if episode.actions is None:
        raise ConfigError(f"Episode {episode.id} has no actions (observation-only); robomimic demos need them.")
    t = len(episode.wall_time)
    if actions == "label":
        labels = episode.effective_labels()
        missing = [s for s in range(t) if s not in labels]
        if missing:
            raise ConfigError(f"Episode {episode.id} has {len(missing)} unlabelled steps (first: {missing[0]}); "
                              "export executed actions instead.")
        acts = np.stack([np.asarray(labels[s].action) for s in range(t)]) if t else np.zeros((0,))
    else:
        acts = np.asarray(episode.actions)
    acts = acts.reshape(t, -1)
    flat = ispaces.flat_from_nested(recording.observation_space, episode.observations)
    for path, key in keys.items():
        leaf = np.asarray(flat[path])
        # One frame per chunk keeps a random image read cheap, as in ilcore's own files.
        opts: dict[str, Any] = {"chunks": (1, *leaf.shape[1:]), "compression": "gzip"} if leaf.ndim == 4 else {}
        group.create_dataset(f"obs/{key}", data=leaf[:t], **opts)
        group.create_dataset(f"next_obs/{key}", data=leaf[1:t + 1], **opts)
    group.create_dataset("actions", data=acts)
    rewards = np.zeros(t) if episode.rewards is None else np.asarray(episode.rewards, np.float64)
    group.create_dataset("rewards", data=rewards)
    dones = np.zeros(t, np.int64)
    if t and episode.terminated:
        dones[-1] = 1
    group.create_dataset("dones", data=dones)
    group.attrs["num_samples"] = t
    return t
