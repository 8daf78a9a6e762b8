"""The spine's promise end to end: record -> train bc -> eval on CartPole from 10 expert episodes."""

import json

import pytest

from ilcore.cli.main import main


@pytest.mark.slow
def test_record_train_eval_reaches_95_percent_of_expert(tmp_path, capsys):
    data = tmp_path / "cartpole"
    run = tmp_path / "run"
    assert main(["record", "--env", "CartPole-v1", "--expert", "scripted", "--episodes", "10",
                 "--out", str(data), "--seed", "0", "--json"]) == 0
    recorded = json.loads(capsys.readouterr().out)
    assert recorded["episodes"] == 10
    expert_return = recorded["mean_return"]
    assert expert_return >= 495

    assert main(["train", "bc", "--data", str(data), "--out", str(run), "--epochs", "30",
                 "--seed", "0", "--json"]) == 0
    capsys.readouterr()
    assert (run / "curve.png").exists()

    assert main(["eval", "--policy", str(run), "--env", "CartPole-v1", "--episodes", "20",
                 "--seed", "1000", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["episodes"] == 20
    assert result["mean_return"] >= 0.95 * expert_return, result


def test_info_reports_the_recording(tmp_path, capsys):
    data = tmp_path / "cp"
    assert main(["record", "--env", "CartPole-v1", "--expert", "scripted", "--episodes", "2",
                 "--out", str(data), "--json"]) == 0
    capsys.readouterr()
    assert main(["info", str(data), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["episodes"] == 2
    assert info["env_id"] == "CartPole-v1"
    assert isinstance(info["steps"], int) and info["steps"] >= 20  # scripted CartPole lasts long
    assert sum(info["labels_by_source"].values()) == info["steps"]  # demos label every step


@pytest.mark.parametrize(
    "argv",
    [
        ["info", "/nonexistent/recording"],
        ["eval", "--policy", "/nonexistent/run", "--env", "CartPole-v1", "--episodes", "1"],
        ["record", "--env", "NoSuchEnv-v9", "--expert", "scripted", "--episodes", "1", "--out", "X"],
    ],
)
def test_bad_input_is_one_line_and_nonzero(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0
    assert err.startswith("error: ")
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
