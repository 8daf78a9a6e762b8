"""--logdir (TensorBoard + metrics.csv, one tag scheme) and --device for train bco / tcn / oneshot and
finetune, on tiny budgets: they check the plumbing, not learning. No GPU here, so only the CPU path
runs; asking for CUDA must be one error line before any work."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from ilcore.cli.main import main
from tests.support.demos import make_weak_cartpole_demos, make_weak_cartpole_policy
from tests.support.recordings import make_observation_only_recording


@pytest.fixture(scope="module")
def cartpole_observations(tmp_path_factory) -> Path:
    # Three episodes, so the clone BCO trains holds one out and reports a validation loss.
    return make_observation_only_recording(tmp_path_factory.mktemp("obs") / "cp", "CartPole-v1", 3)


@pytest.fixture(scope="module")
def cartpole_bc(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bc") / "run"
    make_weak_cartpole_policy(make_weak_cartpole_demos()).save(out)
    return out


def _commands(name: str, tmp: Path, observations: Path, bc: Path) -> list[str]:
    out = str(tmp / "run")
    return {
        "bco": ["train", "bco", "--data", str(observations), "--out", out, "--pre-demo-steps", "200",
                "--epochs", "2", "--idm-epochs", "2", "--hidden", "16", "--eval-episodes", "1", "--alpha", "0.5",
                "--iterations", "1"],
        "tcn": ["train", "tcn", "--data", str(observations), "--out", out, "--steps", "50",
                "--embedding-dim", "4"],
        "oneshot": ["train", "oneshot", "--expert-demos", "2", "--out", out, "--steps", "50", "--hidden", "16",
                    "--encoder", "mean_pool", "--embed-dim", "8"],
        "finetune": ["finetune", "--policy", str(bc), "--env", "CartPole-v1", "--steps", "256", "--out", out,
                     "--num-envs", "2", "--n-steps", "64", "--epochs", "1", "--eval-episodes", "1",
                     "--eval-every", "128"],
    }[name]


# What each command must log (a subset: more tags may appear).
EXPECTED_TAGS = {
    "bco": {"valid/loss", "eval/return", "bco/idm_heldout_accuracy", "bco/env_steps"},
    "tcn": {"train/loss"},
    "oneshot": {"train/loss", "train/bc_loss"},
    "finetune": {"rl/policy_loss", "rl/value_loss", "rl/env_steps", "eval/return"},
}


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The inverse dynamics model learned little")
@pytest.mark.parametrize("name", sorted(EXPECTED_TAGS))
def test_logdir_writes_the_tag_scheme_while_training(name, tmp_path, cartpole_observations, cartpole_bc, capsys):
    logs = tmp_path / "logs"
    argv = _commands(name, tmp_path, cartpole_observations, cartpole_bc)
    if name != "tcn":  # the TCN trainer has no device option (its networks are tiny)
        argv += ["--device", "cpu"]
    assert main([*argv, "--logdir", str(logs), "--quiet", "--json", "--threads", "1"]) == 0
    json.loads(capsys.readouterr().out)
    assert any(p.name.startswith("events.out.tfevents") for p in logs.iterdir())
    rows = list(csv.DictReader((logs / "metrics.csv").open()))
    tags = {r["tag"] for r in rows}
    assert EXPECTED_TAGS[name] <= tags, tags
    assert all(np.isfinite(float(r["value"])) for r in rows)
    for tag in tags:  # steps only move forward within a tag
        steps = [int(r["step"]) for r in rows if r["tag"] == tag]
        assert steps == sorted(steps), tag
    if name == "finetune":  # an evaluation every 128 env steps plus the final one, at PPO-update steps
        evals = [int(r["step"]) for r in rows if r["tag"] == "eval/return"]
        updates = [int(r["step"]) for r in rows if r["tag"] == "rl/env_steps"]
        assert evals[0] == 0 and len(evals) >= 2 and set(evals[1:]) <= set(updates)


@pytest.mark.parametrize("name", ["oneshot", "finetune", "bco"])
def test_device_without_a_gpu_is_one_error_line(name, tmp_path, cartpole_observations, cartpole_bc, capsys):
    argv = _commands(name, tmp_path, cartpole_observations, cartpole_bc)
    for device, says in (("cuda", "sees none"), ("tpu", "--device must be")):
        import torch

        if device == "cuda" and torch.cuda.is_available():
            continue
        assert main([*argv, "--device", device, "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and says in err[0], err
    assert not (tmp_path / "run").exists()  # refused before any work
