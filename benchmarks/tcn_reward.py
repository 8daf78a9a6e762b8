"""PPO on MountainCar-v0 with the TCN imitation reward vs the env's sparse reward.

Demos: a few scripted-expert episodes, observations only. A single-view TCN is trained on their
(position, velocity) frames. PPO then runs with the same hyperparameters and env-step budget on
  (a) the env reward only (-1 a step until the flag),
  (b) the TCN reward only (following demo 0 frame by frame, ``EmbeddingImitationReward``),
  (c) the TCN reward + the env reward,
for several seeds and three starting points: train_ppo's own from-scratch policy ("default": no
observation normalisation, exactly what ``ilcore finetune`` without --policy builds), the same
network with observation statistics fitted on the demo states ("normalised"), and that plus the
episode's normalised time appended to the observation ("time-aware", every arm; the TCN still sees
position and velocity only), because the TCN reward depends on the time step and a policy and critic
that cannot see it face a non-Markov reward. Reported: the TRUE env return of
the final deterministic evaluation, its success rate (flag reached), and the env steps to the
first training episode that reached the flag.

A reward check comes first: the imitation return (under the same TCN reward) of the scripted
expert from other start states, of random actions and of constant actions, to tell a wrong
reward from a reward PPO cannot climb.

Usage: python benchmarks/tcn_reward.py [--seeds 0 1 2 3 4] [--steps 50000]
Writes benchmarks/results/tcn_reward.json and .png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.lfo_common import machine  # noqa: E402
from ilcore.algos.lfo.reward import EmbeddingImitationReward  # noqa: E402
from ilcore.algos.lfo.tcn import TCNConfig, train_tcn  # noqa: E402
from ilcore.algos.rl.ppo import PPOConfig, train_ppo  # noqa: E402
from ilcore.experts import expert_rollouts, make_expert  # noqa: E402
from ilcore.policies import make_policy  # noqa: E402

ENV_ID = "MountainCar-v0"
TIME_ENV_ID = "ilcore_bench/MountainCarTime-v0"  # MountainCar-v0 whose observation ends with t / 200
ARMS = {"env": None, "tcn": 0.0, "tcn+env": 1.0}  # arm -> env_reward_weight of the TCN wrapper (None: no wrapper)


def reward_check(embedding, demo: np.ndarray, weight: float, episodes: int = 10) -> dict[str, dict[str, float]]:
    """Imitation return and true return of scripted behaviours under the TCN reward (seeds 0..episodes-1)."""
    out = {}
    for name in ("expert", "random", "always left", "always idle", "always right"):
        imit, true, lengths = [], [], []
        for seed in range(episodes):
            env = EmbeddingImitationReward(gym.make(ENV_ID), embedding, demo, alpha=weight, beta=weight)
            obs, _ = env.reset(seed=seed)
            expert = make_expert(ENV_ID, env=env)
            expert.reset()
            rng = np.random.default_rng(seed)
            r_imit = r_true = 0.0
            t, done = 0, False
            while not done:
                a = {"expert": lambda: expert.act(obs), "random": lambda: int(rng.integers(3)),
                     "always left": lambda: 0, "always idle": lambda: 1, "always right": lambda: 2}[name]()
                obs, r, term, trunc, info = env.step(a)
                r_imit += r
                r_true += info["env_reward"]
                t += 1
                done = term or trunc
            imit.append(r_imit)
            true.append(r_true)
            lengths.append(t)
            env.close()
        out[name] = {"imitation_return": float(np.mean(imit)), "env_return": float(np.mean(true)),
                     "length": float(np.mean(lengths))}
    return out


def _time_aware_mountaincar(**kwargs) -> gym.Env:
    return gym.wrappers.TimeAwareObservation(gym.make(ENV_ID, **kwargs), normalize_time=True)


def _position_velocity(obs: np.ndarray, _env: gym.Env) -> np.ndarray:
    return np.asarray(obs, np.float32)[:2]  # the TCN's frame: the time feature is the policy's, not the demo's


def run_arm(arm: str, init: str, seed: int, steps: int, embedding, demo: np.ndarray, demo_states: np.ndarray,
            weight: float, config: PPOConfig) -> dict:
    env_id = TIME_ENV_ID if init == "time-aware" else ENV_ID
    wrappers = []
    if ARMS[arm] is not None:
        wrappers = [partial(EmbeddingImitationReward, embedding=embedding, demo_frames=demo, alpha=weight, beta=weight,
                            env_reward_weight=ARMS[arm],
                            frame_fn=_position_velocity if init == "time-aware" else None)]
    policy = None
    if init in ("normalised", "time-aware"):
        env = gym.make(env_id)
        # The network train_ppo would build (same widths and seed), plus observation statistics.
        policy = make_policy(env.observation_space, env.action_space, hidden=config.hidden, seed=seed)
        states = demo_states
        if init == "time-aware":  # demo time spread over the 200-step limit, as the wrapper's t / 200
            states = np.concatenate([demo_states, np.linspace(0.0, 1.0, len(demo_states))[:, None]], 1)
        policy.fit_obs_normalization(states.astype(np.float32))
        env.close()
    cfg = PPOConfig(**{**config.__dict__, "seed": seed})
    started = time.perf_counter()
    res = train_ppo(env_id, steps, cfg, policy=policy, wrappers=wrappers, progress=False)
    seconds = time.perf_counter() - started
    returns = np.asarray(res.episodes["return"])
    ends = np.asarray(res.episodes["env_steps"])
    reached = returns > -200.0  # every step pays -1 and the time limit is 200: a shorter episode reached the flag
    final = res.evals[-1]
    return {
        "arm": arm, "init": init, "seed": seed, "env_steps": res.env_steps, "seconds": seconds,
        "eval_return": final["mean_return"], "eval_success": final["success_rate"],
        "train_successes": int(reached.sum()), "train_episodes": len(returns),
        "first_success_step": int(ends[reached][0]) if reached.any() else None,
        "evals": [{"env_steps": e["env_steps"], "mean_return": e["mean_return"], "success_rate": e["success_rate"]}
                  for e in res.evals],
        "final_entropy": res.history["entropy"][-1],
    }


def summarise(runs: list[dict]) -> list[dict]:
    rows = []
    for init in dict.fromkeys(r["init"] for r in runs):
        for arm in ARMS:
            group = [r for r in runs if r["arm"] == arm and r["init"] == init]
            if not group:
                continue
            firsts = [r["first_success_step"] for r in group if r["first_success_step"] is not None]
            rows.append({
                "init": init, "arm": arm, "seeds": len(group),
                "eval_return_mean": float(np.mean([r["eval_return"] for r in group])),
                "eval_return_sd": float(np.std([r["eval_return"] for r in group])),
                "eval_success_mean": float(np.mean([r["eval_success"] for r in group])),
                "seeds_reaching_flag": len(firsts),
                "first_success_median": float(np.median(firsts)) if firsts else None,
                "per_seed_eval": [round(r["eval_return"], 1) for r in group],
            })
    return rows


def plot(runs: list[dict], path: Path, steps: int) -> None:
    from matplotlib.figure import Figure

    inits = list(dict.fromkeys(r["init"] for r in runs))
    fig = Figure(figsize=(5 * len(inits), 3.8), dpi=100)
    for j, init in enumerate(inits):
        ax = fig.add_subplot(1, len(inits), j + 1)
        for i, arm in enumerate(ARMS):
            group = [r for r in runs if r["arm"] == arm and r["init"] == init]
            if not group:
                continue
            n = min(len(r["evals"]) for r in group)
            x = np.mean([[e["env_steps"] for e in r["evals"][:n]] for r in group], 0)
            y = np.array([[e["mean_return"] for e in r["evals"][:n]] for r in group])
            ax.plot(x, y.mean(0), marker="o", color=f"C{i}", label=f"{arm} ({len(group)} seeds)")
            ax.fill_between(x, y.min(0), y.max(0), color=f"C{i}", alpha=0.15)
        ax.set_title(f"MountainCar-v0, {init} policy", fontsize=9)
        ax.set_xlabel("env steps")
        ax.set_ylabel("true env return (eval, deterministic)")
        ax.set_ylim(-205, -80)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=50_000, help="env steps per PPO run")
    parser.add_argument("--demos", type=int, default=5, help="expert demo episodes (observations only)")
    parser.add_argument("--tcn-steps", type=int, default=500)
    parser.add_argument("--tcn-weight", type=float, default=1.0, help="alpha = beta of the imitation reward")
    parser.add_argument("--inits", nargs="+", default=["default", "normalised", "time-aware"])
    parser.add_argument("--default-seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="seeds of the 'default' init (it is the no-normalisation check; fewer seeds)")
    parser.add_argument("--out", default="tcn_reward")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if TIME_ENV_ID not in gym.registry:
        gym.register(TIME_ENV_ID, entry_point=_time_aware_mountaincar)
    results_dir = ROOT / "benchmarks" / "results"

    _space, seqs, _ = expert_rollouts(ENV_ID, args.demos, seed=1000)
    frames = [s.astype(np.float32) for s in seqs]
    t0 = time.perf_counter()
    tcn = train_tcn([f[None] for f in frames], TCNConfig(steps=args.tcn_steps, embedding_dim=16, seed=0))
    tcn_seconds = time.perf_counter() - t0
    embedding, demo = tcn.embedding, frames[0]
    demo_states = np.concatenate(frames)
    check = reward_check(embedding, demo, args.tcn_weight)
    print(f"TCN: {args.demos} demos ({[len(f) for f in frames]} frames), {args.tcn_steps} steps, "
          f"final loss {tcn.history['loss'][-1]:.4f}, {tcn_seconds:.1f} s; following demo 0 ({len(demo)} frames)")
    print("\nreward check (10 episodes each): imitation return / env return / length")
    for name, v in check.items():
        print(f"  {name:13s} {v['imitation_return']:8.1f} {v['env_return']:7.1f} {v['length']:6.1f}")

    config = PPOConfig(eval_every=args.steps // 5, eval_episodes=10)
    runs = []
    started = time.perf_counter()
    for init in args.inits:
        for seed in (args.default_seeds if init == "default" else args.seeds):
            for arm in ARMS:
                r = run_arm(arm, init, seed, args.steps, embedding, demo, demo_states, args.tcn_weight, config)
                runs.append(r)
                print(f"{init:10s} {arm:8s} seed {seed}: eval {r['eval_return']:7.1f} success {r['eval_success']:.1f} "
                      f"first flag {r['first_success_step']} ({r['seconds']:.0f} s)", flush=True)
    rows = summarise(runs)
    print(f"\nMountainCar-v0, {args.steps} env steps per run, PPO defaults (8 envs x 128, 10 epochs, lr 3e-4)")
    print("| policy init | reward | eval return (mean +- sd) | eval success | seeds reaching the flag (training) | "
          "median steps to first flag | per seed |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for row in rows:
        first = f"{row['first_success_median']:.0f}" if row["first_success_median"] is not None else "-"
        print(f"| {row['init']} | {row['arm']} | {row['eval_return_mean']:.1f} +- {row['eval_return_sd']:.1f} | "
              f"{row['eval_success_mean']:.2f} | {row['seeds_reaching_flag']}/{row['seeds']} | {first} | "
              f"{', '.join(str(v) for v in row['per_seed_eval'])} |")
    doc = {"machine": machine(), "env_id": ENV_ID, "args": vars(args), "ppo_config": config.__dict__ | {"hidden": list(config.hidden), "critic_hidden": list(config.critic_hidden)},
           "tcn": {"steps": args.tcn_steps, "embedding_dim": 16, "final_loss": tcn.history["loss"][-1],
                   "seconds": tcn_seconds, "demo_lengths": [len(f) for f in frames]},
           "reward_check": check, "summary": rows, "runs": runs,
           "wall_seconds": time.perf_counter() - started}
    (results_dir / f"{args.out}.json").write_text(json.dumps(doc, indent=1))
    plot(runs, results_dir / f"{args.out}.png", args.steps)
    print(f"wrote {results_dir / (args.out + '.json')} and .png")


if __name__ == "__main__":
    main()
