"""CarRacing evaluation with envs stepped in worker processes (AsyncVectorEnv) vs in this process.

A randomly initialised CNN policy (the network BC trains; its weights do not change the env's
cost) plays --episodes episodes of --max-steps steps on --num-envs envs, once with sync and once
with async envs, alternating for --repeats rounds; wall-clock medians are reported. The returns
must be identical (same seeds, same actions); the figure is sync_s / async_s.

    python benchmarks/async_eval.py [--episodes 4] [--max-steps 200] [--num-envs 2]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from ilcore.eval import env_spaces, evaluate
from ilcore.policies import make_policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--num-envs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)  # one thread per process, as the CLI does with --async
    env_id, kwargs = "CarRacing-v3", {"continuous": False, "max_episode_steps": args.max_steps}
    policy = make_policy(*env_spaces(env_id, kwargs), hidden=(64,), seed=0)
    times: dict[str, list[float]] = {"sync": [], "async": []}
    returns = {}
    for _ in range(args.repeats):
        for mode in ("sync", "async"):
            t0 = time.perf_counter()
            res = evaluate(policy, env_id, episodes=args.episodes, seed=0, env_kwargs=kwargs,
                           num_envs=args.num_envs, asynchronous=mode == "async")
            times[mode].append(time.perf_counter() - t0)
            returns[mode] = res.returns.tolist()
    assert np.allclose(returns["sync"], returns["async"]), returns
    med = {m: float(np.median(t)) for m, t in times.items()}
    result = {"machine": {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                          "torch": torch.__version__, "loadavg": os.getloadavg(),
                          "date": datetime.datetime.now().isoformat(timespec="seconds")},
              "env": env_id, "episodes": args.episodes, "max_steps": args.max_steps, "num_envs": args.num_envs,
              "seconds": times, "median_s": med, "speedup_async": med["sync"] / med["async"], "returns": returns}
    print(f"{'mode':>6} {'median s':>9}")
    for m in ("sync", "async"):
        print(f"{m:>6} {med[m]:>9.2f}")
    print(f"async speed-up: {result['speedup_async']:.2f}x ({args.num_envs} envs, {args.episodes} episodes x {args.max_steps} steps)")
    out = Path(__file__).parent / "results" / "async_eval.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
