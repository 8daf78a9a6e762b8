"""Paced by the person: stages wait, every label can be undone, Esc asks first, idle is not counted."""

from __future__ import annotations

import json

import pygame
import pytest

from app.input.intents import Intent, IntentKind
from app.trainer import _run_job
from ilcore.data import open_recording

from tests.support.app_harness import go_on, press, release, tap, train_in_process


def _overlay(path):
    f = path / "labels.jsonl"
    return [json.loads(line) for line in f.read_text().splitlines()] if f.exists() else []


def _demo_then_policy(h):
    """One demonstration driven with the arrow key, then a policy trained in process."""
    press(pygame.K_RIGHT)
    h.until(lambda: h.manager.waiting)
    release(pygame.K_RIGHT)
    train_in_process(h.session)


def _into_round(h):
    """A demonstration and a policy, then Enter past the demo stage and Enter to start round 1."""
    _demo_then_policy(h)
    tap(h, pygame.K_RETURN)
    h.until(lambda: h.mode.name == "dagger")
    tap(h, pygame.K_RETURN)


def test_esc_mid_episode_asks_first_and_a_second_esc_quits(make_app):
    h = make_app(demo_episodes=2, max_episode_steps=200)
    tap(h, pygame.K_ESCAPE)
    assert h.manager.quit_requested  # nothing running yet: Esc quits at once
    h.manager.quit_requested = False
    press(pygame.K_RIGHT)
    h.until(lambda: h.mode.driver.length >= 5)
    tap(h, pygame.K_ESCAPE)
    assert not h.manager.quit_requested and h.manager.confirm_quit
    assert h.manager.view().prompt == "Quit?"
    tap(h, pygame.K_p)  # any other key carries on
    assert not h.manager.confirm_quit
    tap(h, pygame.K_ESCAPE)
    tap(h, pygame.K_ESCAPE)
    release(pygame.K_RIGHT)
    assert h.manager.quit_requested


@pytest.mark.slow
def test_the_last_review_answer_is_undone_while_the_stage_waits(make_app):
    # every learner state is deferred to review; one round of one episode
    h = make_app(demo_episodes=1, rounds=1, query="all", query_mode="deferred", max_episode_steps=15, epochs=2)
    _demo_then_policy(h)
    tap(h, pygame.K_RETURN)  # leave the demo stage; nothing new to train on, so the round comes next
    h.until(lambda: h.mode.name == "dagger")
    tap(h, pygame.K_RETURN)  # start the round
    go_on(h)  # the round is done: on to its review
    assert h.mode.name == "review"
    n = len(h.mode.items)
    assert n > 0
    for _ in range(n):
        tap(h, pygame.K_LEFT)  # answer every state
    assert h.manager.waiting and "Z undoes the last label" in h.manager.view().prompt_detail
    tap(h, pygame.K_z)  # the last answer comes back
    last = _overlay(h.session.path)[-1]
    assert last["op"] == "retract" and h.mode.current() is not None and not h.manager.waiting
    labels_after_undo = h.session.totals().labels
    tap(h, pygame.K_RIGHT)  # answer it again, differently
    assert h.manager.waiting and h.session.totals().labels == labels_after_undo + 1
    tap(h, pygame.K_RETURN)
    assert h.mode.name == "train"


@pytest.mark.slow
def test_a_whole_takeover_is_undone_as_one_and_holding_it_keeps_control_into_the_next_round(make_app):
    h = make_app(demo_episodes=1, rounds=2, query="none", max_episode_steps=30, epochs=2, episodes_per_round=1)
    _into_round(h)
    press(pygame.K_SPACE)
    press(pygame.K_LEFT)
    h.until(lambda: h.mode.driver.length >= 6)
    release(pygame.K_LEFT)
    release(pygame.K_SPACE)
    h.frames(1)
    assert "take over" in dict(h.mode.view().lines)
    taken = h.session.totals().labels
    tap(h, pygame.K_z)  # one undo takes back the whole takeover
    assert h.session.totals().labels < taken - 4
    assert "takeover undone" in h.mode.message
    # hold the takeover key through the end of the round: the next round starts with the person driving
    press(pygame.K_SPACE)
    go_on(h)  # round 1 done -> its (empty) review is skipped -> training
    go_on(h, max_frames=40000)  # the policy landed
    assert h.mode.name == "dagger" and h.mode.taking_over
    release(pygame.K_SPACE)


