"""A full disk: every writer stops with one StorageError (one ``error:`` line in the CLI), keeps
every finished episode and acknowledged label, and leaves no temp file and no lock behind.

Two layers: ENOSPC injected into the write path (runs everywhere), and a real 2 MiB tmpfs
(needs root to mount; skipped with the reason otherwise).
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ilcore import fileio
from ilcore.data import open_recording
from ilcore.data import format as fmt
from ilcore.errors import StorageError
from ilcore.types import Label
from tests.support.recordings import make_writer, record_episode

REPO = Path(__file__).resolve().parents[3]


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _leftovers(folder: Path) -> list[str]:
    """Temp files and locks anywhere under ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.name.endswith(fmt.TMP_SUFFIX) or p.name == fmt.LOCK_FILE)


def _readable_ids(session: Path) -> list[str]:
    rec = open_recording(session)
    return [ep.id for ep in rec.episodes()]


# ----------------------------------------------------------------------------- injected ENOSPC


def test_atomic_write_failure_removes_the_temp_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "state.json"
    fileio.write_json_atomic(target, {"v": 1})
    monkeypatch.setattr(fileio.os, "fsync", _enospc)
    with pytest.raises(StorageError, match="No space left on device"):
        fileio.write_json_atomic(target, {"v": 2})
    monkeypatch.undo()
    assert target.read_text().strip().endswith("}") and '"v": 1' in target.read_text()
    assert _leftovers(tmp_path) == []


def test_write_files_atomic_replaces_none_unless_all_were_written(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    fileio.write_files_atomic([(a, b"old a"), (b, b"old b")])
    calls = []

    def fail_second(fd):
        calls.append(fd)
        if len(calls) == 2:
            _enospc()

    monkeypatch.setattr(fileio.os, "fsync", fail_second)
    with pytest.raises(StorageError):
        fileio.write_files_atomic([(a, b"new a"), (b, b"new b")])
    monkeypatch.undo()
    assert (a.read_bytes(), b.read_bytes()) == (b"old a", b"old b")
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("background", [False, True])
def test_session_writer_stops_cleanly_and_keeps_finished_episodes(tmp_path, monkeypatch, background):
    session = tmp_path / "s"
    w = make_writer(session, background=background)
    record_episode(w, 0)
    record_episode(w, 1)
    w.flush()
    monkeypatch.setattr(fileio.os, "fsync", _enospc)
    with pytest.raises(StorageError, match="episode file"):
        record_episode(w, 2)
        w.flush()  # a background failure surfaces here at the latest
    with pytest.raises(StorageError):  # the open episode cannot be written either; close still unlocks
        record_episode(w, 3, finish=False)
        w.close()
    monkeypatch.undo()
    w.close()
    assert _leftovers(session) == []
    assert _readable_ids(session) == ["ep_000000", "ep_000001"]


def test_a_background_failure_stops_the_caller_at_its_next_write(tmp_path, monkeypatch):
    session = tmp_path / "s"
    with make_writer(session, background=True) as w:
        monkeypatch.setattr(fileio.os, "fsync", _enospc)
        record_episode(w, 0)
        w._executor.submit(lambda: None).result()  # let the failed write finish on the worker
        with pytest.raises(StorageError):
            record_episode(w, 1)  # finish() submits the next write and raises the earlier failure
        monkeypatch.undo()
    assert _leftovers(session) == []


def test_overlay_append_failure_leaves_no_torn_record(tmp_path, monkeypatch):
    session = tmp_path / "s"
    with make_writer(session) as w:
        ep = record_episode(w, 0)
        w.add_label(Label(ep, 1, 2, source="human", reason="review"))
        before = (session / fmt.OVERLAY_FILE).read_bytes()
        monkeypatch.setattr(fileio.os, "fsync", _enospc)
        with pytest.raises(StorageError, match="save the label"):
            w.add_label(Label(ep, 2, 0, source="human", reason="review"))
        monkeypatch.undo()
        assert (session / fmt.OVERLAY_FILE).read_bytes() == before
        w.add_label(Label(ep, 3, 1, source="human", reason="review"))  # space is back: appending works again
    labels = {lab.step: int(lab.action) for lab in open_recording(session).load_episode(ep).labels
              if lab.source == "human"}
    assert labels == {1: 2, 3: 1}


def test_policy_save_failure_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    from gymnasium import spaces as S

    from ilcore.policies import Policy, make_policy

    run = tmp_path / "run"
    make_policy(S.Box(-1, 1, (2,)), S.Discrete(2), hidden=(4,), seed=0).save(run)
    newer = make_policy(S.Box(-1, 1, (2,)), S.Discrete(2), hidden=(4,), seed=1)
    newer.version = 5
    monkeypatch.setattr(fileio.os, "fsync", _enospc)
    with pytest.raises(StorageError):
        newer.save(run)
    monkeypatch.undo()
    assert Policy.load(run).version == 0
    assert _leftovers(run) == []
    with pytest.raises(StorageError):  # a first save that fails leaves no weights without config
        monkeypatch.setattr(fileio.os, "fsync", _enospc)
        newer.save(tmp_path / "fresh")
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "fresh").iterdir()) == []


