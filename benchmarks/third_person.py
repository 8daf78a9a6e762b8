"""Third-person imitation: demonstrations recorded under a view shift the learner never sees.

CartPole demos are recorded through a fixed random StateView (permuted, rescaled, sign-flipped
and offset state vector); the learner observes the plain state. Compared (returns over
`--eval-episodes` seeded episodes, same demos, same exploration budget):

- first-person BCO(0): the demos in the learner's own view (the upper reference);
- third-person, naive: BCO(0) on the shifted demos as if they were in the learner's view;
- third-person, multi-view TCN: a TCN (MLP) trained on the learner's own random exploration
  seen both ways (paired views come for free there), then BCO(0) in the embedding: the IDM
  labels embedded demo pairs, the policy acts on the embedding of the learner's observation.

Writes benchmarks/results/third_person.json.   python benchmarks/third_person.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from lfo_common import expert_demos, machine  # noqa: E402

from ilcore.algos.bc import BCConfig  # noqa: E402
from ilcore.algos.lfo.bco import AgentExperience, BCOConfig, ObservationDemos, collect_experience, run_bco  # noqa: E402
from ilcore.algos.lfo.tcn import TCNConfig, embedding_quality, train_tcn  # noqa: E402
from ilcore.envs.views import StateView  # noqa: E402
from ilcore.eval import evaluate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--demos", type=int, default=5)
    parser.add_argument("--pre-demo-steps", type=int, default=5000)
    parser.add_argument("--tcn-steps", type=int, default=1500)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)

    env_id = args.env
    demos = expert_demos(env_id, args.demos)
    dim = demos.observation_space.shape[0]
    view = StateView.random(dim, seed=7)
    shifted = ObservationDemos(obs=view(demos.obs), next_obs=view(demos.next_obs), episode=demos.episode,
                               observation_space=demos.observation_space, true_actions=demos.true_actions)
    idm_cfg = BCConfig(epochs=30, batch_size=128, hidden=(64, 64), patience=5)
    bc_cfg = BCConfig(epochs=50, hidden=(64, 64), patience=10)

    def score(policy) -> float:
        return evaluate(policy, env_id, episodes=args.eval_episodes, seed=20_000).mean_return

    runs: dict[str, list[dict]] = {"first-person BCO(0)": [], "third-person naive BCO(0)": [],
                                   "third-person multi-view TCN + BCO(0)": []}
    for seed in args.seeds:
        cfg = BCOConfig(alpha=0.0, pre_demo_steps=args.pre_demo_steps, idm=idm_cfg, bc=bc_cfg, seed=seed)
        for name, d in (("first-person BCO(0)", demos), ("third-person naive BCO(0)", shifted)):
            res = run_bco(d, env_id, cfg)
            runs[name].append({"seed": seed, "return": score(res.policy), "idm_accuracy": res.iterations[0].idm_demo.accuracy,
                               "env_steps": res.env_steps})
            print(name, seed, runs[name][-1], flush=True)

        # Paired views from the learner's own exploration: the same states, seen both ways.
        t0 = time.perf_counter()
        env = gym.make(env_id)
        env.action_space.seed(seed)
        exp = AgentExperience()
        collect_experience(env, args.pre_demo_steps, lambda _o: env.action_space.sample(), exp, seed=seed)
        episodes = []
        ep = np.asarray(exp.episode)
        states = np.asarray(exp.obs, np.float32)
        for e in np.unique(ep):
            s = states[ep == e]
            if len(s) > 6:
                episodes.append(np.stack([s, view(s)]))
        tcn = train_tcn(episodes, TCNConfig(steps=args.tcn_steps, batch_size=128, positive_window=1, negative_window=3,
                                            embedding_dim=16, hidden=(64, 64), seed=seed))
        quality = embedding_quality(tcn.embedding.encode, episodes[-5:])
        # The same exploration budget is reused by BCO (same seed): the TCN costs no extra env steps.
        res = run_bco(shifted, env_id, cfg, encoder=tcn.embedding)
        runs["third-person multi-view TCN + BCO(0)"].append({
            "seed": seed, "return": score(res.policy), "idm_accuracy": res.iterations[0].idm_demo.accuracy,
            "env_steps": res.env_steps, "tcn_view_invariance": quality.get("view_invariance"),
            "seconds": time.perf_counter() - t0})
        print("tcn", seed, runs["third-person multi-view TCN + BCO(0)"][-1], flush=True)

    print()
    print(f"{'method':40s} {'mean return':>11s} {'returns per seed':>24s} {'IDM acc':>8s}")
    summary = {}
    for name, rs in runs.items():
        rets = [r["return"] for r in rs]
        acc = float(np.mean([r["idm_accuracy"] for r in rs]))
        summary[name] = {"mean_return": float(np.mean(rets)), "returns": rets, "idm_accuracy": acc}
        print(f"{name:40s} {np.mean(rets):11.1f} {' '.join(f'{r:.0f}' for r in rets):>24s} {100 * acc:7.1f}%")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "third_person.json").write_text(json.dumps(
        {"machine": machine(), "settings": vars(args), "view": {"permutation": view.permutation, "scale": view.scale,
                                                                "offset": view.offset},
         "summary": summary, "runs": runs}, indent=1, default=float))


if __name__ == "__main__":
    main()
