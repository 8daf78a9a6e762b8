"""Watch-only demonstrations: driven like demos, saved observation-only, ending in a summary.

The in-process tests post key events through the real loop (as tests/app/test_flow.py does);
the end-to-end test runs `python -m app --watch-only --simulate` as a person would and feeds the
recording to the exact `ilcore train bco` command the app prints.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import pygame
import pytest

from app.__main__ import main as app_main
from app.input.gamepad import GamepadDevice, default_gamepad_config
from app.input.keyboard import KeyboardDevice
from app.input.keymaps import default_keymap
from app.loop import AppLoop
from app.modes.manager import WatchOnlyManager
from app.render.renderer import Renderer
from app.render.theme import WINDOW_SIZE
from app.session import Session, SessionSettings
from ilcore.cli.main import main as ilcore_main
from ilcore.data import open_recording

from tests.support.app_harness import ROOT, Harness, app_env, press, release, tap


@pytest.fixture
def make_watch_only(tmp_path: Path):
    """A watch-only app on CartPole, headless, with the real loop, keyboard and renderer."""
    made: list[Harness] = []

    def build(out: Path | None = None, *, resume: bool = False, **settings: Any) -> Harness:
        pygame.init()
        values = dict(demo_episodes=2, max_episode_steps=20, seed=0, watch_only=True)
        values.update(settings)
        session = Session(out or tmp_path / "watch", None if resume else SessionSettings(**values), resume=resume)
        space = session.env.action_space
        keymap = default_keymap(session.settings.env_id, space)
        pad = GamepadDevice(default_gamepad_config(space), space)
        manager = WatchOnlyManager(session)
        loop = AppLoop(manager, [KeyboardDevice(keymap), pad], Renderer(pygame.display.set_mode(WINDOW_SIZE)),
                       keymap=keymap, fps=60, realtime=False)
        pygame.event.clear()
        manager.start()
        h = Harness(session, manager, loop, keymap, pad)  # type: ignore[arg-type]
        made.append(h)
        return h

    yield build
    for h in made:
        h.session.close()
    if pygame.display.get_init():
        pygame.event.clear()


def observation_only_flags(session_dir: Path) -> list[bool]:
    """The format's per-episode observation_only attribute, read straight from the HDF5 files."""
    flags = []
    for path in sorted((session_dir / "episodes").glob("*.h5")):
        with h5py.File(path, "r") as f:  # an episode file's root is the episode group (docs/format.md)
            flags.append(bool(f.attrs.get("observation_only", False)) and "actions" not in f)
    return flags


def test_watch_only_keys_work_as_in_demonstrate_and_nothing_but_observations_is_saved(make_watch_only):
    h = make_watch_only()
    assert h.mode.name == "watch_only"
    hud = h.manager.hud(60.0, ["keyboard"])
    assert "actions not recorded" in hud.alert and not hud.recording  # not started: waits for the first key
    h.frames(10)
    assert h.mode.driver.length == 0
    press(pygame.K_RIGHT)
    h.until(lambda: h.mode.driver.length >= 3)
    hud = h.manager.hud(60.0, ["keyboard"])
    assert hud.recording and "observations only" in hud.recording_label
    assert "NOT RECORDED" in h.mode.view().driver.upper()  # the badge on the frame says it too
    tap(h, pygame.K_p)  # pause
    frozen = h.mode.driver.length
    h.frames(20)
    assert h.mode.driver.length == frozen
    tap(h, pygame.K_p)
    tap(h, pygame.K_r)  # restart: the unfinished episode is dropped
    assert h.mode.driver.length < frozen
    h.until(lambda: h.session.round_episodes == 1)
    release(pygame.K_RIGHT)
    tap(h, pygame.K_BACKSPACE)  # discard the finished one: moved out of the loaded set
    assert h.session.round_episodes == 0
    tap(h, pygame.K_F1)
    help_text = " ".join(desc for _, desc in h.loop.help_entries())
    assert "NOT saved" in help_text and "no DAgger" in help_text
    h.frames(2)  # the overlay draws
    tap(h, pygame.K_F1)
    press(pygame.K_LEFT)
    h.until(lambda: h.session.round_episodes == 1)
    release(pygame.K_LEFT)  # each episode starts on a fresh key, as in demonstrate
    h.frames(1)
    press(pygame.K_LEFT)
    h.until(lambda: h.manager.waiting)  # two kept episodes end the recording; the person moves on
    tap(h, pygame.K_RETURN)
    assert h.mode.name == "summary"
    release(pygame.K_LEFT)
    h.frames(3)  # the summary draws
    assert h.manager.transitions == ["watch_only", "summary"]

    rec = open_recording(h.session.path)
    episodes = list(rec.episodes())
    assert len(episodes) == 2
    for ep in episodes:
        assert ep.actions is None and ep.actors is None and ep.labels == ()
        assert ep.total_return == float(ep.length) > 0  # CartPole pays 1 per step; rewards are kept
        assert ep.terminated or ep.truncated  # finished episodes, not autosaves
        assert ep.meta.attrs["watch_only"] is True and ep.meta.attrs["demonstrator"] == "human"
    assert observation_only_flags(h.session.path) == [True, True]
    assert h.session.totals().labels == 0 and h.session.policy is None
    assert len(list((h.session.path / "discarded").glob("*.h5"))) == 1

    view = h.mode.view()
    assert dict(view.lines)["observation-only episodes"] == "2"
    body = [text for _, text in view.body]
    assert f"ilcore train bco --data {h.session.path} --out runs/watch-bco" in body
    summary = json.loads((h.session.path / "summary.json").read_text())
    assert summary["observation_only_episodes"] == 2 and summary["steps"] == sum(ep.length for ep in episodes)


