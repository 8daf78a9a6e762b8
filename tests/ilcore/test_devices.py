"""--device strings resolve the same way for every trainer; CUDA branches checked with a faked GPU
count (this machine has none, so the CUDA training path itself is not exercised here)."""

from __future__ import annotations

import pytest
import torch

from ilcore.devices import resolve_device
from ilcore.errors import ConfigError


def test_cpu_and_auto_without_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    with pytest.raises(ConfigError, match="sees none"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="auto, cpu, cuda or cuda:N"):
        resolve_device("gpu0")


def test_cuda_choices_with_two_fake_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("auto", local_rank=1) == torch.device("cuda", 1)  # one GPU per torchrun process
    assert resolve_device("cuda", local_rank=3) == torch.device("cuda", 1)
    assert resolve_device("CUDA:1") == torch.device("cuda", 1)
    with pytest.raises(ConfigError, match="only 2 GPU"):
        resolve_device("cuda:2")


def test_bc_trains_on_the_requested_cpu_device_and_refuses_a_missing_gpu(monkeypatch):
    import numpy as np
    from gymnasium import spaces

    from ilcore.algos.bc import BCConfig, train_bc

    class Data:
        obs = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
        actions = (obs[:, 0] > 0).astype(np.int64)
        weights = np.ones(40, np.float32)
        episode = np.arange(40) // 10
        train_mask = valid_mask = None
        observation_space, action_space = spaces.Box(-9, 9, (3,), np.float32), spaces.Discrete(2)

        def __len__(self) -> int:
            return 40

    res = train_bc(Data(), BCConfig(epochs=1, hidden=(8,), device="cpu"), progress=False)
    assert res.policy.device == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="sees none"):
        train_bc(Data(), BCConfig(epochs=1, hidden=(8,), device="cuda"), progress=False)
