"""The labellers declare the port the engine asks them through, and wrap a declared expert."""

import gymnasium as gym

from ilcore.experts import make_expert
from ilcore.labelers import ExpertLabeler, LabelContext, Labeler, SimulatedPerson


def test_labellers_subclass_the_labeler_port():
    expert = make_expert("CartPole-v1")
    for labeller in (ExpertLabeler(expert), SimulatedPerson(expert, gym.spaces.Discrete(2))):
        assert isinstance(labeller, Labeler)
        assert Labeler in type(labeller).__mro__  # declared, not only the right shape


def test_expert_labeller_answers_with_its_expert_and_counts():
    expert = make_expert("CartPole-v1")
    labeller = ExpertLabeler(expert, seconds_per_label=0.5)
    obs = [0.0, 0.0, 0.05, 0.0]
    labeller.begin_episode()
    assert labeller.label(obs, LabelContext(None, 0, "all")) == expert.act(obs)
    assert not labeller.takes_over(obs, 0, LabelContext(None, 0, "all"))
    assert (labeller.labels_given, labeller.seconds_spent, labeller.last_seconds) == (1, 0.5, 0.5)
