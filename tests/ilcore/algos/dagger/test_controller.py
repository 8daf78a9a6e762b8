"""Controller logic with an in-memory writer and a fake policy (no HDF5, no torch)."""

import numpy as np
import pytest

from ilcore.algos.dagger.controller import DaggerController, RetrainConfig, sample_weights
from ilcore.algos.dagger.gates import AllGate, EnsembleGate, NeverGate
from ilcore.algos.dagger.schedules import Constant
from ilcore.errors import ConfigError
from ilcore.types import Actor

from tests.support.fakes import FakePolicy, FakeWriter


def obs_with_uncertainty(u):
    return np.array([u, 0.0], dtype=np.float32)


def run_episode(ctrl, uncertainties, label_queries=True, takeover_at=()):
    ctrl.begin_episode(obs_with_uncertainty(uncertainties[0]), seed=0)
    for t, u in enumerate(uncertainties):
        p = ctrl.propose(obs_with_uncertainty(u))
        nxt = obs_with_uncertainty(uncertainties[min(t + 1, len(uncertainties) - 1)])
        last = t == len(uncertainties) - 1
        if p.expert_drives:
            ctrl.commit(1, Actor.HUMAN, 1.0, False, last, nxt, label=1)
        elif t in takeover_at:
            ctrl.commit(1, Actor.HUMAN, 1.0, False, last, nxt, label=1)
        else:
            label = 1 if (p.query and label_queries) else None
            ctrl.commit(p.learner_action, Actor.LEARNER, 1.0, False, last, nxt, label=label)
    return ctrl.end_episode()


def test_round_zero_is_a_demonstration_the_person_drives():
    w = FakeWriter()
    ctrl = DaggerController("X-v0", w, AllGate(), train_fn=lambda paths, prev: FakePolicy())
    run_episode(ctrl, [0.1] * 5)
    labels = w.all_labels()
    assert len(labels) == 5 and {lab.reason for lab in labels} == {"demo"}
    assert w.episodes["ep_000000"].actors == [int(Actor.HUMAN)] * 5
    result = ctrl.end_round()
    assert result.round == 0 and result.labels == 5 and ctrl.round == 1 and ctrl.policy is not None


def test_live_labels_and_gate_outcome_are_recorded_per_step():
    w = FakeWriter()
    ctrl = DaggerController("X-v0", w, AllGate(), policy=FakePolicy(), round=1, label_source="simulated")
    eid = run_episode(ctrl, [0.1, 0.2, 0.3])
    ep = w.episodes[eid]
    assert [lab.reason for lab in ep.labels] == ["all"] * 3
    assert {lab.source for lab in ep.labels} == {"simulated"}
    assert [i["dagger_query"] for i in ep.infos] == [1.0, 1.0, 1.0]
    assert [i["dagger_uncertainty"] for i in ep.infos] == pytest.approx([0.1, 0.2, 0.3])


def test_unanswered_queries_go_to_the_review_queue_by_priority_and_answers_become_labels():
    w = FakeWriter()
    ctrl = DaggerController("X-v0", w, AllGate(), policy=FakePolicy(), round=1)
    eid = run_episode(ctrl, [0.5, 0.9, 0.1], label_queries=False)
    queue = ctrl.review_queue()
    assert [(q.episode, q.step) for q in queue] == [(eid, 1), (eid, 0), (eid, 2)]
    assert ctrl.query_observation(queue[0])[0] == pytest.approx(0.9)
    lab = ctrl.answer(queue[0], 1, latency_ms=1500.0)
    assert lab.reason == "review" and lab.step == 1 and w.all_labels() == [lab]
    assert len(ctrl.review_queue()) == 2
    result = ctrl.end_round(train=False)
    assert result.labels == 1 and result.human_seconds == pytest.approx(1.5)


def test_interventions_are_stored_with_the_person_as_actor_and_reason_intervention():
    w = FakeWriter()
    ctrl = DaggerController("X-v0", w, NeverGate(), policy=FakePolicy(), round=1)
    eid = run_episode(ctrl, [0.1] * 6, takeover_at=(2, 3))
    ep = w.episodes[eid]
    assert ep.actors == [1, 1, 0, 0, 1, 1]
    assert [(lab.step, lab.reason) for lab in ep.labels] == [(2, "intervention"), (3, "intervention")]


