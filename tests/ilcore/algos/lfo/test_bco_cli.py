"""`ilcore train bco` exploration options, through the CLI entry point (tiny budgets)."""

import json

import gymnasium as gym
import numpy as np
import pytest

import ilcore.algos.lfo.bco as bco_module
from ilcore.cli.main import main
from ilcore.policies import Policy, make_policy

from tests.support.demos import make_expert_sequences

TINY = ["--epochs", "2", "--idm-epochs", "2", "--hidden", "16", "--eval-episodes", "0", "--json"]


@pytest.fixture(scope="module")
def cartpole_session(tmp_path_factory):
    """An observation-only CartPole session (one expert episode, imported from a state sequence)."""
    root = tmp_path_factory.mktemp("bco_cli")
    _, seqs, _ = make_expert_sequences("CartPole-v1", 1)
    np.save(root / "demo.npy", seqs[0][:60])
    session = root / "session"
    assert main(["import", "frames", str(root / "demo.npy"), "--env", "CartPole-v1", "--out", str(session)]) == 0
    return session


@pytest.fixture
def bco_calls(monkeypatch):
    """Records the config and exploration policy each run_bco call gets, then runs the real one."""
    calls = []
    real = bco_module.run_bco

    def spy(demos, env_id, config=None, **kwargs):
        calls.append({"config": config, "exploration_policy": kwargs.get("exploration_policy")})
        return real(demos, env_id, config, **kwargs)

    monkeypatch.setattr(bco_module, "run_bco", spy)
    return calls


def _saved_policy(folder, env_id):
    env = gym.make(env_id)
    policy = make_policy(env.observation_space, env.action_space, hidden=(8,))
    env.close()
    policy.save(folder)
    return folder


@pytest.mark.slow
def test_sticky_exploration_and_rollout_epsilon_reach_bco(cartpole_session, tmp_path, capsys, bco_calls):
    run = tmp_path / "run"
    code = main(["train", "bco", "--data", str(cartpole_session), "--out", str(run), "--exploration", "sticky",
                 "--sticky-prob", "0.8", "--alpha", "0.5", "--iterations", "1", "--rollout-epsilon", "0.3",
                 "--pre-demo-steps", "200", *TINY])
    assert code == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    assert summary["env_steps"] == 300 and len(summary["iterations"]) == 2
    (call,) = bco_calls
    cfg = call["config"]
    assert (cfg.exploration, cfg.sticky_prob, cfg.rollout_epsilon) == ("sticky", 0.8, 0.3)
    assert call["exploration_policy"] is None
    assert Policy.load(run).meta["exploration"] == "sticky"


def test_policy_exploration_loads_the_checkpoint_and_explores_with_it(cartpole_session, tmp_path, capsys, bco_calls):
    explorer = _saved_policy(tmp_path / "explorer", "CartPole-v1")
    run = tmp_path / "run"
    code = main(["train", "bco", "--data", str(cartpole_session), "--out", str(run), "--exploration", "policy",
                 "--exploration-policy", str(explorer), "--pre-demo-steps", "100", *TINY])
    assert code == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["env_steps"] == 100
    (call,) = bco_calls
    assert call["config"].exploration == "policy"
    assert isinstance(call["exploration_policy"], Policy)
    meta = Policy.load(run).meta
    assert meta["exploration"] == "policy" and meta["exploration_policy"] == str(explorer)


def _one_error_line(capsys, *fragments):
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    for fragment in fragments:
        assert fragment in err, err


def test_policy_exploration_without_a_checkpoint_is_one_clear_error(cartpole_session, tmp_path, capsys):
    args = ["train", "bco", "--data", str(cartpole_session), "--out", str(tmp_path / "run"), *TINY]
    assert main([*args, "--exploration", "policy"]) == 2
    _one_error_line(capsys, "--exploration-policy")
    assert main([*args, "--exploration", "policy", "--exploration-policy", str(tmp_path / "missing")]) == 2
    _one_error_line(capsys, "missing")
    assert main([*args, "--exploration-policy", str(tmp_path / "missing")]) == 2  # given but not used
    _one_error_line(capsys, "--exploration policy")
    assert not (tmp_path / "run").exists()


def test_exploration_policy_for_other_spaces_is_refused_before_exploring(cartpole_session, tmp_path, capsys, bco_calls):
    explorer = _saved_policy(tmp_path / "acrobot_policy", "Acrobot-v1")
    code = main(["train", "bco", "--data", str(cartpole_session), "--out", str(tmp_path / "run"),
                 "--exploration", "policy", "--exploration-policy", str(explorer), *TINY])
    assert code == 2
    _one_error_line(capsys, "CartPole-v1")
    assert bco_calls == []


def test_bad_sticky_probability_and_epsilon_are_refused(cartpole_session, tmp_path, capsys, bco_calls):
    args = ["train", "bco", "--data", str(cartpole_session), "--out", str(tmp_path / "run"), *TINY]
    assert main([*args, "--exploration", "sticky", "--sticky-prob", "1.0"]) == 2
    _one_error_line(capsys, "--sticky-prob")
    assert main([*args, "--rollout-epsilon", "2"]) == 2
    _one_error_line(capsys, "--rollout-epsilon")
    assert bco_calls == []


def test_label_mode_and_clone_ensemble_reach_bco(cartpole_session, tmp_path, capsys, bco_calls):
    run = tmp_path / "run"
    code = main(["train", "bco", "--data", str(cartpole_session), "--out", str(run), "--labels", "argmax",
                 "--ensemble", "3", "--pre-demo-steps", "100", *TINY])
    assert code == 0, capsys.readouterr().err
    (call,) = bco_calls
    assert call["config"].labels == "argmax" and call["config"].bc.ensemble == 3
    saved = Policy.load(run)
    assert saved.ensemble == 3 and saved.meta["labels"] == "argmax"
    assert main(["train", "bco", "--data", str(cartpole_session), "--out", str(tmp_path / "bad"), "--ensemble", "0",
                 *TINY]) == 2
    _one_error_line(capsys, "--ensemble")
