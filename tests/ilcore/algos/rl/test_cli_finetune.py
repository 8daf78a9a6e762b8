"""`ilcore finetune` end to end on a BC checkpoint (tiny budget: checks the plumbing, not learning)."""

from __future__ import annotations

import json

import pytest

from ilcore.cli.main import main
from ilcore.policies import Policy
from tests.support.demos import make_weak_cartpole_demos, make_weak_cartpole_policy


@pytest.mark.slow
def test_finetune_cli_writes_a_loadable_checkpoint(tmp_path, capsys):
    bc_dir = tmp_path / "bc"
    make_weak_cartpole_policy(make_weak_cartpole_demos()).save(bc_dir)
    out = tmp_path / "ft"
    code = main(["finetune", "--policy", str(bc_dir), "--env", "CartPole-v1", "--steps", "600", "--out", str(out),
                 "--num-envs", "4", "--n-steps", "32", "--epochs", "1", "--shaping", "0.1", "--kl-weight", "0.1",
                 "--eval-episodes", "2", "--quiet", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["env_steps"] >= 600 and summary["eval"]["episodes"] == 2
    policy = Policy.load(out)
    assert policy.meta["finetuned_from"] == str(bc_dir) and policy.meta["algo"] == "ppo"
    assert (out / "critic.pt").is_file() and (out / "curve.png").is_file()


def test_finetune_cli_explains_a_missing_demo_source(tmp_path, capsys):
    bc_dir = tmp_path / "bc"
    make_weak_cartpole_policy(make_weak_cartpole_demos()).save(bc_dir)
    code = main(["finetune", "--policy", str(bc_dir), "--env", "CartPole-v1", "--steps", "100",
                 "--out", str(tmp_path / "ft"), "--bc-weight", "0.1", "--quiet"])
    assert code == 2
    assert "--demos" in capsys.readouterr().err