def test_a_watch_only_session_resumes_as_watch_only(make_watch_only, tmp_path):
    out = tmp_path / "resumed"
    h = make_watch_only(out)
    press(pygame.K_RIGHT)
    h.until(lambda: h.session.round_episodes == 1)
    release(pygame.K_RIGHT)
    h.session.close()  # as if the app was closed mid-session
    h2 = make_watch_only(out, resume=True)  # no --watch-only needed: the session knows what it is
    assert h2.session.settings.watch_only and h2.mode.name == "watch_only"
    assert h2.session.round_episodes == 1
    press(pygame.K_RIGHT)
    h2.until(lambda: h2.manager.waiting)
    release(pygame.K_RIGHT)
    tap(h2, pygame.K_RETURN)
    assert h2.mode.name == "summary"
    assert observation_only_flags(out) == [True, True]


def test_watch_only_with_oneshot_or_resuming_a_dagger_session_is_one_error_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")  # app main sets it with setdefault; keep it scoped to this test
    monkeypatch.setenv("SDL_AUDIODRIVER", "dummy")
    assert app_main(["--watch-only", "--simulate", "--oneshot", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "--watch-only" in err[0] and "--oneshot" in err[0]

    normal = tmp_path / "dagger-session"
    Session(normal, SessionSettings(demo_episodes=1, max_episode_steps=20)).close()
    state_before = (normal / "app_state.json").read_text()
    assert app_main(["--watch-only", "--simulate", "--resume", str(normal)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "--watch-only" in err[0] and str(normal) in err[0]
    assert (normal / "app_state.json").read_text() == state_before
    assert not list((normal / "episodes").glob("*.h5"))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The inverse dynamics model learned little")  # a 1-epoch IDM, on purpose
def test_simulated_watch_only_session_end_to_end_feeds_the_printed_bco_command(tmp_path, monkeypatch, capsys):
    out = tmp_path / "wo"
    proc = subprocess.run(
        [sys.executable, "-m", "app", "--watch-only", "--simulate", "--out", str(out), "--demos", "3", "--max-episode-steps", "40"],
        cwd=ROOT, env=app_env(), capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"wrote 3 observation-only episodes (120 steps, no actions) to {out}" in proc.stdout
    assert not (out / "policies").exists()  # no training happened

    rec = open_recording(out)
    assert len(rec.episode_ids()) == 3
    assert all(ep.actions is None and ep.labels == () for ep in rec.episodes())
    assert all(ep.meta.attrs["demonstrator"] == "simulated" for ep in rec.episodes())
    assert observation_only_flags(out) == [True, True, True]

    # The exact command the app printed, with a tiny budget added, accepts the recording.
    line = next(ln for ln in proc.stdout.splitlines() if "ilcore train bco" in ln)
    argv = shlex.split(line[line.index("ilcore train bco"):])[1:]
    monkeypatch.chdir(tmp_path)  # the printed --out is relative (runs/NAME-bco)
    tiny = ["--pre-demo-steps", "200", "--epochs", "1", "--idm-epochs", "1", "--eval-episodes", "0", "--quiet", "--json"]
    assert ilcore_main(argv + tiny) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["env_id"] == "CartPole-v1" and result["demo_steps"] == 120  # every (s, s') pair of the 3 episodes
    run = tmp_path / "runs" / "wo-bco"
    assert json.loads((run / "bco.json").read_text())["trained_on"] == [str(out)]
