"""Image frames streamed from the recording during training, instead of decoded into RAM up front.

A CarRacing episode is ~2 MB on disk but ~24 MB decoded (1000 frames of 96x96x3 uint8), so
holding every frame in memory stops scaling at a few hundred episodes. The streamed path keeps
only the low-dimensional columns (vector observations, actions, weights, indices) in memory and
reads each minibatch's frames in DataLoader worker processes: every worker opens the HDF5 files
itself (a :class:`~ilcore.data.dataset.LazyFrames` drops its handles when pickled and re-opens
after a fork), decodes exactly the one-frame chunks of the batch, and hands over a uint8 tensor
(pinned when training on CUDA), a few batches ahead of the training step.

The trainer still draws the minibatch order itself (the same generator, the same indices as the
in-memory path), so the two paths train on identical batches and differ only in where the
frames come from.

Choosing a path (:func:`choose_data_mode`, ``--data-mode auto``): the in-memory path holds the
decoded frames once plus, briefly, a second copy while the training split is cut out; so the data
stays in memory when ``2 x decoded bytes x processes on this host`` fits in half the available
RAM (``MemAvailable``), and, on a GPU, when the decoded bytes fit in half its free memory.
Otherwise frames are streamed. Data without image leaves is always in memory.
"""

from __future__ import annotations

import os
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ilcore import spaces as sp
from ilcore.data.dataset import LazyFrames
from ilcore.errors import ConfigError

DATA_MODES = ("auto", "memory", "stream")
MEMORY_SHARE = 0.5  # of MemAvailable (or free GPU memory) the in-memory path may take
IN_MEMORY_COPIES = 2  # decoded frames + the training-split copy cut from them


def lazy_leaves(observation_space: Any, obs: Any) -> dict[str, LazyFrames]:
    """The observation leaves still on disk (``{path: LazyFrames}``)."""
    flat = sp.flat_from_nested(observation_space, obs)
    return {p: v for p, v in flat.items() if isinstance(v, LazyFrames)}


def decoded_bytes(frames: Mapping[str, LazyFrames]) -> int:
    """Bytes the lazy leaves take once decoded (every row of the data)."""
    return int(sum(len(f) * int(np.prod(f.frame_shape, dtype=np.int64)) * f.dtype.itemsize for f in frames.values()))


def available_memory_bytes() -> int | None:
    """Memory the kernel says a new allocation can get without swapping (Linux ``MemAvailable``)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def choose_data_mode(frames: Mapping[str, LazyFrames], mode: str = "auto", *, device: torch.device | None = None,
                     processes: int = 1, available: int | None = None) -> str:
    """"memory" or "stream" for data whose image leaves are ``frames`` (see the module docstring).

    ``processes``: training processes on this host that each load the data (torchrun's local
    world size). ``available``: RAM bytes to plan against (default: :func:`available_memory_bytes`).
    """
    if mode not in DATA_MODES:
        raise ConfigError(f"--data-mode must be one of {', '.join(DATA_MODES)}, got {mode!r}.")
    if not frames:
        return "memory"  # nothing on disk to stream: low-dimensional data is already in memory
    if mode != "auto":
        return mode
    need = decoded_bytes(frames)
    ram = available_memory_bytes() if available is None else available
    if ram is not None and IN_MEMORY_COPIES * need * max(processes, 1) > MEMORY_SHARE * ram:
        return "stream"
    if device is not None and device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if need > MEMORY_SHARE * free:
            return "stream"
    return "memory"


class FrameBatches(Dataset):
    """``dataset[rows]`` -> ``{path: uint8 tensor (*rows.shape, H, W, C)}`` read from disk.

    ``rows`` is an integer array of any shape (the trainer's ``(K, B)`` per-member minibatch);
    each distinct row is decoded once, in file order.
    """

    def __init__(self, frames: Mapping[str, LazyFrames]) -> None:
        self.frames = dict(frames)

    def __getitem__(self, rows: Any) -> dict[str, torch.Tensor]:
        rows = np.asarray(rows, dtype=np.int64)
        uniq, inverse = np.unique(rows.reshape(-1), return_inverse=True)
        out = {}
        for path, frames in self.frames.items():
            picked = frames[uniq][inverse.reshape(-1)]
            out[path] = torch.from_numpy(picked.reshape(*rows.shape, *frames.frame_shape))
        return out

    def close(self) -> None:
        for frames in self.frames.values():
            frames.close()


class BatchOrder(Sampler):
    """The row arrays of the current epoch, in order; the trainer sets them before each pass.

    The sampler is iterated in the training process, so persistent workers see each epoch's
    new order without being restarted.
    """

    def __init__(self) -> None:
        self.batches: list[np.ndarray] = []

    def set(self, batches: Sequence[np.ndarray]) -> None:
        self.batches = list(batches)

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def default_workers(processes: int = 1) -> int:
    """Reader processes per trainer: one per spare core, at least one, at most four.

    Decoding a 96x96x3 frame is far cheaper than a CNN step on it, so one reader keeps a CPU
    trainer fed; more help a GPU trainer that consumes batches faster.
    """
    cores = os.cpu_count() or 1
    return int(min(4, max(1, cores // max(processes, 1) - 1)))


def frame_loader(frames: Mapping[str, LazyFrames], order: BatchOrder, *, workers: int, pin_memory: bool,
                 prefetch: int = 4) -> DataLoader:
    """A DataLoader yielding :class:`FrameBatches` for the row arrays of ``order``.

    ``workers`` = 0 reads in the training process (no prefetch); otherwise each worker keeps
    ``prefetch`` batches ready. Workers stay alive across epochs.
    """
    dataset = FrameBatches(frames)
    dataset.close()  # no handle opened here may reach a worker through fork
    return DataLoader(
        dataset,
        sampler=order,
        batch_size=None,  # the sampler already yields whole minibatches of rows
        num_workers=workers,
        pin_memory=pin_memory,
        prefetch_factor=prefetch if workers > 0 else None,
        persistent_workers=workers > 0,
    )
