"""`torchrun --nproc-per-node 2 -m ilcore train bc` against one process on the same data.

Data: --episodes x --steps low-dimensional demonstrations (8 float features, Discrete(4) labels
from a fixed linear rule). Both commands train --epochs epochs with the same global batch; one
process gets --threads 2, each of the two torchrun ranks one thread (the CLI default), so both
use the 2 cores. Reported: wall seconds of the whole command (start-up included), training
seconds from history.json, and the final validation loss (should agree within noise).
With --ensemble K > 1 the same is measured for a K-member ensemble, beside splitting the members
across 2 processes (each trains its share on all the data with one thread; no gradient exchange):
the alternative to data-parallel ranks that the issue asked to measure.

    python benchmarks/torchrun_bc.py [--episodes 40] [--steps 500] [--epochs 5] [--ensemble 1]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces

from ilcore.data import SessionWriter
from ilcore.types import Actor


def build(path: Path, episodes: int, steps: int) -> None:
    rng = np.random.default_rng(0)
    w_rule = rng.normal(size=(8, 4))
    with SessionWriter(path, env_id="Bench-v0", observation_space=spaces.Box(-9, 9, (8,), np.float32),
                       action_space=spaces.Discrete(4)) as w:
        for _ in range(episodes):
            obs = rng.normal(size=(steps + 1, 8)).astype(np.float32)
            acts = np.argmax(obs[:-1] @ w_rule, axis=1)
            rec = w.begin_episode(obs[0])
            for t in range(steps):
                rec.label(t, int(acts[t]), source="scripted", reason="demo")
                rec.step(int(acts[t]), Actor.SCRIPTED, 0.0, False, t == steps - 1, obs[t + 1])
            rec.finish()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--ensemble", type=int, default=1,
                        help="members; > 1 also measures splitting the members across 2 processes")
    args = parser.parse_args()
    result: dict = {"machine": {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                                "torch": torch.__version__, "loadavg_at_start": os.getloadavg(),
                                "date": datetime.datetime.now().isoformat(timespec="seconds")}, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "demos"
        build(data, args.episodes, args.steps)
        train = ["train", "bc", "--data", str(data), "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
                 "--hidden", "256,256", "--patience", "0", "--device", "cpu", "--quiet", "--json"]
        ilcore = [sys.executable, "-m", "ilcore"]
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "ilcore"]
        k = args.ensemble
        launchers: dict[str, list[list[str]]] = {
            "1 process": [[*ilcore, *train, "--threads", "2"]],
            "torchrun 2": [[*torchrun, *train]],
        }
        if k > 1:
            # Members are independent nets: split across 2 processes (ceil(K/2) and floor(K/2) members,
            # one thread each, full data each, no gradient exchange) against data-parallel ranks that
            # each train all K members on half of every batch and all-reduce the gradients.
            launchers = {
                f"1 process, {k} members": [[*ilcore, *train, "--ensemble", str(k), "--threads", "2"]],
                f"torchrun 2, {k} members data-parallel": [[*torchrun, *train, "--ensemble", str(k)]],
                f"2 processes, members split {(k + 1) // 2}+{k // 2}": [
                    [*ilcore, *train, "--ensemble", str((k + 1) // 2), "--threads", "1", "--seed", "0"],
                    [*ilcore, *train, "--ensemble", str(k // 2), "--threads", "1", "--seed", "1"]],
            }
        for name, cmds in launchers.items():
            outs = [Path(tmp) / f"{name.replace(' ', '_').replace(',', '')}_{i}" for i in range(len(cmds))]
            t0 = time.perf_counter()
            procs = [subprocess.Popen([*cmd, "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True) for cmd, out in zip(cmds, outs)]
            errs = [proc.communicate()[1] for proc in procs]
            wall = time.perf_counter() - t0
            for proc, err in zip(procs, errs):
                if proc.returncode != 0:
                    raise SystemExit(f"{name} failed:\n{err[-3000:]}")
            hists = [json.loads((out / "history.json").read_text())["history"] for out in outs]
            result["runs"][name] = {"wall_s": wall, "train_s": max(h["seconds"][-1] for h in hists),
                                    "final_valid_loss": float(np.mean([h["valid_loss"][-1] for h in hists])),
                                    "samples": sum(h["samples"][-1] for h in hists)}
    r = result["runs"]
    names = list(r)
    result["train_speedup"] = {name: r[names[0]]["train_s"] / r[name]["train_s"] for name in names[1:]}
    result["machine"]["loadavg_at_end"] = os.getloadavg()
    print(f"{'launcher':>40} {'wall s':>7} {'train s':>8} {'valid loss':>11}")
    for name, v in r.items():
        print(f"{name:>40} {v['wall_s']:>7.1f} {v['train_s']:>8.1f} {v['final_valid_loss']:>11.4f}")
    for name, x in result["train_speedup"].items():
        print(f"training speed-up of {name} over {names[0]}: {x:.2f}x")
    out = Path(__file__).parent / "results" / ("torchrun_bc.json" if args.ensemble == 1 else "torchrun_bc_ensemble.json")
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
