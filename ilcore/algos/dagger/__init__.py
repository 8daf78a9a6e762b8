"""DAgger with a person as the expert: a step-wise controller, gates and schedules.

The labellers it asks (and their ``Labeler`` port) are in :mod:`ilcore.labelers`.

See ``docs/internals.md`` (section ``ilcore.algos.dagger``) for the API the app relies on.
Importing this package is cheap: torch and h5py are imported only when training or recording.
"""

from ilcore.algos.dagger.adaptive import AdaptiveEnsembleGate  # also registers --query adaptive
from ilcore.algos.dagger.agreement import AgreementTracker
from ilcore.algos.dagger.controller import (
    DaggerController,
    EpisodeSummary,
    Proposal,
    RetrainConfig,
    RoundResult,
    StepOutcome,
    StepPlan,
    Totals,
    TrainedPolicy,
    calibration_states,
    query_mode_for,
    retrain_policy,
    sample_weights,
    train_next_policy,
)
from ilcore.algos.dagger.gates import (
    AllGate,
    AllOfGate,
    AnyGate,
    BetaGate,
    EnsembleGate,
    Gate,
    GateDecision,
    NeverGate,
    NoveltyGate,
    disagreement,
    make_gate,
)
from ilcore.algos.dagger.resume import Recovered, SessionScan, resume_controller, scan_session
from ilcore.algos.dagger.run import DaggerRunConfig, DaggerRunResult, RoundLog, RoundStats, episode_seed, run_dagger
from ilcore.algos.dagger.schedules import Constant, Exponential, Linear, Schedule, parse_schedule

__all__ = [
    "AdaptiveEnsembleGate", "AgreementTracker", "AllGate", "AllOfGate", "AnyGate", "BetaGate", "Constant", "DaggerController", "DaggerRunConfig",
    "EpisodeSummary",
    "DaggerRunResult", "EnsembleGate", "Exponential", "Gate", "GateDecision",
    "Linear", "NeverGate", "NoveltyGate", "Proposal", "RetrainConfig",
    "RoundResult", "RoundStats", "Schedule", "disagreement", "make_gate", "parse_schedule",
    "retrain_policy", "run_dagger", "sample_weights", "scan_session",
    "StepOutcome", "StepPlan", "Totals", "TrainedPolicy", "calibration_states", "query_mode_for", "train_next_policy",
    "Recovered", "SessionScan", "resume_controller", "RoundLog", "episode_seed",
]
