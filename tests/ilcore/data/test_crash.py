"""Crash safety: real writer processes killed with SIGKILL at random moments."""

import multiprocessing
import os
import signal
import time

import numpy as np
import pytest

from ilcore.data import open_recording
from tests.support.recordings import assert_episode, make_writer, record_episode

FORK = multiprocessing.get_context("fork")


def _writer_loop(path, journal, autosave_interval, slow):
    """Record synthetic episodes forever; after each finish() returns, append its id to the journal."""
    with make_writer(path, resume=True, autosave_interval=autosave_interval) as w:
        while True:
            hook = (lambda t: time.sleep(0.002)) if slow else None
            eid = record_episode(w, w._next_index, step_hook=hook)
            with open(journal, "a") as fh:
                fh.write(eid + "\n")


def _ids_on_disk(path):
    return sorted(n[:-3] for n in os.listdir(path / "episodes") if n.endswith(".h5") and ".partial" not in n)


@pytest.mark.slow
def test_sigkill_at_random_points_loses_at_most_the_episode_in_progress(tmp_path):
    path, journal = tmp_path / "s", tmp_path / "journal"
    make_writer(path).close()
    rng = np.random.default_rng(0)
    kills = 0
    lost_total = 0
    for kills in range(1, 25):
        slow = kills % 2 == 0  # alternate: fast episodes (kills land in file writes) and slow ones (in autosaves)
        proc = FORK.Process(target=_writer_loop, args=(path, journal, 0.01, slow))
        proc.start()
        time.sleep(float(rng.uniform(0.15, 0.5)))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        assert proc.exitcode == -signal.SIGKILL
        # The next writer takes over the dead one's lock and turns its autosave into an incomplete episode.
        with make_writer(path, resume=True) as w:
            next_index = w._next_index
        on_disk = set(_ids_on_disk(path))
        journaled = set(journal.read_text().split()) if journal.exists() else set()
        assert journaled <= on_disk  # every episode whose finish() returned survived
        lost = {f"ep_{i:06d}" for i in range(next_index)} - on_disk
        lost_total += len(lost)
    rec = open_recording(path)
    episodes = list(rec.episodes())
    assert len(episodes) >= 20
    incomplete = 0
    for ep in episodes:  # every file opens and holds exactly what was recorded
        assert_episode(ep)
        incomplete += bool(ep.meta.attrs["incomplete"])
    # Lost ids are those begun but killed before their first autosave: at most one per kill.
    assert lost_total <= kills
    assert incomplete >= 1  # autosaves did rescue episodes in progress
    assert not list((path / "episodes").glob("*.tmp"))


def test_partial_episode_becomes_incomplete_on_resume(tmp_path):
    path = tmp_path / "s"
    pid_ready = FORK.Event()

    def child():
        with make_writer(path, autosave_interval=None) as w:
            record_episode(w, 3)
            rec = record_episode(w, 10, finish=False, steps=7)
            rec.save_progress()
            pid_ready.set()
            time.sleep(60)

    proc = FORK.Process(target=child)
    proc.start()
    assert pid_ready.wait(30)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert (path / "episodes" / "ep_000001.partial.h5").exists()
    assert open_recording(path).episode_ids() == ["ep_000000"]  # readers ignore partial files
    with make_writer(path, resume=True) as w:  # stale lock of the dead pid is taken over
        assert w.episode_ids() == ["ep_000000", "ep_000001"]
        record_episode(w, 5)
    rec = open_recording(path)
    ep = rec.load_episode("ep_000001")
    assert ep.length == 7 and ep.meta.attrs["incomplete"] and not ep.terminated and not ep.truncated
    assert_episode(ep)
    assert rec.info()["incomplete_episodes"] == 1
    assert rec.episode_ids() == ["ep_000000", "ep_000001", "ep_000002"]


def test_reader_process_loads_finished_episodes_while_writer_appends(tmp_path):
    from ilcore.data import load_transitions

    path = tmp_path / "s"
    make_writer(path).close()
    done = FORK.Event()

    def writer():
        with make_writer(path, resume=True, background=True) as w:
            for seed in range(40):
                record_episode(w, seed, step_hook=lambda t: time.sleep(0.0005))
        done.set()

    proc = FORK.Process(target=writer)
    proc.start()
    rec = open_recording(path)
    seen = []
    while not done.is_set() or len(seen) < 2:
        rec.refresh()
        ids = rec.episode_ids()
        seen.append(len(ids))
        data = load_transitions(rec, valid_fraction=0.0)
        assert len(data) == sum(int(s.split("_")[1]) % 23 + 5 for s in ids)
        for eid in ids[-2:]:
            assert_episode(rec.load_episode(eid), allow_incomplete=False)
        if done.is_set():
            break
    proc.join()
    assert seen == sorted(seen)  # the set only grows
    rec.refresh()
    assert len(rec.episode_ids()) == 40
    assert seen[0] < 40  # the reader really ran while the writer was still writing


def test_closing_drops_an_episode_that_never_took_a_step(tmp_path):
    # The app begins an episode when demonstrate mode opens; quitting before the first key used
    # to leave a 0-step "incomplete" episode that a resumed session counted as a demonstration.
    path = tmp_path / "s"
    with make_writer(path, autosave_interval=None) as w:
        record_episode(w, 3)
        record_episode(w, 4, finish=False, steps=0)
        record_episode(w, 5, finish=False, steps=2)
    rec = open_recording(path)
    assert rec.episode_ids() == ["ep_000000", "ep_000002"]
    assert rec.load_episode("ep_000002").meta.attrs["incomplete"]
    assert not list((path / "episodes").glob("*.partial.h5"))
