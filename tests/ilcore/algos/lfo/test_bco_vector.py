"""BCO's experience collector over vector envs: one env records what a plain env loop records,
and the in-process and worker-process vectors record the same transitions for the same seed."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from ilcore.algos.bc import BCConfig
from ilcore.algos.lfo.bco import (AgentExperience, BCOConfig, collect_experience, collect_vector_experience,
                                  per_env, run_bco, sticky_random_actions)
from ilcore.errors import ConfigError
from ilcore.eval import make_vector_env

from tests.support.demos import make_expert_demos


def _plain_loop(env: gym.Env, steps: int, act, seed: int) -> tuple[AgentExperience, list[float]]:
    """The obvious single-env loop: reset on every episode end, one transition per step."""
    exp, returns, total = AgentExperience(), [], 0.0
    obs, _ = env.reset(seed=seed)
    ep = 0
    for _ in range(steps):
        a = act(obs)
        nxt, r, term, trunc, _ = env.step(a)
        exp.obs.append(obs), exp.actions.append(a), exp.next_obs.append(nxt), exp.episode.append(ep)
        total += float(r)
        if term or trunc:
            returns.append(total)
            total, ep = 0.0, ep + 1
            obs, _ = env.reset()
        else:
            obs = nxt
    return exp, returns


def _same(a: AgentExperience, b: AgentExperience) -> None:
    assert len(a) == len(b)
    np.testing.assert_array_equal(np.asarray(a.obs), np.asarray(b.obs))
    np.testing.assert_array_equal(np.asarray(a.next_obs), np.asarray(b.next_obs))
    np.testing.assert_array_equal(np.asarray(a.actions), np.asarray(b.actions))
    assert a.episode == b.episode and a.episode_returns == b.episode_returns


def test_one_env_records_what_a_plain_loop_records():
    runs = []
    for collect in ("plain", "collector"):
        env = gym.make("CartPole-v1")
        env.action_space.seed(3)
        act = lambda _o, env=env: env.action_space.sample()  # noqa: E731
        if collect == "plain":
            exp, returns = _plain_loop(env, 150, act, seed=5)
            exp.episode_returns = returns
        else:
            exp = AgentExperience()
            returns = collect_experience(env, 150, act, exp, seed=5)
        runs.append((exp, returns))
    (a, ra), (b, rb) = runs
    assert len(ra) >= 3  # random CartPole episodes last ~20 steps: several resets were crossed
    assert ra == rb
    _same(a, b)


def test_sync_and_async_vectors_collect_the_same_transitions():
    runs = []
    for asynchronous in (False, True):
        venv = make_vector_env("CartPole-v1", None, 3, asynchronous=asynchronous)
        try:
            space = venv.single_action_space
            space.seed(1)
            act = per_env([sticky_random_actions(space, 0.5, seed=i) for i in range(3)])
            exp = AgentExperience()
            collect_vector_experience(venv, 100, act, exp, seed=7)
            collect_vector_experience(venv, 31, act, exp, seed=8)  # a second call continues the ids
        finally:
            venv.close()
        runs.append(exp)
    sync, async_ = runs
    _same(sync, async_)
    assert len(sync) == 131
    episodes = np.asarray(sync.episode)
    assert len(np.unique(episodes)) > 6  # 3 envs x 2 calls, plus the episodes that ended
    # Within each episode the transitions chain: s' of one step is s of the next.
    obs, nxt = np.asarray(sync.obs), np.asarray(sync.next_obs)
    for e in np.unique(episodes):
        rows = np.flatnonzero(episodes == e)
        np.testing.assert_array_equal(nxt[rows[:-1]], obs[rows[1:]])


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The inverse dynamics model learned little")
def test_run_bco_with_async_envs_matches_in_process_envs():
    demos = make_expert_demos("CartPole-v1", 1)
    tiny = BCConfig(epochs=2, hidden=(8,), batch_size=64, seed=0, device="cpu")
    results = []
    for asynchronous in (False, True):
        cfg = BCOConfig(alpha=0.5, iterations=1, pre_demo_steps=120, seed=0, num_envs=2, async_envs=asynchronous,
                        idm=tiny, bc=tiny)
        results.append(run_bco(demos, "CartPole-v1", cfg))
    a, b = results
    assert a.env_steps == b.env_steps == 180
    np.testing.assert_array_equal(a.inferred_actions, b.inferred_actions)
    assert [r.rollout_return for r in a.iterations] == pytest.approx([r.rollout_return for r in b.iterations],
                                                                     nan_ok=True)
    with pytest.raises(ConfigError, match="num_envs"):
        BCOConfig(num_envs=0).check()
    with pytest.raises(ConfigError, match="pass no env"):
        run_bco(demos, "CartPole-v1", BCOConfig(num_envs=2, idm=tiny, bc=tiny), env=gym.make("CartPole-v1"))
