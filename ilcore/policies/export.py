"""Export a policy so it runs without ilcore: a TorchScript file any torch program can load.

The exported module maps observation leaf tensors (one positional argument per leaf, in the order
of ``inputs`` in the embedded ``ilcore.json``; each with a leading batch axis N) to the ensemble's
deterministic action ``(N, *action_shape)``: the same numbers as ``Policy.act_batch(obs)``.
Ensembles (all K members in one pass) and CNN encoders export alike::

    import json, torch
    files = {"ilcore.json": ""}
    net = torch.jit.load("policy.pt", _extra_files=files)
    spec = json.loads(files["ilcore.json"])      # inputs (path, shape, dtype), action space
    action = net(torch.as_tensor(obs[None], dtype=torch.float32))[0]
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces as gspaces
from torch import nn

from ilcore import spaces as ispaces
from ilcore.errors import ConfigError
from ilcore.policies.policy import Policy

EXPORT_FORMATS = ("torchscript",)
SPEC_FILE = "ilcore.json"


class DeterministicPolicy(nn.Module):
    """``forward(*leaves) -> action``: the policy's ensemble action, clipped to the action bounds."""

    low: torch.Tensor  # buffers registered in __init__ for Box actions (the module is traced)
    high: torch.Tensor

    def __init__(self, policy: Policy) -> None:
        super().__init__()
        self.policy = policy
        self.paths = [p for p, _ in ispaces.flat_items(policy.observation_space)]
        self.dtypes = [policy._obs_dtypes[p] for p in self.paths]
        space = policy.action_space
        self.box = isinstance(space, gspaces.Box)
        if isinstance(space, gspaces.Box):
            low = np.asarray(space.low, np.float32)
            high = np.asarray(space.high, np.float32)
            self.register_buffer("low", torch.as_tensor(low))
            self.register_buffer("high", torch.as_tensor(high))

    def forward(self, *leaves: torch.Tensor) -> torch.Tensor:
        obs = {p: x.to(dtype) for p, x, dtype in zip(self.paths, leaves, self.dtypes)}
        action = self.policy.dist(obs).ensemble_action()
        if self.box:  # as Policy._to_numpy_action does for partly bounded boxes
            action = torch.minimum(torch.maximum(action, self.low), self.high)
        return action


def export_spec(policy: Policy) -> dict[str, Any]:
    """What a program without ilcore needs to feed the exported module and read its output."""
    inputs = [{"path": p, "shape": list(leaf.shape or ()), "dtype": str(policy._obs_dtypes[p]).replace("torch.", "")}
              for p, leaf in ispaces.flat_items(policy.observation_space)]
    return {"format": "ilcore-exported-policy", "format_version": 1, "inputs": inputs,
            "action_space": ispaces.space_to_json(policy.action_space),
            "ensemble": policy.ensemble, "version": policy.version, "meta": policy.meta}


def example_inputs(policy: Policy, n: int = 2, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """``n`` observations sampled from the observation space, as the module's positional inputs."""
    space = policy.observation_space
    space.seed(seed)
    batch = [space.sample() for _ in range(n)]
    stacked = ispaces.flat_from_nested(space, _stack(space, batch))
    return tuple(torch.as_tensor(np.asarray(stacked[p]), dtype=policy._obs_dtypes[p])
                 for p, _ in ispaces.flat_items(space))


def _stack(space: gspaces.Space, samples: list[Any]) -> Any:
    if isinstance(space, gspaces.Dict):
        return {k: _stack(sub, [s[k] for s in samples]) for k, sub in space.spaces.items()}
    if isinstance(space, gspaces.Tuple):
        return tuple(_stack(sub, [s[i] for s in samples]) for i, sub in enumerate(space.spaces))
    return np.stack([np.asarray(s) for s in samples])


def export_policy(policy: Policy, out: str | os.PathLike[str], fmt: str = "torchscript") -> Path:
    """Write ``policy`` to the file ``out`` in ``fmt`` and return the path.

    TorchScript: a traced module (batch size free) with the spec stored as the extra file
    ``ilcore.json``. Raises ConfigError for an unknown format.
    """
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"Unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}.")
    path = Path(out)
    if path.is_dir():
        raise ConfigError(f"--out {path} is a folder; name the file to write, e.g. {path / 'policy.pt'}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    module = DeterministicPolicy(copy.deepcopy(policy)).eval()
    for param in module.parameters():  # callers need no torch.no_grad() around the loaded module
        param.requires_grad_(False)
    tmp = path.with_name(f".{path.name}.tmp")
    # torch 2.9+ marks TorchScript deprecated in favour of torch.export, whose files need a matching
    # torch to load; TorchScript still loads in any torch >= 1.x and in libtorch (C++), hence kept.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(module, example_inputs(policy), check_trace=False)
        torch.jit.save(traced, str(tmp), _extra_files={SPEC_FILE: json.dumps(export_spec(policy))})
    os.replace(tmp, path)
    return path
