"""Scripted experts: a policy per env with a measured return, and DART-style noise.

``make_expert(env_id, env=None, **env_kwargs)`` returns the :class:`Expert` for an env;
``available_experts()`` lists the env ids covered. See ``benchmarks/experts.py`` for the
measured returns quoted as each expert's ``documented_return``.
"""

from ilcore.experts.base import Expert, NoisyExpert
from ilcore.experts.registry import available_experts, expert_rollouts, make_expert

__all__ = ["Expert", "NoisyExpert", "available_experts", "expert_rollouts", "make_expert"]
