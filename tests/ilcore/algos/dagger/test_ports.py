"""The controller's writer and policy ports: the real writer and policy meet them, and so do the fakes."""

import gymnasium as gym
import numpy as np

from ilcore.algos.dagger.controller import EpisodeSink, Learner, SessionSink
from ilcore.data import SessionWriter
from ilcore.policies import make_policy

from tests.support.fakes import FakePolicy, FakeWriter


def test_the_real_writer_and_its_recorder_meet_the_writer_port(tmp_path):
    obs_space, act_space = gym.spaces.Box(-1, 1, (2,)), gym.spaces.Discrete(2)
    with SessionWriter(tmp_path / "s", env_id="X-v0", observation_space=obs_space, action_space=act_space) as writer:
        assert isinstance(writer, SessionSink)
        recorder = writer.begin_episode(np.zeros(2, np.float32))
        assert isinstance(recorder, EpisodeSink)
        recorder.discard()


def test_the_fake_writer_meets_the_writer_port():
    fake = FakeWriter()
    assert isinstance(fake, SessionSink)
    assert isinstance(fake.begin_episode(np.zeros(2)), EpisodeSink)


def test_policies_meet_the_learner_port():
    assert isinstance(FakePolicy(), Learner)
    policy = make_policy(gym.spaces.Box(-1, 1, (2,)), gym.spaces.Discrete(2), hidden=(4,), ensemble=2)
    assert isinstance(policy, Learner)
    out = policy.predict_ensemble(np.zeros((3, 2), np.float32))
    assert out.action.shape == (3,) and out.uncertainty.shape == (3,)
