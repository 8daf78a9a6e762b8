"""The whole app flow, headless: events posted to pygame go through the real loop."""

from __future__ import annotations

import numpy as np
import pygame
import pytest

from ilcore.data import open_recording
from ilcore.types import Actor

from tests.support.app_harness import go_on, press, release, tap, train_in_process


def labels_by_reason(path):
    rec = open_recording(path)
    out: dict[str, list] = {}
    for ep in rec.episodes():
        for lab in ep.effective_labels().values():
            out.setdefault(lab.reason, []).append((ep, lab))
    return out


def test_demonstrate_with_keys_pause_restart_discard_then_train(make_app):
    h = make_app(demo_episodes=2, max_episode_steps=30)
    assert h.mode.name == "demo"
    h.frames(20)
    assert h.mode.driver.length == 0  # waits for the person's first key
    press(pygame.K_RIGHT)
    h.until(lambda: h.mode.driver.length >= 3)
    tap(h, pygame.K_p)  # pause
    frozen = h.mode.driver.length
    h.frames(30)
    assert h.mode.driver.length == frozen and h.mode.view().paused
    tap(h, pygame.K_p)
    tap(h, pygame.K_r)  # restart: the unfinished episode is dropped (the held key drives the new one)
    assert h.mode.driver.length < frozen
    h.until(lambda: h.session.round_episodes == 1)
    release(pygame.K_RIGHT)
    tap(h, pygame.K_BACKSPACE)  # discard the finished demo
    assert h.session.round_episodes == 0
    tap(h, pygame.K_F1)
    assert h.manager.help_visible
    h.frames(2)  # the overlay draws
    tap(h, pygame.K_F1)
    press(pygame.K_LEFT)
    h.until(lambda: h.session.round_episodes == 1)
    press(pygame.K_RIGHT)  # left+right held: the arrows alternate as the person plays
    release(pygame.K_LEFT)
    # the last demonstration done, the stage waits for the person: a moment to discard it first
    h.until(lambda: h.manager.waiting)
    release(pygame.K_RIGHT)
    view = h.manager.view()
    assert view.prompt.endswith("done") and "Backspace" in view.prompt_detail and "Next: training" in view.prompt_detail
    h.frames(30)
    assert h.mode.name == "demo"  # nothing moves on by itself
    tap(h, pygame.K_RETURN)
    assert h.mode.name == "train"
    h.session.writer.flush()
    rec = open_recording(h.session.path)
    assert len(rec.episode_ids()) == 2  # the discarded one is out of the loaded set
    for ep in rec.episodes():
        labels = ep.effective_labels()
        assert len(labels) == ep.length
        assert set(ep.actors.tolist()) == {int(Actor.HUMAN)}
        for step, lab in labels.items():
            assert (lab.reason, lab.source) == ("demo", "human")
            assert lab.action == ep.actions[step]  # a demo's label is what the person did
    assert h.manager.transitions[:2] == ["demo", "train"]
    assert h.loop.stats.input_events == h.loop.stats.input_events_handled > 0


