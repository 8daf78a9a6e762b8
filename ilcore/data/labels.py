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
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from ilcore.data.format import dumps, nested_from_json, nested_to_json
from ilcore.errors import FormatError
from ilcore.types import Label

if TYPE_CHECKING:
    from gymnasium import spaces as gym_spaces


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


def parse_lines(lines: Sequence[str], where: str) -> list[dict[str, Any]]:
    """Parse overlay lines; a torn (unparsable or unterminated) last line is ignored."""
    records: list[dict[str, Any]] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict) or rec.get("op") not in ("label", "retract"):
                raise ValueError
            int(rec["step"]), str(rec["episode"])
        except (ValueError, KeyError, TypeError):
            if i == len(lines) - 1:
                break  # torn by a crash mid-write
            raise FormatError(f"{where} has a corrupt record on line {i + 1}.") from None
        records.append(rec)
    return records


def read_overlay_file(path: Path) -> list[dict[str, Any]]:
    """All complete records of an overlay file (missing file: none)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
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


class OverlayWriter:
    """Appends records to ``labels.jsonl``, one fsync per record."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: Any = None

    def _open(self) -> Any:
        if self._fh is None:
            self._drop_torn_tail()
            self._fh = open(self.path, "ab")
        return self._fh

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
        fh = self._open()
        fh.write((dumps(record) + "\n").encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
