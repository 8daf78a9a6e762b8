"""`ilcore train bc` and `ilcore eval` on a small recording written with SessionWriter."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

from ilcore.cli.main import main
from ilcore.types import Actor, QueryReason
from tests.support.demos import cartpole_pd_action


def _record_cartpole(path, episodes: int) -> None:
    from ilcore.data import SessionWriter

    env = gym.make("CartPole-v1")
    with SessionWriter(path, env_id="CartPole-v1", observation_space=env.observation_space,
                       action_space=env.action_space) as writer:
        for ep in range(episodes):
            obs, _ = env.reset(seed=ep)
            rec = writer.begin_episode(obs, seed=ep)
            done = False
            while not done:
                action = cartpole_pd_action(obs)
                next_obs, reward, term, trunc, _ = env.step(action)
                step = rec.step(action, Actor.SCRIPTED, reward, term, trunc, next_obs)
                rec.label(step, action, source="scripted", reason=QueryReason.DEMO.value)
                obs, done = next_obs, term or trunc
            rec.finish()


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("rec") / "cartpole"
    _record_cartpole(path, episodes=4)
    return path


@pytest.mark.slow
def test_train_then_eval_from_a_recording(recording, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "bc", "--data", str(recording), "--out", str(run), "--epochs", "6", "--hidden", "64,64",
                 "--ensemble", "2", "--valid-fraction", "0.25", "--eval-env", "CartPole-v1", "--eval-episodes", "3",
                 "--eval-every", "3", "--quiet", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["transitions"] == 2000 and summary["version"] == 1
    assert summary["eval"]["episodes"] == 3
    assert summary["eval"]["mean_return"] >= 400
    assert (run / "curve.png").stat().st_size > 1000
    history = json.loads((run / "history.json").read_text())
    assert len(history["history"]["train_loss"]) == summary["epochs_run"]
    assert [e["epoch"] for e in history["evals"]][:2] == [3, 6]

    assert main(["eval", "--policy", str(run), "--episodes", "4", "--seed", "7", "--json"]) == 0  # env from checkpoint
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"mean_return", "ci95", "episodes", "success_rate", "returns"}
    assert result["episodes"] == 4 and len(result["returns"]) == 4
    assert result["mean_return"] >= 400 and result["success_rate"] is not None

    assert main(["eval", "--policy", str(run), "--env", "CartPole-v1", "--episodes", "2"]) == 0
    out = capsys.readouterr().out
    assert "mean return" in out and "95% CI" in out and "success rate" in out


@pytest.mark.slow
def test_eval_on_an_env_with_other_spaces_is_one_line(recording, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "bc", "--data", str(recording), "--out", str(run), "--epochs", "1", "--hidden", "8",
                 "--quiet"]) == 0
    assert "saved to" in capsys.readouterr().out
    code = main(["eval", "--policy", str(run), "--env", "Pendulum-v1", "--episodes", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [
    ["train", "bc", "--data", "REC", "--out", "RUN", "--hidden", "a,b"],
    ["train", "bc", "--data", "REC", "--out", "RUN", "--epochs", "1", "--eval-env", "Pendulum-v1"],
    ["train", "bc", "--data", "REC", "--out", "RUN", "--batch-size", "0"],
])
def test_bad_train_options_are_one_line(argv, recording, tmp_path, capsys):
    argv = [str(recording) if a == "REC" else str(tmp_path / "run") if a == "RUN" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
