import json

import gymnasium as gym
import numpy as np
import pytest

from ilcore.algos.bc import BCConfig
from ilcore.algos.lfo.bco import BCOConfig, run_bco
from ilcore.cli.main import main
from ilcore.errors import ConfigError, SpaceMismatchError
from ilcore.eval import evaluate

from tests.support.demos import make_expert_demos, make_expert_sequences

SMALL_IDM = BCConfig(epochs=15, batch_size=128, hidden=(64, 64), patience=5)
SMALL_BC = BCConfig(epochs=25, batch_size=64, hidden=(64, 64), patience=5)


@pytest.mark.slow
@pytest.mark.parametrize("label_mode", ["argmax", "soft"])
def test_bco0_clones_cartpole_from_observations_only(label_mode):
    demos = make_expert_demos("CartPole-v1", 3)
    labels = demos.true_actions
    # The learner never sees the demonstrator's actions; they are only used for the diagnostic.
    result = run_bco(demos, "CartPole-v1", BCOConfig(alpha=0.0, pre_demo_steps=1500, idm=SMALL_IDM, bc=SMALL_BC,
                                                     labels=label_mode))
    first = result.iterations[0]
    assert first.idm_demo is not None and first.idm_demo.accuracy > 0.9  # chance: 0.5
    assert np.array_equal(demos.true_actions, labels)
    assert result.env_steps == 1500 and len(result.iterations) == 1
    random_return = 22.0  # a uniformly random CartPole policy lasts about 22 steps
    assert evaluate(result.policy, "CartPole-v1", episodes=10, seed=5).mean_return > 10 * random_return


@pytest.mark.slow
def test_bco_alpha_rolls_the_policy_out_and_counts_interactions():
    demos = make_expert_demos("CartPole-v1", 2)
    cfg = BCOConfig(alpha=0.5, pre_demo_steps=800, iterations=2, idm=SMALL_IDM,
                    bc=BCConfig(epochs=10, hidden=(32, 32), patience=5))
    seen = []
    result = run_bco(demos, "CartPole-v1", cfg, callback=seen.append,
                     evaluate_fn=lambda p: evaluate(p, "CartPole-v1", episodes=4).mean_return)
    assert [it.iteration for it in seen] == [0, 1, 2]
    assert [it.env_steps for it in seen] == [800, 1200, 1600]
    assert result.env_steps == 1600
    assert all(it.eval_return is not None for it in seen)
    # The IDM refitted on the policy's own (near-expert) rollouts still labels the demo well.
    assert seen[-1].idm_demo.accuracy > 0.85


def test_bco_refuses_demos_from_another_space_without_an_encoder():
    demos = make_expert_demos("CartPole-v1", 1)
    with pytest.raises(SpaceMismatchError, match="encoder"):
        run_bco(demos, "Acrobot-v1", BCOConfig(pre_demo_steps=10))
    with pytest.raises(ConfigError):
        BCOConfig(alpha=-1).check()


@pytest.mark.slow
def test_cli_imports_states_and_trains_bco(tmp_path, capsys):
    _, seqs, _ = make_expert_sequences("CartPole-v1", 3)
    folder = tmp_path / "states"
    folder.mkdir()
    for i, s in enumerate(seqs):
        np.save(folder / f"demo_{i}.npy", s)
    session = tmp_path / "session"
    assert main(["import", "frames", str(folder), "--env", "CartPole-v1", "--out", str(session), "--json"]) == 0
    imported = json.loads(capsys.readouterr().out)
    assert imported["episodes"] == 3 and imported["steps"] == sum(len(s) - 1 for s in seqs)

    run = tmp_path / "run"
    code = main(["train", "bco", "--data", str(session), "--alpha", "0", "--out", str(run), "--pre-demo-steps", "1500",
                 "--epochs", "25", "--idm-epochs", "15", "--eval-episodes", "5", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    # Observation-only demos: no true actions, so no IDM accuracy, but the return shows it worked.
    assert summary["idm_demo_accuracy"] is None
    assert summary["env_steps"] == 1500 and summary["final_return"] > 200
    assert (run / "config.json").exists() and (run / "idm" / "config.json").exists()
    assert json.loads((run / "bco.json").read_text())["iterations"][0]["label_histogram"] is not None


def test_cli_import_frames_refuses_a_state_of_the_wrong_size(tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.zeros((5, 3), np.float32))
    code = main(["import", "frames", str(tmp_path / "bad.npy"), "--env", "CartPole-v1", "--out", str(tmp_path / "s")])
    assert code == 2 and "shape" in capsys.readouterr().err


def test_sticky_random_actions_hold_each_draw_for_about_one_over_one_minus_p_steps():
    import gymnasium as gym

    from ilcore.algos.lfo.bco import sticky_random_actions

    space = gym.spaces.Discrete(4, seed=0)
    act = sticky_random_actions(space, 0.9, seed=0)
    actions = np.array([act(None) for _ in range(5000)])
    runs = 1 + np.count_nonzero(np.diff(actions))
    # A new draw every ~10 steps, and a quarter of draws repeat the previous action.
    assert 5000 / runs > 8
    assert set(np.unique(actions).tolist()) == {0, 1, 2, 3}
    uniform = sticky_random_actions(space, 0.0, seed=0)
    assert 1 + np.count_nonzero(np.diff([uniform(None) for _ in range(400)])) > 200
    with pytest.raises(ConfigError):
        BCOConfig(exploration="sticky", sticky_prob=1.0).check()
    with pytest.raises(ConfigError):
        BCOConfig(rollout_epsilon=1.5).check()
    with pytest.raises(ConfigError):
        BCOConfig(labels="hard").check()


@pytest.mark.slow
def test_bco_alpha_with_sticky_exploration_and_rollout_noise_runs_and_never_uses_true_actions():
    demos = make_expert_demos("CartPole-v1", 1)
    labels = demos.true_actions.copy()
    demos_blind = type(demos)(obs=demos.obs, next_obs=demos.next_obs, episode=demos.episode,
                              observation_space=demos.observation_space, true_actions=None)
    cfg = BCOConfig(alpha=0.5, pre_demo_steps=300, iterations=1, exploration="sticky", sticky_prob=0.8,
                    rollout_epsilon=0.5, idm=BCConfig(epochs=3, hidden=(16, 16), patience=None),
                    bc=BCConfig(epochs=3, hidden=(16, 16), patience=None))
    result = run_bco(demos_blind, "CartPole-v1", cfg)
    assert result.env_steps == 450 and len(result.iterations) == 2
    assert all(it.idm_demo is None for it in result.iterations)
    assert result.inferred_actions.shape == labels.shape


def test_soft_labels_split_each_demo_pair_by_the_idm_posterior():
    from ilcore.algos.lfo.bco import _soft_label_data

    space = gym.spaces.Box(-1, 1, (2,), dtype=np.float32)
    probs = np.array([[0.7, 0.3, 0.0], [0.0005, 0.0, 0.9995]], np.float32)
    obs = np.array([[0.1, 0.2], [0.3, 0.4]], np.float32)
    data = _soft_label_data(probs, obs, np.array([0, 1]), space, gym.spaces.Discrete(3))
    # One row per plausible (pair, action); the 0.0005 row carries no signal and is dropped.
    rows = sorted(zip(data.episode.tolist(), data.actions.tolist(), data.weights.tolist()))
    assert [r[:2] for r in rows] == [(0, 0), (0, 1), (1, 2)]
    np.testing.assert_allclose([r[2] for r in rows], [0.7, 0.3, 0.9995], rtol=1e-6)
    np.testing.assert_array_equal(data.obs[data.episode == 1], obs[[1]])
