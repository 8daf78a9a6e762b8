import json

import pytest

from ilcore.cli.main import main

ARGS = ["dagger", "--env", "CartPole-v1", "--expert", "simulated", "--query", "ensemble", "--target-rate", "0.2",
        "--episodes-per-round", "1", "--eval-episodes", "2", "--demo-max-steps", "30", "--max-episode-steps", "60",
        "--epochs", "5", "--ensemble", "3", "--hidden", "16"]


@pytest.mark.slow
def test_dagger_cli_json_schema_curve_and_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(ARGS + ["--rounds", "1", "--out", str(out), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rounds"]
    assert [r["round"] for r in rows] == [0, 1]
    assert all(set(r) == {"round", "labels", "human_seconds", "mean_return", "query_rate"} for r in rows)
    # the demonstration counts as labels; its round has no learner-driven step, so no query rate
    assert rows[0]["labels"] == 30 and rows[0]["query_rate"] is None
    assert 0.0 < rows[1]["query_rate"] < 1.0  # asked / learner-driven steps
    assert rows[1]["labels"] > rows[0]["labels"] and rows[1]["human_seconds"] > rows[0]["human_seconds"]
    assert (out / "curve.png").stat().st_size > 0

    assert main(["dagger", "--resume", str(out), "--rounds", "2", "--json", "--logdir", str(tmp_path / "logs")]) == 0
    resumed = json.loads(capsys.readouterr().out)["rounds"]
    assert resumed[:2] == rows and resumed[2]["round"] == 2 and resumed[2]["labels"] >= rows[1]["labels"]
    # each round's policy is kept, and the final one is where `ilcore eval --policy RUN` looks
    assert sorted(p.name for p in (out / "recordings" / "policies").iterdir()) == ["v001", "v002", "v003"]
    assert main(["eval", "--policy", str(out), "--env", "CartPole-v1", "--episodes", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 2
    logged = (tmp_path / "logs" / "metrics.csv").read_text().splitlines()
    assert "2,dagger/labels," + repr(float(resumed[2]["labels"])) in logged


def test_dagger_cli_refuses_to_overwrite_and_bad_options(tmp_path, capsys):
    assert main(["dagger", "--rounds", "1"]) == 2
    assert "needs --env" in capsys.readouterr().err
    (tmp_path / "recordings").mkdir()
    assert main(ARGS + ["--out", str(tmp_path)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(ARGS + ["--beta-mix", "linear:1", "--out", str(tmp_path / "x")]) == 2
