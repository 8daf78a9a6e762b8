"""Labels (and simulated human-seconds) to reach 95% of the expert, per way of asking.

For each env and seed, five ways of getting labels from the same simulated person (scripted
expert, 1.5 s per answered query, 0.25 s per step it drives, no noise, no delay) train the same
learner (5-member ensemble MLP (64, 64), trained from scratch each round on every label; 20
epochs, the action space's default head (categorical / squashed Gaussian with beta-NLL, beta=1);
Pendulum: 60 epochs, see ENV_SETTINGS):

- bc:           demonstrations only (the person drives every step of every round; beta-mix = 1)
- dagger:       plain DAgger, every learner-visited state labelled (AllGate)
- beta:         beta-querying, each visited state asked with probability 0.2 (BetaGate)
- ensemble:     uncertainty gating at a 10% target rate (EnsembleGate)
- intervention: HG-DAgger, the person takes over when it disagrees with the learner and
                hands back after 5 agreeing steps (NeverGate + interventions)

All start from the same short demonstration (round 0: --demo-episodes episodes the person
drives, each cut at --demo-steps steps; default 1 episode of at most 100 steps), then the
learner drives. After every round the policy is evaluated on --eval-episodes full episodes.
"Reached" means the policy closes 95% of the gap from a uniformly random policy to the expert:
(R - R_random) / (R_expert - R_random) >= 0.95, with R_expert the expert's documented return and
R_random measured here (20 episodes) - the same rule for positive- and negative-return envs. The
labels counted are the cumulative labels at the first round that reaches it, both with the
demonstration and without it ("post-demo"). Reports the median over seeds (runs that never reach
it count as "not reached" and the median is "not reached" when more than half never do).

Usage: python benchmarks/label_efficiency.py [--envs CartPole-v1,...] [--seeds 5] [--rounds N]
       [--episodes-per-round N] [--demo-episodes 1] [--demo-steps 100] [--eval-episodes 10] [--out FILE]
Writes benchmarks/results/label_efficiency.json and .png (return vs labels, median curves).
"""

from __future__ import annotations

import argparse
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
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ("bc", "dagger", "beta", "ensemble", "intervention")
# Rounds and episodes per round per env: enough for plain DAgger to get there on CartPole and
# Pendulum on 2 shared cores; LunarLander gets what the time allowed.
# Pendulum uses the default squashed-Gaussian head (trained with beta-NLL since BCConfig.nll_beta=1;
# plain NLL stayed near the random policy's return) and more epochs.
# max_episode_steps cuts the learner's training episodes (not the evaluation episodes).
ENV_SETTINGS = {
    "CartPole-v1": dict(rounds=6, episodes_per_round=2, head=None, epochs=20, max_episode_steps=None),
    "Pendulum-v1": dict(rounds=8, episodes_per_round=2, head=None, epochs=60, max_episode_steps=None),
    "LunarLander-v3": dict(rounds=10, episodes_per_round=2, head=None, epochs=20, max_episode_steps=400),
}
EVAL_EPISODES = 10
DEMO_EPISODES = 1
DEMO_STEPS = 100


def random_return(env_id: str, episodes: int = 20) -> float:
    from ilcore.eval import random_return as mean_random_return

    return mean_random_return(env_id, episodes, seed=10_000, action_seed=0)


def run_method(
    env_id: str, method: str, seed: int, rounds: int, episodes_per_round: int, work: Path, head: str | None = None,
    epochs: int = 20, demo_episodes: int = DEMO_EPISODES, demo_steps: int | None = DEMO_STEPS,
    eval_episodes: int = EVAL_EPISODES, max_episode_steps: int | None = None,
) -> list[dict]:
    import gymnasium as gym

    from ilcore.algos.bc import BCConfig
    from ilcore.algos.dagger import (
        AllGate, BetaGate, Constant, DaggerRunConfig, EnsembleGate, NeverGate, RetrainConfig, run_dagger,
    )
    from ilcore.experts import make_expert
    from ilcore.experts.simulated import SimulatedPerson

    env = gym.make(env_id)
    person = SimulatedPerson(
        make_expert(env_id, env=env), env.action_space, seconds_per_label=1.5, seconds_per_takeover_step=0.25,
        intervene=(method == "intervention"), release_after=5, seed=seed,
    )
    gate = {"bc": NeverGate(), "dagger": AllGate(), "beta": BetaGate(Constant(0.2)), "ensemble": EnsembleGate(0.1),
            "intervention": NeverGate()}[method]
    bc = BCConfig(epochs=epochs, ensemble=5, hidden=(64, 64), head=head, seed=seed, valid_fraction=0.0, patience=None)
    config = DaggerRunConfig(
        rounds=rounds, demo_episodes=demo_episodes, demo_max_steps=demo_steps, episodes_per_round=episodes_per_round,
        max_episode_steps=max_episode_steps,
        beta_mix=Constant(1.0 if method == "bc" else 0.0), interventions=(method == "intervention"),
        eval_episodes=eval_episodes, seed=seed, retrain=RetrainConfig(bc=bc),
    )
    res = run_dagger(env_id, person, gate, work / f"{env_id}-{method}-{seed}", config, env=env)
    return [{"round": s.round, "labels": s.labels, "human_seconds": s.human_seconds,
             "mean_return": s.mean_return, "query_rate": s.query_rate} for s in res.rounds]


