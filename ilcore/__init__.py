"""ilcore: the engine of a human-in-the-loop imitation learning tool (no pygame, no screen).

The names a script needs first are importable from the package itself::

    from ilcore import open_recording, load_transitions, train_bc, evaluate, Policy

They load on first use (PEP 562 module ``__getattr__``), so ``import ilcore`` stays cheap and
pulls in neither torch nor h5py until one of them is touched.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "open_recording": "ilcore.data",
    "load_transitions": "ilcore.data",
    "SessionWriter": "ilcore.data",
    "train_bc": "ilcore.algos.bc",
    "BCConfig": "ilcore.algos.bc",
    "evaluate": "ilcore.eval",
    "Policy": "ilcore.policies",
    "make_policy": "ilcore.policies",
    "MetricLogger": "ilcore.metrics",
    "configure_threads": "ilcore.runtime",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # static checkers and IDEs see the real objects
    from ilcore.algos.bc import BCConfig, train_bc
    from ilcore.data import SessionWriter, load_transitions, open_recording
    from ilcore.eval import evaluate
    from ilcore.metrics import MetricLogger
    from ilcore.policies import Policy, make_policy
    from ilcore.runtime import configure_threads


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ilcore' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
