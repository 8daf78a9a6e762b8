"""Project environments, registered with gymnasium on import (idempotent: re-imports are safe)."""

import gymnasium as _gym

# Particle sequence reaching (one-shot imitation task family); truncation is done by the env.
if "ilcore/ParticleSequence-v0" not in _gym.registry:
    _gym.register(id="ilcore/ParticleSequence-v0", entry_point="ilcore.envs.particles:ParticleSequenceEnv")

# Corridor where leaving the expert's path is costly (the DAgger horizon benchmark).
if "ilcore/Corridor-v0" not in _gym.registry:
    _gym.register(id="ilcore/Corridor-v0", entry_point="ilcore.envs.corridor:CorridorEnv")
