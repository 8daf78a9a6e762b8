"""The options a DAgger session is configured with, named and defaulted once for ``ilcore dagger``
and ``python -m app`` (both add them with :func:`add_arguments` and build the gate, the
beta-mixing schedule and the retraining recipe from the same :class:`DaggerOptions`)."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from ilcore.algos.bc_config import BCConfig, parse_hidden
from ilcore.algos.dagger.controller import QUERY_MODES, RetrainConfig
from ilcore.algos.dagger.gates import DEFAULT_TARGET_RATE, GATES, Gate, gate_names, make_gate
from ilcore.algos.dagger.schedules import Schedule, parse_schedule
from ilcore.errors import ConfigError


@dataclass
class DaggerOptions:
    """What shapes the learner and its questions.

    query: which learner states are sent to the labeller (a registered gate name, :func:`gate_names`)
    beta_schedule: beta-querying schedule of the "beta" gate (0.3, linear:1,0,10, exp:1,0.5)
    beta_mix: probability per step that the labeller drives instead of the learner (same forms)
    target_rate: fraction of learner-driven states the uncertainty/novelty gates ask about
    ensemble / hidden / epochs: the learner (members, MLP widths, training epochs per round)
    warm_start: each round continues from the last round's weights instead of from scratch
    interventions: the (simulated) labeller takes over when it disagrees (HG-DAgger); a person in
        the app can always take over with the takeover key
    iwr: balance intervention and other labels (IWR weighting)
    query_mode: live (ask at the step), deferred (queue for review) or mixed (live, last round deferred)
    calibration_steps: silent steps each new policy drives before its round; the gate is calibrated
        on them so the first round asks at the target rate
    seed: seeds resets, random draws and training
    """

    query: str = "ensemble"
    beta_schedule: str = "exp:1,0.5"
    beta_mix: str = "0"
    target_rate: float = DEFAULT_TARGET_RATE
    ensemble: int = 5
    hidden: tuple[int, ...] = (64, 64)
    epochs: int = 30
    warm_start: bool = False
    interventions: bool = False
    iwr: bool = False
    query_mode: str = "live"
    calibration_steps: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        self.hidden = parse_hidden(self.hidden) if isinstance(self.hidden, str) else tuple(int(h) for h in self.hidden)
        if self.query not in GATES:
            raise ConfigError(f"unknown query gate {self.query!r}; use {', '.join(gate_names())}")
        if self.query_mode not in QUERY_MODES:
            raise ConfigError(f"query mode must be one of {', '.join(QUERY_MODES)}, not {self.query_mode!r}")
        if not 0.0 < float(self.target_rate) <= 1.0:
            raise ConfigError(f"--target-rate must be in (0, 1], got {self.target_rate}")
        for name in ("ensemble", "epochs"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if int(self.calibration_steps) < 0:
            raise ConfigError(f"--calibration-steps must be >= 0, got {self.calibration_steps}")
        if any(h < 1 for h in self.hidden) or not self.hidden:
            raise ConfigError(f"--hidden widths must be positive integers, got {self.hidden}")
        self.beta_mix_schedule()
        self.beta_query_schedule()

    def beta_mix_schedule(self) -> Schedule:
        return parse_schedule(str(self.beta_mix))

    def beta_query_schedule(self) -> Schedule:
        return parse_schedule(str(self.beta_schedule))

    def gate(self) -> Gate:
        return make_gate(self.query, beta=self.beta_query_schedule(), target_rate=float(self.target_rate),
                         seed=int(self.seed), ensemble=int(self.ensemble))

    def retrain(self) -> RetrainConfig:
        return RetrainConfig(
            bc=BCConfig(epochs=int(self.epochs), ensemble=int(self.ensemble), hidden=self.hidden, seed=int(self.seed),
                        valid_fraction=0.0, patience=None),
            warm_start=bool(self.warm_start), intervention_weighting=bool(self.iwr),
            calibration_steps=int(self.calibration_steps),
        )

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "DaggerOptions":
        """The options among ``values`` (an argparse namespace's vars, a saved settings dict)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names and v is not None})


def add_arguments(p: argparse.ArgumentParser, *, query_mode: str = "live") -> None:
    """Add the shared DAgger options to a parser (defaults from :class:`DaggerOptions`)."""
    d = DaggerOptions()
    gates = "; ".join(f"{name}: {spec.help}" for name, spec in GATES.items())
    p.add_argument("--query", default=d.query, choices=gate_names(),
                   help=f"which learner states are sent to the labeller -- {gates} (default {d.query})")
    p.add_argument("--beta-schedule", default=d.beta_schedule,
                   help=f"beta-querying schedule of --query beta: 0.3, linear:1,0,10, exp:1,0.5 (default {d.beta_schedule})")
    p.add_argument("--beta-mix", default=d.beta_mix,
                   help=f"probability per step that the labeller drives instead of the learner, same forms (default {d.beta_mix})")
    p.add_argument("--target-rate", type=float, default=d.target_rate,
                   help=f"fraction of learner-driven states the uncertainty gate asks about (default {d.target_rate})")
    p.add_argument("--ensemble", type=int, default=d.ensemble, help=f"learner ensemble members (default {d.ensemble})")
    p.add_argument("--hidden", default=",".join(map(str, d.hidden)), help="hidden layer widths (default 64,64)")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"training epochs per round (default {d.epochs})")
    p.add_argument("--warm-start", action="store_true", help="continue from last round's weights instead of from scratch")
    p.add_argument("--interventions", action="store_true",
                   help="the simulated labeller takes over when it disagrees (HG-DAgger)")
    p.add_argument("--iwr", action="store_true", help="balance intervention and other labels (IWR weighting)")
    p.add_argument("--query-mode", default=query_mode, choices=QUERY_MODES,
                   help=f"live: ask at the step; deferred: queue for review; mixed: live, last round deferred (default {query_mode})")
    p.add_argument("--calibration-steps", type=int, default=d.calibration_steps,
                   help=f"silent steps each new policy drives to calibrate the gate before it asks (default {d.calibration_steps})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"seed of resets, draws and training (default {d.seed})")
