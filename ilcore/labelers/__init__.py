"""Labellers: whoever answers the engine's questions about states, and the port they answer through.

- :class:`Labeler` (the port), :class:`LabelContext` and the modes ``LIVE``, ``TAKEOVER``,
  ``REVIEW`` (``ilcore.labelers.base``);
- :class:`ExpertLabeler`: a scripted expert that never declines (``ilcore.labelers.expert``);
- :class:`SimulatedPerson`: a scripted expert with a person's delay, noise, cost and budget
  (``ilcore.labelers.simulated``).

They live in their own package, below both ``ilcore.experts`` (whose experts they wrap) and
``ilcore.algos.dagger`` (whose controller asks them), so neither of those imports the other.
"""

from ilcore.labelers.base import LIVE, REVIEW, TAKEOVER, LabelContext, Labeler, actions_differ
from ilcore.labelers.expert import ExpertLabeler
from ilcore.labelers.simulated import SimulatedPerson

__all__ = ["LIVE", "REVIEW", "TAKEOVER", "ExpertLabeler", "LabelContext", "Labeler", "SimulatedPerson", "actions_differ"]