@pytest.mark.slow
def test_dagger_round_live_queries_takeover_undo_then_deferred_review(make_app):
    # gate "all" asks at every learner state, so every step is a query: round 1 live, round 2 deferred
    h = make_app(demo_episodes=1, rounds=2, query="all", query_mode="mixed", max_episode_steps=25, epochs=3)
    press(pygame.K_RIGHT)
    h.until(lambda: h.manager.waiting)
    release(pygame.K_RIGHT)
    tap(h, pygame.K_RETURN)
    # background training in its own process; the frames keep coming while it runs
    frames = h.until(lambda: h.manager.waiting, max_frames=20000)
    assert frames > 1 and h.session.state.policy_version == 1
    assert h.loop.stats.frames > frames
    tap(h, pygame.K_RETURN)
    assert h.mode.name == "dagger" and h.mode.waiting_for_start  # no round runs before the person starts it
    h.frames(20)
    assert h.mode.driver.length == 0 and "Enter starts it" in h.mode.view().prompt_detail
    tap(h, pygame.K_RETURN)

    # pause on the query: the episode does not move until the person answers
    h.until(lambda: h.mode.pending is not None)
    h.frames(20)
    assert h.mode.driver.length == 0 and h.mode.view().prompt
    tap(h, pygame.K_LEFT)  # answer: label 0
    h.until(lambda: h.mode.pending is not None and h.mode.driver.length == 1)
    tap(h, pygame.K_RETURN)  # accept the learner's proposal
    h.until(lambda: h.mode.pending is not None and h.mode.driver.length == 2)
    tap(h, pygame.K_RIGHT)  # answer with 1, then undo it
    h.until(lambda: h.mode.driver.length == 3)
    tap(h, pygame.K_z)
    # take over: hold space and drive right for a few steps
    press(pygame.K_SPACE)
    press(pygame.K_RIGHT)
    h.until(lambda: h.mode.driver.length >= 7)
    release(pygame.K_RIGHT)
    release(pygame.K_SPACE)
    h.frames(1)
    assert not h.mode.taking_over
    while h.mode.name == "dagger" and not h.manager.waiting:
        if h.mode.pending is not None:
            tap(h, pygame.K_TAB)  # skip: goes to the review queue
        else:
            h.frames(1)
    assert "deferred to review" in h.manager.view().prompt_detail
    h.session.writer.flush()
    first = open_recording(h.session.path).load_episode("ep_000001")
    labels = first.effective_labels()
    assert labels[0].action == 0 and labels[0].reason == "all" and labels[0].source == "human"
    assert labels[0].latency_ms > 0
    assert 2 not in labels  # undone
    assert first.actors[0] == int(Actor.LEARNER)
    interventions = [s for s, lab in labels.items() if lab.reason == "intervention"]
    assert len(interventions) >= 3 and all(first.actors[s] == int(Actor.HUMAN) for s in interventions)
    assert all(labels[s].action == 1 for s in interventions[1:])

    # round 1 ends with a review of what it deferred (the skipped questions), as `ilcore dagger` does
    tap(h, pygame.K_RETURN)
    assert h.manager.transitions[-1] == "review:1" and len(h.mode.items) > 0
    assert all(q.round == 1 for q in h.mode.items)
    tap(h, pygame.K_n)  # leave them queued
    go_on(h)  # the policy trained on round 1's labels
    tap(h, pygame.K_RETURN)  # start round 2
    # round 2 is deferred: the learner drives without pausing; its review comes before training
    go_on(h, max_frames=40000)
    assert h.mode.name == "review"
    assert h.manager.transitions[-1] == "review:2"
    queue = h.mode.items
    assert len(queue) > 0
    assert [q.priority for q in queue] == sorted((q.priority for q in queue), reverse=True)
    first_item = h.mode.current()
    assert h.mode.view().timeline is not None  # a short replay of the frames before it
    tap(h, pygame.K_COMMA)
    assert h.mode.view().paused
    tap(h, pygame.K_LEFT)  # label it 0
    tap(h, pygame.K_z)  # undo brings it back
    assert h.mode.current() == first_item
    tap(h, pygame.K_RIGHT)  # label it 1
    tap(h, pygame.K_TAB)  # skip the next
    tap(h, pygame.K_n)  # leave review
    go_on(h, max_frames=40000)  # training
    go_on(h, max_frames=40000)  # watching
    assert h.mode.name == "summary"
    reasons = labels_by_reason(h.session.path)
    review = reasons["review"]
    assert len(review) == 1 and review[0][1].action == 1 and review[0][1].step == first_item.step
    assert {"demo", "all", "intervention", "review"} <= set(reasons)
    assert all(lab.source == "human" for rows in reasons.values() for _, lab in rows)
    assert review[0][1].round == 2  # stored with the round the screen shows
    assert h.manager.transitions == ["demo", "train", "dagger:1", "review:1", "train", "dagger:2", "review:2", "train",
                                     "watch", "summary"]
    assert (h.session.path / "summary.json").exists()


def test_gamepad_hotplug_through_the_loop_drives_a_demo(make_app):
    h = make_app(demo_episodes=1, max_episode_steps=200)
    pygame.event.post(pygame.event.Event(pygame.JOYDEVICEADDED, device_index=0, instance_id=11, name="Test Pad"))
    pygame.event.post(pygame.event.Event(pygame.JOYHATMOTION, instance_id=11, hat=0, value=(1, 0)))
    h.until(lambda: h.mode.driver.length >= 3)
    assert "Test Pad" in h.loop.device_names()
    pygame.event.post(pygame.event.Event(pygame.JOYDEVICEREMOVED, instance_id=11))  # pulled out mid-episode
    h.frames(3)
    assert h.mode.held_action is None and h.loop.device_names() == ["keyboard"]
    pygame.event.post(pygame.event.Event(pygame.JOYDEVICEADDED, device_index=0, instance_id=12, name="Test Pad"))
    pygame.event.post(pygame.event.Event(pygame.JOYAXISMOTION, instance_id=12, axis=0, value=-1.0))  # stick left
    h.frames(2)
    assert h.mode.held_action == 0
    h.until(lambda: h.manager.waiting)  # the demonstration is done; the person moves on
    assert h.loop.stats.input_events == h.loop.stats.input_events_handled == 5


@pytest.mark.slow
def test_gamepad_trigger_takes_over_in_a_dagger_round(make_app):
    h = make_app(demo_episodes=1, query="none", max_episode_steps=40)
    press(pygame.K_RIGHT)
    h.until(lambda: h.session.round_episodes == 1 or h.mode.name != "demo")
    release(pygame.K_RIGHT)
    train_in_process(h.session)
    h.manager.goto("dagger")  # skip the background training: the policy is already in
    h.manager.modes["dagger"].round = 1
    assert h.mode.name == "dagger"
    pygame.event.post(pygame.event.Event(pygame.JOYDEVICEADDED, device_index=0, instance_id=2, name="Pad"))
    pygame.event.post(pygame.event.Event(pygame.JOYBUTTONDOWN, instance_id=2, button=5))  # rb held = takeover
    pygame.event.post(pygame.event.Event(pygame.JOYHATMOTION, instance_id=2, hat=0, value=(-1, 0)))
    h.until(lambda: h.mode.driver.length >= 4)
    assert h.mode.taking_over and h.mode.view().driver == "you"
    pygame.event.post(pygame.event.Event(pygame.JOYDEVICEREMOVED, instance_id=2))  # unplugged while driving
    h.frames(1)
    assert not h.mode.taking_over  # the learner drives again
    n = h.mode.driver.length
    h.frames(10)
    assert h.mode.driver.length > n  # and the episode goes on without a crash
