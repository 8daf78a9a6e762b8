import gymnasium as gym
import numpy as np
import pytest

from ilcore.labelers import LIVE, REVIEW, TAKEOVER, LabelContext, SimulatedPerson

from tests.support.fakes import ConstantExpert


def ctx(mode=LIVE, history=()):
    return LabelContext(None, len(history), "uncertainty", mode, list(history))


def test_reaction_delay_labels_the_state_k_steps_earlier():
    expert = ConstantExpert()
    person = SimulatedPerson(expert, gym.spaces.Discrete(2), delay_steps=2)
    history = [np.array([float(i)]) for i in range(5)]
    person.label(history[-1], ctx(LIVE, history))
    assert expert.seen[-1][0] == 2.0
    person.label(history[-1], ctx(REVIEW, history))  # a still frame: no delay
    assert expert.seen[-1][0] == 4.0
    person.label(history[0], ctx(LIVE, history[:1]))  # younger than the delay: the first state
    assert expert.seen[-1][0] == 0.0


def test_label_noise_gives_wrong_labels_at_the_set_rate():
    person = SimulatedPerson(ConstantExpert(), gym.spaces.Discrete(3), noise=0.2, seed=3)
    answers = np.array([person.label(np.zeros(1), ctx()) for _ in range(3000)])
    assert abs(np.mean(answers != 1) - 0.2) < 0.03
    assert set(np.unique(answers)) == {0, 1, 2}


def test_time_cost_and_budget():
    person = SimulatedPerson(
        ConstantExpert(), gym.spaces.Discrete(2), seconds_per_label=1.5, seconds_per_takeover_step=0.25, budget_labels=3
    )
    assert person.label(np.zeros(1), ctx(LIVE)) == 1
    assert person.label(np.zeros(1), ctx(TAKEOVER)) == 1
    assert person.label(np.zeros(1), ctx(REVIEW)) == 1
    assert person.seconds_spent == pytest.approx(1.5 + 0.25 + 1.5)
    assert person.label(np.zeros(1), ctx()) is None  # budget spent: declines
    assert person.labels_given == 3 and person.declined == 1


def test_seconds_budget():
    person = SimulatedPerson(ConstantExpert(), gym.spaces.Discrete(2), seconds_per_label=2.0, budget_seconds=5.0)
    answers = [person.label(np.zeros(1), ctx()) for _ in range(5)]
    assert answers == [1, 1, 1, None, None]


def test_takes_over_on_disagreement_and_releases_after_agreement():
    person = SimulatedPerson(ConstantExpert(), gym.spaces.Discrete(2), intervene=True, release_after=2)
    obs = np.zeros(1)
    assert person.takes_over(obs, 1, ctx()) is False  # agrees: learner keeps driving
    assert person.takes_over(obs, 0, ctx()) is True
    assert person.takes_over(obs, 1, ctx()) is True  # one agreeing step is not enough
    assert person.takes_over(obs, 1, ctx()) is False


def test_box_noise_stays_in_bounds():
    space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)

    class BoxExpert(ConstantExpert):
        def act(self, obs):
            return np.zeros(1, np.float32)

    person = SimulatedPerson(BoxExpert(), space, noise=1.0)
    a = np.array([person.label(np.zeros(1), ctx()) for _ in range(200)])
    assert np.all(np.abs(a) <= 2.0) and a.std() > 0.5
