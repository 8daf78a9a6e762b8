"""The one-shot mode driven headless: a simulated person records a demo, then the policy runs."""

import numpy as np
import pytest

from app.input.intents import Intent, IntentKind
from app.modes.oneshot import OneShotMode
from ilcore.algos.oneshot import OneShotConfig, collect_expert_demos, demos_from_recording, train_oneshot
from ilcore.envs.particles import task_list, task_split
from ilcore.experts.particles import ParticleSequenceExpert


@pytest.fixture(scope="module")
def tiny_policy():
    # The mode's plumbing is under test here, not the learning (tests/ilcore/algos covers that).
    demos = collect_expert_demos(task_split()["train"][:4], 2, seed=0)
    return train_oneshot(demos, OneShotConfig(steps=5, hidden=(16,), encoder_hidden=16)).policy


def drive(mode: OneShotMode, frames: int, expert: ParticleSequenceExpert | None = None) -> None:
    for _ in range(frames):
        if expert is not None and mode.phase == "record":
            mode.handle(Intent(IntentKind.MOVE, expert.act(mode._current)))
        mode.update(1 / 15)


def test_record_a_demo_then_watch_the_policy(tmp_path, tiny_policy):
    mode = OneShotMode(None, policy=tiny_policy, out=tmp_path, watch_episodes=2)
    first = mode.task_id
    assert first in task_split()["held_out"]
    mode.handle(Intent(IntentKind.STEP_FORWARD))
    assert mode.task_id != first
    assert "Show the task" in mode.view().prompt
    mode.update(1.0)
    assert mode.phase == "record" and mode._actions == []  # nothing moves before the first key

    expert = ParticleSequenceExpert(mode.env.action_space, task=task_list()[mode.task_id])
    drive(mode, 200, expert)
    assert mode.demo is not None and mode.demo.task_id == mode.task_id
    assert len(mode.demos_saved) == 1
    saved, _ = demos_from_recording(mode.demos_saved[0])
    assert saved[0].task_id == mode.task_id
    np.testing.assert_array_equal(saved[0].actions, mode.demo.actions)

    drive(mode, 400)  # the policy drives; two episodes at most 70 steps each
    assert mode.phase == "watch" and len(mode.results) == 2
    view = mode.view()
    assert view.driver == "learner" and view.frame is not None and view.frame.dtype == np.uint8

    mode.handle(Intent(IntentKind.RESTART))
    assert mode.phase == "record" and mode.waiting_for_start
    mode.handle(Intent(IntentKind.NEXT))
    assert mode.finished


def test_a_demo_that_runs_out_of_time_is_not_kept(tmp_path, tiny_policy):
    mode = OneShotMode(None, policy=tiny_policy, out=tmp_path)
    mode.handle(Intent(IntentKind.MOVE, np.zeros(2, np.float32)))  # holds still: never reaches anything
    drive(mode, 100)
    assert mode.demo is None and mode.demos_saved == [] and mode.phase == "record"
    assert "try again" in mode.message
