"""Where training runs: ``--device auto|cpu|cuda|cuda:N`` -> a ``torch.device``.

One rule for every trainer (BC, BCO, one-shot, PPO fine-tuning, DAgger retraining), so a device
string means the same thing everywhere and a bad one fails with one sentence before any work.
"""

from __future__ import annotations

import re

import torch

from ilcore.errors import ConfigError

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
_CUDA = re.compile(r"cuda(?::(\d+))?")


def resolve_device(spec: str | torch.device | None = "auto", *, local_rank: int = 0) -> torch.device:
    """The device a trainer should use.

    ``auto`` (or None): a CUDA GPU when torch sees one, else the CPU. ``cuda`` without an index
    picks GPU ``local_rank`` (modulo the GPU count), so each torchrun process on a machine gets
    its own GPU; ``cuda:N`` is taken as given. Raises ConfigError for an unknown string, for
    ``cuda`` when torch sees no GPU, or for an index past the last GPU.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = "auto" if spec is None else str(spec).strip().lower()
    if text == "cpu":
        return torch.device("cpu")
    if text == "auto":
        if torch.cuda.is_available() and torch.cuda.device_count() > 0:
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    match = _CUDA.fullmatch(text)
    if match is None:
        raise ConfigError(f"--device must be {DEVICE_CHOICES}, got {spec!r}.")
    if not torch.cuda.is_available() or torch.cuda.device_count() == 0:
        raise ConfigError(f"--device {text} asks for a CUDA GPU but torch {torch.__version__} sees none; "
                          "use --device cpu or auto.")
    count = torch.cuda.device_count()
    if match.group(1) is None:
        return torch.device("cuda", local_rank % count)
    index = int(match.group(1))
    if index >= count:
        raise ConfigError(f"--device {text} names GPU {index}, but only {count} GPU(s) are visible (0..{count - 1}).")
    return torch.device("cuda", index)