@pytest.mark.slow
def test_waiting_time_while_paused_or_idle_is_not_the_persons(make_app):
    h = make_app(demo_episodes=1, rounds=1, query="all", query_mode="live", max_episode_steps=20, epochs=2)
    _into_round(h)
    h.until(lambda: h.mode.pending is not None)
    tap(h, pygame.K_p)  # pause with the question up: 300 frames = 5 s that are not the person's
    h.frames(300)
    tap(h, pygame.K_p)
    h.frames(1200)  # then 20 s with no key at all: idle after 15 s
    tap(h, pygame.K_LEFT)
    assert h.mode.undo_stack  # the answer was recorded
    while h.mode.name == "dagger" and not h.manager.waiting:
        if h.mode.pending is not None:
            tap(h, pygame.K_LEFT)
        else:
            h.frames(1)
    h.session.writer.flush()
    first = open_recording(h.session.path).load_episode("ep_000001").effective_labels()[0]
    # 20 s of waiting after the pause, counted up to the idle limit only (15 s), the pause not at all
    assert 14.0 <= first.latency_ms / 1000.0 <= 16.0


@pytest.mark.slow
def test_a_worse_new_policy_is_announced_and_k_keeps_the_previous_one(make_app):
    h = make_app(demo_episodes=1, max_episode_steps=30, epochs=2, eval_episodes=2)
    press(pygame.K_RIGHT)
    h.until(lambda: h.manager.waiting)
    release(pygame.K_RIGHT)
    first = h.session.train_blocking()
    assert first["eval_return"] is not None and h.session.controller.policy_version == 1
    # a second policy whose evaluation came out lower (the job is the trainer's own code)
    msg = _run_job(h.session._job(2), _Sink())
    msg["eval_return"] = first["eval_return"] - 5.0
    h.session._install_trained(msg)
    assert h.session.controller.policy_version == 2
    hud = h.manager.hud(60.0, [])
    assert "evaluates worse" in hud.alert and "K keeps v1" in hud.alert
    h.manager.handle(Intent(IntentKind.KEEP_POLICY))
    assert h.session.controller.policy_version == 1
    assert "kept v1" in h.manager.hud(60.0, []).alert
    assert (h.session.path / "policies" / "v002").is_dir()  # nothing is deleted


class _Sink:
    def put(self, _msg):
        pass


@pytest.mark.slow
def test_an_undone_answer_goes_back_to_the_queue_and_every_count_equals_ilcore_info(make_app, capsys):
    from ilcore.cli.main import main as ilcore_main

    h = make_app(demo_episodes=1, rounds=1, query="all", query_mode="live", max_episode_steps=12, epochs=2)
    _into_round(h)
    h.until(lambda: h.mode.pending is not None)
    tap(h, pygame.K_LEFT)  # answer the first question ...
    tap(h, pygame.K_z)  # ... and take it back: the state is asked but unanswered again
    while not h.manager.waiting:
        if h.mode.pending is not None:
            tap(h, pygame.K_RIGHT)
        else:
            h.frames(1)
    tap(h, pygame.K_z)  # the round is done, and its last answer is undone too
    h.session.writer.flush()
    capsys.readouterr()
    assert ilcore_main(["info", str(h.session.path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert h.session.totals().labels == sum(info["labels_by_source"].values())
    assert len(h.session.review_queue()) == info["dagger"]["queued"] == 2
    assert "2 deferred to review" in h.manager.view().prompt_detail
