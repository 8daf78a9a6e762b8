"""``pack``: one self-contained HDF5 file from a session folder (or several sources).

Layout: root attrs as a session (format "ilcore-packed", schema_version, env_id,
env_kwargs, observation_space, action_space, created), ``episodes/<id>`` groups copied
verbatim from the episode files (compression and chunking kept), and ``overlay``, the label
overlay's records as one UTF-8 string per record. Written to a temp name and renamed, so a
failed pack never leaves a half file at ``dst``.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from ilcore import spaces as sp
from ilcore.data import format as fmt
from ilcore.data.reader import Recording, open_recording
from ilcore.data.validate import reading
from ilcore.errors import UserError

# What an episode group holds (docs/format.md); anything else in a group is not copied.
EPISODE_MEMBERS = ("observations", "actions", "actors", "rewards", "wall_time", "infos", "labels")


def pack(src: "str | Path | Recording | Sequence[str | Path]", dst: str | Path) -> Path:
    """Pack a recording into one file at ``dst`` (refuses to overwrite); returns ``dst``."""
    import h5py  # lazy, as in ilcore.data.format: the CLI's --help loads this module

    rec = open_recording(src)
    dst = Path(dst)
    if dst.exists():
        raise UserError(f"{dst} already exists; choose another name or remove it first.")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f"{dst.name}.{os.getpid()}{fmt.TMP_SUFFIX}")
    try:
        with h5py.File(tmp, "w") as out:
            a = out.attrs
            a["format"] = fmt.FORMAT_PACKED
            a["schema_version"] = fmt.SCHEMA_VERSION
            a["env_id"] = rec.env_id
            a["env_kwargs"] = fmt.dumps(rec.env_kwargs)
            a["observation_space"] = fmt.dumps(sp.space_to_json(rec.observation_space))
            a["action_space"] = fmt.dumps(sp.space_to_json(rec.action_space))
            a["created"] = datetime.now(timezone.utc).isoformat()
            episodes = out.create_group("episodes")
            lines: list[str] = []
            for k, source in enumerate(rec.sources):
                overlay = rec.overlay_by_episode(k)
                packed: set[str] = set()
                with reading(source.label), source.open_many(source.local_ids()) as handles:
                    for local, h in handles:
                        # A pack is what others will train on: check it as a trainer would.
                        rec.check(h, overlay.get(local, []), thorough=True)
                        gid = rec._global(k, local).replace(":", "_")
                        group = episodes.create_group(gid)
                        for key, value in h.group.attrs.items():
                            group.attrs[key] = value
                        group.attrs["episode_id"] = gid
                        for name in EPISODE_MEMBERS:
                            if name in h.group:
                                h.group.copy(h.group[name], group, name=name)
                        packed.add(local)
                for record in source.overlay_records():
                    if str(record["episode"]) not in packed:
                        continue  # labels of discarded episodes stay in the session, not in the pack
                    record = dict(record)
                    record["episode"] = rec._global(k, str(record["episode"])).replace(":", "_")
                    lines.append(fmt.dumps(record))
            out.create_dataset("overlay", data=lines, dtype=h5py.string_dtype("utf-8"))
        fmt.fsync_path(tmp)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fmt.fsync_dir(dst.parent)
    return dst
