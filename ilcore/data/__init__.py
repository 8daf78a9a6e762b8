"""Recording format and data layer: crash-safe sessions, label overlay, loaders, interop.

See ``docs/format.md`` for the on-disk layout and ``docs/internals.md`` for the contract.
Heavy imports (h5py) happen inside the functions that need them.
"""

from ilcore.data.dataset import LazyFrames, TransitionData, load_transitions
from ilcore.data.labels import effective_label_rows
from ilcore.data.format import SCHEMA_VERSION
from ilcore.data.pack import pack
from ilcore.data.reader import Recording, open_recording
from ilcore.data.writer import EpisodeRecorder, SessionWriter, default_session_path

__all__ = [
    "SCHEMA_VERSION",
    "EpisodeRecorder",
    "LazyFrames",
    "Recording",
    "SessionWriter",
    "TransitionData",
    "default_session_path",
    "effective_label_rows",
    "load_transitions",
    "open_recording",
    "pack",
]
