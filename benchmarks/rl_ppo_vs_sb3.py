"""ilcore's own PPO vs stable-baselines3 PPO, same hyperparameters and env steps, side by side in one run.

For each env and seed, both are trained from scratch with the settings below (SB3 gets the same
ReLU MLP widths for actor and critic) and then evaluated deterministically on 20 episodes.
Reported: final eval return (mean over seeds, and each seed), training throughput in env steps per
second of wall time (rollouts + updates) and its ratio ours / SB3. Runs alternate (ours, SB3) per
seed so that load from other processes on a shared machine hits both alike.

Differences that remain by design: ilcore's Gaussian head is tanh-squashed with a state-dependent
log-std (SB3: unsquashed, state-independent, actions clipped); ilcore counts only real transitions
as env steps (NEXT_STEP reset steps excluded), SB3 counts every vector step.

Writes benchmarks/results/rl_ppo_vs_sb3.json. Needs stable-baselines3 (pip install 'ilcore[sb3]').
One-time process costs are paid before any timed run: importing stable-baselines3, and the first
construction of a torch optimizer (which imports torch._dynamo, ~2 s here). Before this warm-up,
whichever implementation ran first paid them inside its timing (ilcore, in this script's order).

Usage: python benchmarks/rl_ppo_vs_sb3.py [--seeds 3] [--cartpole-steps 30000] [--pendulum-steps 60000]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from ilcore.algos.rl.ppo import PPOConfig, train_ppo
from ilcore.eval import evaluate

RESULTS = Path(__file__).parent / "results"

SETTINGS = {
    "CartPole-v1": dict(num_envs=8, n_steps=64, epochs=4, batch_size=128, lr=1e-3, gamma=0.98, gae_lambda=0.8,
                        clip=0.2, ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5),
    "Pendulum-v1": dict(num_envs=8, n_steps=256, epochs=10, batch_size=256, lr=1e-3, gamma=0.9, gae_lambda=0.95,
                        clip=0.2, ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5),
}
HIDDEN = (64, 64)


class SB3Actor:
    """Lets ilcore.eval.evaluate drive an SB3 model (deterministic actions)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def act_batch(self, obs: np.ndarray) -> np.ndarray:
        return self.model.predict(obs, deterministic=True)[0]


def run_ours(env_id: str, steps: int, seed: int) -> tuple[float, float, float]:
    cfg = PPOConfig(**SETTINGS[env_id], hidden=HIDDEN, critic_hidden=HIDDEN, seed=seed, eval_episodes=0)
    t0 = time.perf_counter()
    result = train_ppo(env_id, steps, cfg, progress=False)
    seconds = time.perf_counter() - t0
    ret = evaluate(result.policy, env_id, episodes=20, seed=10_000 + seed).mean_return
    return ret, result.env_steps / seconds, seconds


def run_sb3(env_id: str, steps: int, seed: int) -> tuple[float, float, float]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    s = SETTINGS[env_id]
    venv = make_vec_env(env_id, n_envs=s["num_envs"], seed=seed)
    model = PPO("MlpPolicy", venv, n_steps=s["n_steps"], batch_size=s["batch_size"], n_epochs=s["epochs"],
                learning_rate=s["lr"], gamma=s["gamma"], gae_lambda=s["gae_lambda"], clip_range=s["clip"],
                ent_coef=s["ent_coef"], vf_coef=s["vf_coef"], max_grad_norm=s["max_grad_norm"],
                policy_kwargs=dict(net_arch=dict(pi=list(HIDDEN), vf=list(HIDDEN)), activation_fn=torch.nn.ReLU),
                seed=seed, device="cpu", verbose=0)
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps)
    seconds = time.perf_counter() - t0
    ret = evaluate(SB3Actor(model), env_id, episodes=20, seed=10_000 + seed).mean_return
    return ret, model.num_timesteps / seconds, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cartpole-steps", type=int, default=30_000)
    parser.add_argument("--pendulum-steps", type=int, default=60_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    import stable_baselines3
    from stable_baselines3 import PPO  # noqa: F401  (import cost outside the timings)

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # imports torch._dynamo once, outside the timings
    wall_start = time.perf_counter()

    RESULTS.mkdir(exist_ok=True)
    doc: dict[str, Any] = {
        "machine": {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                    "torch": torch.__version__, "gymnasium": gym.__version__,
                    "stable_baselines3": stable_baselines3.__version__,
                    "date": datetime.datetime.now().isoformat(timespec="seconds")},
        "seeds": args.seeds, "hidden": list(HIDDEN), "envs": {},
    }
    steps_for = {"CartPole-v1": args.cartpole_steps, "Pendulum-v1": args.pendulum_steps}
    for env_id, steps in steps_for.items():
        rows: dict[str, list[tuple[float, float, float]]] = {"ilcore": [], "sb3": []}
        for seed in range(args.seeds):
            rows["ilcore"].append(run_ours(env_id, steps, seed))
            rows["sb3"].append(run_sb3(env_id, steps, seed))
            print(f"{env_id} seed {seed}: ilcore return {rows['ilcore'][-1][0]:.1f} ({rows['ilcore'][-1][1]:.0f} steps/s), "
                  f"sb3 return {rows['sb3'][-1][0]:.1f} ({rows['sb3'][-1][1]:.0f} steps/s)", flush=True)
        entry = {"steps": steps, "settings": SETTINGS[env_id]}
        for name, runs in rows.items():
            entry[name] = {"returns": [r[0] for r in runs], "steps_per_s": [r[1] for r in runs],
                           "seconds": [r[2] for r in runs], "mean_return": float(np.mean([r[0] for r in runs])),
                           "mean_steps_per_s": float(np.mean([r[1] for r in runs])),
                           "std_return": float(np.std([r[0] for r in runs], ddof=1)) if len(runs) > 1 else 0.0,
                           "std_steps_per_s": float(np.std([r[1] for r in runs], ddof=1)) if len(runs) > 1 else 0.0}
        entry["throughput_ratio"] = entry["ilcore"]["mean_steps_per_s"] / entry["sb3"]["mean_steps_per_s"]
        doc["envs"][env_id] = entry

    doc["wall_seconds"] = time.perf_counter() - wall_start
    print(f"\n{'env':13s} {'steps':>7s} {'impl':7s} {'return mean+-sd':>18s} {'per seed':>24s} {'steps/s mean+-sd':>18s}")
    for env_id, e in doc["envs"].items():
        for name in ("ilcore", "sb3"):
            r = e[name]
            per = ", ".join(f"{x:.0f}" for x in r["returns"])
            print(f"{env_id:13s} {e['steps']:7d} {name:7s} {r['mean_return']:9.1f} +- {r['std_return']:5.1f} {per:>24s} "
                  f"{r['mean_steps_per_s']:8.0f} +- {r['std_steps_per_s']:5.0f}")
        print(f"{'':13s} throughput ilcore/sb3 = {e['throughput_ratio']:.2f}x")
    print(f"wall clock {doc['wall_seconds']:.0f} s")
    (RESULTS / "rl_ppo_vs_sb3.json").write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
