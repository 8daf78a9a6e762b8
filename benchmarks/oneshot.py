"""One-shot imitation on held-out tasks: success given one demo, per encoder, vs baselines.

For each seed: scripted demos (DART noise 0.3) of the 18 training tasks of the particle family
(4 landmarks, ordered visits of 3), one policy per method, then for each of the 6 held-out tasks
one new demo (a layout never seen in training) is shown and the policy is rolled out from new
initial states. Methods:

- final_state / mean_pool / attention: demo-conditioned policies (see ilcore.algos.oneshot).
- task_blind_bc: the same network without a demo (encoder "none").
- oracle_task_id: given the task itself instead of a demo and trained on every task, held-out
  ones included - the ceiling a policy that knows the task reaches.

Writes benchmarks/results/oneshot.json and oneshot.png. Usage:
    python benchmarks/oneshot.py [--seeds 5] [--steps 6000] [--episodes 20] [--lr-floor 1.0]
                                 [--methods attention ...] [--out oneshot]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from ilcore.algos.oneshot import OneShotConfig, collect_expert_demos, evaluate_oneshot, train_oneshot
from ilcore.envs.particles import task_split
from ilcore.plots import new_figure, save_figure

RESULTS = Path(__file__).parent / "results"
METHODS = {  # reported name -> encoder
    "final_state": "final_state",
    "mean_pool": "mean_pool",
    "attention": "attention",
    "task_blind_bc": "none",
    "oracle_task_id": "oracle",
}
COLORS = {"final_state": "#9ab", "mean_pool": "#79c", "attention": "#36a", "task_blind_bc": "#c66",
          "oracle_task_id": "#6a6"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=OneShotConfig.steps)
    parser.add_argument("--demos-per-task", type=int, default=30)
    parser.add_argument("--episodes", type=int, default=20, help="new initial states per held-out demo")
    parser.add_argument("--lr-floor", type=float, default=OneShotConfig.lr_floor,
                        help="cosine decay of the learning rate down to lr * lr_floor (1: constant)")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS),
                        help="subset of methods to run (default: all)")
    parser.add_argument("--out", default="oneshot", help="stem of the result files under benchmarks/results")
    args = parser.parse_args()
    methods = {m: METHODS[m] for m in args.methods}
    torch.set_num_threads(1)

    split = task_split()
    per_seed: dict[str, list[float]] = {m: [] for m in methods}
    per_task: dict[str, dict[int, list[float]]] = {m: {t: [] for t in split["held_out"]} for m in methods}
    train_seconds: dict[str, list[float]] = {m: [] for m in methods}
    started = time.time()
    for seed in range(args.seeds):
        train = collect_expert_demos(split["train"], args.demos_per_task, seed=seed, noise=0.3)
        held_out_train = ([] if "oracle" not in methods.values() else
                          collect_expert_demos(split["held_out"], args.demos_per_task, seed=5000 + seed, noise=0.3))
        shown = collect_expert_demos(split["held_out"], 1, seed=10_000 + seed)  # one demo per held-out task
        for name, encoder in methods.items():
            data = train + held_out_train if encoder == "oracle" else train
            t0 = time.time()
            policy = train_oneshot(data, OneShotConfig(encoder=encoder, steps=args.steps, states_per_task=32,
                                                       lr_floor=args.lr_floor, seed=seed)).policy
            train_seconds[name].append(time.time() - t0)
            rates = []
            for demo in shown:
                r = evaluate_oneshot(policy, demo, episodes=args.episodes, seed=20_000 + 100 * seed).success_rate
                per_task[name][demo.task_id].append(r)
                rates.append(r)
            per_seed[name].append(float(np.mean(rates)))
            print(f"seed {seed} {name:15s} held-out success {np.mean(rates):.2f} ({train_seconds[name][-1]:.0f}s)",
                  flush=True)
        write(args, per_seed, per_task, train_seconds, seed + 1, time.time() - started)
    print_table(per_seed)
    plot(per_seed, args.out)


def write(args: argparse.Namespace, per_seed: dict, per_task: dict, train_seconds: dict, seeds_done: int,
          elapsed: float) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {
        "held_out_success": {m: float(np.mean(v)) for m, v in per_seed.items()},
        "held_out_success_std_over_seeds": {m: float(np.std(v)) for m, v in per_seed.items()},
        "held_out_success_per_seed": per_seed,
        "held_out_success_per_task": {m: {str(t): float(np.mean(v)) for t, v in d.items() if v}
                                      for m, d in per_task.items()},
        "seeds": seeds_done,
        "steps": args.steps,
        "lr_floor": args.lr_floor,
        "demos_per_task": args.demos_per_task,
        "episodes_per_demo": args.episodes,
        "env": "ilcore/ParticleSequence-v0 (4 landmarks, ordered visits of 3; 18 train / 6 held-out tasks)",
        "mean_train_seconds": {m: float(np.mean(v)) for m, v in train_seconds.items()},
        "elapsed_seconds": elapsed,
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
        },
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    (RESULTS / f"{args.out}.json").write_text(json.dumps(out, indent=2))


def print_table(per_seed: dict[str, list[float]]) -> None:
    print(f"\n{'method':16s} {'held-out success':>17s} {'std (seeds)':>12s}  per seed")
    for m, v in per_seed.items():
        print(f"{m:16s} {np.mean(v):17.3f} {np.std(v):12.3f}  {' '.join(f'{x:.2f}' for x in v)}")


def plot(per_seed: dict[str, list[float]], out: str = "oneshot") -> None:
    names = list(per_seed)
    means = [np.mean(per_seed[m]) for m in names]
    stds = [np.std(per_seed[m]) for m in names]
    fig = new_figure(7.0, 3.5)
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(names, means, yerr=stds, capsize=4, color=[COLORS[m] for m in names])
    for i, v in enumerate(per_seed.values()):
        ax.scatter([i] * len(v), v, color="k", s=8, zorder=3)
    ax.axhline(0.9, color="grey", ls="--", lw=1)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success on held-out tasks")
    ax.set_title(f"one demo of a new task ({len(next(iter(per_seed.values())))} seeds)")
    save_figure(fig, RESULTS / f"{out}.png")


if __name__ == "__main__":
    main()
