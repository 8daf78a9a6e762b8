"""BC -> RL fine-tuning from a deliberately weak BC policy: which start and which regulariser get there first?

For each env: record ``--demo-episodes`` demos of the scripted expert, keep at most
``--demo-steps`` steps of them, and clone them (a weak BC policy; per-env defaults below). Then run PPO with the same hyperparameters from:

  scratch     a fresh policy
  bc-naive    the BC policy, no value warm-up (the critic starts random)
  bc-warmup   the BC policy, critic warmed up for 2 rollouts with the actor frozen
  bc+bcreg    bc-warmup + DAPG auxiliary BC loss, weight 0.1 * 0.95**k, on the demo
  bc+kl       bc-warmup + KL(pi || pi_BC), weight 0.05
  bc+shaping  bc-warmup + reward 0.05 * log pi_BC(a|s), decaying 0.99 per episode

Each run is evaluated (deterministic, 10 episodes) every ``--eval-every`` env steps. Reported per
variant (over seeds): the return at step 0, the lowest eval return in the first quarter (a
collapse of the BC start shows here), the final return, and the env steps until the eval return
first reached the target: 95% of the gap from a uniform-random policy's return to the expert's,
random + 0.95 * (expert - random), both measured on 20 / 10 seeded episodes; where gymnasium
defines a "solved" return (CartPole 475, LunarLander 200) also the steps until that. Writes
benchmarks/results/finetune.json (after every env) and finetune_<env>.png.

Steps, eval interval, seeds and demo length default per env (ENV_DEFAULTS); flags override all envs.
Usage: python benchmarks/finetune.py [--envs CartPole-v1 Pendulum-v1 LunarLander-v3] [--seeds N] [--steps N]
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

from ilcore.algos.bc import BCConfig, train_bc
from ilcore.algos.lfo.idm import PairData
from ilcore.algos.rl.ppo import PPOConfig, train_ppo
from ilcore.errors import UserError
from ilcore.eval import evaluate, random_return
from ilcore.experts import make_expert

RESULTS = Path(__file__).parent / "results"

# Same PPO hyperparameters for every variant of an env (tuned only for the from-scratch run).
PPO_SETTINGS = {
    "CartPole-v1": dict(num_envs=8, n_steps=64, epochs=4, batch_size=128, lr=1e-3, gamma=0.98, gae_lambda=0.8),
    "Pendulum-v1": dict(num_envs=8, n_steps=256, epochs=10, batch_size=256, lr=1e-3, gamma=0.9, gae_lambda=0.95),
    "LunarLander-v3": dict(num_envs=8, n_steps=256, epochs=4, batch_size=256, lr=3e-4, gamma=0.99,
                           gae_lambda=0.95, ent_coef=0.01),
}


# demo_episodes / demo_steps make the weak BC policy: CartPole keeps only the first 40 steps of
# one demo (BC ~60 of 500); Pendulum 8 whole demos (BC ~-870; fewer give a random-level clone);
# LunarLander 5 whole demos (BC ~-125). Measured with BCConfig(epochs=20), 5 seeds.
ENV_DEFAULTS = {
    "CartPole-v1": dict(steps=50_000, eval_every=2048, seeds=5, demo_episodes=1, demo_steps=40),
    "Pendulum-v1": dict(steps=100_000, eval_every=4096, seeds=5, demo_episodes=8, demo_steps=None),
    "LunarLander-v3": dict(steps=500_000, eval_every=25_000, seeds=5, demo_episodes=5, demo_steps=None),
}


def record_demo(env_id: str, episodes: int, max_steps: int | None, seed: int) -> PairData:
    """``episodes`` expert episodes (seeds seed*100, seed*100+1, ...), cut after ``max_steps`` steps in all."""
    env = gym.make(env_id)
    expert = make_expert(env_id, env)
    o, a, ep = [], [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed * 100 + i)
        expert.reset()
        done = False
        while not done and (max_steps is None or len(o) < max_steps):
            act = expert.act(obs)
            o.append(obs)
            a.append(act)
            ep.append(i)
            obs, _, term, trunc, _ = env.step(act)
            done = term or trunc
    n = len(o)
    ones = np.ones(n, bool)
    # PairData has the fields train_bc and the BC regulariser read; all steps train, none validate.
    return PairData(obs=np.asarray(o, np.float32), actions=np.asarray(a), weights=np.ones(n, np.float32),
                    episode=np.asarray(ep, np.int64), observation_space=env.observation_space,
                    action_space=env.action_space, train_mask=ones, valid_mask=~ones)


def variants(warmup: int) -> dict[str, dict[str, Any]]:
    return {
        "scratch": dict(init=False),
        "bc-naive": dict(init=True),
        "bc-warmup": dict(init=True, value_warmup_steps=warmup),
        "bc+bcreg": dict(init=True, value_warmup_steps=warmup, bc_weight=0.1, bc_decay=0.95),
        "bc+kl": dict(init=True, value_warmup_steps=warmup, kl_weight=0.05),
        "bc+shaping": dict(init=True, value_warmup_steps=warmup, shaping_weight=0.05, shaping_decay=0.99),
    }


def reach_threshold(expert_return: float, random: float) -> float:
    return random + 0.95 * (expert_return - random)


def steps_to(evals: list[dict[str, Any]], threshold: float) -> int | None:
    for e in evals:
        if e["mean_return"] >= threshold:
            return int(e["env_steps"])
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=list(ENV_DEFAULTS))
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--eval-every", type=int, default=None)
    parser.add_argument("--demo-episodes", type=int, default=None)
    parser.add_argument("--demo-steps", type=int, default=None)
    parser.add_argument("--variants", nargs="+", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    RESULTS.mkdir(exist_ok=True)

    out: dict[str, Any] = {
        "machine": {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                    "torch": torch.__version__, "gymnasium": gym.__version__,
                    "date": datetime.datetime.now().isoformat(timespec="seconds")},
        "settings": {"eval_episodes": 10, "target": "random + 0.95 * (expert - random)"},
        "envs": {},
    }
    t_all = time.perf_counter()
    for env_id in args.envs:
        settings = PPO_SETTINGS[env_id]
        budget = {k: (getattr(args, k) if getattr(args, k, None) is not None else v) for k, v in ENV_DEFAULTS[env_id].items()}
        warmup = 2 * settings["num_envs"] * settings["n_steps"]
        expert_return = evaluate(make_expert(env_id), env_id, episodes=10, seed=10_000).mean_return
        rand = random_return(env_id)
        threshold = reach_threshold(expert_return, rand)
        chosen = {k: v for k, v in variants(warmup).items() if args.variants is None or k in args.variants}
        solved = gym.spec(env_id).reward_threshold  # gymnasium's "solved" return, where the env defines one
        env_doc: dict[str, Any] = {"expert_return": expert_return, "random_return": rand, "threshold": threshold,
                                   "solved_threshold": None if solved is None else float(solved),
                                   "budget": budget, "ppo": settings, "runs": {name: [] for name in chosen},
                                   "demo_lengths": []}
        print(f"\n{env_id}: expert return {expert_return:.1f}, random {rand:.1f}, target {threshold:.1f}, {budget}")
        t_env = time.perf_counter()
        for seed in range(budget["seeds"]):
            demo = record_demo(env_id, budget["demo_episodes"], budget["demo_steps"], seed=seed)
            env_doc["demo_lengths"].append(len(demo))
            bc = train_bc(demo, BCConfig(epochs=20, hidden=(64, 64), seed=seed, valid_fraction=0.0, patience=None),
                          progress=False).policy
            for name, spec in chosen.items():
                spec = dict(spec)
                init = spec.pop("init")
                cfg = PPOConfig(**settings, **spec, seed=seed, eval_every=budget["eval_every"], eval_episodes=10)
                policy = None
                if init:
                    policy = type(bc).from_config(bc.config)
                    policy.load_state_dict(bc.state_dict())
                t0 = time.perf_counter()
                try:
                    res = train_ppo(env_id, budget["steps"], cfg, policy=policy, demos=demo if init else None,
                                    progress=False)
                except UserError as exc:  # train_ppo stops on a non-finite loss: a diverged run
                    grid = [e["env_steps"] for e in env_doc["runs"]["scratch"][-1]["evals"]]
                    run = {"seed": seed, "seconds": time.perf_counter() - t0, "error": str(exc),
                           "evals": [{"env_steps": x, "mean_return": float("nan")} for x in grid],
                           "episodes": {"env_steps": [], "return": []}}
                    env_doc["runs"][name].append(run)
                    print(f"  seed {seed} {name:11s} diverged: {exc}", flush=True)
                    continue
                run = {"seed": seed, "seconds": time.perf_counter() - t0, "evals": [
                    {"env_steps": e["env_steps"], "mean_return": e["mean_return"]} for e in res.evals],
                    "episodes": {"env_steps": res.episodes["env_steps"], "return": res.episodes["return"]}}
                env_doc["runs"][name].append(run)
                ev = run["evals"]
                print(f"  seed {seed} {name:11s} start {ev[0]['mean_return']:7.1f} final {ev[-1]['mean_return']:7.1f} "
                      f"reach {steps_to(ev, threshold)} ({run['seconds']:.0f}s)", flush=True)
        env_doc["wall_seconds"] = time.perf_counter() - t_env
        env_doc["summary"] = summarise(env_doc, budget["steps"])
        out["envs"][env_id] = env_doc
        out["wall_seconds"] = time.perf_counter() - t_all
        print_table(env_id, env_doc)
        plot(env_id, env_doc, RESULTS / f"finetune_{env_id.split('-')[0].lower()}.png")
        write_json(out)


def write_json(out: dict[str, Any]) -> None:
    """Write finetune.json, keeping the envs of an earlier run that this run did not redo."""
    path = RESULTS / "finetune.json"
    doc = dict(out)
    if path.exists():
        old = json.loads(path.read_text())
        envs = {k: v for k, v in old.get("envs", {}).items() if k not in out["envs"] and "budget" in v}
        doc["envs"] = {**envs, **out["envs"]}
    path.write_text(json.dumps(doc, indent=1))


def summarise(env_doc: dict[str, Any], steps: int) -> dict[str, Any]:
    summary = {}
    for name, runs in env_doc["runs"].items():
        starts = [r["evals"][0]["mean_return"] for r in runs]
        finals = [r["evals"][-1]["mean_return"] for r in runs]
        # The last eval alone is noisy (PPO's eval return swings between iterations); also the mean
        # of each run's last 3 evals.
        last3 = [float(np.mean([e["mean_return"] for e in r["evals"][-3:]])) for r in runs]
        early = [float(np.nanmin([e["mean_return"] for e in r["evals"] if e["env_steps"] <= steps / 4]))
                 for r in runs]
        reach = [steps_to(r["evals"], env_doc["threshold"]) for r in runs]
        reached = [s for s in reach if s is not None]
        # A run whose eval return turned NaN (the policy's parameters went non-finite) counts as
        # diverged: never reaching the target after that, left out of the final means.
        diverged = [not all(np.isfinite(e["mean_return"]) for e in r["evals"]) for r in runs]
        ok = [not d for d in diverged]
        summary[name] = {
            "start_mean": float(np.mean(starts)),
            "early_min_mean": float(np.nanmean(early)) if any(np.isfinite(early)) else float("nan"),
            "diverged": f"{sum(diverged)}/{len(runs)}",
            "final_mean": float(np.mean(np.asarray(finals)[ok])) if any(ok) else float("nan"),
            "final_std": float(np.std(np.asarray(finals)[ok])) if any(ok) else float("nan"),
            "last3_mean": float(np.mean(np.asarray(last3)[ok])) if any(ok) else float("nan"),
            "last3_std": float(np.std(np.asarray(last3)[ok])) if any(ok) else float("nan"),
            "reached": f"{len(reached)}/{len(runs)}",
            "steps_to_target_median": float(np.median([s if s is not None else np.inf for s in reach])),
            "steps_to_target": reach,
        }
        if env_doc.get("solved_threshold") is not None:
            solved = [steps_to(r["evals"], env_doc["solved_threshold"]) for r in runs]
            summary[name]["reached_solved"] = f"{sum(x is not None for x in solved)}/{len(runs)}"
            summary[name]["steps_to_solved_median"] = float(np.median([x if x is not None else np.inf for x in solved]))
            summary[name]["steps_to_solved"] = solved
    return summary


def print_table(env_id: str, env_doc: dict[str, Any]) -> None:
    print(f"\n{env_id} (target {env_doc['threshold']:.1f})")
    print(f"{'variant':12s} {'start':>8s} {'min 1st 1/4':>11s} {'final':>15s} {'last 3 evals':>15s} {'reached':>8s} "
          f"{'median steps':>12s}")
    for name, s in env_doc["summary"].items():
        med = s["steps_to_target_median"]
        print(f"{name:12s} {s['start_mean']:8.1f} {s['early_min_mean']:11.1f} "
              f"{s['final_mean']:8.1f} +-{s['final_std']:5.1f} {s['last3_mean']:8.1f} +-{s['last3_std']:5.1f} {s['reached']:>8s} diverged {s['diverged']} "
              f"{'never' if not np.isfinite(med) else int(med):>12}")
    if env_doc.get("solved_threshold") is not None:
        print(f"steps to gymnasium's solved return {env_doc['solved_threshold']:g}:")
        for name, s in env_doc["summary"].items():
            med = s["steps_to_solved_median"]
            print(f"  {name:12s} reached {s['reached_solved']}, median {'never' if not np.isfinite(med) else int(med)}, "
                  f"per seed {s['steps_to_solved']}")


def plot(env_id: str, env_doc: dict[str, Any], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    for i, (name, runs) in enumerate(env_doc["runs"].items()):
        xs = np.asarray([e["env_steps"] for e in runs[0]["evals"]], dtype=float)
        # Eval points fall at the first rollout boundary past each multiple of eval_every; align by index.
        m = min(len(r["evals"]) for r in runs)
        ys = np.asarray([[e["mean_return"] for e in r["evals"][:m]] for r in runs])
        ok = np.isfinite(ys).all(1)  # diverged (NaN) runs are left out of the curve; the table counts them
        if not ok.any():
            continue
        ys = ys[ok]
        mean = ys.mean(0)
        ax.plot(xs[:m], mean, color=f"C{i}", label=name if ok.all() else f"{name} ({int((~ok).sum())} diverged, left out)")
        if len(runs) > 1:
            ax.fill_between(xs[:m], ys.min(0), ys.max(0), color=f"C{i}", alpha=0.12)
    ax.axhline(env_doc["expert_return"], color="grey", linestyle=":", label="expert")
    ax.axhline(env_doc["threshold"], color="black", linestyle="--", linewidth=0.8, label="target (95% of gap)")
    if env_doc.get("solved_threshold") is not None:
        ax.axhline(env_doc["solved_threshold"], color="black", linestyle="-.", linewidth=0.8, label="gymnasium 'solved'")
    # A from-scratch run can dip far below random early on; clip the axis there so the BC
    # variants near the top stay readable (the JSON has every value).
    floor = env_doc["random_return"] - 1.5 * (env_doc["expert_return"] - env_doc["random_return"])
    low, high = ax.get_ylim()
    if low < floor:
        ax.set_ylim(floor, high)
        ax.text(0.01, 0.01, f"axis clipped at {floor:.0f}", transform=ax.transAxes, fontsize=7, color="grey")
    ax.set_xlabel("env steps")
    ax.set_ylabel("eval return (mean over seeds; band: min-max)")
    ax.set_title(f"{env_id}: PPO from a weak BC policy vs from scratch")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    main()
