"""Scripted experts: episode return over seeds 0..19, against a uniform-random baseline.

    python benchmarks/experts.py [--seeds 20] [--random-seeds 5] [--envs CartPole-v1 ...]

Prints a table and writes benchmarks/results/experts.json. Each expert is run on its own env
with ``env.reset(seed=s)`` for s in 0..N-1; the random baseline samples the action space
(seeded) on the first few of the same seeds. The means are what the experts quote as
``documented_return``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import gymnasium as gym  # noqa: E402

from ilcore.experts import make_expert  # noqa: E402

# (row name, env id, env kwargs)
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("CartPole-v1", "CartPole-v1", {}),
    ("MountainCar-v0", "MountainCar-v0", {}),
    ("MountainCarContinuous-v0", "MountainCarContinuous-v0", {}),
    ("Pendulum-v1", "Pendulum-v1", {}),
    ("Acrobot-v1", "Acrobot-v1", {}),
    ("LunarLander-v3", "LunarLander-v3", {}),
    ("LunarLander-v3 (continuous)", "LunarLander-v3", {"continuous": True}),
    ("CarRacing-v3", "CarRacing-v3", {}),
]


def episode_returns(env: gym.Env, choose: Callable[[Any], Any], seeds: range, on_reset: Callable[[], None]) -> tuple[list[float], list[int]]:
    returns, lengths = [], []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        on_reset()
        total, steps, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(choose(obs))
            total += float(reward)
            steps += 1
            done = terminated or truncated
        returns.append(total)
        lengths.append(steps)
    return returns, lengths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--random-seeds", type=int, default=5)
    parser.add_argument("--envs", nargs="*", default=None, help="row names to run (default all)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    rows = []
    for name, env_id, kwargs in CASES:
        if args.envs and name not in args.envs:
            continue
        env = gym.make(env_id, **kwargs)
        expert = make_expert(env_id, env=env)
        start = time.perf_counter()
        returns, lengths = episode_returns(env, expert.act, range(args.seeds), expert.reset)
        seconds = time.perf_counter() - start
        env.action_space.seed(12345)
        random_returns, _ = episode_returns(env, lambda _obs: env.action_space.sample(),
                                            range(args.random_seeds), lambda: None)
        env.close()
        r = np.asarray(returns)
        row = {
            "name": name, "env_id": env_id, "env_kwargs": kwargs, "expert": type(expert).__name__,
            "seeds": args.seeds, "mean": float(r.mean()), "std": float(r.std()), "min": float(r.min()),
            "max": float(r.max()), "mean_length": float(np.mean(lengths)), "returns": [float(x) for x in r],
            "random_mean": float(np.mean(random_returns)), "random_seeds": args.random_seeds,
            "documented_return": expert.documented_return,
            "steps_per_second": float(np.sum(lengths) / seconds),
        }
        rows.append(row)
        print(f"{name:<28} mean {row['mean']:8.1f}  std {row['std']:6.1f}  min {row['min']:8.1f}  "
              f"len {row['mean_length']:6.1f}  random {row['random_mean']:8.1f}  ({seconds:.0f} s)", flush=True)

    print()
    print("| env | expert mean ± std | min | max | mean length | random policy mean |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['name']} | {row['mean']:.1f} ± {row['std']:.1f} | {row['min']:.1f} | {row['max']:.1f} | "
              f"{row['mean_length']:.0f} | {row['random_mean']:.1f} |")

    result = {
        "benchmark": "experts",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "gymnasium": gym.__version__},
        "rows": rows,
    }
    out = ROOT / "benchmarks" / "results" / "experts.json"
    if args.envs or args.seeds != 20:
        out = out.with_name("experts-partial.json")  # never overwrite the full table with a subset
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
