"""BC -> RL fine-tuning: PPO from an ilcore policy, BC/KL regularisers, log pi_BC reward shaping, SB3 export.

Nothing heavy is imported here: import the submodules (``ilcore.algos.rl.ppo``, ``.shaping``,
``.critic``, ``.regularizers``, ``.sb3``) or use the names below, which load them on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PPOConfig": "ppo",
    "PPOResult": "ppo",
    "IterationReport": "ppo",
    "compute_gae": "ppo",
    "train_ppo": "ppo",
    "save_run": "ppo",
    "PPOTrainer": "ppo",
    "RolloutBatch": "ppo",
    "Critic": "critic",
    "BCLogProbReward": "shaping",
    "VectorBCLogProbReward": "shaping",
    "bc_log_prob": "shaping",
    "RewardFn": "shaping",
    "ClippedSurrogate": "regularizers",
    "DecayingWeight": "regularizers",
    "PPOBatch": "regularizers",
    "export_to_sb3": "sb3",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ilcore.algos.rl' has no attribute {name!r}")
    return getattr(importlib.import_module(f"ilcore.algos.rl.{module}"), name)
