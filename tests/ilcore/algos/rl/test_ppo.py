"""PPO fine-tuning: improves a weak BC policy, warm-up freezes the actor, regularisers and checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ilcore.algos.rl.critic import Critic
from ilcore.algos.rl.ppo import PPOConfig, PPOTrainer, RolloutBatch, train_ppo
from ilcore.errors import ConfigError
from ilcore.eval import evaluate
from ilcore.policies import Policy
from tests.support.demos import make_weak_cartpole_demos, make_weak_cartpole_policy

CARTPOLE = dict(num_envs=8, n_steps=64, epochs=4, batch_size=128, lr=1e-3, gamma=0.98, gae_lambda=0.8)


@pytest.fixture(scope="module")
def weak_bc():
    demo = make_weak_cartpole_demos()
    return demo, make_weak_cartpole_policy(demo)


def _copy(policy: Policy) -> Policy:
    p = Policy.from_config(policy.config)
    p.load_state_dict(policy.state_dict())
    return p


@pytest.mark.slow
def test_finetuning_improves_a_weak_bc_policy_on_cartpole(weak_bc, tmp_path):
    demo, bc = weak_bc
    before = evaluate(bc, "CartPole-v1", episodes=10, seed=123).mean_return
    # Two seeds: one 24k-step run's end return swings by hundreds from seed to seed (see
    # docs/benchmarks.md), so the claim is checked on their mean, and each must improve.
    afters = []
    for seed in (0, 1):
        cfg = PPOConfig(**CARTPOLE, value_warmup_steps=1024, shaping_weight=0.05, shaping_decay=0.99,
                        eval_episodes=0, seed=seed)
        out = tmp_path / str(seed)
        result = train_ppo("CartPole-v1", 24_000, cfg, policy=_copy(bc), demos=demo, out_dir=out, progress=False)
        afters.append(evaluate(result.policy, "CartPole-v1", episodes=10, seed=123).mean_return)
    assert before < 100, before  # the start really is weak
    assert min(afters) > before and np.mean(afters) > before + 100, (before, afters)
    tmp_path = out
    # The run folder is a policy checkpoint like BC's, with the critic and history beside it.
    reloaded = Policy.load(tmp_path)
    obs = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    np.testing.assert_array_equal(reloaded.act_batch(obs), result.policy.act_batch(obs))
    assert reloaded.version == bc.version + 1 and reloaded.meta["algo"] == "ppo"
    critic = Critic.load(tmp_path)
    torch.testing.assert_close(critic(reloaded.obs_to_tensors(obs)), result.critic(reloaded.obs_to_tensors(obs)))
    assert (tmp_path / "curve.png").stat().st_size > 0 and (tmp_path / "history.json").is_file()


@pytest.mark.slow
def test_value_warmup_trains_the_critic_and_freezes_the_actor(weak_bc):
    _, bc = weak_bc
    policy = _copy(bc)
    critic = Critic.for_policy(policy, (32,), seed=0)
    critic_before = {k: v.clone() for k, v in critic.state_dict().items()}
    cfg = PPOConfig(**{**CARTPOLE, "num_envs": 4}, value_warmup_steps=10_000, eval_episodes=0)
    result = train_ppo("CartPole-v1", 600, cfg, policy=policy, critic=critic, progress=False)
    for name, value in bc.state_dict().items():
        torch.testing.assert_close(result.policy.state_dict()[name], value, rtol=0, atol=0)
    assert any(not torch.equal(critic_before[k], v) for k, v in result.critic.state_dict().items())
    assert all(w == 1.0 for w in result.history["warmup"])


@pytest.mark.slow
def test_bc_regulariser_weight_decays_geometrically(weak_bc):
    demo, bc = weak_bc
    cfg = PPOConfig(**{**CARTPOLE, "num_envs": 4, "n_steps": 32, "epochs": 1}, bc_weight=0.5, bc_decay=0.5,
                    eval_episodes=0)
    result = train_ppo("CartPole-v1", 600, cfg, policy=_copy(bc), demos=demo, progress=False)
    k = len(result.history["bc_weight"])
    assert k >= 4
    np.testing.assert_allclose(result.history["bc_weight"], 0.5 * 0.5 ** np.arange(k))


@pytest.mark.slow
def test_an_ensemble_policy_trains_every_member_with_kl_to_bc():
    import gymnasium as gym

    from ilcore.policies import make_policy

    env = gym.make("Pendulum-v1")
    policy = make_policy(env.observation_space, env.action_space, hidden=(16,), ensemble=2, seed=0)
    start = _copy(policy)
    cfg = PPOConfig(num_envs=3, n_steps=32, epochs=2, batch_size=32, kl_weight=0.1, eval_episodes=2)
    result = train_ppo("Pendulum-v1", 300, cfg, policy=policy, progress=False)
    assert result.critic.ensemble == 2
    w_after = result.policy.head.linear.weight.detach()
    w_before = start.head.linear.weight.detach()
    assert all(not torch.equal(w_after[m], w_before[m]) for m in range(2))  # both members moved
    assert np.isfinite(result.evals[-1]["mean_return"])


def test_bad_combinations_are_refused(weak_bc):
    _, bc = weak_bc
    with pytest.raises(ConfigError, match="demonstrations"):
        train_ppo("CartPole-v1", 100, PPOConfig(bc_weight=0.1), policy=_copy(bc), progress=False)
    with pytest.raises(ConfigError, match="reference policy"):
        train_ppo("CartPole-v1", 100, PPOConfig(kl_weight=0.1), progress=False)
    with pytest.raises(ConfigError, match="Unknown env"):
        train_ppo("NoSuchEnv-v9", 100, PPOConfig(), progress=False)
    with pytest.raises(ConfigError, match="bc_decay|decay"):
        PPOConfig(bc_weight=0.1, bc_decay=1.5).check()


def test_clipped_surrogate_stays_finite_for_a_sample_in_the_far_tail():
    # A squashed action sampled where the pre-squash mean is -55: its stored log-probability was
    # -3e7, and the next update's log-ratio overflowed exp() (the Pendulum BC-init divergence).
    from ilcore.algos.rl.regularizers import MAX_LOG_RATIO, ClippedSurrogate, PPOBatch
    from ilcore.policies import make_policy
    from gymnasium import spaces as S

    policy = make_policy(S.Box(-1, 1, (3,)), S.Box(-2, 2, (1,)), hidden=(8,), seed=0)
    obs = policy.obs_to_tensors(np.zeros((4, 3), np.float32))
    dist = policy.dist(obs)
    actions = torch.full((4, 1), 2.0)
    old = torch.tensor([[-3e7, -3e7, 0.0, 0.0]])
    adv = torch.tensor([[-3.0, 3.0, -3.0, 3.0]])
    batch = PPOBatch(policy, dist, obs, actions, None, old_log_prob=old, advantages=adv)
    loss = ClippedSurrogate(clip=0.2)(batch)
    assert torch.isfinite(loss).all()
    assert float(batch.log_ratio.abs().max()) <= MAX_LOG_RATIO
    loss.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in policy.parameters() if p.grad is not None)


@pytest.mark.slow
def test_obs_norm_steps_fit_a_fresh_policy_on_random_play_and_count_in_the_budget():
    cfg = PPOConfig(num_envs=2, n_steps=32, epochs=1, obs_norm_steps=300, eval_every=64, eval_episodes=1, seed=0)
    result = train_ppo("MountainCar-v0", 364, cfg, progress=False)
    stats = result.policy.encoder.norm_stats()[""]
    # Velocity lies in +-0.07: unscaled it would reach the network as ~0; now it has unit spread.
    assert 0.001 < stats["std"][1] < 0.07 and 0.05 < stats["std"][0] < 0.6
    assert result.evals[0]["env_steps"] == 300 and result.history["env_steps"][0] == 300 + 64
    assert result.critic.encoder.norm_stats()[""] == stats  # the critic sees the same inputs
    with pytest.raises(ConfigError, match="built from scratch"):
        train_ppo("MountainCar-v0", 64, cfg, policy=result.policy, progress=False)


def test_trainer_collect_fills_a_time_major_rollout_batch():
    cfg = PPOConfig(num_envs=4, n_steps=30, epochs=1, eval_episodes=0, seed=0)
    trainer = PPOTrainer("CartPole-v1", 1000, cfg)
    try:
        batch = trainer.collect()
    finally:
        trainer.close()
    assert isinstance(batch, RolloutBatch)
    (obs,) = batch.obs.values()
    assert obs.shape == (30, 4, 4)
    assert batch.actions.shape == (30, 4)
    for t in (batch.log_probs, batch.values, batch.rewards, batch.advantages, batch.returns, batch.valid):
        assert t.shape == (30, 4)
    assert batch.valid.dtype == torch.bool
    # env steps count real transitions only; reset steps carry no advantage or return
    assert batch.env_steps == trainer.env_steps == int(batch.valid.sum())
    assert not batch.advantages[~batch.valid].any() and not batch.returns[~batch.valid].any()
    assert torch.allclose(batch.returns[batch.valid], (batch.advantages + batch.values)[batch.valid])
    assert len(batch.episode_returns) == len(trainer.episodes["return"])


def test_trainer_step_updates_the_networks_and_reports_one_iteration():
    cfg = PPOConfig(num_envs=2, n_steps=32, epochs=2, batch_size=16, eval_episodes=0, seed=1)
    trainer = PPOTrainer("CartPole-v1", 1000, cfg)
    before = [p.detach().clone() for p in (*trainer.policy.parameters(), *trainer.critic.parameters())]
    try:
        report = trainer.step()
        stats = trainer.update(trainer.collect())  # the pieces of step() on their own
    finally:
        trainer.close()
    after = list((*trainer.policy.parameters(), *trainer.critic.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(before, after))
    assert report.iteration == 1 and 0 < report.env_steps == trainer.history["env_steps"][0] <= 64
    assert trainer.history["iteration"] == [1]  # update() alone leaves the history to step()
    assert set(stats) == {"policy_loss", "entropy", "approx_kl", "clip_fraction", "value_loss", "warmup"}
    assert stats["warmup"] == 0.0 and all(np.isfinite(v) for v in stats.values())
    result = trainer.finish()
    assert result.env_steps == trainer.env_steps > report.env_steps and result.policy.version == 1


@pytest.mark.slow
def test_train_ppo_is_the_trainer_stepped_to_the_budget():
    cfg = PPOConfig(num_envs=2, n_steps=32, epochs=1, batch_size=16, eval_episodes=0, seed=2)
    by_function = train_ppo("CartPole-v1", 128, cfg, progress=False)
    trainer = PPOTrainer("CartPole-v1", 128, cfg)
    try:
        while trainer.env_steps < 128:
            trainer.step()
    finally:
        trainer.close()
    by_trainer = trainer.finish()
    for a, b in zip(by_function.policy.state_dict().values(), by_trainer.policy.state_dict().values()):
        assert torch.equal(a, b)
    assert by_function.history["value_loss"] == by_trainer.history["value_loss"]
