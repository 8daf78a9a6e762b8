"""BC return vs number of expert episodes on CartPole-v1, Pendulum-v1 and LunarLander-v3.

For each env, seed and episode count: record that many scripted-expert episodes
(ilcore.experts.make_expert), train BC (K=1, 256x256, by-episode validation with early stopping),
evaluate on fresh seeds. Box-action envs run once per head in --box-heads (the squashed
Gaussian, the default, and mean regression). Writes a table,
benchmarks/results/bc_vs_episodes.json and .png.
Usage: python benchmarks/bc_vs_episodes.py [--envs ...] [--episodes 1 2 5 10 25] [--seeds 5]
       [--epochs 50] [--eval-episodes 20]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from bc_throughput import machine


class Demos:
    """Expert transitions in memory, in the shape ``train_bc`` reads (it splits them by episode
    by its own ``valid_fraction``)."""

    def __init__(self, obs, actions, episode, env) -> None:
        self.obs, self.actions, self.episode = obs, actions, episode
        self.weights = np.ones(len(episode), np.float32)
        self.train_mask = self.valid_mask = None
        self.observation_space, self.action_space = env.observation_space, env.action_space

    def __len__(self) -> int:
        return len(self.episode)

    def first(self, episodes: int) -> "Demos":
        """The first ``episodes`` episodes (views of the same arrays' rows)."""
        keep = self.episode < episodes
        return Demos(self.obs[keep], self.actions[keep], self.episode[keep], self)


def record(env_id: str, episodes: int, seed: int) -> tuple[Demos, list[float]]:
    """The scripted expert's episodes on env seeds ``seed * 1000 + i``: (demos, their returns)."""
    from ilcore.eval import make_env
    from ilcore.experts import make_expert

    env = make_env(env_id)
    expert = make_expert(env_id, env=env)
    obs_l, act_l, ep_l, returns = [], [], [], []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed * 1000 + ep)
        expert.reset()
        done, ret = False, 0.0
        while not done:
            a = expert.act(obs)
            obs_l.append(obs)
            act_l.append(a)
            ep_l.append(ep)
            obs, r, term, trunc, _ = env.step(a)
            ret += float(r)
            done = term or trunc
        returns.append(ret)
    demos = Demos(np.asarray(obs_l), np.asarray(act_l), np.asarray(ep_l), env)
    env.close()
    return demos, returns


def main() -> None:
    from ilcore.algos.bc import BCConfig, train_bc
    from ilcore.eval import evaluate

    ap = argparse.ArgumentParser()
    ap.add_argument("--envs", nargs="+", default=["CartPole-v1", "Pendulum-v1", "LunarLander-v3"])
    ap.add_argument("--episodes", nargs="+", type=int, default=[1, 2, 5, 10, 25])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--eval-episodes", type=int, default=20)
    ap.add_argument("--box-heads", nargs="+", default=["gaussian", "mse"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    started = time.perf_counter()
    out_dir = Path(__file__).parent / "results"
    for env_id in args.envs:
        box = isinstance(gym.make(env_id).action_space, gym.spaces.Box)
        for n_eps in args.episodes:
            runs = [(seed, demos, float(np.mean(returns)))
                    for seed in range(args.seeds) for demos, returns in [record(env_id, n_eps, seed)]]
            for head in (args.box_heads if box else ["categorical"]):
                bc_returns = []
                for seed, demos, _ in runs:
                    cfg = BCConfig(epochs=args.epochs, valid_fraction=0.2, seed=seed, head=head)
                    policy = train_bc(demos, cfg, progress=False).policy
                    res = evaluate(policy, env_id, episodes=args.eval_episodes, seed=10_000 + seed)
                    bc_returns.append(res.mean_return)
                rows.append({"env": env_id, "head": head, "episodes": n_eps, "bc_mean": float(np.mean(bc_returns)),
                             "bc_std": float(np.std(bc_returns)), "bc_per_seed": bc_returns,
                             "expert_mean": float(np.mean([r[2] for r in runs]))})
                r = rows[-1]
                print(f"{env_id:>16} {head:>11} {n_eps:>4} eps  BC {r['bc_mean']:8.1f} +- {r['bc_std']:6.1f}   "
                      f"expert {r['expert_mean']:8.1f}", flush=True)
                # Rewritten after every row so a long run cut short still leaves its results.
                (out_dir / "bc_vs_episodes.json").write_text(json.dumps(
                    {"machine": machine(), "settings": vars(args), "seconds": time.perf_counter() - started,
                     "rows": rows}, indent=1))

    from matplotlib.figure import Figure

    fig = Figure(figsize=(4 * len(args.envs), 3.5))
    for i, env_id in enumerate(args.envs):
        ax = fig.add_subplot(1, len(args.envs), i + 1)
        rs = [r for r in rows if r["env"] == env_id]
        for head in dict.fromkeys(r["head"] for r in rs):
            hs = [r for r in rs if r["head"] == head]
            ax.errorbar([r["episodes"] for r in hs], [r["bc_mean"] for r in hs], yerr=[r["bc_std"] for r in hs],
                        marker="o", capsize=3, label=f"BC ({head})")
        first = [r for r in rs if r["head"] == rs[0]["head"]]
        ax.plot([r["episodes"] for r in first], [r["expert_mean"] for r in first], "k--", label="expert")
        ax.set_xscale("log")
        ax.set_xlabel("expert episodes")
        ax.set_ylabel("return")
        ax.set_title(env_id)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "bc_vs_episodes.png")
    print(f"wrote {out_dir / 'bc_vs_episodes.json'} and .png")


if __name__ == "__main__":
    main()
