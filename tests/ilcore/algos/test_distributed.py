"""Data-parallel BC under torchrun: two gloo CPU processes give the single-process result, rank 0
alone writes the run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ilcore import distributed
from gymnasium import spaces

from ilcore.data import SessionWriter
from ilcore.types import Actor
from ilcore.policies import Policy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_demos(path: Path, episodes: int = 6, steps: int = 60) -> None:
    """Labels follow a linear rule of the observation, so BC has something to learn."""
    rng = np.random.default_rng(0)
    obs_space = spaces.Box(-5, 5, (4,), np.float32)
    with SessionWriter(path, env_id="CartPole-v1", observation_space=obs_space, action_space=spaces.Discrete(2)) as w:
        for _ in range(episodes):
            obs = rng.normal(size=(steps + 1, 4)).astype(np.float32)
            rec = w.begin_episode(obs[0])
            for t in range(steps):
                a = int(obs[t] @ np.array([0.2, 0.5, 1.0, 0.5]) > 0)
                rec.label(t, a, source="scripted", reason="demo")
                rec.step(a, Actor.SCRIPTED, 1.0, False, t == steps - 1, obs[t + 1])
            rec.finish()


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                            "MASTER_PORT", "LOCAL_WORLD_SIZE")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[3]) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.mark.slow
def test_torchrun_two_processes_match_one(tmp_path):
    rec = tmp_path / "rec"
    write_demos(rec)
    # batch 50 does not split evenly into the last partial batch, so the share scaling is exercised too
    train = ["train", "bc", "--data", str(rec), "--epochs", "4", "--hidden", "32", "--batch-size", "50",
             "--valid-fraction", "0.34", "--device", "cpu", "--json", "--quiet"]
    one = subprocess.run([sys.executable, "-m", "ilcore", *train, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, env=_env(), timeout=300)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                          "--master-port", str(_free_port()), "-m", "ilcore", *train, "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, env=_env(), timeout=300)
    assert two.returncode == 0, two.stderr
    summaries = [json.loads(line) for line in two.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1  # rank 1 prints nothing and writes nothing
    assert summaries[0]["processes"] == 2 and json.loads(one.stdout)["processes"] == 1
    h1 = json.loads((tmp_path / "one" / "history.json").read_text())["history"]
    h2 = json.loads((tmp_path / "two" / "history.json").read_text())["history"]
    assert h1["samples"] == h2["samples"]  # the global batch is the single-process batch
    # Same batches, gradients averaged exactly: only float summation order differs.
    np.testing.assert_allclose(h2["train_loss"], h1["train_loss"], rtol=1e-4)
    np.testing.assert_allclose(h2["valid_loss"], h1["valid_loss"], rtol=1e-4)
    assert h1["valid_loss"][-1] < h1["valid_loss"][0]  # and it learned something
    p1, p2 = Policy.load(tmp_path / "one"), Policy.load(tmp_path / "two")
    for (name, a), b in zip(p1.state_dict().items(), p2.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4, msg=name)


def test_single_process_helpers_are_no_ops(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    ctx = distributed.init_from_env(torch.device("cpu"))
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.active) == (0, 1, True, False)
    x = torch.arange(6).reshape(1, 6)
    assert torch.equal(distributed.rank_slice(x, ctx), x)
    two = distributed.DistContext(rank=1, world_size=2)
    assert distributed.rank_slice(x, two).tolist() == [[1, 3, 5]]
    t = torch.ones(3)
    assert torch.equal(distributed.all_reduce_sum(t), torch.ones(3))
    monkeypatch.setenv("LOCAL_RANK", "x")
    from ilcore.errors import ConfigError

    with pytest.raises(ConfigError, match="LOCAL_RANK"):
        distributed.env_local_rank()
