"""A corpus of malformed recordings: named cases for every hostile input issue 13 lists, plus
hypothesis strategies that mutate attributes, session.json fields, overlay lines and bytes.

Each case copies a small valid CartPole-v1 session (3 episodes of 8 steps, labelled, one
overlay label) into a fresh folder, damages it, and returns the paths a command is given.
Used by tests/ilcore/data/test_fuzz_corpus.py and benchmarks/reliability.py.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np
from gymnasium import spaces

from ilcore.data import SessionWriter
from ilcore.types import Actor, Label

ENV_ID = "CartPole-v1"
OBS_SPACE = spaces.Box(-np.inf, np.inf, (4,), np.float32)
ACT_SPACE = spaces.Discrete(2)
STEPS = 8
EPISODE = "episodes/ep_000000.h5"


def make_base_session(path: Path) -> Path:
    """The valid session every case starts from."""
    rng = np.random.default_rng(0)
    with SessionWriter(path, env_id=ENV_ID, observation_space=OBS_SPACE, action_space=ACT_SPACE) as w:
        for e in range(3):
            rec = w.begin_episode(rng.standard_normal(4).astype(np.float32), seed=e)
            for t in range(STEPS):
                a = int(rng.integers(2))
                rec.label(t, a, source="scripted", reason="demo")
                rec.step(a, Actor.SCRIPTED, 1.0, t == STEPS - 1, False, rng.standard_normal(4).astype(np.float32),
                         info={"x": float(t)})
            rec.finish()
        w.add_label(Label("ep_000001", 2, 1, source="human", reason="review"))
    return path


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path], list[Path]]  # (fresh copy of the base session) -> paths to give a command
    crafted_size: bool = False  # declares sizes far beyond its bytes: run under a memory limit


CASES: list[Case] = []


def case(name: str, crafted_size: bool = False) -> Callable[[Callable[[Path], Any]], Callable[[Path], Any]]:
    def deco(fn: Callable[[Path], Any]) -> Callable[[Path], Any]:
        def build(s: Path) -> list[Path]:
            out = fn(s)
            if isinstance(out, Path):
                return [out]
            return out if isinstance(out, list) else [s]
        CASES.append(Case(name, build, crafted_size))
        return fn
    return deco


# ----------------------------------------------------------------------------- session.json

def _edit_session(s: Path, fn: Callable[[dict], Any]) -> None:
    meta = json.loads((s / "session.json").read_text())
    fn(meta)
    (s / "session.json").write_text(json.dumps(meta))


def _set(key: str, value: Any) -> Callable[[Path], None]:
    return lambda s: _edit_session(s, lambda m: m.__setitem__(key, value))


SESSION_FIELD_VALUES: dict[str, list[Any]] = {
    "schema_version": ["x", None, [1], 1e999, 99, -1, 1.5, True, {"v": 1}],
    "env_kwargs": [[1, 2], "render_mode", 7],
    "env_id": [None, 5, "", ["CartPole-v1"]],
    "observation_space": ["x", None, [], {"type": "Nope"}, {"type": "Box"},
                          {"type": "Box", "dtype": "<f4", "shape": [100000, 100000], "low": 0, "high": 1},
                          {"type": "Box", "dtype": "|O", "shape": [4], "low": 0, "high": 1},
                          {"type": "Box", "dtype": "<f4", "shape": [-4], "low": 0, "high": 1},
                          {"type": "Box", "dtype": "<f4", "shape": [5], "low": 0, "high": 1}],
    "action_space": [{"type": "Discrete", "n": 10**30}, {"type": "Discrete", "n": 0},
                     {"type": "Discrete", "n": "2"}, {"type": "Discrete", "n": 1e999},
                     {"type": "MultiDiscrete", "nvec": [[]]}, {"type": "Dict", "spaces": [["a/b", {"type": "Discrete", "n": 2}]]},
                     {"type": "Discrete", "n": 3}],
    "format": ["ilcore-episode", None, 1],
}
for _key, _values in SESSION_FIELD_VALUES.items():
    for _i, _v in enumerate(_values):
        case(f"session.json {_key} = {json.dumps(_v)[:40]}", crafted_size=_key.endswith("space"))(_set(_key, _v))
for _key in ("env_id", "observation_space", "action_space", "format"):
    case(f"session.json without {_key}")(lambda s, k=_key: _edit_session(s, lambda m: m.pop(k)))


@case("session.json not UTF-8")
def _(s: Path) -> None:
    (s / "session.json").write_bytes(b'{"format": "ilcore-session\xff\xfe"}')


@case("session.json deep nesting")
def _(s: Path) -> None:
    text = (s / "session.json").read_text()
    (s / "session.json").write_text(text.replace('"env_kwargs": {}', '"env_kwargs": ' + "[" * 100000 + "]" * 100000))


@case("session.json deeply nested space")
def _(s: Path) -> None:
    space: dict = {"type": "Discrete", "n": 2}
    for _ in range(200):
        space = {"type": "Tuple", "spaces": [space]}
    _edit_session(s, lambda m: m.__setitem__("action_space", space))


for _name, _bytes in [("empty", b""), ("not JSON", b"{oops"), ("a list", b"[]"), ("NaN", b"NaN"),
                      ("huge", b" " * (2 << 20) + b"{}")]:
    case(f"session.json {_name}")(lambda s, b=_bytes: (s / "session.json").write_bytes(b))


@case("session.json is a folder")
def _(s: Path) -> None:
    (s / "session.json").unlink()
    (s / "session.json").mkdir()


@case("session.json is a FIFO")
def _(s: Path) -> None:
    (s / "session.json").unlink()
    os.mkfifo(s / "session.json")


@case("session.json is a symlink loop")
def _(s: Path) -> None:
    (s / "session.json").unlink()
    os.symlink("session.json", s / "session.json")


# ----------------------------------------------------------------------------- labels.jsonl

def _overlay_line(rec: dict | str) -> Callable[[Path], None]:
    def build(s: Path) -> None:
        with open(s / "labels.jsonl", "a") as fh:
            fh.write((rec if isinstance(rec, str) else json.dumps(rec)) + "\n")
            fh.write(json.dumps({"op": "retract", "episode": "ep_000001", "step": 2, "time": 1.0}) + "\n")
    return build


GOOD_RECORD = {"op": "label", "episode": "ep_000000", "step": 1, "action": 1, "source": "human", "reason": "review",
               "round": 0, "latency_ms": 1.0, "time": 1.0}
OVERLAY_MUTATIONS: list[tuple[str, Any]] = [
    ("step", "Infinity"), ("step", 1e300), ("step", -1), ("step", "3"), ("step", True), ("step", STEPS + 1),
    ("step", 10**20), ("action", None), ("action", {}), ("action", 9), ("action", -1), ("action", [1, 2]),
    ("action", "1"), ("episode", "ep_999999"), ("episode", 5), ("episode", None), ("source", None), ("reason", 3),
    ("round", "x"), ("round", -2), ("latency_ms", "NaN"), ("time", [1]), ("op", "delete"),
]
for _key, _v in OVERLAY_MUTATIONS:
    _rec = dict(GOOD_RECORD)
    _rec[_key] = _v
    _text = json.dumps(_rec).replace('"Infinity"', "Infinity").replace('"NaN"', "NaN")
    case(f"overlay {_key} = {_v!r}"[:60])(_overlay_line(_text))
for _missing in ("source", "reason", "action", "step", "episode"):
    _rec = {k: v for k, v in GOOD_RECORD.items() if k != _missing}
    case(f"overlay record without {_missing}")(_overlay_line(json.dumps(_rec)))
case("overlay line not JSON")(_overlay_line("{not json"))
case("overlay line deep nesting")(_overlay_line("[" * 100000 + "]" * 100000))
case("overlay line a list")(_overlay_line("[1, 2]"))


@case("labels.jsonl is a folder")
def _(s: Path) -> None:
    (s / "labels.jsonl").unlink()
    (s / "labels.jsonl").mkdir()


@case("labels.jsonl is a symlink loop")
def _(s: Path) -> None:
    (s / "labels.jsonl").unlink()
    os.symlink("labels.jsonl", s / "labels.jsonl")


@case("labels.jsonl is a FIFO")
def _(s: Path) -> None:
    (s / "labels.jsonl").unlink()
    os.mkfifo(s / "labels.jsonl")


# ----------------------------------------------------------------------------- episode attributes

def _edit_episode(fn: Callable[[h5py.File], Any], episode: str = EPISODE) -> Callable[[Path], None]:
    def build(s: Path) -> None:
        with h5py.File(s / episode, "a") as f:
            fn(f)
    return build


def _attr(name: str, value: Any) -> Callable[[Path], None]:
    return _edit_episode(lambda f: f.attrs.__setitem__(name, value))


ATTR_VALUES: dict[str, list[Any]] = {
    "schema_version": ["x", np.array([1, 1]), 1e300, "1", 99, 0],
    "length": ["x", -7, 10**15, 3.5, np.array([8, 8]), STEPS + 1, STEPS - 1, 0],
    "seed": ["x", 1.5, np.array([1, 2]), 2**70 - 1 if False else 2**63 - 1],
    "round": ["x", -1, 2.5],
    "policy_version": ["x"],
    "attrs": ["[1, 2]", "not json", "[" * 5000 + "]" * 5000, np.array([1, 2]), b"\xff\xfe"],
    "env_kwargs": ["[]", "{bad", 5],
    "terminated": ["yes", 2, np.array([1, 0])],
    "observation_only": ["x", 7],
    "incomplete": ["maybe"],
    "format": ["ilcore-packed", "other", 5, np.array([b"a", b"b"])],
}
for _name, _values in ATTR_VALUES.items():
    for _v in _values:
        case(f"episode attr {_name} = {str(_v)[:30]!r}")(_attr(_name, _v))
for _name in ("length", "format", "schema_version"):
    case(f"episode attr {_name} deleted")(_edit_episode(lambda f, n=_name: f.attrs.__delitem__(n)))


def _replace(name: str, **kwargs: Any) -> Callable[[h5py.File], None]:
    def fn(f: h5py.File) -> None:
        del f[name]
        f.create_dataset(name, **kwargs)
    return fn


DATASET_CASES: list[tuple[str, Callable[[h5py.File], Any], bool]] = [
    ("observations declared (10**9, 4), never written", _replace("observations", shape=(10**9, 4), dtype="f4"), True),
    ("actors declared (10**9,) with length 10**9",
     lambda f: (_replace("actors", shape=(10**9,), dtype="u1")(f), f.attrs.__setitem__("length", 10**9)), True),
    ("labels/step declared (10**10,)", _replace("labels/step", shape=(10**10,), dtype="i8"), True),
    ("labels/step declared (100,), never written", _replace("labels/step", shape=(100,), dtype="i8"), True),
    ("observations chunked, half the chunks missing",
     lambda f: (_replace("observations", shape=(STEPS + 1, 4), dtype="f4", chunks=(1, 4))(f),
                f["observations"].__setitem__(slice(0, 3), 1.0)), True),
    ("observations as strings", _replace("observations", data=np.array([b"abcd"] * (STEPS + 1))), False),
    ("observations compound", _replace("observations", data=np.zeros(STEPS + 1, dtype=[("a", "f4"), ("b", "f4")])), False),
    ("observations wrong width", _replace("observations", data=np.zeros((STEPS + 1, 5), "f4")), False),
    ("observations too few rows", _replace("observations", data=np.zeros((STEPS, 4), "f4")), False),
    ("observations 3-D", _replace("observations", data=np.zeros((STEPS + 1, 4, 1), "f4")), False),
    ("observations NaN", _replace("observations", data=np.full((STEPS + 1, 4), np.nan, "f4")), False),
    ("observations a group", lambda f: (f.__delitem__("observations"), f.create_group("observations")), False),
    ("observations missing", lambda f: f.__delitem__("observations"), False),
    ("actions missing", lambda f: f.__delitem__("actions"), False),
    ("actors missing", lambda f: f.__delitem__("actors"), False),
    ("rewards missing", lambda f: f.__delitem__("rewards"), False),
    ("wall_time missing", lambda f: f.__delitem__("wall_time"), False),
    ("actions out of range (7)", _replace("actions", data=np.full(STEPS, 7, "i8")), False),
    ("actions negative", _replace("actions", data=np.full(STEPS, -1, "i8")), False),
    ("actions as floats NaN", _replace("actions", data=np.full(STEPS, np.nan)), False),
    ("actions as strings", _replace("actions", data=np.array([b"1"] * STEPS)), False),
    ("rewards as strings", _replace("rewards", data=np.array([b"1.0"] * STEPS)), False),
    ("rewards wrong length", _replace("rewards", data=np.zeros(STEPS + 3)), False),
    ("infos subgroup", lambda f: f["infos"].create_group("sub"), False),
    ("infos wrong length", lambda f: f["infos"].create_dataset("y", data=np.zeros(3)), False),
    ("infos a dataset", lambda f: (f.__delitem__("infos"), f.create_dataset("infos", data=np.zeros(STEPS))), False),
    ("labels group missing", lambda f: f.__delitem__("labels"), False),
    ("labels vocabulary missing", lambda f: f["labels"].attrs.__delitem__("vocabulary"), False),
    ("labels vocabulary not lists", lambda f: f["labels"].attrs.__setitem__("vocabulary", '{"source": 1}'), False),
    ("labels vocabulary not JSON", lambda f: f["labels"].attrs.__setitem__("vocabulary", "{"), False),
    ("labels source code 200", _replace("labels/source", data=np.full(STEPS, 200, "u1")), False),
    ("labels reason code 200", _replace("labels/reason", data=np.full(STEPS, 200, "u1")), False),
    ("labels action 9 for Discrete(2)", _replace("labels/action", data=np.full(STEPS, 9, "i8")), False),
    ("labels step beyond the episode", _replace("labels/step", data=np.arange(STEPS) + 100), False),
    ("labels step negative", _replace("labels/step", data=np.arange(STEPS) - 3), False),
    ("labels arrays of different lengths", _replace("labels/round", data=np.zeros(2, "i8")), False),
    ("labels/step as floats", _replace("labels/step", data=np.arange(STEPS) + 0.5), False),
    ("observations soft-link loop", lambda f: (f.__delitem__("observations"),
                                               f.__setitem__("observations", h5py.SoftLink("/observations"))), False),
    ("labels soft link", lambda f: (f.move("labels", "labels2"), f.__setitem__("labels", h5py.SoftLink("/labels2"))),
     False),
    ("observations external link to /etc/passwd",
     lambda f: (f.__delitem__("observations"), f.__setitem__("observations", h5py.ExternalLink("/etc/passwd", "/"))),
     False),
    ("observations stored in /etc/passwd",
     _replace("observations", shape=(STEPS + 1, 4), dtype="u1", external=[("/etc/passwd", 0, (STEPS + 1) * 4)]), False),
]
for _name, _fn, _big in DATASET_CASES:
    case(f"episode {_name}", crafted_size=_big)(_edit_episode(_fn))


# ----------------------------------------------------------------------------- whole files

def _file_bytes(data: bytes | Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def build(s: Path) -> None:
        p = s / EPISODE
        p.write_bytes(data(p.read_bytes()) if callable(data) else data)
    return build


case("episode file empty")(_file_bytes(b""))
case("episode file random bytes")(_file_bytes(np.random.default_rng(1).bytes(4096)))
for _cut in (100, 512, 1000, 2000, 3000, 4000, 6000):
    case(f"episode file truncated at {_cut}")(_file_bytes(lambda b, c=_cut: b[:c]))
for _off in (0, 9, 40, 100, 200, 300, 600, 1200, 2048, 3000):
    case(f"episode file byte flipped at {_off}")(
        _file_bytes(lambda b, o=_off: b[:o] + bytes([b[o] ^ 0xFF]) + b[o + 1:] if o < len(b) else b))


def _flips(seed: int) -> Callable[[bytes], bytes]:
    def flip(b: bytes) -> bytes:
        rng = np.random.default_rng(seed)
        data = bytearray(b)
        for _ in range(int(rng.integers(1, 9))):
            data[int(rng.integers(len(data)))] ^= int(rng.integers(1, 256))
        return bytes(data)
    return flip


# Random damage runs here, in the corpus child process, not in pytest's: a flipped bit can
# crash the HDF5 C library itself, which must fail one test rather than end the test run.
for _seed in range(40):
    case(f"episode file byte flipped, seeded damage {_seed}")(_file_bytes(_flips(_seed)))


@case("episode is a FIFO")
def _(s: Path) -> None:
    os.mkfifo(s / "episodes" / "ep_000003.h5")


@case("episode is a folder")
def _(s: Path) -> None:
    (s / "episodes" / "ep_000003.h5").mkdir()


@case("episode is a symlink loop")
def _(s: Path) -> None:
    os.symlink("ep_000003.h5", s / "episodes" / "ep_000003.h5")


@case("episode is a symlink to /dev/zero")
def _(s: Path) -> None:
    os.symlink("/dev/zero", s / "episodes" / "ep_000003.h5")


@case("episode is a foreign HDF5 file")
def _(s: Path) -> None:
    with h5py.File(s / "episodes" / "ep_000003.h5", "w") as f:
        f["data"] = np.arange(3)


@case("path longer than 4096 characters")
def _(s: Path) -> Path:
    return Path(str(s) + "/x" * 2100)


@case("path with non-UTF-8 bytes")
def _(s: Path) -> Path:
    return Path(os.fsdecode(str(s).encode() + b"/\xff\xfe.h5"))


@case("file that does not exist")
def _(s: Path) -> Path:
    return s / "nothing.h5"


@case("lone episode file with a malformed observation_space attribute")
def _(s: Path) -> Path:
    with h5py.File(s / EPISODE, "a") as f:
        f.attrs["observation_space"] = '{"type": "Box", "dtype": "<f4", "shape": [100000, 100000], "low": 0, "high": 1}'
    return s / EPISODE


@case("lone episode file with an action_space that is not JSON")
def _(s: Path) -> Path:
    with h5py.File(s / EPISODE, "a") as f:
        f.attrs["action_space"] = "{"
    return s / EPISODE


def _packed(fn: Callable[[h5py.File], Any]) -> Callable[[Path], Path]:
    def build(s: Path) -> Path:
        from ilcore.data import pack

        out = s.parent / f"{s.name}.packed.h5"
        pack(s, out)
        with h5py.File(out, "a") as f:
            fn(f)
        return out
    return build


PACKED_CASES: list[tuple[str, Callable[[h5py.File], Any], bool]] = [
    ("overlay declared (10**10,)", _replace("overlay", shape=(10**10,), dtype=h5py.string_dtype()), True),
    ("overlay of numbers", _replace("overlay", data=np.arange(3)), False),
    ("overlay with a bad record", _replace("overlay", data=["{\"op\": \"label\"}", "{}"], dtype=h5py.string_dtype()),
     False),
    ("episodes a soft link", lambda f: (f.move("episodes", "e2"), f.__setitem__("episodes", h5py.SoftLink("/e2"))),
     False),
    ("episodes a dataset", lambda f: (f.__delitem__("episodes"), f.create_dataset("episodes", data=[1])), False),
    ("episode schema_version 'x'", lambda f: f["episodes/ep_000000"].attrs.__setitem__("schema_version", "x"), False),
    ("episode observations declared (10**9, 4)",
     lambda f: _replace("episodes/ep_000000/observations", shape=(10**9, 4), dtype="f4")(f), True),
    ("env_kwargs not JSON", lambda f: f.attrs.__setitem__("env_kwargs", "{"), False),
    ("action_space Discrete n=10**30",
     lambda f: f.attrs.__setitem__("action_space", '{"type": "Discrete", "n": ' + str(10**30) + "}"), False),
]
for _name, _fn, _big in PACKED_CASES:
    case(f"packed file {_name}", crafted_size=_big)(_packed(_fn))


def make_fresh_copy(base: Path, dest: Path) -> Path:
    shutil.copytree(base, dest, symlinks=True)
    return dest


def snapshot(paths: list[Path]) -> dict[str, tuple]:
    """(size, mtime_ns, content hash) of every regular file under ``paths``, to prove nothing changed."""
    import hashlib
    import stat

    out: dict[str, tuple] = {}
    todo = list(paths)
    while todo:
        p = todo.pop()
        try:
            st = os.lstat(p)
        except (OSError, ValueError):
            continue
        if stat.S_ISDIR(st.st_mode):
            todo.extend(p.iterdir())
        elif stat.S_ISREG(st.st_mode):
            out[str(p)] = (st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        else:
            out[str(p)] = (stat.S_IFMT(st.st_mode),)
    return out


# ----------------------------------------------------------------------------- running the corpus

# Cases that may legitimately still read: a flipped byte can land in padding HDF5 never reads.
MAY_READ = ("episode file byte flipped",)


def library_ops(paths: list[Path], scratch: Path) -> None:
    """What the reading commands do with a recording: summarise, read every episode, build BC
    training data from labels and from actions, pack. Raises the first UserError."""
    from ilcore.data import load_transitions, open_recording, pack

    arg: Any = paths[0] if len(paths) == 1 else paths
    open_recording(arg).info()
    for _ in open_recording(arg).episodes():
        pass
    load_transitions(arg)
    load_transitions(arg, labels="action")
    pack(arg, scratch / "packed.h5")


def run_case(c: Case, base: Path, root: Path, timeout_s: int = 20) -> dict[str, Any]:
    """Build one case under ``root`` and run :func:`library_ops` on it, with a SIGALRM timeout.

    Returns {"name", "outcome": "refused" | "accepted" | "crash" | "hang", "message", "modified"}.
    """
    import signal
    import traceback

    from ilcore.errors import UserError

    session = make_fresh_copy(base, root / "s")
    paths = c.build(session)
    scratch = root / "scratch"
    scratch.mkdir()
    before = snapshot([session, *[p for p in paths if p != session]])

    def alarm(*_: Any) -> None:
        raise TimeoutError

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(timeout_s)
    try:
        library_ops(paths, scratch)
        outcome, message = "accepted", ""
    except UserError as exc:
        outcome, message = "refused", str(exc)
    except TimeoutError:
        outcome, message = "hang", f"no answer within {timeout_s} s"
    except BaseException as exc:  # noqa: BLE001 - the corpus records any escape as a crash
        outcome, message = "crash", "".join(traceback.format_exception_only(type(exc), exc)).strip()[-500:]
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    after = snapshot([session, *[p for p in paths if p != session]])
    return {"name": c.name, "outcome": outcome, "message": message, "modified": sorted(
        k for k in set(before) | set(after) if before.get(k) != after.get(k))}


def run_named(out: Path, limit_bytes: int | None = None) -> list[dict[str, Any]]:
    """Every named case, each in its own folder under ``out``."""
    import resource

    if limit_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
    base = make_base_session(out / "base")
    results = []
    for i, c in enumerate(CASES):
        root = out / f"case_{i:03d}"
        root.mkdir()
        results.append(run_case(c, base, root))
    return results


if __name__ == "__main__":
    import sys

    # python -m tests.support.damaged_recordings OUT_DIR RESULTS.json [MEMORY_LIMIT_BYTES]
    results = run_named(Path(sys.argv[1]), int(sys.argv[3]) if len(sys.argv) > 3 else None)
    Path(sys.argv[2]).write_text(json.dumps(results, indent=1))
