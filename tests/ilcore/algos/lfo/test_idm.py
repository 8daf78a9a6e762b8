import gymnasium as gym
import numpy as np
import pytest

from ilcore.algos.bc import BCConfig
from ilcore.algos.lfo.bco import AgentExperience, collect_experience
from ilcore.algos.lfo.idm import InverseDynamicsModel, label_agreement, make_pairs, pair_space, train_idm
from ilcore.errors import ConfigError


def random_experience(env_id: str, steps: int, seed: int = 0):
    env = gym.make(env_id)
    env.action_space.seed(seed)
    exp = AgentExperience()
    collect_experience(env, steps, lambda _o: env.action_space.sample(), exp, seed=seed)
    out = exp.arrays(env.observation_space, env.action_space)
    return env, out


def test_pair_space_for_vectors_is_state_and_change():
    box = gym.spaces.Box(-1, 1, (3,), dtype=np.float32)
    space = pair_space(box)
    assert set(space.spaces) == {"s", "delta"}
    s = np.zeros((2, 3), np.float32)
    pairs = make_pairs(box, s, s + 0.5)
    np.testing.assert_allclose(pairs["delta"], 0.5)
    img = gym.spaces.Box(0, 255, (8, 8, 3), dtype=np.uint8)
    assert set(pair_space(img).spaces) == {"s", "s_next"}


@pytest.mark.slow
def test_idm_accuracy_on_cartpole_is_far_above_chance(tmp_path):
    env, (obs, actions, next_obs, episode) = random_experience("CartPole-v1", 1500)
    result = train_idm(obs, actions, next_obs, observation_space=env.observation_space,
                       action_space=env.action_space, episode=episode,
                       config=BCConfig(epochs=15, hidden=(64, 64), batch_size=128, patience=5, seed=0))
    # Chance is 50%; pushing left or right shows up directly in the change of cart velocity.
    assert result.valid_agreement is not None and result.valid_agreement.accuracy > 0.9
    _, (obs2, actions2, next2, _) = random_experience("CartPole-v1", 300, seed=1)
    fresh = label_agreement(env.action_space, result.idm.predict(obs2, next2), actions2)
    assert fresh.accuracy > 0.9
    probs = result.idm.probabilities(obs2, next2)
    assert probs.shape == (300, 2)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(probs.argmax(1), result.idm.predict(obs2, next2))
    result.idm.save(tmp_path / "idm")
    again = InverseDynamicsModel.load(tmp_path / "idm")
    np.testing.assert_array_equal(again.predict(obs2, next2), result.idm.predict(obs2, next2))


@pytest.mark.slow
def test_idm_on_box_actions_beats_guessing():
    env, (obs, actions, next_obs, episode) = random_experience("Pendulum-v1", 2000)
    result = train_idm(obs, actions, next_obs, observation_space=env.observation_space,
                       action_space=env.action_space, episode=episode,
                       config=BCConfig(epochs=20, hidden=(64, 64), batch_size=128, patience=5, head="mse", seed=0))
    agreement = result.valid_agreement
    # Guessing the mean of a uniform action in [-2, 2] errs by 0.5 half-ranges on average.
    assert agreement is not None and agreement.mean_abs_error < 0.15


def test_label_agreement_counts_matches_and_box_tolerance():
    d = gym.spaces.Discrete(3)
    assert label_agreement(d, np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2])).accuracy == 0.75
    b = gym.spaces.Box(-2, 2, (1,), dtype=np.float32)
    agree = label_agreement(b, np.array([[0.0], [1.0]]), np.array([[0.1], [0.0]]), tolerance=0.1)
    assert agree.accuracy == 0.5 and agree.mean_abs_error == pytest.approx((0.05 + 0.5) / 2)


def test_idm_refuses_empty_data():
    box = gym.spaces.Box(-1, 1, (2,), dtype=np.float32)
    with pytest.raises(ConfigError):
        train_idm(np.zeros((0, 2), np.float32), np.zeros(0, np.int64), np.zeros((0, 2), np.float32),
                  observation_space=box, action_space=gym.spaces.Discrete(2))


@pytest.mark.slow
def test_an_idm_that_ignores_its_input_is_reported(recwarn):
    env, (obs, actions, next_obs, episode) = random_experience("CartPole-v1", 600)
    cfg = BCConfig(epochs=3, hidden=(16,), batch_size=128, patience=None, seed=0)
    # Labels shuffled: nothing in (s, s') predicts them, the best any model can do is their frequencies.
    shuffled = np.random.default_rng(0).permutation(actions)
    with pytest.warns(UserWarning, match="learned little beyond the action frequencies"):
        train_idm(obs, shuffled, next_obs, observation_space=env.observation_space,
                  action_space=env.action_space, episode=episode, config=cfg)
    recwarn.clear()
    train_idm(obs, actions, next_obs, observation_space=env.observation_space, action_space=env.action_space,
              episode=episode, config=BCConfig(epochs=10, hidden=(64, 64), batch_size=128, patience=None, seed=0))
    assert not [w for w in recwarn if "action frequencies" in str(w.message)]
