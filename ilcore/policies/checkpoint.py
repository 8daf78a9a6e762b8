"""Checkpoint folders (``config.json`` + ``weights.pt``) read and written safely.

A checkpoint is a few bytes of JSON that decide how much memory the network takes, so a
crafted or damaged one must be refused before anything is allocated:

- ``config.json`` is read only if it is a regular file of at most :data:`MAX_CONFIG_BYTES`;
- the network is first built on torch's ``meta`` device (shapes only, no memory) to count its
  parameters, refused above :data:`MAX_PARAMETERS`, and to know every tensor's shape;
- ``weights.pt`` is opened with ``weights_only=True`` (no arbitrary pickles) and ``mmap=True``
  (tensor data is not read in), then its names and shapes must equal the network's and every
  value must be finite, before the real network is built and filled.

Writing builds both files' bytes first (so NaN weights or config fail before the disk is
touched), writes both to temp names and only then renames them into place, weights first:
a failure leaves the previous checkpoint (or none), never ``weights.pt`` without ``config.json``.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import stat
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from ilcore import fileio
from ilcore.errors import ConfigError

# 200 M parameters is 0.8 GB of float32: far above any network ilcore builds (the largest, a
# CNN ensemble on 96x96 frames, has ~11 M), far below what would exhaust a workstation.
MAX_PARAMETERS = 200_000_000
MAX_CONFIG_BYTES = 64 * 1024 * 1024


def read_config(path: Path, kind: str = "policy") -> dict[str, Any]:
    """The JSON object in ``path``; ConfigError if it is missing, not a regular file, too big or not JSON.
    ``kind`` names the checkpoint in messages ("policy", "critic", ...)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(f"No {kind} checkpoint at {path.parent} (expected {path}).") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"The {kind} config {path} cannot be read ({_reason(exc)}).") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"The {kind} config {path} is not a regular file.")
    if st.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"The {kind} config {path} is {st.st_size} bytes, more than the "
                          f"{MAX_CONFIG_BYTES} a checkpoint config may have.")
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise ConfigError(f"The {kind} config {path} is not readable JSON ({_reason(exc)}).") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"The {kind} config {path} does not hold a JSON object.")
    return doc


def check_format(doc: Mapping[str, Any], expected: str, newest: int, path: Path) -> int:
    """Check ``format`` and ``format_version`` of a checkpoint config; returns the version."""
    if doc.get("format") != expected:
        raise ConfigError(f"{path} is not an ilcore {expected.removeprefix('ilcore-')} checkpoint.")
    version = doc.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConfigError(f"{path} has an invalid format_version {_short(version)}.")
    if version > newest:
        raise ConfigError(f"The checkpoint {path.parent} was written by a newer ilcore (format {version}); "
                          "upgrade ilcore.")
    return version


def shapes_on_meta(build: Callable[[], nn.Module], where: str) -> dict[str, tuple[int, ...]]:
    """Build a module on the meta device (no memory) and return its state dict's shapes.

    Refuses a module above :data:`MAX_PARAMETERS` values, and turns a failure to build one
    (widths so large they overflow, a bad option) into a ConfigError.
    """
    try:
        with torch.device("meta"):
            module = build()
        shapes = {k: tuple(int(d) for d in v.shape) for k, v in module.state_dict().items()}
    except ConfigError:
        raise
    except (RuntimeError, ValueError, TypeError, OverflowError, KeyError, IndexError, MemoryError) as exc:
        raise ConfigError(f"{where} describes a network that cannot be built ({_reason(exc)}).") from None
    total = sum(_numel(s) for s in shapes.values())
    if total > MAX_PARAMETERS:
        raise ConfigError(f"{where} describes a network of {total:,} values, more than the {MAX_PARAMETERS:,} "
                          "a checkpoint may have; refusing to allocate it.")
    return shapes


def load_weights(path: Path, shapes: Mapping[str, tuple[int, ...]], config_path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``path`` whose names and shapes are exactly ``shapes`` and whose values are finite."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(f"The checkpoint {path.parent} has no {path.name}.") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"The weights file {path} cannot be read ({_reason(exc)}).") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"The weights file {path} is not a regular file.")
    try:
        # mmap: tensor data stays on disk until touched, so a lying header costs no memory.
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError:
        raise ConfigError(
            f"Refusing {path}: it holds pickled objects beyond plain tensors, which could run code when loaded."
        ) from None
    except Exception as exc:  # noqa: BLE001 - corrupt zip, truncated file, ...: all unreadable to a person alike
        raise ConfigError(f"The weights file {path} is unreadable ({type(exc).__name__}).") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise ConfigError(f"The weights file {path} does not hold a state dict of tensors.")
    mismatch = f"The weights in {path} do not match the network described by {config_path}"
    missing = sorted(set(shapes) - set(state))
    extra = sorted(set(state) - set(shapes))
    if missing or extra:
        raise ConfigError(f"{mismatch} (missing {missing[:3]}, unexpected {extra[:3]}).")
    for name, want in shapes.items():
        have = tuple(state[name].shape)
        if have != want:
            raise ConfigError(f"{mismatch} ({name} is {list(have)}, expected {list(want)}).")
        t = state[name]
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ConfigError(f"The weights file {path} holds NaN or infinite values in {name}.")
    return state


def checkpoint_bytes(config_doc: Mapping[str, Any], state: Mapping[str, torch.Tensor],
                     where: str) -> tuple[bytes, bytes]:
    """(config.json bytes, weights.pt bytes); ConfigError for NaN/inf anywhere, before any write."""
    for name, t in state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ConfigError(f"Not saving {where}: {name} holds NaN or infinite values (training diverged, or "
                              "the data held NaN/inf).")
    try:
        config_text = json.dumps(config_doc, indent=1, allow_nan=False) + "\n"
    except ValueError:
        raise ConfigError(f"Not saving {where}: its config holds NaN or infinite values.") from None
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state.items()}, buf)
    return config_text.encode("utf-8"), buf.getvalue()


def save_checkpoint(folder: Path, config_name: str, config_doc: Mapping[str, Any], weights_name: str,
                    state: Mapping[str, torch.Tensor]) -> Path:
    """Write ``weights_name`` and ``config_name`` into ``folder`` (see the module docstring)."""
    config_bytes, weights_bytes = checkpoint_bytes(config_doc, state, str(folder))
    with fileio.writing(f"create the checkpoint folder {folder}"):
        folder.mkdir(parents=True, exist_ok=True)
    fileio.write_files_atomic([(folder / weights_name, weights_bytes), (folder / config_name, config_bytes)],
                              what=f"the checkpoint {folder}")
    return folder


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    text = text.splitlines()[0] if text else type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
