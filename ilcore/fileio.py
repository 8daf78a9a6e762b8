"""Atomic, fsynced file writes that fail cleanly on a full disk.

Every file ilcore writes whole (episode files, session.json, checkpoints, run summaries) goes
through :func:`atomic_write`: the bytes go to ``<name>.<pid>.tmp`` next to the target, are
fsynced and ``os.replace``-d over it, so a reader sees the old file or the complete new one.
When the write fails (ENOSPC, EDQUOT, EROFS, EACCES, ...) the temp file is removed and a
:class:`~ilcore.errors.StorageError` with one sentence is raised instead of the OSError, so the
CLI prints one ``error:`` line and nothing half-written is left behind.
"""

from __future__ import annotations

import errno
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Sequence

from ilcore.errors import StorageError

TMP_SUFFIX = ".tmp"


def tmp_path_for(path: Path) -> Path:
    """The temp name a write of ``path`` uses: ``<name>.<pid>.tmp`` in the same folder.

    The pid lets the next writer tell a dead writer's leftover from a live one's (see
    :func:`tmp_owner_pid`); the same folder keeps ``os.replace`` a rename on one filesystem.
    """
    return path.with_name(f"{path.name}.{os.getpid()}{TMP_SUFFIX}")


def tmp_owner_pid(name: str) -> int | None:
    """The pid in a ``<name>.<pid>.tmp`` file name, or None for any other name."""
    if not name.endswith(TMP_SUFFIX):
        return None
    stem = name[: -len(TMP_SUFFIX)]
    _, dot, pid = stem.rpartition(".")
    return int(pid) if dot and pid.isdigit() else None


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists on this machine (one we may not signal counts)."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    return True


def storage_message(exc: OSError, action: str) -> str:
    """One sentence for a failed write: ``Could not <action>: <reason>.`` plus advice for a full disk."""
    reason = exc.strerror or type(exc).__name__
    text = f"Could not {action}: {reason}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        text += " (free some space and run it again)"
    return text + "."


def describe_os_error(exc: OSError) -> str:
    """One sentence for an OSError nobody turned into a UserError: reason and file."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    where = f" ({exc.filename})" if exc.filename else ""
    advice = " Free some space and run it again." if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    return f"{reason}{where}.{advice}"


def storage_error(exc: OSError, action: str) -> StorageError:
    return StorageError(storage_message(exc, action))


@contextmanager
def writing(action: str) -> Iterator[None]:
    """Turn an OSError raised inside the block into a StorageError about ``action``."""
    try:
        yield
    except StorageError:
        raise
    except OSError as exc:
        raise storage_error(exc, action) from None


def atomic_write(path: str | os.PathLike[str], fill: Callable[[IO[bytes]], object], *,
                 what: str | None = None) -> Path:
    """Write ``path`` atomically: ``fill(fh)`` writes the bytes into a temp file, then fsync,
    ``os.replace`` and an fsync of the folder. On any failure the temp file is removed; an
    OSError becomes a StorageError naming ``what`` (default: the path)."""
    path = Path(path)
    write_files_atomic([(path, fill)], what=what)
    return path


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes | bytearray | memoryview, *,
                       what: str | None = None) -> Path:
    return atomic_write(path, lambda fh: fh.write(data), what=what)


def write_files_atomic(items: Sequence[tuple[Path, bytes | bytearray | memoryview | Callable[[IO[bytes]], object]]],
                       *, what: str | None = None) -> None:
    """Write several files so that none is replaced unless all of them were written.

    Every file goes to its temp name first (fsynced); only then are they renamed into place,
    in the given order. Any failure before the renames removes every temp file and leaves the
    old files untouched. Contents are bytes or a ``fill(fh)`` callable.
    """
    tmps: list[Path] = []
    try:
        for path, content in items:
            tmp = tmp_path_for(Path(path))
            tmps.append(tmp)
            with open(tmp, "wb") as fh:
                if callable(content):
                    content(fh)
                else:
                    fh.write(content)
                fh.flush()
                os.fsync(fh.fileno())
        for tmp, (path, _) in zip(tmps, items):
            os.replace(tmp, path)
    except BaseException as exc:
        for tmp in tmps:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
        if isinstance(exc, OSError):
            target = what or (str(items[0][0]) if len(items) == 1 else ", ".join(str(p) for p, _ in items))
            raise storage_error(exc, f"write {target}") from None
        raise
    for folder in {Path(path).parent for path, _ in items}:
        fsync_dir(folder)


def write_json_atomic(path: str | os.PathLike[str], obj: Any, *, what: str | None = None,
                      default: Callable[[Any], Any] | None = None, indent: int | None = 2,
                      allow_nan: bool = True) -> Path:
    """JSON text written atomically. The text is built first, so an object that cannot be
    written (NaN with ``allow_nan=False``, an unknown type) fails before the disk is touched."""
    text = json.dumps(obj, indent=indent, default=default, allow_nan=allow_nan) + "\n"
    return write_bytes_atomic(path, text.encode("utf-8"), what=what)


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
