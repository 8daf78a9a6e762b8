"""BCO(0) and BCO(alpha) against BC with the true actions, on the same expert demonstrations.

For each env: record N expert demos; BC trains on (s, true a); BCO sees only the states and
explores with uniformly random actions for `pre_demo_steps` steps; BCO(alpha) then rolls its
policy out for alpha x pre_demo_steps steps per iteration. Reports evaluation return (mean over
`--eval-episodes` seeded episodes), IDM label accuracy on the demos, and env steps used.
Writes benchmarks/results/bco.json and bco.png.

    python benchmarks/bco.py            # about 10 minutes on one core
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from lfo_common import expert_demos, machine  # noqa: E402

from ilcore.algos.bc import BCConfig, train_bc  # noqa: E402
from ilcore.algos.lfo.bco import BCOConfig, run_bco  # noqa: E402
from ilcore.algos.lfo.idm import PairData, describe_agreement  # noqa: E402
from ilcore.eval import evaluate  # noqa: E402
from ilcore.experts import make_expert  # noqa: E402

# env id -> (demo episodes, pre-demo steps, head for Box actions)
SETTINGS = {
    "CartPole-v1": (5, 5000, None),
    "MountainCar-v0": (10, 10000, None),
    "Pendulum-v1": (10, 10000, "mse"),
    "LunarLander-v3": (10, 10000, None),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=list(SETTINGS))
    parser.add_argument("--alpha", type=float, default=0.25)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    rows = []
    for env_id in args.envs:
        n_demos, pre, head = SETTINGS[env_id]
        demos = expert_demos(env_id, n_demos)
        bc_cfg = BCConfig(epochs=50, hidden=(64, 64), patience=10, head=head, seed=args.seed)
        idm_cfg = BCConfig(epochs=30, batch_size=128, hidden=(64, 64), patience=5, head=head, seed=args.seed)

        def score(policy) -> float:
            return evaluate(policy, env_id, episodes=args.eval_episodes, seed=20_000).mean_return

        t0 = time.perf_counter()
        bc = train_bc(PairData(obs=demos.obs, actions=demos.true_actions, weights=np.ones(len(demos), np.float32),
                               episode=demos.episode, observation_space=demos.observation_space,
                               action_space=make_expert(env_id).action_space), bc_cfg, progress=False)
        bc_return = score(bc.policy)
        t_bc = time.perf_counter() - t0
        results = {"BC (true actions)": {"return": bc_return, "env_steps": 0, "idm_accuracy": None,
                                         "seconds": t_bc}}
        for name, alpha in (("BCO(0)", 0.0), (f"BCO({args.alpha:g})", args.alpha)):
            t0 = time.perf_counter()
            cfg = BCOConfig(alpha=alpha, pre_demo_steps=pre, iterations=args.iterations, idm=idm_cfg, bc=bc_cfg,
                            seed=args.seed)
            res = run_bco(demos, env_id, cfg, evaluate_fn=score if alpha > 0 else None)
            last = res.iterations[-1]
            ret = score(res.policy)
            results[name] = {"return": ret, "env_steps": res.env_steps,
                             "idm_accuracy": last.idm_demo.accuracy,
                             "idm_mae": last.idm_demo.mean_abs_error,
                             "per_iteration": [it.to_json() for it in res.iterations],
                             "seconds": time.perf_counter() - t0}
            print(f"{env_id} {name}: return {ret:.1f}, IDM {describe_agreement(last.idm_demo)}, "
                  f"env steps {res.env_steps}", flush=True)
        expert_return = make_expert(env_id).documented_return
        rows.append({"env": env_id, "demo_episodes": n_demos, "demo_steps": len(demos),
                     "expert_return": expert_return, "bc_return": bc_return, "results": results})
        print(f"{env_id} BC (true actions): return {bc_return:.1f}", flush=True)

    print()
    print(f"{'env':16s} {'method':18s} {'return':>9s} {'% of BC':>8s} {'IDM acc':>8s} {'env steps':>10s}")
    for row in rows:
        for name, r in row["results"].items():
            frac = r["return"] / row["bc_return"] if row["bc_return"] > 0 else float("nan")
            acc = "-" if r["idm_accuracy"] is None else f"{100 * r['idm_accuracy']:.1f}%"
            print(f"{row['env']:16s} {name:18s} {r['return']:9.1f} {100 * frac:7.0f}% {acc:>8s} {r['env_steps']:10d}")

    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "bco.json").write_text(json.dumps({"machine": machine(), "settings": vars(args), "rows": rows},
                                             indent=1, default=float))
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.2 * len(rows), 3.4), dpi=100)
    for i, row in enumerate(rows):
        ax = fig.add_subplot(1, len(rows), i + 1)
        names = list(row["results"])
        ax.bar(range(len(names)), [row["results"][n]["return"] for n in names],
               color=["tab:gray", "tab:blue", "tab:orange"])
        ax.set_xticks(range(len(names)), [n.replace(" (true actions)", "\n(true a)") for n in names], fontsize=7)
        ax.set_title(row["env"], fontsize=9)
        if row["expert_return"] is not None:
            ax.axhline(row["expert_return"], color="k", ls="--", lw=0.8)
    fig.suptitle("return: BC with true actions vs BCO (dashed: expert)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "bco.png")


if __name__ == "__main__":
    main()
