"""The append-only label overlay: labels given after an episode was recorded.

One JSON record per line in ``labels.jsonl`` (session folder) or in the ``overlay`` dataset
of a packed file. Records are never rewritten; each one is fsynced before ``append``
returns, so a crash can only tear the last line, which readers ignore. Two record kinds:

    {"op": "label", "episode", "step", "action", "source", "reason", "round", "latency_ms", "time"}
    {"op": "retract", "episode", "step", "time"}   # undo the latest active label at (episode, step)

Per (episode, step) the active labels form a stack: episode-file labels first (in the order
given), then overlay labels in file order; a retract pops the top. The top is the effective
label; everything popped stays in the files for audit.
"""

from __future__ import annotations

import json
import math
import os
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence, TypeGuard

import numpy as np

from ilcore import fileio
from ilcore.data.format import dumps, nested_from_json, nested_to_json
from ilcore.errors import FormatError
from ilcore.types import Label

if TYPE_CHECKING:
    from gymnasium import spaces as gym_spaces

MAX_STEP = 2**53  # steps and rounds in records: exact in JSON doubles, far beyond any real episode


def label_record(label: Label) -> dict[str, Any]:
    reason = label.reason.value if hasattr(label.reason, "value") else label.reason
    return {
        "op": "label",
        "episode": label.episode,
        "step": int(label.step),
        "action": nested_to_json(label.action),
        "source": str(label.source),
        "reason": str(reason),
        "round": int(label.round),
        "latency_ms": float(label.latency_ms),
        # a Label built without a time gets the moment it is saved
        "time": float(label.time) if label.time else time.time(),
    }


def retract_record(episode: str, step: int, when: float) -> dict[str, Any]:
    return {"op": "retract", "episode": episode, "step": int(step), "time": float(when)}


def label_from_record(rec: dict[str, Any], action_space: "gym_spaces.Space", episode: str | None = None) -> Label:
    return Label(
        episode=episode if episode is not None else rec["episode"],
        step=int(rec["step"]),
        action=nested_from_json(action_space, rec["action"]),
        source=str(rec["source"]),
        reason=str(rec["reason"]),
        round=int(rec.get("round", 0)),
        latency_ms=float(rec.get("latency_ms", 0.0)),
        time=float(rec.get("time", 0.0)),
    )


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


def record_problem(rec: Any) -> str | None:
    """Why ``rec`` is not a valid overlay record (None when it is). Actions are checked against
    the action space later, by the reader, which knows the space."""
    if not isinstance(rec, dict) or rec.get("op") not in ("label", "retract"):
        return "it is not a label or retract record"
    if not isinstance(rec.get("episode"), str):
        return "its episode is not a name"
    step = rec.get("step")
    if not _is_int(step) or not 0 <= step < MAX_STEP:
        return "its step is not an integer in range"
    if rec["op"] == "retract":
        return None
    if rec.get("action") is None:
        return "it has no action"
    for name in ("source", "reason"):
        if not isinstance(rec.get(name), str):
            return f"its {name} is missing or not text"
    if not _is_int(rec.get("round", 0)) or not 0 <= rec.get("round", 0) < MAX_STEP:
        return "its round is not a non-negative integer"
    for name in ("latency_ms", "time"):
        if not _is_number(rec.get(name, 0.0)):
            return f"its {name} is not a finite number"
    return None


def parse_lines(lines: Sequence[str], where: str) -> list[dict[str, Any]]:
    """Parse and check overlay lines; a torn (unparsable or unterminated) last line is ignored."""
    records: list[dict[str, Any]] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError):
            if i == len(lines) - 1:
                break  # torn by a crash mid-write
            raise FormatError(f"{where} has a corrupt record on line {i + 1}.") from None
        problem = record_problem(rec)
        if problem is not None:
            raise FormatError(f"{where} has an invalid record on line {i + 1} ({problem}).")
        records.append(rec)
    return records


