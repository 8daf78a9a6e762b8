"""Is the pixel learner the limit on CarRacing-v3? BC on a fixed set of expert episodes.

Plain DAgger from pixels reached a best return of 29 at 3078 labels (expert 918; see
docs/benchmarks.md, "label efficiency"). This measures the learner alone, with the labels held
fixed: the scripted expert (``ilcore.experts.car_racing``, which reads the track, not the frames)
drives ``max(--episodes)`` episodes once; BC then trains the label-efficiency benchmark's learner
(a 3-member CNN ensemble, MLP (64, 64) after it, the default squashed-Gaussian head, batch 64,
Adam 1e-3, no validation split) on the first 1, 2, 4 of them, with and without random-shift
augmentation (``BCConfig.image_shift``, DrQ-style), and is evaluated on ``--eval-episodes``
fresh tracks (``ilcore.eval.evaluate``, deterministic actions) after each update count in
``--updates`` (one training run per cell, evaluated on the way: the 300-update policy is the
1500-update run's weights after its first 300 updates, rounded up to whole epochs).

Writes a table, benchmarks/results/carracing_learner.json (rewritten after every evaluation, so a
run cut short keeps what it measured).
Usage: nice -n 19 python benchmarks/carracing_learner.py [--episodes 1 4 2] [--shifts 0 4]
       [--updates 300 1500] [--eval-episodes 5] [--ensemble 3] [--seed 0] [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bc_vs_episodes import Demos, record as record_expert  # noqa: E402  (benchmarks/ is the script's folder)

RESULTS = ROOT / "benchmarks" / "results"
ENV_ID = "CarRacing-v3"


def record(episodes: int, seed: int) -> tuple[Demos, list[float], float]:
    """The scripted expert's episodes on tracks ``seed * 1000 + i``: (demos, returns, seconds)."""
    started = time.perf_counter()
    demos, returns = record_expert(ENV_ID, episodes, seed)
    return demos, returns, time.perf_counter() - started


def machine() -> dict:
    import torch

    return {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "load_avg_at_start": os.getloadavg(), "nice": os.nice(0),
            "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", nargs="+", type=int, default=[1, 4, 2], help="expert episodes per cell, in run order")
    ap.add_argument("--shifts", nargs="+", type=int, default=[0, 4], help="image_shift values (pixels; 0: off)")
    ap.add_argument("--updates", nargs="+", type=int, default=[300, 1500],
                    help="minibatch updates per member at which to evaluate (one run to the largest)")
    ap.add_argument("--eval-episodes", type=int, default=5)
    ap.add_argument("--ensemble", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS / "carracing_learner.json"))
    args = ap.parse_args()

    from ilcore.runtime import configure_threads

    configure_threads(1)
    import torch

    from ilcore.algos.bc import BCConfig, train_bc
    from ilcore.eval import evaluate

    out = Path(args.out)
    started = time.perf_counter()
    demos, expert_returns, record_s = record(max(args.episodes), args.seed)
    print(f"recorded {max(args.episodes)} expert episodes ({len(demos)} steps, returns "
          f"{', '.join(f'{r:.1f}' for r in expert_returns)}) in {record_s:.1f} s", flush=True)
    doc = {"machine": machine(), "settings": vars(args), "expert_returns": expert_returns,
           "record_s": record_s, "rows": []}
    checkpoints = sorted(args.updates)
    for n_eps in args.episodes:
        data = demos.first(n_eps)
        per_epoch = max(math.ceil(len(data) / 64), 1)
        eval_epochs = {math.ceil(u / per_epoch): u for u in checkpoints}
        for shift in args.shifts:
            cfg = BCConfig(epochs=max(eval_epochs), ensemble=args.ensemble, hidden=(64, 64), seed=args.seed,
                           valid_fraction=0.0, patience=None, image_shift=shift, device="cpu")
            clock = {"train_s": 0.0, "eval_s": 0.0, "t": time.perf_counter()}

            def at_epoch(report, n_eps=n_eps, shift=shift, clock=clock) -> None:
                if report.epoch not in eval_epochs:
                    return
                t0 = time.perf_counter()
                clock["train_s"] += t0 - clock["t"]
                report.policy.eval()
                with torch.no_grad():
                    ev = evaluate(report.policy, ENV_ID, episodes=args.eval_episodes, seed=10_000 + args.seed)
                report.policy.train()
                t1 = time.perf_counter()
                clock["eval_s"] += t1 - t0
                row = {"episodes": n_eps, "labels": len(data), "image_shift": shift,
                       "updates_target": eval_epochs[report.epoch], "updates": report.epoch * per_epoch,
                       "epochs": report.epoch, "train_loss": report.train_loss,
                       "mean_return": float(ev.mean_return), "ci95": None if ev.ci95 is None else list(ev.ci95),
                       "returns": [float(r) for r in ev.returns], "lengths": [int(n) for n in ev.lengths],
                       "train_s": round(clock["train_s"], 1), "eval_s": round(t1 - t0, 1)}
                doc["rows"].append(row)
                print(f"{n_eps} eps ({len(data):5d} labels)  shift {shift}  {row['updates']:5d} updates  "
                      f"return {row['mean_return']:7.1f}  (per episode {', '.join(f'{r:.0f}' for r in row['returns'])})"
                      f"  train {row['train_s']:.0f} s  eval {row['eval_s']:.0f} s", flush=True)
                doc["seconds"] = time.perf_counter() - started
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(doc, indent=1))
                clock["t"] = time.perf_counter()

            train_bc(data, cfg, progress=False, callback=at_epoch)
    doc["seconds"] = time.perf_counter() - started
    doc["machine"]["load_avg_at_end"] = os.getloadavg()
    out.write_text(json.dumps(doc, indent=1))
    print(f"\nexpert mean {np.mean(expert_returns):.1f}; total {doc['seconds'] / 60:.1f} min; wrote {out}")
    print(f"{'episodes':>8} {'labels':>6} {'shift':>5} " + " ".join(f"{f'{u} upd':>9}" for u in checkpoints))
    for n_eps in args.episodes:
        for shift in args.shifts:
            cells = {r["updates_target"]: r for r in doc["rows"] if r["episodes"] == n_eps and r["image_shift"] == shift}
            labels = next(iter(cells.values()))["labels"] if cells else 0
            print(f"{n_eps:>8} {labels:>6} {shift:>5} "
                  + " ".join(f"{cells[u]['mean_return']:>9.1f}" if u in cells else f"{'-':>9}" for u in checkpoints))


if __name__ == "__main__":
    main()
