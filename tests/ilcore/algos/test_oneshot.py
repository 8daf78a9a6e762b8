import json

import numpy as np
import pytest
import torch

from ilcore.algos.losses import DemoConditionedBatch, TecNetMargin
from ilcore.algos.oneshot import (
    ENCODER_REGISTRY,
    ConditionedPolicy,
    OneShotConfig,
    TaskDemo,
    collect_expert_demos,
    demos_from_recording,
    evaluate_oneshot,
    load_policy,
    save_policy,
    train_oneshot,
    write_demos,
)
from ilcore.envs.particles import task_list, task_split
from ilcore.errors import ConfigError, FormatError, SpaceMismatchError

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


@pytest.mark.slow
def test_save_load_round_trip_gives_the_same_actions(tmp_path, train_demos):
    policy = train_oneshot(train_demos, OneShotConfig(encoder="attention", steps=5)).policy
    save_policy(policy, tmp_path / "run")
    loaded = load_policy(tmp_path / "run")
    obs = np.stack([d.observations[0] for d in train_demos[:8]])
    np.testing.assert_allclose(
        policy.condition(train_demos[0]).act_batch(obs), loaded.condition(train_demos[0]).act_batch(obs), atol=1e-6
    )
    assert loaded.condition(train_demos[0]).act(obs[0]).shape == (2,)


def test_the_checkpoint_is_the_shared_format_and_refuses_a_plain_policy_folder(tmp_path, train_demos):
    from ilcore.policies import Policy, make_policy
    from ilcore.policies.checkpoint import MAX_PARAMETERS

    policy = train_oneshot(train_demos[:40], OneShotConfig(encoder="mean_pool", steps=2, hidden=(8,))).policy
    save_policy(policy, tmp_path / "run")
    doc = json.loads((tmp_path / "run" / "config.json").read_text())
    assert doc["format"] == "ilcore-oneshot-policy" and doc["format_version"] == 1
    assert (tmp_path / "run" / "weights.pt").is_file()
    with pytest.raises(ConfigError, match="not an ilcore policy checkpoint"):
        Policy.load(tmp_path / "run")  # each loader names what it expected
    policy_space = make_policy(*_particle_spaces())
    policy_space.save(tmp_path / "plain")
    with pytest.raises(ConfigError, match="oneshot-policy"):
        load_policy(tmp_path / "plain")
    doc["hidden"] = [MAX_PARAMETERS]  # refused before anything is allocated
    (tmp_path / "run" / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError):
        load_policy(tmp_path / "run")


def _particle_spaces():
    from ilcore.eval import env_spaces

    return env_spaces("ilcore/ParticleSequence-v0")


def test_a_checkpoint_in_the_old_oneshot_format_still_loads(tmp_path, train_demos):
    policy = train_oneshot(train_demos[:40], OneShotConfig(encoder="attention", steps=2, hidden=(8,),
                                                            encoder_hidden=8, embed_dim=8, heads=2)).policy
    # What save_policy wrote before the shared format: the bare config and a state dict whose
    # encoder layers sat on the policy itself.
    (tmp_path / "oneshot_config.json").write_text(json.dumps(policy.config.to_json()))
    torch.save({k.removeprefix("encoder."): v for k, v in policy.state_dict().items()}, tmp_path / "oneshot_weights.pt")
    loaded = load_policy(tmp_path)
    obs = np.stack([d.observations[3] for d in train_demos[:4]])
    np.testing.assert_array_equal(policy.condition(train_demos[0]).act_batch(obs),
                                  loaded.condition(train_demos[0]).act_batch(obs))


def test_load_refuses_what_is_not_a_oneshot_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match="is not a one-shot policy folder"):
        load_policy(tmp_path)
    (tmp_path / "oneshot_config.json").write_text(json.dumps({"encoder": "attention", "shiny": 1}))
    (tmp_path / "oneshot_weights.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError):
        load_policy(tmp_path)
    (tmp_path / "oneshot_config.json").write_text(json.dumps({"encoder": "attention"}))
    with pytest.raises(ConfigError):
        load_policy(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("encoder", list(ENCODER_REGISTRY))
def test_every_encoder_trains_and_acts(encoder, train_demos):
    result = train_oneshot(train_demos[:40], OneShotConfig(encoder=encoder, steps=30, hidden=(32,), seed=1))
    assert result.history["bc_loss"][-1] < result.history["bc_loss"][0]
    action = result.policy.condition(train_demos[0]).act(train_demos[0].observations[0])
    assert action.shape == (2,) and np.all(np.abs(action) <= 1)


def _tecnet(embeddings, task_ids):
    batch = DemoConditionedBatch(torch.zeros(3, 1, 2), torch.zeros(3, 1, 2), embeddings, embeddings, task_ids)
    return TecNetMargin(margin=0.1)(batch).item()


def test_tecnet_loss_separates_tasks_and_is_zero_when_they_are():
    ids = torch.tensor([0, 1, 2])
    assert _tecnet(torch.eye(3), ids) == 0.0
    collapsed = torch.ones(3, 3)
    assert _tecnet(collapsed, ids) == pytest.approx(0.2)
    # Same-task pairs are never negatives.
    assert _tecnet(collapsed, torch.tensor([4, 4, 4])) == 0.0


@pytest.mark.slow
def test_training_is_seeded_locally_and_leaves_the_global_generator_alone(train_demos):
    config = OneShotConfig(encoder="attention", steps=3, hidden=(8,), encoder_hidden=8, embed_dim=8, heads=2, seed=4)
    torch.manual_seed(0)
    first = train_oneshot(train_demos[:40], config)
    drawn = torch.rand(1)
    torch.manual_seed(0)
    expected = torch.rand(1)
    assert drawn == expected  # training neither reseeded nor advanced torch's global generator
    torch.manual_seed(99)
    again = train_oneshot(train_demos[:40], config)
    assert first.history == again.history  # the seed alone decides the run
    for a, b in zip(first.policy.state_dict().values(), again.policy.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_conditioned_policy_is_evaluated_by_ilcore_eval(train_demos, held_out_demos):
    from ilcore.eval import evaluate
    from ilcore.types import Acts

    policy = train_oneshot(train_demos[:40], OneShotConfig(encoder="mean_pool", steps=2, hidden=(8,))).policy
    demo = held_out_demos[0]
    conditioned = policy.condition(demo)
    assert isinstance(conditioned, ConditionedPolicy) and isinstance(conditioned, Acts)
    result = evaluate_oneshot(policy, demo, episodes=3, seed=11)
    same = evaluate(conditioned, "ilcore/ParticleSequence-v0", episodes=3, seed=11, num_envs=3,
                    env_kwargs={"task_id": demo.task_id})
    np.testing.assert_array_equal(result.returns, same.returns)
    assert result.episodes == 3 and result.success_rate is not None
    with pytest.raises(SpaceMismatchError):
        evaluate(conditioned, "CartPole-v1", episodes=1)


@pytest.mark.slow
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
    with pytest.raises(ConfigError):
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
    from ilcore.data import SessionWriter
    from ilcore.eval import make_env
    from ilcore.types import Actor

    env = make_env("ilcore/ParticleSequence-v0")
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


@pytest.mark.slow
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
