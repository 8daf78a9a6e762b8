"""Learned policies: ensembles of K members (stacked parameters, one vectorised pass) and checkpoints."""

from ilcore.policies.heads import ActionDist, CategoricalDist, GaussianDist, MeanDist
from ilcore.policies.policy import (
    HEADS,
    ObsTensors,
    Policy,
    PolicyConfig,
    PolicyOutput,
    default_head,
    make_policy,
)

__all__ = [
    "ActionDist",
    "CategoricalDist",
    "GaussianDist",
    "HEADS",
    "MeanDist",
    "ObsTensors",
    "Policy",
    "PolicyConfig",
    "PolicyOutput",
    "default_head",
    "make_policy",
]