def test_cli_prints_one_error_line_on_enospc(tmp_path, monkeypatch, capsys):
    from ilcore.cli.main import main

    monkeypatch.setattr(fileio.os, "fsync", _enospc)
    rc = main(["record", "--env", "CartPole-v1", "--episodes", "2", "--out", str(tmp_path / "r"), "--json"])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert rc == 2 and err.count("error:") == 1
    assert "No space left on device" in err[err.index("error:"):].splitlines()[0]
    assert "Traceback" not in err
    assert _leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- a real full disk


@pytest.fixture
def small_fs(tmp_path):
    """A 2 MiB tmpfs mounted at tmp_path/fs (root only); unmounted afterwards."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    if sys.platform != "linux":
        pytest.skip("a small tmpfs needs Linux")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {res.stderr.strip() or res.returncode}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(folder: Path, leave: int = 0) -> None:
    """Fill the filesystem of ``folder`` up to ``leave`` free bytes."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    with open(folder / "filler", "wb") as fh:
        try:
            fh.write(b"\0" * max(0, free - leave))
            fh.flush()
        except OSError:
            pass


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "ilcore", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def _one_error_line(res: subprocess.CompletedProcess[str]) -> str:
    """The one ``error: ...`` line (a progress bar may still hold the start of its line)."""
    err = res.stderr.replace("\r", "\n")
    assert res.returncode == 2, res.stderr[-2000:]
    assert err.count("error:") == 1 and "Traceback" not in err, res.stderr[-2000:]
    return err[err.index("error:"):].splitlines()[0]


@pytest.mark.slow
def test_record_on_a_full_tmpfs_stops_with_one_line(small_fs):
    out = small_fs / "rec"
    res = _cli("record", "--env", "CartPole-v1", "--episodes", "400", "--out", str(out), cwd=small_fs)
    assert "No space left on device" in _one_error_line(res)
    assert _leftovers(small_fs) == []
    kept = _readable_ids(out)
    assert len(kept) >= 5  # ~38 CartPole episodes fit in 2 MiB; every one on disk reads back whole
    assert kept == [f"ep_{i:06d}" for i in range(len(kept))]


def test_session_writer_on_a_full_tmpfs_keeps_episodes_and_labels(small_fs):
    session = small_fs / "s"
    w = make_writer(session, background=True)
    ids = [record_episode(w, seed) for seed in range(3)]
    w.flush()
    w.add_label(Label(ids[0], 1, 2, source="human", reason="review"))
    _fill(small_fs)
    with pytest.raises(StorageError, match="No space left on device"):
        for seed in range(3, 200):
            record_episode(w, seed)
            w.add_label(Label(ids[0], 2, 1, source="human", reason="review"))
        w.flush()
    try:
        w.close()  # may re-raise a second queued write that failed too; the lock goes either way
    except StorageError:
        pass
    (small_fs / "filler").unlink()
    assert _leftovers(small_fs) == []
    rec = open_recording(session)
    assert rec.episode_ids()[:3] == ids
    assert [lab.step for lab in rec.load_episode(ids[0]).labels if lab.source == "human"][0] == 1


@pytest.mark.slow
def test_train_bc_out_on_a_full_tmpfs_leaves_no_temp(small_fs, tmp_path):
    from tests.support.recordings import make_session

    data = make_session(tmp_path / "data", range(4))
    _fill(small_fs, leave=8 * 1024)
    res = _cli("train", "bc", "--data", str(data), "--out", str(small_fs / "run"), "--epochs", "1",
               "--hidden", "256,256", "--quiet", cwd=tmp_path)
    assert "No space left on device" in _one_error_line(res)
    assert _leftovers(small_fs) == []
    run = small_fs / "run"
    names = sorted(p.name for p in run.iterdir()) if run.exists() else []
    assert "weights.pt" not in names or "config.json" in names
