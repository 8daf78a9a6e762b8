import json

import numpy as np
import pytest
import torch

from ilcore.algos.oneshot import (
    OneShotConfig,
    TaskDemo,
    _tecnet_loss,
    collect_expert_demos,
    demos_from_recording,
    evaluate_oneshot,
    load_policy,
    save_policy,
    train_oneshot,
    write_demos,
)
from ilcore.envs.particles import task_list, task_split
from ilcore.errors import ConfigError, FormatError

SPLIT = task_split()
# The smallest budget that generalises reliably: ~30 s per model on one free thread.
TRAIN_STEPS = 3000


@pytest.fixture(scope="module")
def train_demos():
    # Many layouts per task matter more than many steps: with 12 demos per task the policy starts
    # to key on whole training tasks and generalises worse.
    return collect_expert_demos(SPLIT["train"], 30, seed=0, noise=0.3)


@pytest.fixture(scope="module")
def held_out_demos():
    # One demo per held-out task, on layouts never used in training.
    return collect_expert_demos(SPLIT["held_out"], 1, seed=999)


@pytest.fixture(scope="module")
def attention_policy(train_demos):
    config = OneShotConfig(encoder="attention", steps=TRAIN_STEPS, states_per_task=32, seed=0)
    return train_oneshot(train_demos, config).policy


def _held_out_success(policy, demos, episodes=10):
    return float(np.mean([evaluate_oneshot(policy, d, episodes=episodes, seed=500).success_rate for d in demos]))