def read_overlay_file(path: Path) -> list[dict[str, Any]]:
    """All complete records of an overlay file (missing file: none)."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise FormatError(f"{path} is not a regular file.")
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise FormatError(f"{path} cannot be read ({exc.strerror or type(exc).__name__}).") from None
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    elif lines:
        lines[-1] = lines[-1] + "\x00"  # unterminated: mark as torn even if it happens to parse
    return parse_lines(lines, str(path))


def apply_records(file_labels: Iterable[Label], records: Iterable[dict[str, Any]],
                  action_space: "gym_spaces.Space", episode: str) -> list[Label]:
    """Active labels (oldest first) after applying overlay records to the episode's own labels."""
    active = list(file_labels)
    for rec in records:
        if rec["op"] == "label":
            active.append(label_from_record(rec, action_space, episode))
        else:
            step = int(rec["step"])
            for i in range(len(active) - 1, -1, -1):
                if active[i].step == step:
                    del active[i]
                    break
    return active


def effective_label_rows(steps: np.ndarray, limit: int, records: Sequence[dict[str, Any]]
                         ) -> tuple[np.ndarray, np.ndarray]:
    """The effective label of each labelled step, as (steps (K,), rows (K,)), sorted by step.

    ``steps`` (L,) are the steps of the episode-file labels in the order given; a row r >= 0
    is file label r, a row r < 0 is the (-r-1)-th "label" record of ``records`` (the
    episode's overlay records in file order). Steps >= ``limit`` are dropped.
    """
    steps = np.asarray(steps, dtype=np.int64)
    n = len(steps)
    if n <= 1 or bool(np.all(steps[1:] > steps[:-1])):
        eff_steps, eff_rows = steps, np.arange(n, dtype=np.int64)  # the usual case: one label per step
    else:
        uniq, first_from_end = np.unique(steps[::-1], return_index=True)
        eff_steps, eff_rows = uniq, (n - 1 - first_from_end).astype(np.int64)
    if records:
        touched = sorted({int(r["step"]) for r in records})
        stacks: dict[int, list[int]] = {s: np.flatnonzero(steps == s).tolist() for s in touched}
        n_extra = 0
        for rec in records:
            stack = stacks[int(rec["step"])]
            if rec["op"] == "label":
                n_extra += 1
                stack.append(-n_extra)
            elif stack:
                stack.pop()
        keep = ~np.isin(eff_steps, touched)
        add_steps = [s for s in touched if stacks[s]]
        eff_steps = np.concatenate([eff_steps[keep], np.asarray(add_steps, dtype=np.int64)])
        eff_rows = np.concatenate([eff_rows[keep], np.asarray([stacks[s][-1] for s in add_steps], dtype=np.int64)])
        order = np.argsort(eff_steps, kind="stable")
        eff_steps, eff_rows = eff_steps[order], eff_rows[order]
    inside = eff_steps < limit
    return eff_steps[inside], eff_rows[inside]


class OverlayWriter:
    """Appends records to ``labels.jsonl``, one fsync per record.

    A record is written with one unbuffered ``write`` and fsynced before ``append`` returns.
    If that fails (a full disk), the file is cut back to where the record began, so nothing is
    left half-written and no buffered bytes can land later; the error is a StorageError and
    every label acknowledged before it stays.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            with fileio.writing(f"open the label file {self.path}"):
                self._drop_torn_tail()
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return self._fd

    def _drop_torn_tail(self) -> None:
        # A crash may have left a partial last line; appending after it would glue the next
        # record onto it and turn a harmless torn tail into a corrupt middle line.
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as fh:
                fh.truncate(keep)
                fh.flush()
                os.fsync(fh.fileno())

    def append(self, record: dict[str, Any]) -> None:
        line = (dumps(record) + "\n").encode("utf-8")
        fd = self._open()
        start = os.fstat(fd).st_size
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, start)  # drop the torn record: freeing space cannot fail for lack of it
                os.fsync(fd)
            except OSError:
                pass  # the torn tail is then ignored by readers and dropped by the next writer
            raise fileio.storage_error(exc, f"save the label to {self.path}") from None

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
