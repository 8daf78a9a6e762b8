"""BCO(0) and BCO(alpha) against BC with the true actions, on the same expert demonstrations.

For each env: record N expert demos; BC trains on (s, true a); BCO sees only the states and
explores for `pre_demo_steps` steps with random actions (uniform, or "sticky" random actions that
repeat the previous one with probability p; never the expert); BCO(alpha) then rolls its policy
out for alpha x pre_demo_steps steps per iteration. Reports evaluation return (mean over
`--eval-episodes` seeded episodes, then over `--seeds`), IDM label accuracy on the demos (for
LunarLander also split into flying pairs and pairs with a leg on the ground), and env steps used.
The demos are the same for every seed; the seed drives exploration and training. BCO labels the
demo pairs "soft" (each pair weighted by the IDM's posterior over actions) unless `--labels`
says otherwise; `--labels soft argmax` adds the paper's argmax labels as extra rows.
Writes benchmarks/results/<--out>.json and <--out>.png.

    python benchmarks/bco.py --seeds 0 1 2 --labels soft argmax                       # all envs
    python benchmarks/bco.py --envs LunarLander-v3 --seeds 0 1 2 3 4 --alpha 0.5 --iterations 10 \
        --labels soft argmax --out bco_lunarlander
    python benchmarks/bco.py --envs LunarLander-v3 --seeds 0 1 2 3 4 --alpha 0.5 --iterations 10 \
        --ensemble 5 --out bco_lunarlander_k5
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

# env id -> (demo episodes, pre-demo steps, head for Box actions, exploration, sticky repeat prob,
#            share of random actions in the BCO(alpha) rollouts)
SETTINGS = {
    "CartPole-v1": (5, 5000, None, "random", 0.0, 0.0),
    "MountainCar-v0": (10, 10000, None, "random", 0.0, 0.0),
    "Pendulum-v1": (10, 10000, "mse", "random", 0.0, 0.0),
    # Random play crashes LunarLander within ~90 steps and never rests on the legs, so an IDM
    # fitted on it labels the demo's "resting on the legs, engines off" pairs (a third of the demo)
    # as main engine: on the ground the contact force holds the lander as the engine does in the
    # air. In flight it is ~99% right. BCO(alpha)'s rollouts land like the demos; 30% random
    # actions in them try every action on the ground, so the refitted IDM learns those states.
    # Run with --alpha 0.5 --iterations 10 (see docs/benchmarks.md).
    "LunarLander-v3": (10, 10000, None, "sticky", 0.95, 0.3),
}


def contact_split(env_id: str, demos, inferred) -> dict | None:
    """LunarLander: label accuracy on demo pairs in flight and with a leg on the ground."""
    if env_id != "LunarLander-v3" or demos.true_actions is None:
        return None
    legs = (demos.obs[:, 6] > 0.5) | (demos.obs[:, 7] > 0.5)
    ok = np.asarray(inferred) == demos.true_actions
    return {"flying": float(ok[~legs].mean()), "legs_on_ground": float(ok[legs].mean()),
            "legs_share": float(legs.mean())}


def plot(rows: list[dict], path: Path) -> None:
    """Bars: mean return per method; dots: one per seed; dashed: the expert's documented return."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(4.5, 3.2 * len(rows)), 3.4), dpi=100)
    for i, row in enumerate(rows):
        ax = fig.add_subplot(1, len(rows), i + 1)
        names = list(row["results"])
        ax.bar(range(len(names)), [row["results"][n]["return"] for n in names],
               color=["tab:gray", "tab:blue", "tab:orange", "tab:cyan", "tab:red"][: len(names)], alpha=0.8)
        for j, n in enumerate(names):
            ys = row["results"][n].get("return_per_seed", [row["results"][n]["return"]])
            ax.plot([j] * len(ys), ys, "k.", ms=4)
        ax.set_xticks(range(len(names)), [n.replace(" (true actions)", "\n(true a)").replace(" ", "\n") for n in names],
                      fontsize=7)
        ax.set_title(row["env"], fontsize=9)
        if row["expert_return"] is not None:
            ax.axhline(row["expert_return"], color="k", ls="--", lw=0.8)
    fig.suptitle("return: BC with true actions vs BCO (dots: seeds; dashed: expert)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=list(SETTINGS))
    parser.add_argument("--alpha", type=float, default=0.25)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--idm-hidden", type=int, nargs="+", default=[64, 64])
    parser.add_argument("--idm-epochs", type=int, default=30)
    parser.add_argument("--idm-patience", type=int, default=5)
    parser.add_argument("--ensemble", type=int, default=1,
                        help="members of the cloned policy, BC's and BCO's alike (acts by the ensemble's mixture)")
    parser.add_argument("--labels", nargs="+", choices=("soft", "argmax"), default=["soft"],
                        help="BCO label modes to run (Discrete actions); the first is the headline row")
    parser.add_argument("--out", default="bco", help="result file stem under benchmarks/results")
    args = parser.parse_args()
    torch.set_num_threads(1)

    rows = []
    for env_id in args.envs:
        n_demos, pre, head, exploration, sticky_prob, rollout_epsilon = SETTINGS[env_id]
        demos = expert_demos(env_id, n_demos)

        def score(policy) -> float:
            return evaluate(policy, env_id, episodes=args.eval_episodes, seed=20_000).mean_return

        # Box actions have one label mode (the IDM's prediction): run it once.
        modes = args.labels if make_expert(env_id).action_space.__class__.__name__ == "Discrete" else args.labels[:1]
        runs_spec = [(f"BCO(0){'' if m == args.labels[0] else ' ' + m}", 0.0, m) for m in modes]
        runs_spec += [(f"BCO({args.alpha:g}){'' if m == args.labels[0] else ' ' + m}", args.alpha, m) for m in modes]
        names = ["BC (true actions)"] + [r[0] for r in runs_spec]
        per_seed: dict[str, list[dict]] = {n: [] for n in names}
        for seed in args.seeds:
            bc_cfg = BCConfig(epochs=50, hidden=(64, 64), patience=10, head=head, seed=seed, ensemble=args.ensemble)
            idm_cfg = BCConfig(epochs=args.idm_epochs, batch_size=128, hidden=tuple(args.idm_hidden),
                              patience=args.idm_patience, head=head, seed=seed)
            t0 = time.perf_counter()
            bc = train_bc(PairData(obs=demos.obs, actions=demos.true_actions,
                                   weights=np.ones(len(demos), np.float32), episode=demos.episode,
                                   observation_space=demos.observation_space,
                                   action_space=make_expert(env_id).action_space), bc_cfg, progress=False)
            bc_return = score(bc.policy)
            per_seed[names[0]].append({"seed": seed, "return": bc_return, "env_steps": 0, "idm_accuracy": None,
                                       "seconds": time.perf_counter() - t0})
            print(f"{env_id} seed {seed} BC (true actions): return {bc_return:.1f}", flush=True)
            for name, alpha, labels in runs_spec:
                t0 = time.perf_counter()
                cfg = BCOConfig(alpha=alpha, pre_demo_steps=pre, iterations=args.iterations, idm=idm_cfg, bc=bc_cfg,
                                exploration=exploration, sticky_prob=sticky_prob, rollout_epsilon=rollout_epsilon,
                                labels=labels, seed=seed)
                res = run_bco(demos, env_id, cfg, evaluate_fn=score if alpha > 0 else None)
                last = res.iterations[-1]
                ret = score(res.policy)
                per_seed[name].append({"seed": seed, "return": ret, "env_steps": res.env_steps,
                                       "idm_accuracy": last.idm_demo.accuracy,
                                       "idm_mae": last.idm_demo.mean_abs_error,
                                       "idm_contact_split": contact_split(env_id, demos, res.inferred_actions),
                                       "per_iteration": [it.to_json() for it in res.iterations],
                                       "seconds": time.perf_counter() - t0})
                print(f"{env_id} seed {seed} {name}: return {ret:.1f}, IDM {describe_agreement(last.idm_demo)}, "
                      f"split {contact_split(env_id, demos, res.inferred_actions)}, env steps {res.env_steps}, "
                      f"{time.perf_counter() - t0:.0f}s", flush=True)
        results = {}
        for name, runs in per_seed.items():
            accs = [r["idm_accuracy"] for r in runs if r["idm_accuracy"] is not None]
            results[name] = {"return": float(np.mean([r["return"] for r in runs])),
                             "return_per_seed": [r["return"] for r in runs],
                             "env_steps": runs[0]["env_steps"],
                             "idm_accuracy": float(np.mean(accs)) if accs else None,
                             "seconds": float(np.mean([r["seconds"] for r in runs])),
                             "runs": runs}
        expert_return = make_expert(env_id).documented_return
        rows.append({"env": env_id, "demo_episodes": n_demos, "demo_steps": len(demos), "pre_demo_steps": pre,
                     "exploration": exploration, "sticky_prob": sticky_prob if exploration == "sticky" else None,
                     "rollout_epsilon": rollout_epsilon,
                     "expert_return": expert_return, "bc_return": results[names[0]]["return"],
                     "results": results})

    print()
    print(f"{'env':16s} {'method':18s} {'return':>9s} {'% of BC':>8s} {'IDM acc':>8s} {'env steps':>10s}")
    for row in rows:
        for name, r in row["results"].items():
            frac = r["return"] / row["bc_return"] if row["bc_return"] > 0 else float("nan")
            acc = "-" if r["idm_accuracy"] is None else f"{100 * r['idm_accuracy']:.1f}%"
            print(f"{row['env']:16s} {name:18s} {r['return']:9.1f} {100 * frac:7.0f}% {acc:>8s} {r['env_steps']:10d}")

    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"{args.out}.json").write_text(json.dumps({"machine": machine(), "settings": vars(args), "rows": rows},
                                             indent=1, default=float))
    plot(rows, out / f"{args.out}.png")


if __name__ == "__main__":
    main()
