import numpy as np
import pytest
from gymnasium import spaces

from ilcore.algos.dagger.adaptive import AdaptiveEnsembleGate
from ilcore.algos.dagger.agreement import AgreementTracker
from ilcore.algos.dagger.controller import DaggerController
from ilcore.algos.dagger.gates import GATES, AllGate, AnyGate, make_gate
from ilcore.errors import ConfigError
from ilcore.types import Actor

from tests.support.fakes import FakePolicy, FakeWriter


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


def test_agreement_and_wrong_share_read_their_own_windows():
    tracker = AgreementTracker(2, agreement_window=10)
    assert np.isnan(tracker.agreement) and np.isnan(tracker.wrong_share())
    for _ in range(9):
        tracker.record(True)
    tracker.record(False)
    assert tracker.agreement == pytest.approx(0.9) and tracker.wrong_share() == pytest.approx(0.5)
    tracker.record(False)
    assert tracker.agreement == pytest.approx(0.8) and tracker.wrong_share() == pytest.approx(1.0)
    assert tracker.wrong_share(prior_wrong=0.0, prior_queries=2.0) == pytest.approx(0.5)


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError):
        AdaptiveEnsembleGate(0.2, 0.1)
    with pytest.raises(ConfigError):
        AgreementTracker(0)


def test_undone_answers_are_forgotten_and_renamed_keys_keep_their_order():
    tracker = AgreementTracker(5, agreement_window=3)
    tracker.record(False, (None, 0))
    tracker.record(True, (None, 1))
    tracker.record(True, (None, 2))
    assert tracker.agreement == pytest.approx(2 / 3)
    tracker.forget((None, 0))  # the person undid that answer
    tracker.record(True, ("ep", 9))
    assert tracker.agreement == pytest.approx(1.0) and tracker.answers == 3
    tracker.rekey([((None, 1), ("ep_1", 1)), ((None, 2), ("ep_1", 2))])
    assert tracker.keys() == [("ep_1", 1), ("ep_1", 2), ("ep", 9)]
    tracker.record(False, ("ep_1", 1))  # answered again: the newest answer counts, as the newest
    assert tracker.keys()[-1] == ("ep_1", 1) and tracker.recent(3) == [True, True, False]


class _Recording(FakeWriter):
    """The fake writer with the action space the controller compares answers in."""

    def __init__(self, action_space) -> None:
        super().__init__()
        self.action_space = action_space


def _answer_every_query(ctrl, answers):
    """One learner episode of len(answers) steps; the fake learner acts 0, the answer is given."""
    ctrl.begin_episode(np.array([1.0, 0.0]))
    for t, a in enumerate(answers):
        p = ctrl.propose()
        assert p.query and p.learner_action == 0
        ctrl.commit(p.learner_action, Actor.LEARNER, 0.0, False, t == len(answers) - 1, np.array([1.0, 0.0]), label=a)
    return ctrl.end_episode()


def test_controller_tells_the_gate_and_the_person_how_often_the_learner_was_already_right():
    gate = AdaptiveEnsembleGate(0.02, 0.5, initial_rate=0.1, prior_queries=0.0, answer_window=10)
    # AllGate asks at every step; a combined gate passes each answer on to its members
    ctrl = DaggerController("X-v0", _Recording(spaces.Discrete(2)), AnyGate([AllGate(), gate]), policy=FakePolicy(),
                            round=1)
    assert ctrl.totals().answers == 0 and np.isnan(ctrl.totals().agreement)
    eid = _answer_every_query(ctrl, [1, 1, 0, 0])
    t = ctrl.totals()
    assert t.answers == 4 and t.agreement == pytest.approx(0.5)
    assert gate.tracker.recent(10) == [False, False, True, True]
    ctrl.retract(eid, 0)  # undoing an answer takes it out of the agreement
    assert ctrl.totals().answers == 3 and ctrl.totals().agreement == pytest.approx(2 / 3)
    ctrl.discard_episode(eid)
    assert ctrl.totals().answers == 0


def test_the_shown_agreement_covers_the_last_50_answers_across_episodes():
    ctrl = DaggerController("X-v0", _Recording(spaces.Discrete(2)), AllGate(), policy=FakePolicy(), round=1)
    _answer_every_query(ctrl, [0] * 40)
    assert ctrl.totals().agreement == pytest.approx(1.0) and ctrl.totals().answers == 40
    _answer_every_query(ctrl, [1] * 5 + [0] * 10)
    assert ctrl.totals().agreement == pytest.approx(0.9)
    _answer_every_query(ctrl, [0] * 37)  # the last 50 hold 3 disagreements
    assert ctrl.totals().agreement == pytest.approx(0.94)
    _answer_every_query(ctrl, [0])  # and now 2
    assert ctrl.totals().agreement == pytest.approx(0.96) and ctrl.totals().answers == 93


def test_continuous_answers_agree_within_a_fifth_of_the_action_box():
    ctrl = DaggerController("X-v0", _Recording(spaces.Box(-2.0, 2.0, (1,))), AllGate(), policy=FakePolicy(), round=1)
    # the fake learner acts 0; the box is 4 wide, so answers within 0.8 agree
    _answer_every_query(ctrl, [np.array([0.5], np.float32), np.array([-0.79], np.float32), np.array([1.5], np.float32)])
    assert ctrl.agreement.recent(3) == [True, True, False]


def test_adaptive_is_a_query_choice_that_needs_an_ensemble():
    assert GATES["adaptive"].needs_ensemble
    gate = make_gate("adaptive", target_rate=0.2)
    assert isinstance(gate, AdaptiveEnsembleGate) and gate.target_rate == pytest.approx(0.2)
    assert gate.min_rate == pytest.approx(0.02) and gate.max_rate == pytest.approx(0.5)


def test_the_agreement_is_rebuilt_from_the_recording_on_resume(tmp_path):
    """Live answers count; an answer given in review does not (the learner's action there was
    an older policy's)."""
    from ilcore.algos.dagger import resume_controller, scan_session
    from ilcore.data import SessionWriter

    obs_space, act_space = spaces.Box(-5.0, 5.0, (2,), np.float32), spaces.Discrete(2)
    with SessionWriter(tmp_path, env_id="X-v0", observation_space=obs_space, action_space=act_space) as w:
        ctrl = DaggerController("X-v0", w, AllGate(), policy=FakePolicy(), round=1)
        eid = _answer_every_query(ctrl, [1, 0, 0])
        ctrl.begin_episode(np.array([1.0, 0.0], np.float32))
        p = ctrl.propose()
        ctrl.commit(p.learner_action, Actor.LEARNER, 0.0, True, False, np.array([1.0, 0.0], np.float32))  # unanswered
        ctrl.end_episode()
        ctrl.answer(ctrl.review_queue()[0], 1)
        live = ctrl.totals()
    assert live.answers == 3 and live.agreement == pytest.approx(2 / 3)
    assert scan_session(tmp_path).answers == {(eid, 0): False, (eid, 1): True, (eid, 2): True}
    with SessionWriter(tmp_path, env_id="X-v0", observation_space=obs_space, action_space=act_space, resume=True) as w:
        resumed, _ = resume_controller("X-v0", w, AllGate())
        assert resumed.totals().answers == 3 and resumed.agreement.recent(3) == [False, True, True]
