"""`ilcore train tcn` -> `ilcore finetune --tcn` on a tiny budget, and the error lines of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ilcore.cli.main import main
from tests.support.recordings import make_observation_only_recording


@pytest.fixture(scope="module")
def mountaincar_demo(tmp_path_factory) -> Path:
    return make_observation_only_recording(tmp_path_factory.mktemp("demo") / "mc", "MountainCar-v0", 2)


@pytest.fixture(scope="module")
def mountaincar_tcn(tmp_path_factory, mountaincar_demo) -> Path:
    out = tmp_path_factory.mktemp("tcn") / "run"
    assert main(["train", "tcn", "--data", str(mountaincar_demo), "--out", str(out), "--steps", "30",
                 "--embedding-dim", "8", "--quiet"]) == 0
    return out


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.mark.slow
def test_train_tcn_then_finetune_on_its_reward(tmp_path, capsys, mountaincar_demo, mountaincar_tcn):
    from ilcore.algos.lfo.tcn import TimeContrastiveEmbedding
    from ilcore.policies import Policy

    capsys.readouterr()
    tcn = TimeContrastiveEmbedding.load(mountaincar_tcn)
    assert tcn.input_shape == (2,) and not tcn.is_image and tcn.encode(np.zeros((3, 2), np.float32)).shape == (3, 8)
    out = tmp_path / "ft"
    code = main(["finetune", "--env", "MountainCar-v0", "--steps", "400", "--out", str(out), "--tcn", str(mountaincar_tcn),
                 "--tcn-demo", str(mountaincar_demo), "--tcn-weight", "0.5", "--env-reward-weight", "1",
                 "--num-envs", "2", "--n-steps", "64", "--epochs", "1", "--eval-episodes", "1", "--quiet", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["env_steps"] >= 400
    assert summary["tcn_reward"]["weight"] == 0.5 and summary["tcn_reward"]["demo_frames"] > 50
    assert summary["eval"]["mean_return"] == -200.0  # the env's own return: a 400-step policy does not reach the flag
    assert Policy.load(out).meta["algo"] == "ppo"


@pytest.mark.slow
def test_train_tcn_json_summary(tmp_path, capsys, mountaincar_demo):
    code = main(["train", "tcn", "--data", str(mountaincar_demo), "--out", str(tmp_path / "t"), "--steps", "5",
                 "--seed", "3", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"] == 2 and summary["frame_shape"] == [2] and summary["image"] is False
    assert (tmp_path / "t" / "tcn.json").is_file()


def _finetune(tmp_path, *extra: str, env: str = "MountainCar-v0") -> int:
    return main(["finetune", "--env", env, "--steps", "100", "--out", str(tmp_path / "ft"), "--quiet", *extra])


def test_missing_tcn_run_is_one_error_line(tmp_path, capsys, mountaincar_demo):
    assert _finetune(tmp_path, "--tcn", str(tmp_path / "nowhere"), "--tcn-demo", str(mountaincar_demo)) == 2
    assert "nowhere" in _error_line(capsys)
    assert not (tmp_path / "ft").exists()


@pytest.mark.slow
def test_env_observation_that_is_not_the_tcn_frame_is_refused(tmp_path, capsys, mountaincar_demo, mountaincar_tcn):
    assert _finetune(tmp_path, "--tcn", str(mountaincar_tcn), "--tcn-demo", str(mountaincar_demo), env="CartPole-v1") == 2
    assert "(2,)" in _error_line(capsys)


@pytest.mark.slow
def test_demo_frames_of_another_shape_are_refused(tmp_path, capsys, mountaincar_tcn):
    cartpole_demo = make_observation_only_recording(tmp_path / "cp", "CartPole-v1", 1)
    assert _finetune(tmp_path, "--tcn", str(mountaincar_tcn), "--tcn-demo", str(cartpole_demo)) == 2
    line = _error_line(capsys)
    assert "(4,)" in line and "(2,)" in line


def test_image_tcn_is_refused_with_one_line(tmp_path, capsys, mountaincar_demo):
    from ilcore.algos.lfo.tcn import TCNConfig, TimeContrastiveEmbedding

    TimeContrastiveEmbedding.untrained((16, 16, 3), True, TCNConfig(cnn_features=8)).save(tmp_path / "img")
    assert _finetune(tmp_path, "--tcn", str(tmp_path / "img"), "--tcn-demo", str(mountaincar_demo)) == 2
    assert "image" in _error_line(capsys)


@pytest.mark.parametrize("args, needle", [
    (["--tcn-demo", "x"], "--tcn"),
    (["--env-reward-weight", "1"], "--tcn"),
    (["--tcn", "RUN"], "--tcn-demo"),
])
def test_tcn_flags_out_of_place_are_refused(tmp_path, capsys, args, needle):
    assert _finetune(tmp_path, *args) == 2
    assert needle in _error_line(capsys)


def test_train_tcn_on_a_missing_recording_is_one_error_line(tmp_path, capsys):
    assert main(["train", "tcn", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "t"), "--quiet"]) == 2
    _error_line(capsys)
