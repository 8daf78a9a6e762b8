"""The one-shot mode on a fake session, its session on the real particle env, and the whole app."""

import numpy as np
import pytest

from app.input.intents import Intent, IntentKind
from app.modes.oneshot import OneShotMode
from app.session import OneShotSession, OneShotSettings
from ilcore.algos.oneshot import OneShotConfig, collect_expert_demos, demos_from_recording, train_oneshot
from ilcore.envs.particles import task_list, task_split

from tests.support.app_fakes import FakeOneShotSession

RIGHT = np.array([1.0, 0.0], np.float32)


@pytest.fixture(scope="module")
def tiny_policy():
    # The mode's plumbing is under test here, not the learning (tests/ilcore/algos covers that).
    demos = collect_expert_demos(task_split()["train"][:4], 2, seed=0)
    return train_oneshot(demos, OneShotConfig(steps=5, hidden=(16,), encoder_hidden=16)).policy


def drive(mode: OneShotMode, frames: int, action: np.ndarray | None = None) -> None:
    for _ in range(frames):
        if action is not None and mode.phase == "record":
            mode.handle(Intent(IntentKind.MOVE, action))
        mode.update(1 / 15)


def test_record_a_demo_then_watch_the_policy(tmp_path):
    session = FakeOneShotSession(watch_episodes=2, out=tmp_path)
    mode = OneShotMode(session)
    first = mode.task_id
    assert first == session.task_order[0]
    mode.handle(Intent(IntentKind.STEP_FORWARD))
    assert mode.task_id == session.task_order[1] and session.resets == [first, mode.task_id]
    assert "Show the task: visit 3 then 0 then 1" == mode.view().prompt
    mode.handle(Intent(IntentKind.STEP_BACK))
    mode.handle(Intent(IntentKind.STEP_BACK))
    assert mode.task_id == session.task_order[-1]  # the choice wraps around
    mode.update(1.0)
    assert mode.phase == "record" and mode._actions == []  # nothing moves before the first key

    drive(mode, 3, RIGHT)  # three steps right reach the goal: the demo is kept
    assert mode.demo is session.kept[0] and mode.demo.task_id == mode.task_id and mode.demo.length == 3
    assert mode.demos_saved == [tmp_path / "oneshot-demo-001"]
    np.testing.assert_array_equal(mode.demo.actions, [RIGHT] * 3)
    assert mode.phase == "watch" and "demo kept (3 steps)" in mode.message

    drive(mode, 20)  # the policy drives; it repeats the demo's action, so both episodes succeed
    assert len(mode.results) == 2 and all(mode.results)
    assert mode.history == [(mode.task_id, 2, 2)] and "2 of 2 times" in mode.message
    view = mode.view()
    assert view.driver == "learner" and view.frame is not None and view.frame.dtype == np.uint8
    assert view.progress == 1.0 and view.items == ["oneshot-demo-001"]

    mode.handle(Intent(IntentKind.RESTART))
    assert mode.phase == "record" and mode.waiting_for_start and mode.demo is None
    mode.handle(Intent(IntentKind.NEXT))
    assert mode.finished


def test_a_demo_that_runs_out_of_time_is_not_kept():
    session = FakeOneShotSession(horizon=10)
    mode = OneShotMode(session)
    mode.handle(Intent(IntentKind.MOVE, np.zeros(2, np.float32)))  # holds still: never reaches the goal
    drive(mode, 12)
    assert mode.demo is None and session.kept == [] and mode.phase == "record"
    assert "try again" in mode.message and mode.waiting_for_start


def test_pause_stops_the_steps_in_either_phase():
    mode = OneShotMode(FakeOneShotSession())
    mode.handle(Intent(IntentKind.MOVE, RIGHT))
    mode.handle(Intent(IntentKind.PAUSE))
    drive(mode, 5)
    assert mode._actions == [] and mode.view().prompt == "Paused"
    mode.handle(Intent(IntentKind.PAUSE))
    drive(mode, 1)
    assert len(mode._actions) == 1


def test_the_session_plays_the_particle_task_and_writes_a_kept_demo(tmp_path, tiny_policy):
    session = OneShotSession(tiny_policy, tmp_path, OneShotSettings(seed=1))
    try:
        assert session.task_order[:len(task_split()["held_out"])] == task_split()["held_out"]
        assert session.tasks == [tuple(t) for t in task_list()]
        task_id = session.task_order[0]
        expert = session.expert_for(task_id)
        observations, actions = [session.reset_env(task_id)], []
        done = success = False
        while not done:
            actions.append(expert.act(observations[-1]))
            obs, done, success = session.step(actions[-1])
            observations.append(obs)
        assert success
        demo, path = session.keep_demo(observations, actions, task_id)
        assert path == tmp_path / "oneshot-demo-001"
        saved, _ = demos_from_recording(path)
        assert saved[0].task_id == task_id and saved[0].task == tuple(task_list()[task_id])
        np.testing.assert_array_equal(saved[0].actions, demo.actions)
        assert session.keep_demo(observations, actions, task_id)[1] == tmp_path / "oneshot-demo-002"
        assert session.conditioned(demo).act(observations[0]).shape == (2,)
        assert session.render().dtype == np.uint8
    finally:
        session.close()


