"""Gates decide, at each learner-driven state, whether to ask the labeller for a label.

Every gate has the same small surface:

- ``decide(obs, uncertainty, rng=None) -> GateDecision`` for one observation (not batched);
  ``uncertainty`` is the learner ensemble's disagreement at ``obs`` (a float >= 0).
- ``calibrate(observations, uncertainties)`` after a round, with the learner-driven states of
  that round (a list of single observations and an (N,) array); threshold gates set their
  threshold so that a fraction ``target_rate`` of such states would have been asked.
- ``start_round(round)`` before a round (the beta gate reads its schedule here).
- ``set_labelled(observations)`` with every labelled state so far, shape (N, D) once flattened
  (only the novelty gate uses it).
- ``observe(agreed)`` after each answered live query: whether the learner's action there matched
  the answer (only the adaptive gate, :mod:`ilcore.algos.dagger.adaptive`, uses it).

Gates hold their own small state (threshold, running values) and no global state.

A gate becomes a ``--query`` choice (``ilcore dagger``, the app) with one :func:`register_gate`
call, which gives its name, factory and help line; :func:`make_gate` and the CLI read the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from ilcore.algos.dagger.schedules import Constant, Schedule
from ilcore.errors import ConfigError
from ilcore.types import QueryReason

DEFAULT_TARGET_RATE = 0.05
"""The threshold gates' default share of learner-driven states to ask about (``--target-rate``).

