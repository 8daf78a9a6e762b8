"""train_bc samples/s against a bare torch loop (same MLP, Adam, batch, tensors in memory).

Both run in this process on the same synthetic CartPole-shaped data (4 float obs, 2 actions);
the ratio is train_bc's samples/s over the bare loop's. Goal: >= 0.8. Time is this process's
CPU time (time.process_time), so other jobs on a shared machine distort the ratio less; each
configuration runs ``--repeats`` interleaved pairs and reports medians.
Usage: python benchmarks/bc_throughput.py [--samples N] [--epochs E]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch


def machine() -> dict:
    return {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "clock": "process_time",
            "date": datetime.datetime.now().isoformat(timespec="seconds")}


class Data:
    def __init__(self, n: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        env = gym.make("CartPole-v1")
        self.obs = rng.normal(size=(n, 4)).astype(np.float32)
        self.actions = (self.obs @ np.array([0.1, 0.5, 1.0, 0.5]) > 0).astype(np.int64)
        self.weights = np.ones(n, np.float32)
        self.episode = np.arange(n) // 500
        self.train_mask = np.ones(n, bool)
        self.valid_mask = np.zeros(n, bool)
        self.observation_space, self.action_space = env.observation_space, env.action_space

    def __len__(self) -> int:
        return len(self.weights)


def bare_loop(data: Data, hidden: tuple[int, ...], batch: int, epochs: int, fused: bool = False) -> float:
    """The textbook loop: nn.Sequential MLP, cross-entropy, Adam, randperm minibatches.

    ``fused=True`` gives the bare loop the same fused Adam kernel train_bc uses, so the second
    ratio isolates what ilcore's own code costs."""
    torch.manual_seed(0)
    layers, width = [], 4
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    net = torch.nn.Sequential(*layers, torch.nn.Linear(width, 2))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=fused)
    x, y = torch.as_tensor(data.obs), torch.as_tensor(data.actions)
    n = len(x)
    start = time.process_time()
    for _ in range(epochs):
        perm = torch.randperm(n)
        for s in range(0, n, batch):
            idx = perm[s:s + batch]
            loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return n * epochs / (time.process_time() - start)


def ilcore_loop(data: Data, hidden: tuple[int, ...], batch: int, epochs: int) -> float:
    from ilcore.algos.bc import BCConfig, train_bc

    cfg = BCConfig(epochs=epochs, batch_size=batch, hidden=hidden, patience=None, seed=0)
    start = time.process_time()
    result = train_bc(data, cfg, progress=False)
    elapsed = time.process_time() - start
    return result.history["samples"][-1] / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=20_000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = Data(args.samples)
    rows = []
    for hidden in [(32, 32), (256, 256)]:
        for batch in (32, 256):
            bare, bare_fused, ours = [], [], []
            for _ in range(args.repeats):  # interleaved so machine-load drift hits all alike
                bare.append(bare_loop(data, hidden, batch, args.epochs))
                bare_fused.append(bare_loop(data, hidden, batch, args.epochs, fused=True))
                ours.append(ilcore_loop(data, hidden, batch, args.epochs))
            b, bf, o = float(np.median(bare)), float(np.median(bare_fused)), float(np.median(ours))
            rows.append({"hidden": list(hidden), "batch": batch, "bare_samples_per_s": b,
                         "bare_fused_samples_per_s": bf, "train_bc_samples_per_s": o, "ratio": o / b,
                         "ratio_vs_fused_bare": o / bf})
    print(f"{'hidden':>10} {'batch':>6} {'bare/s':>10} {'bare fused/s':>13} {'train_bc/s':>11} {'ratio':>6} "
          f"{'vs fused':>9}")
    for r in rows:
        print(f"{','.join(map(str, r['hidden'])):>10} {r['batch']:>6} {r['bare_samples_per_s']:>10.0f} "
              f"{r['bare_fused_samples_per_s']:>13.0f} {r['train_bc_samples_per_s']:>11.0f} {r['ratio']:>6.2f} "
              f"{r['ratio_vs_fused_bare']:>9.2f}")
    out = Path(__file__).parent / "results" / "bc_throughput.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"machine": machine(), "settings": vars(args), "goal_ratio": 0.8, "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