# -- the whole app: `python -m app --oneshot RUN` -------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_policy):
    """A folder as `ilcore train oneshot` writes it."""
    from ilcore.algos.oneshot import save_policy

    return save_policy(tiny_policy, tmp_path_factory.mktemp("oneshot") / "run")


@pytest.mark.slow
def test_main_oneshot_simulated_records_a_demo_and_watches(tmp_path, tiny_run, capsys):
    from app.__main__ import main
    from ilcore.data import open_recording

    out = tmp_path / "demos"
    task = task_split()["train"][2]
    rc = main(["--oneshot", str(tiny_run), "--simulate", "--task", str(task), "--watch-episodes", "2", "--out", str(out), "--frames", "4000"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    episodes = list(open_recording(out / "oneshot-demo-001").episodes())
    assert len(episodes) == 1
    assert episodes[0].meta.attrs["task_id"] == task
    assert list(episodes[0].meta.attrs["task"]) == list(task_list()[task])
    assert episodes[0].length > 0
    assert "wrote 1 one-shot demos" in printed
    assert f"task {task}: the policy finished it " in printed and " of 2 times" in printed  # both watch episodes ran


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--oneshot", "{missing}"], "no such folder"),
        (["--oneshot", "{empty}"], "is not a one-shot policy folder"),
        (["--oneshot", "{run}", "--task", "999"], "--task must be a task id"),
        (["--task", "1"], "--task only applies with --oneshot"),
    ],
)
def test_main_oneshot_bad_arguments_are_one_error_line(tmp_path, tiny_run, capsys, extra, fragment):
    from app.__main__ import main

    (tmp_path / "empty").mkdir()
    paths = {"missing": tmp_path / "nope", "empty": tmp_path / "empty", "run": tiny_run}
    argv = [a.format(**paths) for a in extra] + ["--simulate", "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and fragment in err[0]
    assert not (tmp_path / "out").exists()


def test_keys_drive_the_oneshot_window_and_help_lists_its_keys(tmp_path, tiny_policy):
    """Posted key events through the real loop, keyboard device and renderer (as main wires them)."""
    import pygame

    from app.input.gamepad import GamepadDevice, default_gamepad_config
    from app.input.keyboard import KeyboardDevice
    from app.input.keymaps import default_keymap
    from app.loop import AppLoop
    from app.modes.manager import OneShotManager
    from app.render.renderer import Renderer
    from app.render.theme import WINDOW_SIZE
    from ilcore.envs.particles import ENV_ID

    from tests.support.app_harness import press, release

    pygame.init()
    session = OneShotSession(tiny_policy, tmp_path, OneShotSettings(watch_episodes=1), policy_name="tiny")
    try:
        space = session.action_space
        keymap = default_keymap(ENV_ID, space)
        manager = OneShotManager(session)
        mode = manager.mode
        loop = AppLoop(manager, [KeyboardDevice(keymap), GamepadDevice(default_gamepad_config(space), space)],
                       Renderer(pygame.display.set_mode(WINDOW_SIZE)), keymap=keymap, fps=60, realtime=False)
        pygame.event.clear()
        manager.start()
        first = mode.task_id

        press(pygame.K_PERIOD)  # step_forward: the next task, before the first move
        press(pygame.K_F1)
        loop.frame()
        assert mode.task_id != first and manager.help_visible
        entries = dict(loop.help_entries())
        assert entries["."] == "next task (before starting)" and entries["R"] == "record another demo"
        assert entries["\u2190 / A"] == "move left" and entries["\u2191+\u2192 / W+D"] == "move up-right"  # each action by name
        assert "F2-F7" not in entries  # no DAgger plan to jump around in
        press(pygame.K_F1)
        loop.frame()
        assert not manager.help_visible

        press(pygame.K_UP)
        press(pygame.K_LEFT)
        for _ in range(8):
            loop.frame()
        assert not mode.waiting_for_start and len(mode._actions) >= 1
        np.testing.assert_allclose(mode._actions[-1], [-np.sqrt(0.5), np.sqrt(0.5)], atol=1e-6)  # a unit diagonal
        hud = manager.hud(60.0, loop.device_names())
        assert hud.recording and hud.policy == "tiny" and manager.transitions == ["oneshot"]
        release(pygame.K_LEFT)
        for _ in range(4):
            loop.frame()
        np.testing.assert_allclose(mode._actions[-1], [0.0, 1.0])
        press(pygame.K_p)
        loop.frame()
        steps = len(mode._actions)
        for _ in range(8):
            loop.frame()
        assert mode.paused and len(mode._actions) == steps and mode.view().prompt == "Paused"
        press(pygame.K_ESCAPE)
        loop.run(max_frames=100)
        assert manager.quit_requested
    finally:
        session.close()
        pygame.event.clear()


def test_main_oneshot_without_a_display_says_so_in_one_line(tmp_path):
    import subprocess
    import sys

    from tests.support.app_harness import ROOT, app_env

    proc = subprocess.run([sys.executable, "-m", "app", "--oneshot", str(tmp_path)], cwd=ROOT, env=app_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "display" in lines[0] and f"--oneshot {tmp_path} --simulate" in lines[0]
