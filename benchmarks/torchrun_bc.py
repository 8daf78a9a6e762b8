"""`torchrun --nproc-per-node 2 -m ilcore train bc` against one process on the same data.

Data: --episodes x --steps low-dimensional demonstrations (8 float features, Discrete(4) labels
from a fixed linear rule). Both commands train --epochs epochs with the same global batch; one
process gets --threads 2, each of the two torchrun ranks one thread (the CLI default), so both
use the 2 cores. Reported: wall seconds of the whole command (start-up included), training
seconds from history.json, and the final validation loss (should agree within noise).

    python benchmarks/torchrun_bc.py [--episodes 40] [--steps 500] [--epochs 5]
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
    args = parser.parse_args()
    result: dict = {"machine": {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                                "torch": torch.__version__, "loadavg_at_start": os.getloadavg(),
                                "date": datetime.datetime.now().isoformat(timespec="seconds")}, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "demos"
        build(data, args.episodes, args.steps)
        train = ["train", "bc", "--data", str(data), "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
                 "--hidden", "256,256", "--patience", "0", "--device", "cpu", "--quiet", "--json"]
        launchers = {"1 process": [sys.executable, "-m", "ilcore", *train, "--threads", "2"],
                     "torchrun 2": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                                    "2", "-m", "ilcore", *train]}
        for name, cmd in launchers.items():
            out = Path(tmp) / name.replace(" ", "_")
            t0 = time.perf_counter()
            proc = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
            hist = json.loads((out / "history.json").read_text())["history"]
            result["runs"][name] = {"wall_s": wall, "train_s": hist["seconds"][-1],
                                    "final_valid_loss": hist["valid_loss"][-1], "samples": hist["samples"][-1]}
    r = result["runs"]
    result["train_speedup"] = r["1 process"]["train_s"] / r["torchrun 2"]["train_s"]
    result["machine"]["loadavg_at_end"] = os.getloadavg()
    print(f"{'launcher':>11} {'wall s':>7} {'train s':>8} {'valid loss':>11}")
    for name, v in r.items():
        print(f"{name:>11} {v['wall_s']:>7.1f} {v['train_s']:>8.1f} {v['final_valid_loss']:>11.4f}")
    print(f"training speed-up of 2 processes: {result['train_speedup']:.2f}x")
    out = Path(__file__).parent / "results" / "torchrun_bc.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
