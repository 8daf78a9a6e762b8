import numpy as np
import pytest

from ilcore.algos.dagger.gates import (
    AllGate, AllOfGate, AnyGate, BetaGate, EnsembleGate, NeverGate, NoveltyGate, disagreement,
)
from ilcore.algos.dagger.schedules import Linear


@pytest.mark.parametrize("target", [0.05, 0.1, 0.3])
def test_ensemble_gate_realized_rate_is_near_target_after_calibration(target):
    rng = np.random.default_rng(0)
    gate = EnsembleGate(target)
    calib = rng.lognormal(size=2000)
    gate.calibrate([None] * len(calib), calib)
    fresh = rng.lognormal(size=4000)
    rate = np.mean([gate.decide(None, u).query for u in fresh])
    assert abs(rate - target) <= 0.3 * target


def test_ensemble_gate_before_calibration_uses_running_quantile():
    rng = np.random.default_rng(1)
    gate = EnsembleGate(0.2)
    rate = np.mean([gate.decide(None, u).query for u in rng.random(3000)])
    assert abs(rate - 0.2) <= 0.3 * 0.2


def test_ties_at_the_threshold_are_broken_to_hit_the_target():
    # 70% of states with exactly zero disagreement: a plain ">" or ">=" would miss badly.
    rng = np.random.default_rng(2)
    values = np.where(rng.random(4000) < 0.7, 0.0, rng.random(4000))
    gate = EnsembleGate(0.1)
    gate.calibrate([None] * 1000, np.zeros(1000))  # calibration saw only ties
    rate = np.mean([gate.decide(None, u, rng).query for u in values])
    assert abs(rate - 0.1) <= 0.3 * 0.1


def test_beta_gate_follows_its_schedule():
    gate = BetaGate(Linear(1.0, 0.0, 2))
    rng = np.random.default_rng(0)
    rates = []
    for k in range(3):
        gate.start_round(k)
        rates.append(np.mean([gate.decide(None, 0.0, rng).query for _ in range(4000)]))
    assert rates[0] == 1.0 and abs(rates[1] - 0.5) < 0.03 and rates[2] == 0.0


def test_novelty_gate_asks_far_from_labelled_states():
    rng = np.random.default_rng(0)
    gate = NoveltyGate(0.1)
    gate.set_labelled(rng.normal(size=(500, 3)))
    gate.calibrate(list(rng.normal(size=(500, 3))), np.zeros(500))
    assert gate.decide(np.full(3, 10.0), 0.0).query
    assert not gate.decide(np.zeros(3), 0.0).query


def test_combinations():
    yes, no = AllGate(), NeverGate()
    assert AnyGate([no, yes]).decide(None, 0.0).reason == "all"
    assert not AllOfGate([no, yes]).decide(None, 0.0).query
    assert AllOfGate([yes, yes]).decide(None, 0.0).query


def test_disagreement_measures():
    votes = np.array([[0, 1], [0, 1], [0, 0], [0, 1]])  # K=4 members, N=2 states
    assert disagreement(votes, "vote") == pytest.approx([0.0, 0.25])
    same = np.tile([[0.2, 0.8]], (3, 1, 1))  # (K=3, N=1, A=2) identical members
    assert disagreement(same, "js") == pytest.approx([0.0], abs=1e-9)
    boxes = np.array([[[0.0]], [[2.0]]])  # (K=2, N=1, D=1)
    assert disagreement(boxes, "variance") == pytest.approx([1.0])


def test_an_ensemble_gate_over_one_member_is_refused():
    import pytest

    from ilcore.algos.dagger.gates import make_gate
    from ilcore.errors import ConfigError

    with pytest.raises(ConfigError, match="at least 2 members"):
        make_gate("ensemble", ensemble=1)
    assert make_gate("ensemble", ensemble=2) is not None
    assert make_gate("beta", ensemble=1) is not None  # beta-querying needs no ensemble


def test_one_registration_makes_a_gate_a_query_choice():
    import argparse

    from ilcore.algos.dagger import gates
    from ilcore.algos.dagger.options import DaggerOptions, add_arguments
    from ilcore.errors import ConfigError

    gates.register_gate("every-other", lambda **_: gates.AllGate(), help="a test gate")
    try:
        assert isinstance(gates.make_gate("every-other"), gates.AllGate)
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        assert parser.parse_args(["--query", "every-other"]).query == "every-other"
        assert "every-other: a test gate" in " ".join(parser.format_help().split())
        assert DaggerOptions(query="every-other").gate() is not None
        with pytest.raises(ConfigError, match="already registered"):
            gates.register_gate("every-other", lambda **_: gates.AllGate(), help="again")
    finally:
        del gates.GATES["every-other"]
    with pytest.raises(ConfigError, match="unknown query gate 'every-other'"):
        gates.make_gate("every-other")


def test_the_registered_gates_keep_their_names():
    from ilcore.algos.dagger.gates import gate_names, make_gate

    assert gate_names() == ("all", "beta", "ensemble", "novelty", "ensemble+novelty", "none", "adaptive")
    assert type(make_gate("intervention")) is type(make_gate("none"))  # accepted, not listed


def test_min_gap_spaces_queries_out_and_keeps_the_rate():
    """Uncertainty comes in runs; with min_gap the gate never asks two near neighbours and spends
    the saved queries later in the round, so the rate stays near the target."""
    from ilcore.algos.dagger.gates import EnsembleGate
    from ilcore.errors import ConfigError

    rng = np.random.default_rng(0)
    runs = np.repeat(rng.lognormal(size=400), 5)  # 2000 states in runs of 5 equal values
    for gap, max_rate_error in ((0, 0.03), (4, 0.03)):
        gate = EnsembleGate(0.1, min_gap=gap)
        gate.calibrate([None] * 1000, rng.lognormal(size=1000))
        gate.start_round(1)
        asked = np.flatnonzero([gate.decide(None, u, rng).query for u in runs])
        assert abs(len(asked) / len(runs) - 0.1) < max_rate_error
        if gap:
            assert np.diff(asked).min() > gap
        else:
            assert np.diff(asked).min() == 1  # without it, neighbours in a run are asked together
    with pytest.raises(ConfigError):
        EnsembleGate(0.1, min_gap=-1)
