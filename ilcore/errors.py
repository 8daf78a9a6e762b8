"""Errors a person can cause. Their message is one clear sentence, shown as-is by the CLI."""


class UserError(Exception):
    """Base class: the message is written for a person and printed without a traceback."""


class FormatError(UserError):
    """A file or folder is not a readable recording (corrupt, truncated, foreign, newer schema)."""


class SpaceMismatchError(UserError):
    """Data does not fit the observation or action space it is meant for."""


class ConfigError(UserError):
    """A bad option, keymap, env id or checkpoint."""


class StorageError(UserError):
    """Writing failed: full disk, quota, read-only filesystem, no permission. Nothing half-written stays."""
