"""Compounding errors, measured: excess cost vs horizon T for BC and DAgger (same per-step error).

Env: ``ilcore/Corridor-v0`` (one-hot position in [-10, 10], cost 1 per step away from 0; the
expert's cost is 0). Learner: a lookup table from the labelled states (majority label; a state it
never saw gets its most common label overall, which is what a network trained on those labels
would also output there), executed with a per-step error budget: with probability EPS it takes a
random wrong action. The same EPS and the same table learner are used for BC and DAgger; the only
difference is which states got labels.

- BC: expert demonstrations only: as many labelled steps as DAgger ends up using, capped at 50
  episodes (the expert never leaves the corridor, so more demonstrations give the same table).
- DAgger: one demonstration round, then ROUNDS rounds where the erring learner drives and every
  visited state is labelled by the expert (``AllGate``), run with ``run_dagger`` and the real
  recorder; the table is rebuilt from the recordings each round.

Theory (Ross & Bagnell 2010, Ross et al. 2011): BC's excess cost grows like eps*T^2, DAgger's
like eps*T, so the log-log slopes should be about 2 and 1. With EPS*T no longer small (EPS=1e-3,
T=500: 0.5) BC's cost starts to saturate toward T, bending its slope a little below 2.

Writes benchmarks/results/horizon.json and benchmarks/results/horizon.png.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

HORIZONS = (10, 20, 50, 100, 200, 500)
EPS = 1e-3
ROUNDS = 4
STEPS_PER_ROUND = 2000  # learner steps per DAgger round (episodes = ceil(2000 / T))
EVAL_STEPS = 400_000  # evaluation steps per (method, T): 40,000 episodes at T=10, 800 at T=500
HALF_WIDTH = 10
RESULTS = Path(__file__).resolve().parent / "results"


class TableLearner:
    """Majority label per one-hot state; unseen states get the overall majority label.

    ``predict`` errs on purpose: with probability ``eps`` the action is a uniformly random other
    action (the per-step error budget), and reports uncertainty 0 (gates are not used here).
    """

    def __init__(self, table: dict[int, int], default: int, eps: float, seed: int) -> None:
        self.table, self.default, self.eps = table, default, eps
        self.rng = np.random.default_rng(seed)
        self.version = 0

    def act_clean(self, obs: np.ndarray) -> int:
        return self.table.get(int(np.argmax(obs)), self.default)

    def act(self, obs: np.ndarray) -> int:
        a = self.act_clean(obs)
        if self.rng.random() < self.eps:
            a = int((a + 1 + self.rng.integers(2)) % 3)
        return a

    def predict(self, obs_batch: np.ndarray) -> Any:
        from types import SimpleNamespace

        acts = np.array([self.act(o) for o in np.asarray(obs_batch)], dtype=np.int64)
        return SimpleNamespace(action=acts, uncertainty=np.zeros(len(acts)), member_actions=acts[None])


def fit_table(paths: Sequence[Path], eps: float, seed: int) -> TableLearner:
    from ilcore.data import load_transitions

    data = load_transitions(list(paths), labels="label", valid_fraction=0.0)
    states = np.argmax(np.asarray(data.obs), axis=1)
    actions = np.asarray(data.actions).astype(int)
    table = {}
    for s in np.unique(states):
        table[int(s)] = int(np.bincount(actions[states == s], minlength=3).argmax())
    default = int(np.bincount(actions, minlength=3).argmax())
    return TableLearner(table, default, eps, seed)


def excess_cost(learner: TableLearner, horizon: int, episodes: int, seed: int) -> tuple[float, float]:
    """Mean cost per episode (and its standard error) of the erring learner; the expert's is 0."""
    from ilcore.envs.corridor import CorridorEnv

    env = CorridorEnv(horizon=horizon, half_width=HALF_WIDTH)
    learner.rng = np.random.default_rng([seed, horizon])  # independent draws per T
    costs = np.empty(episodes)
    for i in range(episodes):
        obs, _ = env.reset()
        cost = 0.0
        for _ in range(horizon):
            obs, r, _, _, _ = env.step(learner.act(obs))
            cost -= r
        costs[i] = cost
    return float(costs.mean()), float(costs.std(ddof=1) / math.sqrt(episodes))


