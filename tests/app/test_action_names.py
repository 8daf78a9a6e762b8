"""Actions have names: in the query prompt, in the help overlay (with their keys), in keymap files."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pygame
import pytest

from app.input.action_names import ActionNames
from app.input.keymaps import default_keymap, load_keymap
from ilcore.errors import ConfigError

from tests.support.app_harness import press, release, tap, train_in_process

L, R, U, D = "\u2190", "\u2192", "\u2191", "\u2193"


def _space(env_id, **kwargs):
    from ilcore.eval import make_env

    env = make_env(env_id, kwargs)
    try:
        return env.action_space
    finally:
        env.close()


@pytest.mark.parametrize("env_id, kwargs, rows", [
    ("CartPole-v1", {}, [(L, "push left"), (R, "push right")]),
    ("MountainCar-v0", {}, [(L, "push left"), (R, "push right"), ("no key", "no push")]),
    ("Acrobot-v1", {}, [(L, "torque -1"), (R, "torque +1"), ("no key", "no torque")]),
    ("LunarLander-v3", {}, [(U, "fire main engine"), (L, "fire left engine"), (R, "fire right engine"), ("no key", "do nothing")]),
    ("LunarLander-v3", {"continuous": True}, [(U, "fire main engine"), (L, "fire left engine"), (R, "fire right engine"),
                                              (f"{U}+{L}", "fire main + left engine"), (f"{U}+{R}", "fire main + right engine"),
                                              ("no key", "engines off")]),
    ("CarRacing-v3", {}, [(L, "steer left"), (R, "steer right"), (U, "gas"), (D, "brake"), (f"{U}+{L}", "gas + steer left"),
                          (f"{U}+{R}", "gas + steer right"), (f"{D}+{L}", "brake + steer left"),
                          (f"{D}+{R}", "brake + steer right"), ("no key", "coast")]),
    ("Pendulum-v1", {}, [(L, "torque -2"), (R, "torque +2"), ("no key", "torque 0")]),
    ("MountainCarContinuous-v0", {}, [(L, "force -1"), (R, "force +1"), ("no key", "force 0")]),
    ("ilcore/Corridor-v0", {}, [(L, "move left"), (R, "move right"), ("no key", "stay")]),
])
def test_every_action_of_the_builtin_keymaps_has_a_name_and_keys(env_id, kwargs, rows):
    keymap = default_keymap(env_id, _space(env_id, **kwargs))
    assert keymap.actions.rows() == rows


def test_particle_directions_are_named_with_both_key_sets():
    names = default_keymap("ilcore/ParticleSequence-v0", _space("ilcore/ParticleSequence-v0")).actions
    rows = dict(names.rows())
    assert rows[f"{L} / A"] == "move left" and rows[f"{D}+{R} / S+D"] == "move down-right" and rows["no key"] == "stay"
    assert names.name(np.array([0.5, -0.25], np.float32)) == "x speed +0.5, y speed -0.25"


def test_vectors_a_learner_proposes_are_described_by_component():
    names = default_keymap("CarRacing-v3", _space("CarRacing-v3")).actions
    assert names.describe(np.array([-0.6, 0.3, 0.0], np.float32)) == "steer -0.6, gas 0.3"  # no key gives it exactly
    assert names.describe(np.array([0.0, 1.0, 0.0], np.float32)) == f"gas ({U})"
    pendulum = default_keymap("Pendulum-v1", _space("Pendulum-v1")).actions
    assert pendulum.name(np.array([-1.2], np.float32)) == "torque -1.2"
    mcc = default_keymap("MountainCarContinuous-v0", _space("MountainCarContinuous-v0")).actions
    assert mcc.name(np.array([0.4], np.float32)) == "force +0.4"


def test_unknown_envs_fall_back_to_numbers():
    discrete = ActionNames.for_env("Blackjack-v1", gym.spaces.Discrete(3))
    assert discrete.name(np.int64(2)) == "action 2" and discrete.describe(2) == "action 2"
    box = ActionNames.for_env("Some-v0", gym.spaces.Box(-1.0, 1.0, (2,), np.float32))
    assert box.name(np.array([0.5, -0.3], np.float32)) == "action (0.5, -0.3)"
    assert box.name(None) == "-"


def test_a_keymap_file_names_actions(tmp_path):
    path = tmp_path / "k.toml"
    path.write_text('[keys]\nleft = 0\nright = { action = 1, name = "shove right" }\n[names]\n0 = "nudge left"\n')
    names = load_keymap(path, gym.spaces.Discrete(2), "CartPole-v1").actions
    assert names.rows() == [(L, "nudge left"), (R, "shove right")]
    path.write_text('[keys]\na = [-1.0, 0.0, 0.0]\n"w+a" = { action = [-1.0, 1.0, 0.0], name = "hard left" }\n'
                    '[names]\ncomponents = ["wheel", "pedal", "stop"]\n')
    box = _space("CarRacing-v3")
    names = load_keymap(path, box, "CarRacing-v3").actions
    assert names.describe(np.array([-1.0, 1.0, 0.0], np.float32)) == "hard left (W+A)"
    assert names.name(np.array([0.0, 0.5, 0.0], np.float32)) == "pedal 0.5"
    assert names.name(np.array([-1.0, 0.0, 0.0], np.float32)) == "steer left"  # the built-in name stays


def test_box_names_table_is_checked(tmp_path):
    path = tmp_path / "k.json"
    path.write_text('{"keys": {"left": [-2.0]}, "names": {"components": ["torque", "extra"]}}')
    with pytest.raises(ConfigError, match="must list 1 names"):
        load_keymap(path, _space("Pendulum-v1"), "Pendulum-v1")


@pytest.mark.parametrize("env_id, row", [("CartPole-v1", (L, "push left")), ("MountainCar-v0", ("no key", "no push")),
                                         ("CarRacing-v3", (f"{D}+{R}", "brake + steer right"))])
def test_help_overlay_lists_this_envs_actions_with_their_keys(make_app, env_id, row):
    h = make_app(env_id=env_id)
    tap(h, pygame.K_F1)
    assert h.manager.help_visible
    entries = h.loop.help_entries()
    assert row in entries and entries[0][0] == "action keys"
    h.frames(1)  # the overlay draws (two columns when it would not fit the window)


@pytest.mark.slow
def test_query_and_review_prompts_name_the_learners_proposal(make_app):
    h = make_app(demo_episodes=1, query="all", query_mode="live", max_episode_steps=30, epochs=2)
    press(pygame.K_RIGHT)
    h.until(lambda: h.session.round_episodes == 1 or h.mode.name != "demo")
    release(pygame.K_RIGHT)
    train_in_process(h.session)
    h.manager.goto("dagger")  # the policy is already in: skip the background training
    h.manager.modes["dagger"].round = 1
    if getattr(h.mode, "waiting_for_start", False):
        tap(h, pygame.K_RETURN)
    h.until(lambda: h.mode.pending is not None)
    proposed = int(h.mode.pending.proposed)
    expected = {0: f"push left ({L})", 1: f"push right ({R})"}[proposed]
    view = h.mode.view()
    assert f"learner proposes {expected}" in view.prompt_detail
    assert view.proposed == expected.split(" (")[0]  # the tag over the frame
    for _ in range(3000):  # skip every question to the end of the episode: the states go to the review queue
        if not h.session.review_queue() or h.mode.pending is not None:
            tap(h, pygame.K_TAB) if h.mode.pending is not None else h.frames(1)
        else:
            break
    h.manager.goto("review")
    review = h.mode.view()
    assert h.mode.name == "review" and review.proposed in ("push left", "push right")
    assert f"learner proposes {review.proposed} ({L if review.proposed == 'push left' else R})" in review.prompt_detail