def first_reaching(curve: list[dict], bar: float) -> dict | None:
    return next((row for row in curve if row["mean_return"] >= bar), None)


def summarize(runs: dict, bar: float) -> dict:
    out = {}
    for method, per_seed in runs.items():
        hits = [first_reaching(c, bar) for c in per_seed.values()]
        n = len(hits)
        reached = sorted(h["labels"] for h in hits if h is not None)
        post = sorted(h["labels"] - c[0]["labels"] for h, c in zip(hits, per_seed.values()) if h is not None)
        secs = sorted(h["human_seconds"] for h in hits if h is not None)

        def median_with_misses(vals: list[float]) -> float | None:
            padded = vals + [math.inf] * (n - len(vals))
            m = float(np.median(padded)) if padded else math.inf
            return None if math.isinf(m) or math.isnan(m) else m

        out[method] = {
            "reached": f"{len(reached)}/{n}",
            "median_labels": median_with_misses(reached),
            "median_post_demo_labels": median_with_misses(post),
            "demo_labels_median": float(np.median([c[0]["labels"] for c in per_seed.values()])),
            "median_human_seconds": median_with_misses(secs),
            "final_return_median": float(np.median([c[-1]["mean_return"] for c in per_seed.values()])),
            "final_labels_median": float(np.median([c[-1]["labels"] for c in per_seed.values()])),
        }
    return out


