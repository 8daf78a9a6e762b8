import numpy as np
import pytest

from ilcore.algos.dagger.adaptive import AdaptiveEnsembleGate, AgreementTracker, GateFeedback
from ilcore.errors import ConfigError


def test_rate_starts_at_initial_and_follows_the_learners_errors():
    gate = AdaptiveEnsembleGate(0.02, 0.5, initial_rate=0.1, answer_window=20)
    assert gate.target_rate == pytest.approx(0.1)
    for _ in range(20):
        gate.observe(False)  # the learner was wrong on every answered query
    wrong_rate = gate.target_rate
    for _ in range(20):
        gate.observe(True)  # then right on every one
    right_rate = gate.target_rate
    assert wrong_rate > 0.4 and right_rate < 0.05
    assert 0.02 <= right_rate < 0.1 < wrong_rate <= 0.5


def test_realized_rate_follows_the_new_rate_after_a_drop():
    # After a drop the catch-up starts over: the gate neither stops asking (counting the old
    # rate's decisions at the new rate) nor keeps the old rate.
    rng = np.random.default_rng(0)
    gate = AdaptiveEnsembleGate(0.02, 0.5, initial_rate=0.3, prior_queries=0.0, answer_window=10)
    gate.calibrate([None] * 2000, rng.lognormal(size=2000))
    first = np.mean([gate.decide(None, u, rng).query for u in rng.lognormal(size=500)])
    for _ in range(10):
        gate.observe(True)
    assert gate.target_rate == pytest.approx(0.02)
    second = np.mean([gate.decide(None, u, rng).query for u in rng.lognormal(size=3000)])
    assert abs(first - 0.3) < 0.1
    assert 0.01 <= second <= 0.04


def test_stop_signal_needs_enough_answers_and_agreement():
    tracker = AgreementTracker(20, stop_queries=10, stop_agreement=0.9)
    for _ in range(9):
        tracker.record(True)
    assert not tracker.stop_suggested  # 9 answers are fewer than stop_queries
    tracker.record(False)
    assert tracker.stop_suggested  # 9 of the last 10 agree
    tracker.record(False)
    assert not tracker.stop_suggested and tracker.agreement == pytest.approx(0.8)


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError):
        AdaptiveEnsembleGate(0.2, 0.1)
    with pytest.raises(ConfigError):
        AgreementTracker(0)


class _Person:
    source = "simulated"
    seconds_spent = 0.0
    labels_given = 0
    last_seconds = 1.5

    def begin_episode(self) -> None:
        pass

    def takes_over(self, obs, learner_action, ctx) -> bool:
        return False

    def label(self, obs, ctx):
        return 1


class _Ctx:
    def __init__(self, mode):
        self.mode = mode


def test_feedback_reports_live_answers_only():
    gate = AdaptiveEnsembleGate(0.02, 0.5, answer_window=5)
    learner = {"action": 0}
    fb = GateFeedback(_Person(), gate, lambda obs: learner["action"], lambda a, b: a != b)
    assert fb.label(None, _Ctx("live")) == 1
    assert gate.tracker.recent(5) == [False]
    fb.label(None, _Ctx("takeover"))  # the person drives: no comparison with the learner
    learner["action"] = 1
    fb.label(None, _Ctx("live"))
    assert gate.tracker.recent(5) == [False, True]
    learner["action"] = None  # no policy yet (the demonstration round)
    fb.label(None, _Ctx("live"))
    assert gate.tracker.answers == 2 and fb.source == "simulated" and fb.last_seconds == 1.5