@pytest.mark.slow
def test_demo_conditioned_policy_beats_task_blind_bc_on_held_out_tasks(
    train_demos, held_out_demos, attention_policy
):
    # Half the budget: the task-blind loss plateaus early, since no amount of training tells it the task.
    blind_config = OneShotConfig(encoder="none", steps=TRAIN_STEPS // 2, states_per_task=32)
    blind = train_oneshot(train_demos, blind_config).policy
    conditioned_rate = _held_out_success(attention_policy, held_out_demos)
    blind_rate = _held_out_success(blind, held_out_demos)
    assert conditioned_rate >= 0.7, conditioned_rate
    assert conditioned_rate >= blind_rate + 0.5, (conditioned_rate, blind_rate)


@pytest.mark.slow
def test_swapping_the_demo_swaps_the_behaviour(attention_policy, held_out_demos):
    tasks = task_list()
    # Two held-out tasks that start at different landmarks.
    a = held_out_demos[0]
    b = next(d for d in held_out_demos if tasks[d.task_id][0] != tasks[a.task_id][0])
    # The env always judges task A; only the demo shown to the policy changes.
    own = evaluate_oneshot(attention_policy, a, episodes=10, seed=7).success_rate
    swapped_demo = TaskDemo(b.observations, b.actions, task_id=a.task_id, task=b.task)
    swapped = evaluate_oneshot(attention_policy, swapped_demo, episodes=10, seed=7).success_rate
    assert own >= 0.7 and swapped <= 0.1, (own, swapped)
    # ...and shown B's demo it does B.
    assert evaluate_oneshot(attention_policy, b, episodes=10, seed=7).success_rate >= 0.7


def test_save_load_round_trip_gives_the_same_actions(tmp_path, train_demos):
    policy = train_oneshot(train_demos, OneShotConfig(encoder="attention", steps=5)).policy
    save_policy(policy, tmp_path / "run")
    loaded = load_policy(tmp_path / "run")
    obs = np.stack([d.observations[0] for d in train_demos[:8]])
    np.testing.assert_allclose(
        policy.condition(train_demos[0]).act_batch(obs), loaded.condition(train_demos[0]).act_batch(obs), atol=1e-6
    )
    assert loaded.condition(train_demos[0]).act(obs[0]).shape == (2,)


def test_load_refuses_what_is_not_a_oneshot_checkpoint(tmp_path):
    with pytest.raises(ConfigError):
        load_policy(tmp_path)
    (tmp_path / "oneshot_config.json").write_text(json.dumps({"encoder": "attention", "shiny": 1}))
    (tmp_path / "oneshot_weights.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError):
        load_policy(tmp_path)
    (tmp_path / "oneshot_config.json").write_text(json.dumps({"encoder": "attention"}))
    with pytest.raises(ConfigError):
        load_policy(tmp_path)


@pytest.mark.parametrize("encoder", ["final_state", "mean_pool", "attention", "none", "oracle"])
def test_every_encoder_trains_and_acts(encoder, train_demos):
    result = train_oneshot(train_demos[:40], OneShotConfig(encoder=encoder, steps=30, hidden=(32,), seed=1))
    assert result.history["bc_loss"][-1] < result.history["bc_loss"][0]
    action = result.policy.condition(train_demos[0]).act(train_demos[0].observations[0])
    assert action.shape == (2,) and np.all(np.abs(action) <= 1)


def test_tecnet_loss_separates_tasks_and_is_zero_when_they_are():
    ids = torch.tensor([0, 1, 2])
    separated = torch.eye(3)
    assert _tecnet_loss(separated, separated, ids, margin=0.1).item() == 0.0
    collapsed = torch.ones(3, 3)
    assert _tecnet_loss(collapsed, collapsed, ids, margin=0.1).item() == pytest.approx(0.2)
    # Same-task pairs are never negatives.
    assert _tecnet_loss(collapsed, collapsed, torch.tensor([4, 4, 4]), margin=0.1).item() == 0.0


def test_tecnet_weight_trains_the_embedding(train_demos):
    config = OneShotConfig(encoder="mean_pool", steps=150, tecnet_weight=1.0, hidden=(64,), seed=0)
    history = train_oneshot(train_demos, config).history
    assert np.mean(history["tecnet_loss"][-5:]) < 0.5 * np.mean(history["tecnet_loss"][:5])


def test_training_needs_two_demos_of_a_task(train_demos):
    one_each = {d.task_id: d for d in train_demos}.values()
    with pytest.raises(ConfigError):
        train_oneshot(list(one_each), OneShotConfig(steps=1))


def test_bad_config_and_demo_shapes_are_refused(train_demos):
    with pytest.raises(ConfigError):
        OneShotConfig(encoder="transformer")
    with pytest.raises(ValueError):
        TaskDemo(np.zeros((3, 18), np.float32), np.zeros((3, 2), np.float32), 0)
    policy = train_oneshot(train_demos[:40], OneShotConfig(steps=1, hidden=(8,))).policy
    with pytest.raises(ConfigError):
        policy.condition(TaskDemo(np.zeros((3, 5), np.float32), np.zeros((2, 2), np.float32), 0))


def test_demos_round_trip_through_a_recording(tmp_path, train_demos):
    demos = train_demos[:3]
    write_demos(tmp_path / "session", demos)
    back, env_kwargs = demos_from_recording(tmp_path / "session")
    assert env_kwargs == {}
    assert [d.task_id for d in back] == [d.task_id for d in demos]
    assert [d.task for d in back] == [d.task for d in demos]
    for got, want in zip(back, demos):
        np.testing.assert_array_equal(got.observations, want.observations)
        np.testing.assert_array_equal(got.actions, want.actions)


def test_recording_without_task_ids_is_refused(tmp_path):
    import gymnasium as gym

    from ilcore.data import SessionWriter
    from ilcore.types import Actor

    env = gym.make("ilcore/ParticleSequence-v0")
    obs, _ = env.reset(seed=0)
    with SessionWriter(tmp_path / "s", env_id="ilcore/ParticleSequence-v0",
                       observation_space=env.observation_space, action_space=env.action_space) as w:
        rec = w.begin_episode(obs)
        nxt, r, te, tr, _ = env.step(np.zeros(2, np.float32))
        rec.step(np.zeros(2, np.float32), Actor.HUMAN, r, te, tr, nxt)
        rec.finish()
    with pytest.raises(FormatError):
        demos_from_recording(tmp_path / "s")


def _cli(argv):
    """A local `ilcore`-like parser with only the one-shot sub-commands (train.py/eval.py wire them for real)."""
    import argparse

    from ilcore.cli.oneshot import add_eval_parser, add_train_parser

    parser = argparse.ArgumentParser(prog="ilcore")
    top = parser.add_subparsers(dest="command", required=True)
    add_train_parser(top.add_parser("train").add_subparsers(dest="algo", required=True))
    add_eval_parser(top.add_parser("eval").add_subparsers(dest="kind", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_trains_from_a_recording_and_evaluates_one_demo(tmp_path, train_demos, held_out_demos):
    write_demos(tmp_path / "demos", train_demos[:60])
    write_demos(tmp_path / "one", held_out_demos[:1])
    out = _cli(["train", "oneshot", "--data", str(tmp_path / "demos"), "--out", str(tmp_path / "run"),
                "--steps", "20", "--hidden", "32", "--quiet", "--json"])
    assert out["demos"] == 60 and out["tasks"] == 2
    assert (tmp_path / "run" / "history.json").is_file()
    result = _cli(["eval", "oneshot", "--policy", str(tmp_path / "run"), "--demo", str(tmp_path / "one"),
                   "--episodes", "3", "--json"])
    assert result["task_id"] == held_out_demos[0].task_id and result["episodes"] == 3
    assert 0.0 <= result["success_rate"] <= 1.0
    with pytest.raises(ConfigError):
        _cli(["eval", "oneshot", "--policy", str(tmp_path / "run"), "--demo", str(tmp_path / "one"),
              "--demo-episode", "nope"])
    with pytest.raises(ConfigError):
        _cli(["train", "oneshot", "--expert-demos", "1", "--out", str(tmp_path / "x")])