def test_each_ended_episode_is_summarised_with_its_return_and_who_drove():
    w = FakeWriter()
    ctrl = DaggerController("X-v0", w, NeverGate(), policy=FakePolicy(), round=1)
    assert ctrl.last_episode is None
    eid = run_episode(ctrl, [0.1] * 6, takeover_at=(2, 3))
    s = ctrl.last_episode
    assert (s.episode, s.round, s.steps, s.total_return, s.labeller_steps) == (eid, 1, 6, 6.0, 2)
    assert not s.learner_only  # the person drove two steps: not the learner's own return
    eid = run_episode(ctrl, [0.1] * 4)
    assert ctrl.last_episode.episode == eid and ctrl.last_episode.learner_only
    ctrl.begin_episode(obs_with_uncertainty(0.1), seed=0)
    ctrl.commit(1, Actor.LEARNER, 5.0, False, False, obs_with_uncertainty(0.1))
    ctrl.end_episode(discard=True)
    assert ctrl.last_episode.episode == eid  # a discarded episode is not summarised


def test_beta_mixing_hands_the_wheel_over_at_rate_beta_and_is_reproducible():
    def actors(seed):
        w = FakeWriter()
        ctrl = DaggerController("X-v0", w, NeverGate(), policy=FakePolicy(), beta_mix=Constant(0.3), round=1, seed=seed)
        run_episode(ctrl, [0.1] * 2000)
        return np.array(w.episodes["ep_000000"].actors)

    a = actors(0)
    assert abs(np.mean(a == int(Actor.HUMAN)) - 0.3) < 0.03
    assert np.array_equal(a, actors(0)) and not np.array_equal(a, actors(1))


def test_gate_is_recalibrated_on_learner_states_after_each_round():
    rng = np.random.default_rng(0)
    w = FakeWriter()
    ctrl = DaggerController(
        "X-v0", w, EnsembleGate(0.1), policy=FakePolicy(), round=1, train_fn=lambda paths, prev: FakePolicy()
    )
    run_episode(ctrl, list(rng.random(1000)))
    first = ctrl.end_round()
    assert first.threshold == pytest.approx(0.9, abs=0.03)
    run_episode(ctrl, list(rng.random(1000)))
    second = ctrl.end_round()
    assert abs(second.query_rate - 0.1) <= 0.03


def test_misuse_raises_user_errors():
    ctrl = DaggerController("X-v0", FakeWriter(), AllGate(), policy=FakePolicy())
    with pytest.raises(ConfigError):
        ctrl.propose(obs_with_uncertainty(0.0))
    ctrl.begin_episode(obs_with_uncertainty(0.0))
    with pytest.raises(ConfigError):
        ctrl.begin_episode(obs_with_uncertainty(0.0))
    with pytest.raises(ConfigError):
        ctrl.end_round()


def test_intervention_weighting_gives_each_group_half_the_weight():
    reasons = np.array(["intervention"] * 2 + ["all"] * 8)
    w = sample_weights(reasons, np.ones(10), RetrainConfig(intervention_weighting=True))
    assert w[:2].sum() == pytest.approx(5.0) and w[2:].sum() == pytest.approx(5.0)
    w2 = sample_weights(reasons, np.ones(10), RetrainConfig(reason_weights={"all": 0.5}))
    assert w2[2:] == pytest.approx(0.5)


def test_undo_and_discard_reach_the_writer_after_the_episode_ends():
    w = FakeWriter()
    ctrl = DaggerController("X-v0", w, AllGate(), policy=FakePolicy(), round=1)
    ctrl.begin_episode(np.zeros(2))
    ctrl.commit(0, Actor.LEARNER, 0.0, False, False, np.zeros(2), label=1)
    ctrl.commit(0, Actor.LEARNER, 0.0, True, False, np.zeros(2), label=1)
    eid = ctrl.end_episode()
    ctrl.retract(eid, 0)
    assert [lab.step for lab in w.episodes[eid].labels] == [1]
    ctrl.discard_episode(eid)
    assert eid not in w.episodes and ctrl.totals().labels == 0
