"""The readiness scale and rule: evaluations against the demonstrations, the random floor kept per session."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ilcore.algos.bc import BCConfig
from ilcore.algos.dagger import DaggerRunConfig, NeverGate, RetrainConfig, run_dagger
from ilcore.algos.dagger import readiness as rd
from ilcore.algos.dagger.readiness import Reference, demonstration_returns, readiness, session_reference
from ilcore.eval import make_env
from ilcore.experts import make_expert
from ilcore.labelers import ExpertLabeler
from ilcore.types import Actor, Episode, EpisodeMeta

LEARNER, HUMAN = int(Actor.LEARNER), int(Actor.HUMAN)


def _episode(rewards, actors, *, terminated=False, truncated=False) -> Episode:
    t = len(rewards)
    return Episode(id="e", observations=np.zeros((t + 1, 1)), actions=np.zeros(t, dtype=np.int64),
                   actors=np.asarray(actors, dtype=np.uint8), rewards=np.asarray(rewards, dtype=np.float64),
                   terminated=terminated, truncated=truncated, infos={}, wall_time=np.arange(t, dtype=np.float64),
                   meta=EpisodeMeta(env_id="X-v0"))


def test_score_is_the_share_of_the_way_from_random_to_the_demonstrations():
    ref = Reference(demo_return=100.0, demos=2, random_return=20.0)
    assert ref.score(20.0) == 0.0 and ref.score(100.0) == 1.0 and ref.score(96.0) == pytest.approx(0.95)
    assert math.isnan(ref.score(math.nan))
    # demonstrations no better than random give no scale (a person who crashed at once)
    assert math.isnan(Reference(10.0, 1, 20.0).score(15.0)) and math.isnan(Reference(20.0, 1, 20.0).score(25.0))
    # negative returns (Pendulum, Acrobot) work the same way
    assert Reference(-150.0, 1, -1150.0).score(-200.0) == pytest.approx(0.95)


def test_ready_after_two_evaluations_in_a_row_at_95_percent():
    assert not readiness([]).ready and math.isnan(readiness([]).score)
    assert not readiness([0.99]).ready  # one evaluation can be lucky
    r = readiness([0.4, 0.96, 0.97])
    assert r.ready and r.streak == 2 and r.score == 0.97
    assert "2 evaluations in a row" in r.text() and "unlikely to help" in r.text()
    assert not readiness([0.96, 0.5, 0.97]).ready  # the streak restarts after a drop
    assert not readiness([0.96, math.nan, 0.97]).ready  # an evaluation without a scale breaks it too
    assert readiness([0.96, 0.97, 0.98]).streak == 3
    assert readiness([0.5]).text() == "learner: 50% of the way from random to the demonstrations"
    assert readiness([math.nan]).text() == ""


@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(0.95)), max_size=12))
def test_readiness_streak_matches_its_definition(scores):
    r = readiness(scores)
    trailing = 0
    for s in reversed(scores):
        if not (s >= 0.95):
            break
        trailing += 1
    assert r.streak == trailing and r.ready == (trailing >= 2)


def test_only_whole_demonstrations_the_person_drove_set_the_reference():
    eps = [
        _episode([1.0] * 5, [HUMAN] * 5, terminated=True),  # ended by itself: counts
        _episode([1.0] * 8, [HUMAN] * 8, truncated=True),  # the env's own limit (8): counts
        _episode([1.0] * 4, [HUMAN] * 4, truncated=True),  # cut by a shorter cap: not comparable
        _episode([1.0] * 3, [HUMAN] * 3),  # stopped by the person (neither flag)
        _episode([1.0] * 6, [HUMAN, LEARNER, HUMAN, HUMAN, HUMAN, HUMAN], terminated=True),  # the learner drove a step
        _episode([], [], terminated=True),
    ]
    assert demonstration_returns(eps, time_limit=8) == [5.0, 8.0]
    assert demonstration_returns(eps, time_limit=None) == [5.0, 8.0, 4.0]


def test_the_random_floor_is_measured_once_per_session_and_kept(tmp_path, monkeypatch):
    import ilcore.eval

    calls = []

    def fake_random_return(env_id, episodes, **kw):
        calls.append((env_id, episodes))
        return 21.5

    monkeypatch.setattr(ilcore.eval, "random_return", fake_random_return)
    assert session_reference(tmp_path, [], "CartPole-v1") is None and not calls  # no demonstration: no scale
    ref = session_reference(tmp_path, [500.0, 480.0], "CartPole-v1")
    assert ref == Reference(490.0, 2, 21.5) and calls == [("CartPole-v1", rd.REFERENCE_EPISODES)]
    assert session_reference(tmp_path, [500.0], "CartPole-v1").random_return == 21.5 and len(calls) == 1
    kept = tmp_path / "policies" / rd.REFERENCE_FILE
    assert json.loads(kept.read_text())["random_return"] == 21.5
    # another env, or an unreadable file, is measured again
    session_reference(tmp_path, [1.0], "Acrobot-v1")
    assert len(calls) == 2
    kept.write_text("{not json")
    session_reference(tmp_path, [1.0], "Acrobot-v1")
    assert len(calls) == 3 and json.loads(kept.read_text())["env_id"] == "Acrobot-v1"
    # a disk that cannot take the cache still gives the scale (measured again next time)
    import ilcore.algos.dagger.readiness as readiness_module

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(readiness_module, "write_json_atomic", full_disk)
    assert session_reference(tmp_path / "other", [100.0], "CartPole-v1") == Reference(100.0, 1, 21.5)


@pytest.mark.parametrize("data", [None, [], {"demo_return": 1.0}, {"demo_return": "x", "demos": 1, "random_return": 0},
                                  {"demo_return": float("nan"), "demos": 1, "random_return": 0.0}])
def test_reference_from_json_refuses_anything_else(data):
    assert rd.reference_from_json(data) is None


def test_reference_json_round_trip():
    ref = Reference(12.5, 3, -4.0)
    assert rd.reference_from_json(json.loads(json.dumps(rd.reference_to_json(ref)))) == ref


def _tiny_retrain() -> RetrainConfig:
    bc = BCConfig(epochs=1, ensemble=2, hidden=(8,), seed=0, valid_fraction=0.0, patience=None)
    return RetrainConfig(bc=bc, min_updates=0, calibration_steps=0)


@pytest.mark.slow
def test_run_dagger_scores_each_round_and_says_when_ready(tmp_path):
    """CartPole, the scripted expert: the whole 500-step demonstration sets the scale; an
    evaluation at the demonstrations' return scores 100%, and the second in a row is "ready"."""
    env = make_env("CartPole-v1")
    labeler = ExpertLabeler(make_expert("CartPole-v1", env=env))
    evals = iter([(250.0, 0.0), (500.0, 0.0), (500.0, 0.0)])
    config = DaggerRunConfig(rounds=2, episodes_per_round=1, eval_episodes=1, max_episode_steps=30, demo_max_steps=500,
                             retrain=_tiny_retrain())
    rows = run_dagger("CartPole-v1", labeler, NeverGate(), tmp_path / "run", config, env=env,
                      evaluate_fn=lambda policy, seed: next(evals)).rounds
    ref = json.loads((tmp_path / "run" / "recordings" / "policies" / rd.REFERENCE_FILE).read_text())
    floor = ref["random_return"]
    assert 8.0 < floor < 40.0  # a random CartPole policy
    assert rows[0].score == pytest.approx((250.0 - floor) / (500.0 - floor)) and not rows[0].ready
    assert rows[1].score == pytest.approx(1.0) and not rows[1].ready
    assert rows[2].score == pytest.approx(1.0) and rows[2].ready