def main() -> None:
    import torch

    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--envs", default=",".join(ENV_SETTINGS))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--episodes-per-round", type=int, default=None, help="default: ENV_SETTINGS")
    ap.add_argument("--demo-episodes", type=int, default=DEMO_EPISODES)
    ap.add_argument("--demo-steps", type=int, default=DEMO_STEPS, help="cut each demonstration here (0: no cut)")
    ap.add_argument("--eval-episodes", type=int, default=EVAL_EPISODES)
    ap.add_argument("--max-episode-steps", type=int, default=None,
                    help="cut learner training episodes here (default: ENV_SETTINGS; 0: no cut)")
    ap.add_argument("--out", default=str(RESULTS / "label_efficiency.json"))
    ap.add_argument("--merge", nargs="+", default=None,
                    help="combine result files of separate runs (e.g. one per env) into --out and its PNG")
    args = ap.parse_args()
    if args.merge:
        merged: dict[str, Any] = {}
        for f in args.merge:
            part = json.loads(Path(f).read_text())
            envs = {**merged.get("envs", {}), **part["envs"]}
            merged = {**part, "envs": envs}
        Path(args.out).write_text(json.dumps(merged, indent=1))
        for env_id, env_result in merged["envs"].items():
            print_table(env_id, env_result)
        plot(merged, Path(args.out).with_suffix(".png"))
        return
    from ilcore.experts import make_expert

    out_path = Path(args.out)
    result: dict[str, Any] = json.loads(out_path.read_text()) if out_path.exists() else {}
    result.setdefault("envs", {})
    result.update({
        "benchmark": "label_efficiency", "eval_episodes": args.eval_episodes,
        "demo_episodes": args.demo_episodes, "demo_steps": args.demo_steps or None,
        "machine": {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                    "python": sys.version.split()[0], "torch": torch.__version__},
        "date": datetime.date.today().isoformat(),
    })
    work = Path(tempfile.mkdtemp(prefix="label-eff-"))
    try:
        for env_id in args.envs.split(","):
            settings = dict(ENV_SETTINGS[env_id])
            if args.rounds is not None:
                settings["rounds"] = args.rounds
            if args.episodes_per_round is not None:
                settings["episodes_per_round"] = args.episodes_per_round
            if args.max_episode_steps is not None:
                settings["max_episode_steps"] = args.max_episode_steps or None
            settings.update(demo_episodes=args.demo_episodes, demo_steps=args.demo_steps or None,
                            eval_episodes=args.eval_episodes)
            r_expert = float(make_expert(env_id).documented_return)
            r_random = random_return(env_id)
            bar = r_random + 0.95 * (r_expert - r_random)
            runs: dict[str, dict[int, list[dict]]] = {}
            t0 = time.perf_counter()
            for seed in range(args.seeds):
                for method in args.methods.split(","):
                    t = time.perf_counter()
                    curve = run_method(env_id, method, seed, settings["rounds"], settings["episodes_per_round"], work,
                                       head=settings["head"], epochs=settings["epochs"],
                                       demo_episodes=settings["demo_episodes"], demo_steps=settings["demo_steps"],
                                       eval_episodes=settings["eval_episodes"],
                                       max_episode_steps=settings["max_episode_steps"])
                    runs.setdefault(method, {})[seed] = curve
                    hit = first_reaching(curve, bar)
                    print(f"{env_id} seed {seed} {method:12s} final {curve[-1]['mean_return']:8.1f} "
                          f"labels {curve[-1]['labels']:6d} reached@{hit['labels'] if hit else '-'} "
                          f"({time.perf_counter() - t:.0f}s)", flush=True)
                result["envs"][env_id] = {
                    "expert_return": r_expert, "random_return": r_random, "bar": bar, "settings": settings,
                    "seeds_run": seed + 1, "runs": {m: {str(s): c for s, c in v.items()} for m, v in runs.items()},
                    "summary": summarize(runs, bar), "seconds": time.perf_counter() - t0,
                }
                out_path.parent.mkdir(exist_ok=True)
                out_path.write_text(json.dumps(result, indent=1))  # after every seed: partial results survive
            print_table(env_id, result["envs"][env_id])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    plot(result, out_path.with_suffix(".png"))


def print_table(env_id: str, env_result: dict) -> None:
    s = env_result["summary"]
    print(f"\n{env_id}: bar {env_result['bar']:.1f} (expert {env_result['expert_return']:.1f}, random "
          f"{env_result['random_return']:.1f}), {env_result['seeds_run']} seeds")
    print("| method | reached | labels to 95% | post-demo labels to 95% | human-s to 95% | final return | final labels |")
    print("| --- | --- | --- | --- | --- | --- | --- |")

    def fmt(v: float | None, miss: str = "not reached") -> str:
        return miss if v is None else f"{v:.0f}"

    for m, row in s.items():
        print(f"| {m} | {row['reached']} | {fmt(row['median_labels'])} | {fmt(row.get('median_post_demo_labels'))} | "
              f"{fmt(row['median_human_seconds'], '-')} | {row['final_return_median']:.1f} | "
              f"{row['final_labels_median']:.0f} |")
    dg, en = s.get("dagger", {}), s.get("ensemble", {})
    for key, name in (("median_labels", "total labels"), ("median_post_demo_labels", "post-demo labels"),
                      ("median_human_seconds", "human-seconds")):
        a, b = en.get(key), dg.get(key)
        if a is not None and b:
            print(f"ensemble / dagger, {name}: {a:.0f} / {b:.0f} = {a / b:.2f} (goal <= 0.25)")


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = list(result["envs"])
    fig, axes = plt.subplots(1, len(envs), figsize=(5 * len(envs), 3.8), squeeze=False)
    for ax, env_id in zip(axes[0], envs):
        er = result["envs"][env_id]
        for method, per_seed in er["runs"].items():
            curves = list(per_seed.values())
            n = min(len(c) for c in curves)
            labels = np.median([[row["labels"] for row in c[:n]] for c in curves], axis=0)
            rets = np.median([[row["mean_return"] for row in c[:n]] for c in curves], axis=0)
            ax.plot(labels, rets, marker="o", ms=3, label=method)
        ax.axhline(er["bar"], color="k", ls=":", lw=1, label="95% bar")
        ax.set_xscale("log")
        ax.set_xlabel("labels (cumulative, median over seeds)")
        ax.set_ylabel("mean return (median over seeds)")
        ax.set_title(f"{env_id} ({er['seeds_run']} seeds)", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
