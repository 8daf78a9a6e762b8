"""Helpers shared by the LfO benchmarks (bco.py, tcn.py, third_person.py)."""

from __future__ import annotations

import datetime
import os
import platform

import gymnasium as gym
import numpy as np
import torch

from ilcore.algos.lfo.bco import ObservationDemos
from ilcore.experts import expert_rollouts


def machine() -> dict:
    return {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "date": datetime.datetime.now().isoformat(timespec="seconds")}


def expert_demos(env_id: str, episodes: int, seed: int = 1000) -> ObservationDemos:
    space, seqs, acts = expert_rollouts(env_id, episodes, seed=seed)
    return ObservationDemos.from_sequences(space, seqs, acts)
