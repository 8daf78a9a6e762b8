"""``ilcore record`` end to end: expert episodes land in a session with clean demo labels."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from ilcore.cli.main import main
from ilcore.data import open_recording
from ilcore.experts import make_expert
from ilcore.types import Actor


def record(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict | None, str]:
    code = main(["record", *args])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if code == 0 and "--json" in args else None), captured.err


def test_record_cartpole_with_noise_labels_the_clean_action(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cartpole"
    code, summary, _ = record(["--env", "CartPole-v1", "--expert", "scripted", "--episodes", "2", "--out", str(out),
                               "--seed", "5", "--noise", "0.2", "--json"], capsys)
    assert code == 0
    assert summary is not None and set(summary) == {"out", "episodes", "steps", "mean_return"}
    assert summary["out"] == str(out) and summary["episodes"] == 2

    rec = open_recording(out)
    assert rec.env_id == "CartPole-v1"
    episodes = [rec.load_episode(i) for i in rec.episode_ids()]
    assert [ep.meta.seed for ep in episodes] == [5, 6]  # episode i uses seed S+i
    assert summary["steps"] == sum(ep.length for ep in episodes)
    assert summary["mean_return"] == pytest.approx(np.mean([ep.total_return for ep in episodes]))

    expert = make_expert("CartPole-v1")
    disagreements = 0
    for ep in episodes:
        assert np.all(ep.actors == Actor.SCRIPTED)
        labels = ep.effective_labels()
        assert sorted(labels) == list(range(ep.length))  # every step labelled
        for t, label in labels.items():
            assert (label.source, label.reason) == ("scripted", "demo")
            # The label is the clean expert's answer for the observation it saw ...
            assert int(label.action) == expert.act(ep.observations[t])
            disagreements += int(ep.actions[t]) != int(label.action)
    # ... while the executed action was perturbed (p = 0.2 * 1/2 per step).
    total_steps = summary["steps"]
    assert 0.05 * total_steps < disagreements < 0.15 * total_steps


def test_record_continuous_env_without_noise_executes_the_labels(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pendulum"
    code, summary, _ = record(["--env", "Pendulum-v1", "--episodes", "1", "--out", str(out), "--json"], capsys)
    assert code == 0 and summary is not None
    ep = open_recording(out).load_episode(open_recording(out).episode_ids()[0])
    assert ep.length == 200 and ep.truncated and not ep.terminated
    labels = ep.effective_labels()
    np.testing.assert_array_equal(np.stack([labels[t].action for t in range(ep.length)]), ep.actions)
    assert summary["mean_return"] > -400  # the expert swung it up (random play scores ~ -1200)


def test_record_env_kwargs_reach_the_env(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "lander"
    code, summary, _ = record(["--env", "LunarLander-v3", "--env-kwargs", '{"continuous": true}', "--episodes", "1",
                               "--out", str(out), "--json"], capsys)
    assert code == 0 and summary is not None
    rec = open_recording(out)
    assert isinstance(rec.action_space, gym.spaces.Box) and rec.env_kwargs == {"continuous": True}
    assert summary["mean_return"] > 200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--env", "NoSuchEnv-v0"], "Unknown env id"),
        (["--env", "FrozenLake-v1"], "no scripted expert"),
        (["--env", "CartPole-v1", "--noise", "2"], "noise"),
        (["--env", "CartPole-v1", "--episodes", "0"], "--episodes"),
        (["--env", "CartPole-v1", "--env-kwargs", "{oops"], "--env-kwargs"),
    ],
)
def test_record_refuses_bad_requests_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 args: list[str], message: str) -> None:
    out = tmp_path / "nothing"
    code, _, err = record([*args, "--out", str(out)], capsys)
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0]
    assert not out.exists()


def test_record_never_writes_into_an_existing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, _, err = record(["--env", "CartPole-v1", "--episodes", "1", "--out", str(out)], capsys)
    assert code == 2 and "already exists" in err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_record_keeps_scalar_reset_info_so_a_task_family_demo_names_its_task(tmp_path, capsys):
    from ilcore.cli.main import main
    from ilcore.data import open_recording

    out = tmp_path / "particles"
    assert main(["record", "--env", "ilcore/ParticleSequence-v0", "--expert", "scripted",
                 "--episodes", "2", "--seed", "5", "--out", str(out), "--json"]) == 0
    capsys.readouterr()
    rec = open_recording(out)
    task_ids = [rec.load_episode(i).meta.attrs["task_id"] for i in rec.episode_ids()]
    assert all(isinstance(t, int) for t in task_ids)
    assert rec.load_episode(rec.episode_ids()[0]).meta.attrs["expert"] == "ParticleSequenceExpert"
