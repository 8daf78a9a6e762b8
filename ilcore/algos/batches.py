"""Where a trainer's minibatches come from: tensors held in memory, or frames streamed from disk.

Both sources take the same per-member index batches ``(K, b)`` (positions in the training split,
drawn by the trainer) and yield ``(obs leaves (K, b, ...), actions (K, b, ...), weights (K, b))``
on the training device, so a trainer is the same loop whichever source feeds it; see
:mod:`ilcore.data.stream` for the rule that picks one.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Protocol, Sequence

import numpy as np
import torch

from ilcore import spaces as ispaces
from ilcore.data.dataset import LazyFrames
from ilcore.data.stream import BatchOrder, default_workers, frame_loader
from ilcore.policies import ObsTensors, Policy

Batch = tuple[ObsTensors, torch.Tensor, torch.Tensor]
VALID_CHUNK = 8192  # in-memory validation samples per forward pass; bounds activation memory
STREAM_VALID_CHUNK = 64  # streamed validation frames per read: keeps RSS flat in the data size


def _leaf_to_numpy(leaf: Any, n: int) -> np.ndarray:
    if isinstance(leaf, np.ndarray):
        return leaf
    # A lazy image array supports fancy indexing; read it all once so training never touches disk.
    return np.asarray(leaf[np.arange(n)])


def data_to_tensors(policy: Policy, data: Any) -> tuple[ObsTensors, torch.Tensor, torch.Tensor]:
    """(obs leaf tensors ``(N, ...)``, actions ``(N, *action_shape)``, weights ``(N,)``) in memory,
    on the policy's device."""
    n = len(data)
    flat = ispaces.flat_from_nested(policy.observation_space, data.obs)
    obs = policy.obs_to_tensors(ispaces.nested_from_flat(
        policy.observation_space, {p: _leaf_to_numpy(v, n) for p, v in flat.items()}))
    actions = policy.actions_to_tensor(data.actions)
    weights = data.weights if getattr(data, "weights", None) is not None else np.ones(n, np.float32)
    return obs, actions, torch.as_tensor(np.asarray(weights, dtype=np.float32), device=policy.device)


class BatchSource(Protocol):
    """What :func:`ilcore.algos.bc.train_bc` draws minibatches from."""

    norm_obs: ObsTensors  # the training split's in-memory leaves (vector leaves at least), for normalisation
    uniform_weights: bool

    def epoch(self, batches: Sequence[torch.Tensor]) -> Iterator[Batch]: ...

    def valid_chunks(self) -> Iterator[Batch]: ...

    def close(self) -> None: ...


class ResidentBatches:
    """Every training and validation row decoded once into tensors on the policy's device."""

    def __init__(self, policy: Policy, data: Any, train_idx: np.ndarray, valid_idx: np.ndarray) -> None:
        obs, actions, weights = data_to_tensors(policy, data)
        dev = policy.device
        t_idx, v_idx = torch.as_tensor(train_idx, device=dev), torch.as_tensor(valid_idx, device=dev)
        self.valid: Batch = ({p: v[v_idx] for p, v in obs.items()}, actions[v_idx], weights[v_idx])
        # Keep only training rows resident for the hot loop, so indices need no second lookup.
        self.obs = {p: v[t_idx] for p, v in obs.items()}
        self.actions, self.weights = actions[t_idx], weights[t_idx]
        self.norm_obs = self.obs
        self.uniform_weights = bool(len(self.weights) == 0 or torch.all(self.weights == self.weights[0]))
        self.device = dev

    def epoch(self, batches: Sequence[torch.Tensor]) -> Iterator[Batch]:
        for idx in batches:
            idx = idx.to(self.device)
            yield {p: v[idx] for p, v in self.obs.items()}, self.actions[idx], self.weights[idx]

    def valid_chunks(self) -> Iterator[Batch]:
        obs, actions, weights = self.valid
        for lo in range(0, len(actions), VALID_CHUNK):
            sl = slice(lo, lo + VALID_CHUNK)
            yield {p: v[sl] for p, v in obs.items()}, actions[sl], weights[sl]

    def close(self) -> None:
        pass


class StreamedBatches:
    """Low-dimensional columns in memory; image leaves read per minibatch by DataLoader workers.

    ``workers`` None picks :func:`ilcore.data.stream.default_workers`; 0 reads in this process.
    """

    def __init__(self, policy: Policy, data: Any, train_idx: np.ndarray, valid_idx: np.ndarray,
                 frames: Mapping[str, LazyFrames], *, workers: int | None = None, processes: int = 1) -> None:
        dev = policy.device
        space = policy.observation_space
        flat = ispaces.flat_from_nested(space, data.obs)
        # Lazy leaves get an empty stand-in so the policy converts only the in-memory leaves.
        stand_in = {p: np.zeros((0, *frames[p].frame_shape), frames[p].dtype) if p in frames else v
                    for p, v in flat.items()}
        resident = {p: t for p, t in policy.obs_to_tensors(ispaces.nested_from_flat(space, stand_in)).items()
                    if p not in frames}
        actions = policy.actions_to_tensor(data.actions)
        weights = data.weights if getattr(data, "weights", None) is not None else np.ones(len(data), np.float32)
        weights = torch.as_tensor(np.asarray(weights, dtype=np.float32), device=dev)
        t_idx, v_idx = torch.as_tensor(train_idx, device=dev), torch.as_tensor(valid_idx, device=dev)
        self.obs = {p: v[t_idx] for p, v in resident.items()}
        self.actions, self.weights = actions[t_idx], weights[t_idx]
        self.valid_obs = {p: v[v_idx] for p, v in resident.items()}
        self.valid_actions, self.valid_weights = actions[v_idx], weights[v_idx]
        self.train_rows = np.asarray(train_idx, dtype=np.int64)
        self.valid_rows = np.asarray(valid_idx, dtype=np.int64)
        self.norm_obs = self.obs
        self.uniform_weights = bool(len(self.weights) == 0 or torch.all(self.weights == self.weights[0]))
        self.device = dev
        self.order = BatchOrder()
        self.loader: Any = frame_loader(frames, self.order,
                                        workers=default_workers(processes) if workers is None else workers,
                                        pin_memory=dev.type == "cuda")

    def _frames(self) -> Iterator[dict[str, torch.Tensor]]:
        for frames in self.loader:
            # Pinned host memory lets the copy overlap the previous step on a GPU.
            yield {p: f.to(self.device, non_blocking=True) for p, f in frames.items()}

    def epoch(self, batches: Sequence[torch.Tensor]) -> Iterator[Batch]:
        self.order.set([self.train_rows[idx.numpy()] for idx in batches])
        for idx, frames in zip(batches, self._frames()):
            idx = idx.to(self.device)
            yield {**{p: v[idx] for p, v in self.obs.items()}, **frames}, self.actions[idx], self.weights[idx]

    def valid_chunks(self) -> Iterator[Batch]:
        n = len(self.valid_rows)
        starts = range(0, n, STREAM_VALID_CHUNK)
        self.order.set([self.valid_rows[lo:lo + STREAM_VALID_CHUNK] for lo in starts])
        for lo, frames in zip(starts, self._frames()):
            sl = slice(lo, lo + STREAM_VALID_CHUNK)
            yield ({**{p: v[sl] for p, v in self.valid_obs.items()}, **frames},
                   self.valid_actions[sl], self.valid_weights[sl])

    def close(self) -> None:
        # Dropping the loader ends its persistent workers (and their open files).
        self.loader = None