@pytest.mark.slow
def test_a_demonstration_cut_short_gives_no_score(tmp_path):
    env = make_env("CartPole-v1")
    labeler = ExpertLabeler(make_expert("CartPole-v1", env=env))
    config = DaggerRunConfig(rounds=1, episodes_per_round=1, eval_episodes=1, demo_max_steps=30, max_episode_steps=30,
                             retrain=_tiny_retrain())
    rows = run_dagger("CartPole-v1", labeler, NeverGate(), tmp_path / "run", config, env=env,
                      evaluate_fn=lambda policy, seed: (500.0, 0.0)).rounds
    assert all(math.isnan(r.score) and not r.ready for r in rows)
    assert not (tmp_path / "run" / "recordings" / "policies" / rd.REFERENCE_FILE).exists()


def test_the_round_log_keeps_score_and_ready_and_refuses_a_ready_that_is_not_a_bool(tmp_path):
    from ilcore.algos.dagger.run import RoundLog, RoundStats
    from ilcore.errors import ConfigError

    log = RoundLog(tmp_path, load=False)
    log.add(RoundStats(0, 10, 1.0, 90.0, 1.0, math.nan, 1.0, 1, 10, score=0.875))
    log.set_return(0, 99.0, 0.5, score=0.99)
    log.add(RoundStats(1, 12, 2.0, 98.0, 1.0, 0.1, 0.2, 1, 10, score=0.98, ready=True))
    back = RoundLog(tmp_path).rows
    assert [(r.score, r.ready) for r in back] == [(0.99, False), (0.98, True)]
    data = json.loads((tmp_path / "dagger_rounds.json").read_text())
    data["rounds"][1]["ready"] = "yes"
    (tmp_path / "dagger_rounds.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="ready is 'yes'"):
        RoundLog(tmp_path)