Measured with per-episode accounting, full-length demonstrations, 5 seeds (docs/benchmarks.md,
label efficiency): labels to 95% of the expert at 0.05 / 0.1 / 0.2 -- LunarLander 317 / 542 / 619,
Pendulum 263 / 296 / -, CartPole 514 / 528 / -, Acrobot 73 / 73 / -. Asking less per episode
lets each retrained policy show where it is still wrong before more labels are spent; it costs
learner episodes (LunarLander needed fewer, 3257 vs 4914 learner steps; Pendulum more, 2200 vs
1200)."""


@dataclass(frozen=True)
class GateDecision:
    """One gate's answer at one state.

    query:     ask the labeller at this state
    reason:    a QueryReason value naming the signal that asked (None when not asking)
    value:     the signal the gate compared (disagreement, novelty distance, or the beta draw)
    threshold: what ``value`` was compared with (beta for the beta gate; None when not applicable)
    """

    query: bool
    reason: str | None
    value: float
    threshold: float | None


@runtime_checkable
class Gate(Protocol):
    def start_round(self, round: int) -> None: ...

    def decide(
        self, obs: Any, uncertainty: float, rng: np.random.Generator | None = None
    ) -> GateDecision: ...

    def calibrate(self, observations: Sequence[Any], uncertainties: np.ndarray) -> None: ...

    def set_labelled(self, observations: np.ndarray) -> None: ...

    def observe(self, agreed: bool) -> None: ...


class _GateBase:
    """No-op defaults so each gate writes only what it uses."""

    def start_round(self, round: int) -> None:
        return None

    def calibrate(self, observations: Sequence[Any], uncertainties: np.ndarray) -> None:
        return None

    def set_labelled(self, observations: np.ndarray) -> None:
        return None

    def observe(self, agreed: bool) -> None:
        return None


class AllGate(_GateBase):
    """Plain DAgger: every visited state is labelled."""

    def decide(self, obs: Any, uncertainty: float, rng: np.random.Generator | None = None) -> GateDecision:
        return GateDecision(True, QueryReason.ALL.value, float(uncertainty), None)


class NeverGate(_GateBase):
    """Asks nothing (learner-only rollouts, or interventions as the only source of labels)."""

    def decide(self, obs: Any, uncertainty: float, rng: np.random.Generator | None = None) -> GateDecision:
        return GateDecision(False, None, float(uncertainty), None)


class BetaGate(_GateBase):
    """Beta-querying: each visited state is sent to the labeller with probability beta(round)."""

    def __init__(self, schedule: Schedule | float = 0.5, *, seed: int = 0) -> None:
        self.schedule: Schedule = Constant(schedule) if isinstance(schedule, (int, float)) else schedule
        self.beta = self.schedule(0)
        # Used only when the caller passes no rng; the controller passes a per-episode one.
        self._rng = np.random.default_rng(seed)

    def start_round(self, round: int) -> None:
        self.beta = self.schedule(round)

    def decide(self, obs: Any, uncertainty: float, rng: np.random.Generator | None = None) -> GateDecision:
        draw = float((rng or self._rng).random())
        ask = draw < self.beta
        return GateDecision(ask, QueryReason.BETA.value if ask else None, draw, self.beta)


class _ThresholdGate(_GateBase):
    """Asks when a signal exceeds a threshold calibrated as its (1 - target_rate) quantile.

    ``calibrate`` sets the threshold from the learner-driven states of the last round
    (ThriftyDAgger's rule). With ``adapt=True`` (default) the gate then keeps tracking that
    quantile over a sliding window of the last ``window`` signals (the calibration values first,
    then every state it decides on), because each round's policy visits states the last round's
    did not: with a fixed threshold the realized rate on CartPole was 2.5-3.3x the target (0.25-0.33
    for 0.1), with the window it stays near it. Before any calibration the window starts empty
    (the first state always asks), so the very first learner round asks at about the target rate.
    ``adapt=False`` keeps the calibrated threshold fixed for the whole round.

    A running quantile still lags when the learner drifts steadily into unfamiliar states (every
    new value beats the past ones), so with ``burst`` set (default 10) the gate also keeps a
    budget: each decision earns ``target_rate`` of a query, at most ``burst`` are saved up, and a
    query spends one. The person is then never asked much more than ``target_rate`` of the states
    (over n states at most ``target_rate * n + burst``). ``burst=None`` turns the budget off.

    Uncertain states come in runs (a learner drifting off for a few dozen steps), so the budget
    drops some of a run's queries and the quiet stretches after it ask none: a CartPole round of
    one 300-step episode asked 6-7% for a 10% target. With ``catch_up`` set (default 50) the
    quantile level is the target plus what the round is behind, made up over about ``catch_up``
    decisions (minus what it is ahead), so a round's realized rate converges on the target.
    ``calibrate`` fills the window with a random sample of the whole calibration set (a silent
    rollout of the new policy, see ``ilcore.algos.dagger.calibration_states``), not its last
    ``window`` values, which would be one correlated episode.

    ``min_gap`` (default 0: off) asks at most once in any ``min_gap + 1`` consecutive decisions:
    neighbouring states of one run of uncertainty are near-duplicates, and a label on one of them
    teaches the learner most of what a label on the next would (the catch-up term spends the
    saved queries on later states).
    """

    reason: str = ""

    def __init__(
        self, target_rate: float = DEFAULT_TARGET_RATE, *, threshold: float | None = None, adapt: bool = True,
        window: int = 200, burst: float | None = 10.0, catch_up: float | None = 50.0, min_gap: int = 0,
    ) -> None:
        if not 0.0 < target_rate <= 1.0:
            raise ConfigError(f"target_rate must be in (0, 1], got {target_rate}")
        if min_gap < 0:
            raise ConfigError(f"min_gap must be >= 0, got {min_gap}")
        self.min_gap = int(min_gap)
        self._since_ask = self.min_gap  # decisions since the last query (the first may ask)
        self.target_rate = float(target_rate)
        self.catch_up = catch_up
        self._decided = 0  # decisions and queries in this round (the catch-up term)
        self._asked = 0
        self.threshold: float | None = threshold
        self.adapt = adapt
        self.window = int(window)
        self._recent: list[float] = []
        self._rng = np.random.default_rng(0)  # tie-breaking when the caller passes no rng
        self.burst = burst
        self._credit = 1.0 if burst is None else float(burst)

    def signal(self, obs: Any, uncertainty: float) -> float:
        raise NotImplementedError

    def signals(self, observations: Sequence[Any], uncertainties: np.ndarray) -> np.ndarray:
        return np.array([self.signal(o, u) for o, u in zip(observations, uncertainties)], dtype=np.float64)

    def start_round(self, round: int) -> None:
        self._decided = self._asked = 0
        self._since_ask = self.min_gap

    def level(self) -> float:
        """The fraction of the window's values to ask above: the target, plus what this round is
        behind (or minus what it is ahead), made up over about ``catch_up`` decisions."""
        if not self.adapt or self.catch_up is None or self._decided == 0:
            return self.target_rate
        behind = self.target_rate * self._decided - self._asked
        return min(max(self.target_rate + behind / float(self.catch_up), 0.0), 1.0)

    def decide(self, obs: Any, uncertainty: float, rng: np.random.Generator | None = None) -> GateDecision:
        value = float(self.signal(obs, uncertainty))
        level = self.level()
        if self.adapt or self.threshold is None:
            self._remember([value])
            if len(self._recent) > 1:
                self.threshold = float(np.quantile(self._recent, 1.0 - level))
        threshold = self.threshold
        if threshold is None or len(self._recent) <= 1 and self.adapt:
            ask = True
        elif value > threshold:
            ask = True
        elif value == threshold and self._recent:
            # Ties at the threshold (many members agreeing exactly, disagreement 0) would make
            # ">" ask far too little and ">=" far too much: ask tied states with the probability
            # that brings the rate over the window to the target.
            recent = np.asarray(self._recent)
            above, tied = float(np.mean(recent > threshold)), float(np.mean(recent == threshold))
            p_tie = min(max((level - above) / tied, 0.0), 1.0) if tied > 0 else 0.0
            ask = bool((rng or self._rng).random() < p_tie)
        else:
            ask = False
        if ask and self._since_ask < self.min_gap:
            ask = False  # a near neighbour of the last state asked about
        if self.burst is not None:
            self._credit = min(self._credit + self.target_rate, float(self.burst))
            if ask and self._credit < 1.0:
                ask = False  # over budget: the rate cap wins over the signal
            elif ask:
                self._credit -= 1.0
        self._decided += 1
        self._asked += int(ask)
        self._since_ask = 0 if ask else self._since_ask + 1
        return GateDecision(bool(ask), self.reason if ask else None, value, threshold)

    def calibrate(self, observations: Sequence[Any], uncertainties: np.ndarray) -> None:
        values = self.signals(observations, np.asarray(uncertainties, dtype=np.float64))
        values = values[np.isfinite(values)]
        if len(values) == 0:
            return  # nothing learner-driven this round (e.g. beta-mixing at 1): keep the old one
        self.threshold = float(np.quantile(values, 1.0 - self.target_rate))
        if len(values) > self.window:
            # The window must stand for the whole calibration set: its tail alone is one episode's
            # correlated states (a silent rollout of 1000 steps kept only its last 200, and the
            # first round then asked 0-2.5x the target).
            keep = np.sort(np.random.default_rng(len(values)).choice(len(values), self.window, replace=False))
            values = values[keep]
        self._recent = []
        self._remember(list(values))
        if self.burst is not None:
            # A calibrated gate starts the round with one query in hand, not a full burst: saved-up
            # credit let a short first round ask up to target * n + burst (1.35-2x the target).
            self._credit = min(1.0, float(self.burst))

    def _remember(self, values: list[float]) -> None:
        self._recent.extend(v for v in values if np.isfinite(v))
        if len(self._recent) > self.window:
            del self._recent[: len(self._recent) - self.window]


class EnsembleGate(_ThresholdGate):
    """Active gating: ask when the ensemble's disagreement exceeds the calibrated threshold.

    Works for any action space; the disagreement is what the policy reports (vote or
    Jensen-Shannon for Discrete, member variance for Box; see :func:`disagreement`).
    """

    reason = QueryReason.UNCERTAINTY.value

    def signal(self, obs: Any, uncertainty: float) -> float:
        return float(uncertainty)

    def signals(self, observations: Sequence[Any], uncertainties: np.ndarray) -> np.ndarray:
        return np.asarray(uncertainties, dtype=np.float64)


class NoveltyGate(_ThresholdGate):
    """Ask when the state is far from every labelled state (standardised Euclidean distance).

    Keeps at most ``max_reference`` labelled states (a seeded random subset) so a decision stays
    cheap; observations are flattened to vectors (Dict/Tuple leaves concatenated).
    """

    reason = QueryReason.NOVELTY.value

    def __init__(
        self, target_rate: float = DEFAULT_TARGET_RATE, *, threshold: float | None = None, adapt: bool = True,
        window: int = 200, burst: float | None = 10.0, max_reference: int = 20000, seed: int = 0,
    ) -> None:
        super().__init__(target_rate, threshold=threshold, adapt=adapt, window=window, burst=burst)
        self.max_reference = max_reference
        self._seed = seed
        self._reference: np.ndarray | None = None  # (M, D) standardised
        self._mean = np.zeros(0)  # the labelled states' statistics: read only once _reference is set
        self._scale = np.ones(0)

    def set_labelled(self, observations: np.ndarray) -> None:
        ref = np.asarray(observations, dtype=np.float64).reshape(len(observations), -1)
        if len(ref) == 0:
            self._reference = None
            return
        if len(ref) > self.max_reference:
            keep = np.random.default_rng(self._seed).choice(len(ref), self.max_reference, replace=False)
            ref = ref[keep]
        self._mean = ref.mean(axis=0)
        self._scale = ref.std(axis=0) + 1e-6
        self._reference = (ref - self._mean) / self._scale

    def signal(self, obs: Any, uncertainty: float) -> float:
        if self._reference is None:
            return float("inf")  # nothing labelled yet: everything is novel
        x = (flatten_obs(obs).astype(np.float64) - self._mean) / self._scale
        return float(np.sqrt(np.min(np.sum((self._reference - x) ** 2, axis=1))))


class _Combined(_GateBase):
    def __init__(self, gates: Sequence[Gate]) -> None:
        if not gates:
            raise ConfigError("a combined gate needs at least one gate")
        self.gates = list(gates)

    def start_round(self, round: int) -> None:
        for g in self.gates:
            g.start_round(round)

    def calibrate(self, observations: Sequence[Any], uncertainties: np.ndarray) -> None:
        for g in self.gates:
            g.calibrate(observations, uncertainties)

    def set_labelled(self, observations: np.ndarray) -> None:
        for g in self.gates:
            g.set_labelled(observations)

    def observe(self, agreed: bool) -> None:
        for g in self.gates:
            g.observe(agreed)

    def _decisions(self, obs: Any, uncertainty: float, rng: np.random.Generator | None) -> list[GateDecision]:
        return [g.decide(obs, uncertainty, rng) for g in self.gates]


class AnyGate(_Combined):
    """Asks when any of its gates asks; reports the first gate that asked."""

    def decide(self, obs: Any, uncertainty: float, rng: np.random.Generator | None = None) -> GateDecision:
        ds = self._decisions(obs, uncertainty, rng)
        chosen = next((d for d in ds if d.query), ds[0])
        return GateDecision(chosen.query, chosen.reason, chosen.value, chosen.threshold)


class AllOfGate(_Combined):
    """Asks only when every one of its gates asks; reports the first gate."""

    def decide(self, obs: Any, uncertainty: float, rng: np.random.Generator | None = None) -> GateDecision:
        ds = self._decisions(obs, uncertainty, rng)
        ask = all(d.query for d in ds)
        return GateDecision(ask, ds[0].reason if ask else None, ds[0].value, ds[0].threshold)


def flatten_obs(obs: Any) -> np.ndarray:
    """One observation (array, dict or tuple of arrays) -> a 1-D float32 vector (dict keys sorted)."""
    if isinstance(obs, dict):
        return np.concatenate([flatten_obs(obs[k]) for k in sorted(obs)])
    if isinstance(obs, tuple):
        return np.concatenate([flatten_obs(o) for o in obs])
    return np.asarray(obs, dtype=np.float32).reshape(-1)


def disagreement(member_outputs: np.ndarray, kind: str) -> np.ndarray:
    """Ensemble disagreement per state, for policies that give member outputs but no score.

    kind="vote":     member_outputs (K, N) discrete actions -> 1 - (largest vote share), in [0, 1)
    kind="js":       member_outputs (K, N, A) action probabilities -> Jensen-Shannon divergence
                     (entropy of the mean minus mean entropy, nats)
    kind="variance": member_outputs (K, N, D) continuous actions -> variance across members,
                     averaged over the D action dimensions
    Returns an (N,) float64 array.
    """
    x = np.asarray(member_outputs)
    if kind == "vote":
        k = x.shape[0]
        share = np.array([np.max(np.unique(col, return_counts=True)[1]) for col in x.T]) / k
        return 1.0 - share
    if kind == "js":
        p = np.clip(x.astype(np.float64), 1e-12, 1.0)
        mean = p.mean(axis=0)
        ent_mean = -(mean * np.log(mean)).sum(-1)
        mean_ent = -(p * np.log(p)).sum(-1).mean(0)
        return np.maximum(ent_mean - mean_ent, 0.0)
    if kind == "variance":
        v = x.astype(np.float64).reshape(x.shape[0], x.shape[1], -1)
        return v.var(axis=0).mean(axis=-1)
    raise ConfigError(f"unknown disagreement kind {kind!r}; use vote, js or variance")


@dataclass(frozen=True)
class GateSpec:
    """One registered ``--query`` gate.

    factory:        ``factory(beta=schedule, target_rate=rate, seed=seed) -> Gate`` (each gate
                    takes the settings it uses and ignores the rest)
    help:           one line for the CLI's ``--query`` help
    needs_ensemble: the gate reads ensemble disagreement, so a one-member learner is refused
    """

    factory: Callable[..., Gate]
    help: str
    needs_ensemble: bool = False


GATES: dict[str, GateSpec] = {}
"""name -> gate, in registration order (the order ``--query`` lists them)."""
_ALIASES: dict[str, str] = {}


def register_gate(name: str, factory: Callable[..., Gate], *, help: str, needs_ensemble: bool = False,
                  aliases: Sequence[str] = ()) -> None:
    """Make a gate a ``--query`` choice of ``ilcore dagger`` and the app (its name, help line and
    :func:`make_gate` all come from here). ``aliases`` are accepted by :func:`make_gate` only."""
    if name in GATES or name in _ALIASES:
        raise ConfigError(f"a query gate named {name!r} is already registered")
    GATES[name] = GateSpec(factory, help, needs_ensemble)
    for alias in aliases:
        _ALIASES[alias] = name


def gate_names() -> tuple[str, ...]:
    """The registered gate names, in registration order."""
    return tuple(GATES)


def make_gate(kind: str, *, beta: Schedule | None = None, target_rate: float = DEFAULT_TARGET_RATE, seed: int = 0,
              ensemble: int | None = None) -> Gate:
    """The gate registered as ``kind`` (a CLI ``--query`` value; see :func:`gate_names`).

    ``ensemble`` is the learner's member count when known: a single member never disagrees
    with itself, so an ensemble gate over it would only ask at random.
    """
    spec = GATES.get(_ALIASES.get(kind, kind))
    if spec is None:
        names = gate_names()
        raise ConfigError(f"unknown query gate {kind!r}; use {', '.join(names[:-1])} or {names[-1]}")
    if spec.needs_ensemble and ensemble is not None and ensemble < 2:
        raise ConfigError(f"the {kind} query gate needs an ensemble of at least 2 members, not {ensemble}")
    return spec.factory(beta=beta if beta is not None else Constant(0.5), target_rate=target_rate, seed=seed)


register_gate("all", lambda **_: AllGate(), help="every visited state (plain DAgger)")
register_gate("beta", lambda *, beta, seed, **_: BetaGate(beta, seed=seed),
              help="each state with probability beta(round) (--beta-schedule)")
register_gate("ensemble", lambda *, target_rate, **_: EnsembleGate(target_rate), needs_ensemble=True,
              help="states where the learner ensemble disagrees most, at --target-rate")
register_gate("novelty", lambda *, target_rate, seed, **_: NoveltyGate(target_rate, seed=seed),
              help="states far from every labelled state, at --target-rate")
register_gate("ensemble+novelty",
              lambda *, target_rate, seed, **_: AnyGate([EnsembleGate(target_rate / 2),
                                                         NoveltyGate(target_rate / 2, seed=seed)]),
              needs_ensemble=True, help="either signal, each at half --target-rate")
register_gate("none", lambda **_: NeverGate(), aliases=("intervention",),
              help="never asks (interventions are the only labels)")
