"""Malformed state files for ``ilcore dagger --resume`` and ``python -m app --resume``.

A resumed session reads more than recordings: the run's settings (``dagger_run.json``), the app's
``app_state.json``, the engine's ``dagger_state.json`` and ``dagger_rounds.json``, and each saved
policy with its calibration states. Each case copies a real session, damages one of those files
and resumes it in this process: it must either work (the damage left valid data) or stop with one
``error:`` line, exit 2, no file changed and no lock left -- never a traceback.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import shutil
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

VALUES: list[Any] = [None, "x", -1, 10**30, 1e300, [], {}, True, 1.5, "../../../../etc"]
RAW: dict[str, bytes] = {
    "empty": b"", "torn": b'{"round": 1', "not utf-8": b"\xff\xfe\x00{", "a list": b"[]", "a string": b'"x"',
    "null": b"null", "1e999": b"1e999", "deep": b"[" * 100_000 + b"]" * 100_000, "nan": b'{"round": NaN}',
}


@dataclass(frozen=True)
class Case:
    name: str
    target: str  # file, relative to the session / run folder
    damage: Callable[[Path], None]


def _json_cases(target: str, original: dict, rng: random.Random, per_file: int) -> list[Case]:
    cases = [Case(f"{target}: {label}", target, lambda p, raw=raw: p.write_bytes(raw)) for label, raw in RAW.items()]
    swaps = [(key, value) for key in original for value in VALUES]
    for key, value in rng.sample(swaps, min(per_file, len(swaps))):
        def damage(p: Path, key: str = key, value: Any = value) -> None:
            data = json.loads(p.read_text())
            data[key] = value
            p.write_text(json.dumps(data))
        cases.append(Case(f"{target}: {key}={value!r}", target, damage))
    return cases


def _npz_bomb(p: Path) -> None:
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**10, 4)})
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("leaf0.npy", header.getvalue() + b"\0" * 64)
        names = io.BytesIO()
        np.save(names, np.asarray(["leaf"]))
        z.writestr("paths.npy", names.getvalue())


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: max(1, p.stat().st_size // 2)])


def make_cases(folder: Path, json_files: list[str], policy_dir: str, *, per_file: int = 12, seed: int = 0) -> list[Case]:
    """The corpus for one session: raw and per-key damage of each JSON file, and a damaged policy."""
    rng = random.Random(seed)
    out: list[Case] = []
    for target in json_files:
        original = json.loads((folder / target).read_text())
        out += _json_cases(target, original if isinstance(original, dict) else {}, rng, per_file)
    calib = f"{policy_dir}/calibration.npz"
    out += [
        Case(f"{calib}: garbage", calib, lambda p: p.write_bytes(b"garbage")),
        Case(f"{calib}: truncated", calib, _truncate),
        Case(f"{calib}: declares 149 GiB", calib, _npz_bomb),
        Case(f"{policy_dir}/weights.pt: garbage", f"{policy_dir}/weights.pt", lambda p: p.write_bytes(b"\x80garbage")),
        Case(f"{policy_dir}/config.json: hidden 1e9", f"{policy_dir}/config.json",
             lambda p: p.write_text(p.read_text().replace('"hidden": [', '"hidden": [1000000000, '))),
        Case(f"{policy_dir}: a file, not a folder", policy_dir,
             lambda p: (shutil.rmtree(p), p.write_text("x"))),
    ]
    return out


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "writer.lock"}


@dataclass
class Outcome:
    case: str
    code: int | None
    kind: str  # "refused", "accepted", "traceback", "modified", "not one line", "lock left"
    detail: str = ""


def run_case(case: Case, pristine: Path, work: Path, resume: Callable[[Path], int]) -> Outcome:
    """Copy ``pristine`` to ``work``, damage it, resume it; classify what happened."""
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(pristine, work)
    case.damage(work / case.target)
    before = _digest(work)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = resume(work)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - the point is to see anything that escapes
        return Outcome(case.name, None, "traceback", traceback.format_exc(limit=3))
    if code == 0:
        return Outcome(case.name, code, "accepted")
    lines = [line for line in err.getvalue().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    if len(errors) != 1 or any("Traceback" in line for line in lines):
        return Outcome(case.name, code, "not one line", err.getvalue()[-500:])
    if _digest(work) != before:
        return Outcome(case.name, code, "modified", errors[0])
    if list(work.rglob("writer.lock")):
        return Outcome(case.name, code, "lock left", errors[0])
    return Outcome(case.name, code, "refused", errors[0])


def summarize(outcomes: list[Outcome]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.kind] = counts.get(o.kind, 0) + 1
    return counts


def quiet_env() -> None:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