def run_one(horizon: int, workdir: Path, seed: int = 0) -> dict[str, Any]:
    import gymnasium as gym

    import ilcore.envs  # noqa: F401  (registers ilcore/Corridor-v0)
    from ilcore.algos.dagger import AllGate, DaggerRunConfig, run_dagger
    from ilcore.labelers import ExpertLabeler
    from ilcore.envs.corridor import CorridorExpert

    eps_per_round = max(1, math.ceil(STEPS_PER_ROUND / horizon))
    train = lambda paths, prev: fit_table(paths, EPS, seed)  # noqa: E731
    t0 = time.perf_counter()
    dagger = run_dagger(
        "ilcore/Corridor-v0", ExpertLabeler(CorridorExpert()), AllGate(), workdir / f"dagger_T{horizon}",
        DaggerRunConfig(rounds=ROUNDS, demo_episodes=eps_per_round, episodes_per_round=eps_per_round,
                        eval_episodes=0, seed=seed),
        env=gym.make("ilcore/Corridor-v0", horizon=horizon, half_width=HALF_WIDTH), env_kwargs={"horizon": horizon},
        train_fn=train,
    )
    labels = dagger.rounds[-1].labels
    bc = run_dagger(
        "ilcore/Corridor-v0", ExpertLabeler(CorridorExpert()), AllGate(), workdir / f"bc_T{horizon}",
        DaggerRunConfig(rounds=0, demo_episodes=min(50, max(1, labels // horizon)), eval_episodes=0, seed=seed),
        env=gym.make("ilcore/Corridor-v0", horizon=horizon, half_width=HALF_WIDTH), env_kwargs={"horizon": horizon},
        train_fn=train,
    )
    collect_s = time.perf_counter() - t0
    episodes = max(200, EVAL_STEPS // horizon)
    bc_cost, bc_se = excess_cost(bc.policy, horizon, episodes, seed + 1)
    dg_cost, dg_se = excess_cost(dagger.policy, horizon, episodes, seed + 1)
    return {
        "T": horizon, "eval_episodes": episodes, "bc_labels": bc.rounds[-1].labels, "dagger_labels": labels,
        "bc_excess_cost": bc_cost, "bc_se": bc_se, "dagger_excess_cost": dg_cost, "dagger_se": dg_se,
        "ratio_bc_over_dagger": bc_cost / dg_cost if dg_cost > 0 else None,
        "dagger_states_known": sorted(int(k) - HALF_WIDTH for k in dagger.policy.table),
        "collect_seconds": collect_s,
    }


def slope(ts: Sequence[float], costs: Sequence[float]) -> float:
    return float(np.polyfit(np.log(ts), np.log(costs), 1)[0])


def main() -> None:
    import torch

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="horizon-"))
    rows = []
    try:
        for T in HORIZONS:
            row = run_one(T, work)
            rows.append(row)
            print(f"T={T:4d} BC {row['bc_excess_cost']:8.3f} ± {row['bc_se']:.3f}   "
                  f"DAgger {row['dagger_excess_cost']:7.4f} ± {row['dagger_se']:.4f}   "
                  f"labels {row['dagger_labels']:5d}   states {row['dagger_states_known']}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ts = [r["T"] for r in rows]
    bc_slope = slope(ts, [r["bc_excess_cost"] for r in rows])
    dg_slope = slope(ts, [r["dagger_excess_cost"] for r in rows])
    print()
    print("| T | BC excess cost | DAgger excess cost | BC / DAgger |")
    print("| --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['T']} | {r['bc_excess_cost']:.3f} ± {r['bc_se']:.3f} | {r['dagger_excess_cost']:.4f} ± "
              f"{r['dagger_se']:.4f} | {r['ratio_bc_over_dagger']:.1f} |")
    print(f"\nlog-log slope: BC {bc_slope:.2f}, DAgger {dg_slope:.2f} (theory: about 2 and 1)")
    result = {
        "benchmark": "horizon", "eps": EPS, "rounds": ROUNDS, "steps_per_round": STEPS_PER_ROUND,
        "eval_steps": EVAL_STEPS, "half_width": HALF_WIDTH, "rows": rows,
        "bc_slope": bc_slope, "dagger_slope": dg_slope,
        "machine": {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                    "python": sys.version.split()[0], "torch": torch.__version__},
        "date": datetime.date.today().isoformat(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "horizon.json").write_text(json.dumps(result, indent=1))
    plot(rows, bc_slope, dg_slope, RESULTS / "horizon.png")


def plot(rows: list[dict], bc_slope: float, dg_slope: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = np.array([r["T"] for r in rows], dtype=float)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for key, name, s in (("bc", "BC", bc_slope), ("dagger", "DAgger", dg_slope)):
        c = np.array([r[f"{key}_excess_cost"] for r in rows])
        se = np.array([r[f"{key}_se"] for r in rows])
        ax.errorbar(ts, c, yerr=1.96 * se, marker="o", capsize=3, label=f"{name} (slope {s:.2f})")
        fit = np.polyfit(np.log(ts), np.log(c), 1)
        ax.plot(ts, np.exp(np.polyval(fit, np.log(ts))), ls=":", color=ax.lines[-1].get_color())
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("horizon T")
    ax.set_ylabel("excess cost per episode (expert = 0)")
    ax.set_title(f"Corridor, per-step error eps={EPS}", fontsize=9)
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
