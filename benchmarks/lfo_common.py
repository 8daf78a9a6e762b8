"""Helpers shared by the LfO benchmarks (bco.py, tcn.py, third_person.py)."""

from __future__ import annotations

import datetime
import os
import platform

import gymnasium as gym
import numpy as np
import torch

from ilcore.algos.lfo.bco import ObservationDemos
from ilcore.experts import make_expert


def machine() -> dict:
    return {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "date": datetime.datetime.now().isoformat(timespec="seconds")}


def expert_demos(env_id: str, episodes: int, seed: int = 1000) -> ObservationDemos:
    env = gym.make(env_id)
    expert = make_expert(env_id, env=env)
    seqs, acts = [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        expert.reset()
        o_list, a_list = [obs], []
        while True:
            a = expert.act(obs)
            obs, _, terminated, truncated, _ = env.step(a)
            o_list.append(obs)
            a_list.append(np.asarray(a))
            if terminated or truncated:
                break
        seqs.append(np.stack(o_list))
        acts.append(np.stack(a_list))
    space = env.observation_space
    env.close()
    return ObservationDemos.from_sequences(space, seqs, acts)
