"""Malformed recordings: only UserErrors escape the library, the CLI answers one `error:` line,
nothing hangs, nothing huge is allocated, no input file changes (issue 13).

The named corpus (tests/support/damaged_recordings.py) runs in a child process under a 3 GiB address
space limit, so a crafted size that slipped past the checks fails there instead of thrashing
the machine; hypothesis adds random attribute, session.json and overlay mutations.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ilcore.errors import UserError
from tests.support import damaged_recordings as corpus

ROOT = Path(__file__).resolve().parents[3]
MEMORY_LIMIT = 3 << 30


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


@pytest.mark.slow
def test_named_corpus_is_refused_in_one_sentence(tmp_path):
    results_file = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.support.damaged_recordings", str(tmp_path), str(results_file), str(MEMORY_LIMIT)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(results_file.read_text())
    assert len(results) == len(corpus.CASES) >= 200
    bad = [r for r in results if r["outcome"] in ("crash", "hang") or r["modified"]]
    assert not bad, bad[:5]
    for r in results:
        if r["outcome"] == "accepted":
            assert r["name"].startswith(corpus.MAY_READ), r
        else:
            msg = r["message"]
            assert "\n" not in msg and msg.endswith("."), r
    # Each crafted size is refused before allocating, not by running out of the 3 GiB.
    sized = [r for r in results if corpus.CASES[[c.name for c in corpus.CASES].index(r["name"])].crafted_size]
    assert sized and all(r["outcome"] == "refused" for r in sized)
    assert not any("MemoryError" in r["message"] for r in results)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return corpus.make_base_session(tmp_path_factory.mktemp("base") / "s")


def _library_outcome(session: Path, scratch: Path, paths=None) -> str:
    """Run the reading operations; anything but success or a UserError fails the test."""
    scratch.mkdir()
    before = corpus.snapshot([session])
    try:
        corpus.library_ops(paths or [session], scratch)
        outcome = "accepted"
    except UserError as exc:
        assert "\n" not in str(exc)
        outcome = "refused"
    assert corpus.snapshot([session]) == before
    return outcome


HOSTILE_JSON = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**63, max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.lists(st.integers(-3, 3), max_size=4), st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
SESSION_KEYS = ["format", "schema_version", "env_id", "env_kwargs", "observation_space", "action_space"]
SPACE_PATHS = [("observation_space", "shape"), ("observation_space", "dtype"), ("observation_space", "low"),
               ("observation_space", "type"), ("action_space", "n"), ("action_space", "start"),
               ("action_space", "type")]


@pytest.mark.slow
@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(key=st.sampled_from(SESSION_KEYS + SPACE_PATHS), value=HOSTILE_JSON, n=st.integers(0, 10**6))
def test_session_json_mutations(base, tmp_path_factory, key, value, n):
    root = tmp_path_factory.mktemp("sj")
    s = corpus.make_fresh_copy(base, root / "s")
    meta = json.loads((s / "session.json").read_text())
    if isinstance(key, tuple):
        meta[key[0]][key[1]] = value
    else:
        meta[key] = value
    (s / "session.json").write_text(json.dumps(meta))
    _library_outcome(s, root / "scratch")


ATTR_NAMES = ["schema_version", "length", "seed", "round", "policy_version", "attrs", "env_kwargs", "terminated",
              "truncated", "incomplete", "observation_only", "format", "observation_space", "action_space", "env_id"]
H5_VALUES = st.one_of(
    st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=16),
    st.booleans(), st.lists(st.integers(-5, 5), min_size=1, max_size=3).map(np.array),
    st.binary(max_size=8).map(lambda b: np.void(b) if b else b"x"),
)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(ATTR_NAMES), value=H5_VALUES, where=st.sampled_from(["/", "labels"]))
def test_episode_attribute_mutations(base, tmp_path_factory, name, value, where):
    root = tmp_path_factory.mktemp("attr")
    s = corpus.make_fresh_copy(base, root / "s")
    with h5py.File(s / corpus.EPISODE, "a") as f:
        try:
            f[where].attrs[name if where == "/" else "vocabulary"] = value
        except (TypeError, ValueError):
            assume(False)  # a value HDF5 cannot store cannot be in a file either
    _library_outcome(s, root / "scratch")


DATASETS = ["observations", "actions", "actors", "rewards", "wall_time", "infos/x", "labels/step", "labels/action",
            "labels/source", "labels/reason", "labels/round", "labels/latency_ms", "labels/time"]


@pytest.mark.slow
@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(DATASETS), length=st.integers(0, 12), width=st.integers(0, 6),
       dtype=st.sampled_from(["f4", "f8", "i8", "u1", "i1", "S4", "bool"]),
       fill=st.sampled_from([0, 1, 7, -1, 255, np.nan, np.inf]))
def test_episode_dataset_mutations(base, tmp_path_factory, name, length, width, dtype, fill):
    root = tmp_path_factory.mktemp("ds")
    s = corpus.make_fresh_copy(base, root / "s")
    shape = (length,) if width == 0 else (length, width)
    with np.errstate(invalid="ignore"):
        data = np.full(shape, fill if dtype[0] in "fS" or np.isfinite(fill) else 0).astype(dtype)
    with h5py.File(s / corpus.EPISODE, "a") as f:
        del f[name]
        f.create_dataset(name, data=data)
    _library_outcome(s, root / "scratch")


@pytest.mark.slow
@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(record=st.dictionaries(st.sampled_from(["op", "episode", "step", "action", "source", "reason", "round",
                                               "latency_ms", "time"]), HOSTILE_JSON, max_size=9),
       base_fields=st.booleans())
def test_overlay_record_mutations(base, tmp_path_factory, record, base_fields):
    root = tmp_path_factory.mktemp("ov")
    s = corpus.make_fresh_copy(base, root / "s")
    rec = {**corpus.GOOD_RECORD, **record} if base_fields else record
    with open(s / "labels.jsonl", "a") as fh:
        fh.write(json.dumps(rec) + "\n")
    _library_outcome(s, root / "scratch")


# ----------------------------------------------------------------------------- the real CLI

def _cli(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "ilcore", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=_limit_memory, env=env)


def _case(name: str) -> corpus.Case:
    return next(c for c in corpus.CASES if c.name.startswith(name))


CLI_SAMPLE = [
    ("episode is a FIFO", ["info", "{0}"]),
    ("episode observations declared (10**9, 4), never written", ["export", "minari", "{0}", "--dataset-id",
                                                                  "x/y-v0", "--out", "{tmp}/minari"]),
    ("episode labels/step declared (10**10,)", ["info", "{0}"]),
    ("overlay step = 'Infinity'", ["pack", "{0}", "{tmp}/p.h5"]),
    ("session.json action_space = {\"type\": \"Discrete\", \"n\": 1000", ["info", "{0}"]),
    ("episode labels action 9 for Discrete(2)", ["train", "bc", "--data", "{0}", "--out", "{tmp}/run", "--epochs",
                                                 "1", "--quiet"]),
]


@pytest.mark.slow
@pytest.mark.parametrize("name,argv", CLI_SAMPLE, ids=[n for n, _ in CLI_SAMPLE])
def test_cli_refuses_in_one_line(base, tmp_path, name, argv):
    s = corpus.make_fresh_copy(base, tmp_path / "s")
    paths = _case(name).build(s)
    before = corpus.snapshot([tmp_path])
    proc = _cli([a.format(*paths, tmp=tmp_path) for a in argv])
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in proc.stderr
    assert sum(ln.startswith("error: ") for ln in lines) == 1, proc.stderr
    assert corpus.snapshot([tmp_path]) == before


def test_export_minari_refuses_an_existing_file_as_out(base, tmp_path):
    target = tmp_path / "not_a_folder"
    target.write_text("keep me")
    proc = _cli(["export", "minari", str(base), "--dataset-id", "x/y-v0", "--out", str(target)])
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "not a folder" in proc.stderr
    assert target.read_text() == "keep me"


@pytest.mark.slow
@pytest.mark.parametrize("cmd", ["train bco", "import"])
def test_cli_slow_commands_refuse(base, tmp_path, cmd):
    if cmd == "import":
        bad = tmp_path / "ds" / "data"
        bad.mkdir(parents=True)
        (bad / "metadata.json").write_text("{not json")
        argv = ["import", "minari", str(tmp_path / "ds"), "--out", str(tmp_path / "imported")]
    else:
        s = corpus.make_fresh_copy(base, tmp_path / "s")
        _case("episode observations NaN").build(s)
        argv = ["train", "bco", "--data", str(s), "--out", str(tmp_path / "run"), "--iterations", "1",
                "--epochs", "1", "--idm-epochs", "1", "--pre-demo-steps", "50", "--quiet"]
    proc = _cli(argv, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert sum(ln.startswith("error: ") for ln in proc.stderr.splitlines()) == 1
    assert not (tmp_path / "imported").exists()


def test_fifo_is_never_opened(tmp_path):
    """A FIFO named like an episode would block open() forever; the check happens before."""
    from ilcore.data.format import open_h5
    from ilcore.errors import FormatError

    fifo = tmp_path / "ep_000001.h5"
    os.mkfifo(fifo)
    with pytest.raises(FormatError, match="not a regular file"):
        open_h5(fifo)
    shutil.rmtree(tmp_path)
