"""ilcore: the engine of a human-in-the-loop imitation learning tool (no pygame, no screen)."""

__version__ = "0.1.0"
