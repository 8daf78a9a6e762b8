"""Reopening a session for writing: refusals release the lock, a killed writer's temp files go,
unreadable autosaves are set aside in corrupt/ (with a message), never promoted."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from gymnasium import spaces

from ilcore.data import SessionWriter, open_recording
from ilcore.data import format as fmt
from ilcore.errors import SpaceMismatchError, UserError
from tests.support.recordings import ACT_SPACE, ENV_ID, OBS_SPACE, make_session, make_writer, record_episode


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("kind", ["env", "observation", "action"])
def test_a_refused_resume_releases_the_lock(tmp_path, kind):
    session = make_session(tmp_path / "s", [0])
    kw = dict(env_id=ENV_ID, observation_space=OBS_SPACE, action_space=ACT_SPACE)
    if kind == "env":
        kw["env_id"] = "Other-v0"
    elif kind == "observation":
        kw["observation_space"] = spaces.Box(-1, 1, (5,), np.float32)
    else:
        kw["action_space"] = spaces.Discrete(7)
    with pytest.raises(SpaceMismatchError):
        SessionWriter(session, resume=True, **kw)
    assert not (session / fmt.LOCK_FILE).exists()
    with make_writer(session, resume=True) as w:  # and a matching resume still works
        record_episode(w, 1)


def test_a_failure_after_taking_the_lock_releases_it(tmp_path, monkeypatch):
    session = make_session(tmp_path / "s", [0])

    def boom(self):
        raise UserError("scan failed")

    monkeypatch.setattr(SessionWriter, "_scan_next_index", boom)
    with pytest.raises(UserError, match="scan failed"):
        make_writer(session, resume=True, background=True)
    assert not (session / fmt.LOCK_FILE).exists()


def test_a_refused_new_session_leaves_no_half_made_folder(tmp_path, monkeypatch):
    from ilcore.data import format as format_module

    def boom(path, obj):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(format_module, "write_json_atomic", boom)
    with pytest.raises(OSError):
        make_writer(tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_stale_temp_files_of_a_killed_writer_are_removed_on_open(tmp_path):
    session = make_session(tmp_path / "s", [0])
    pid = _dead_pid()
    stale = [session / fmt.EPISODES_DIR / f"ep_000001.h5.{pid}.tmp",
             session / fmt.EPISODES_DIR / f"ep_000001.partial.h5.{pid}.tmp",
             session / f"session.json.{pid}.tmp"]
    for p in stale:
        p.write_bytes(b"half")
    keep = session / "notes.tmp"  # not a writer's temp name: left alone
    keep.write_text("mine")
    with make_writer(session, resume=True):
        pass
    assert not any(p.exists() for p in stale)
    assert keep.exists()


def _partial(session, writer_seed: int, steps: int):
    """Leave an autosave as a killed writer would: the episode file under its partial name."""
    with make_writer(session, resume=True) as w:
        rec = record_episode(w, writer_seed, finish=False, steps=steps)
        rec.save_progress()
        w.flush()
        data = (session / fmt.EPISODES_DIR / f"{rec.episode_id}{fmt.PARTIAL_SUFFIX}").read_bytes()
        rec.discard()
    return rec.episode_id, data


def test_a_readable_autosave_becomes_an_incomplete_episode(tmp_path):
    session = make_session(tmp_path / "s", [0])
    ep, data = _partial(session, 1, 4)
    (session / fmt.EPISODES_DIR / f"{ep}{fmt.PARTIAL_SUFFIX}").write_bytes(data)
    with make_writer(session, resume=True) as w:
        assert w.recovery_messages == []
    episode = open_recording(session).load_episode(ep)
    assert episode.meta.attrs["incomplete"] and len(episode.actions) == 4


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_corrupt_autosave_is_moved_to_corrupt_and_never_promoted(tmp_path, damage):
    session = make_session(tmp_path / "s", [0])
    ep, data = _partial(session, 1, 6)
    bad = {"truncated": data[: len(data) // 2], "garbage": b"\x89HDF\r\n" + bytes(range(256)) * 8,
           "empty": b""}[damage]
    (session / fmt.EPISODES_DIR / f"{ep}{fmt.PARTIAL_SUFFIX}").write_bytes(bad)
    with make_writer(session, resume=True) as w:
        assert len(w.recovery_messages) == 1 and "corrupt" in w.recovery_messages[0]
        new = record_episode(w, 2)
    assert new != ep  # the set-aside episode's id is not reused
    assert (session / fmt.CORRUPT_DIR / f"{ep}{fmt.PARTIAL_SUFFIX}").read_bytes() == bad
    rec = open_recording(session)
    assert rec.episode_ids() == ["ep_000000", new]
    assert len(list(rec.episodes())) == 2  # every reader still opens the whole session


def test_an_autosave_of_another_space_is_set_aside(tmp_path):
    session = make_session(tmp_path / "s", [0])
    with SessionWriter(tmp_path / "x", env_id=ENV_ID, observation_space=spaces.Box(-1, 1, (2,), np.float32),
                       action_space=ACT_SPACE) as w:
        rec = w.begin_episode(np.zeros(2, np.float32))
        rec.step(0, 1, 0.0, False, False, np.zeros(2, np.float32))
        rec.save_progress()
        w.flush()
        foreign = (tmp_path / "x" / fmt.EPISODES_DIR / f"{rec.episode_id}{fmt.PARTIAL_SUFFIX}").read_bytes()
        rec.discard()
    (session / fmt.EPISODES_DIR / f"ep_000001{fmt.PARTIAL_SUFFIX}").write_bytes(foreign)
    with make_writer(session, resume=True) as w:
        assert len(w.recovery_messages) == 1
    assert open_recording(session).episode_ids() == ["ep_000000"]
