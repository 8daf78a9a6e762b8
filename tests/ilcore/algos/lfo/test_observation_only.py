"""Observation-only episodes (EpisodeRecorder.observe), which LfO reads and labels."""

import gymnasium as gym
import numpy as np
import pytest

from ilcore.algos.lfo.bco import demos_from_recording
from ilcore.data import SessionWriter, load_transitions, open_recording
from ilcore.errors import UserError
from ilcore.types import Actor, Label


def test_watch_only_episode_round_trips_and_takes_inferred_labels(tmp_path):
    env = gym.make("CartPole-v1")
    path = tmp_path / "s"
    with SessionWriter(path, env_id="CartPole-v1", observation_space=env.observation_space,
                       action_space=env.action_space) as writer:
        obs, _ = env.reset(seed=0)
        rec = writer.begin_episode(obs)
        states = [obs]
        for _ in range(6):
            obs, *_ = env.step(0)
            rec.observe(obs)
            states.append(obs)
        with pytest.raises(UserError, match="cannot mix"):
            rec.step(0, Actor.HUMAN, 1.0, False, False, obs)
        watched = rec.finish()
        obs, _ = env.reset(seed=1)
        rec = writer.begin_episode(obs)
        for _ in range(3):
            obs, r, term, trunc, _ = env.step(1)
            rec.step(1, Actor.SCRIPTED, r, term, trunc, obs)
        rec.finish()
        writer.add_label(Label(watched, 2, 0, source="idm", reason="inferred"))

    recording = open_recording(path)
    episodes = list(recording.episodes())
    assert episodes[0].actions is None and episodes[0].actors is None and episodes[0].rewards is None
    np.testing.assert_allclose(episodes[0].observations, np.stack(states))
    assert episodes[1].actions is not None
    assert recording.info()["episodes"] == 2
    assert len(load_transitions(path, labels="action")) == 3  # only the episode with actions
    by_label = load_transitions(path, labels="label")
    assert len(by_label) == 1 and by_label.reason[0] == "inferred"
    demos, env_id, _ = demos_from_recording(path)
    assert env_id == "CartPole-v1" and len(demos) == 6 + 3 and demos.true_actions is None
