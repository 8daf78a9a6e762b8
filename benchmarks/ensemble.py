"""K=5 ensemble trained in one vectorised pass vs 5 members trained one after another.

Same data, epochs, batch and MLP; the sequential baseline is 5 runs of train_bc with K=1.
Goal: vectorised time <= 1/3 of sequential time. Times are this process's CPU time (time.process_time)
so other jobs on a shared machine distort them less.
Usage: python benchmarks/ensemble.py [--samples N] [--epochs E]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from bc_throughput import Data, machine


def main() -> None:
    from ilcore.algos.bc import BCConfig, train_bc

    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = Data(args.samples)
    rows = []
    for hidden, batch in [((32, 32), 32), ((64, 64), 64), ((256, 256), 256)]:
        seq, vec = [], []
        for _ in range(args.repeats):
            start = time.process_time()
            for k in range(5):
                train_bc(data, BCConfig(epochs=args.epochs, batch_size=batch, hidden=hidden, patience=None, seed=k),
                         progress=False)
            seq.append(time.process_time() - start)
            start = time.process_time()
            train_bc(data, BCConfig(epochs=args.epochs, batch_size=batch, hidden=hidden, patience=None, ensemble=5),
                     progress=False)
            vec.append(time.process_time() - start)
        s, v = float(np.median(seq)), float(np.median(vec))
        rows.append({"hidden": list(hidden), "batch": batch, "sequential_s": s, "vectorised_s": v, "ratio": v / s})
    print(f"{'hidden':>10} {'batch':>6} {'5 x K=1 (s)':>12} {'K=5 (s)':>8} {'ratio':>6}")
    for r in rows:
        print(f"{','.join(map(str, r['hidden'])):>10} {r['batch']:>6} {r['sequential_s']:>12.2f} "
              f"{r['vectorised_s']:>8.2f} {r['ratio']:>6.2f}")
    out = Path(__file__).parent / "results" / "ensemble.json"
    out.write_text(json.dumps({"machine": machine(), "settings": vars(args), "goal_ratio": 1 / 3, "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
