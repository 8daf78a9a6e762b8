"""torch's thread count and OpenMP's wait policy on a shared machine: CNN training throughput.

One training step is the project's image encoder (EnsembleCNN, one member, CarRacing frames
96x96x3) plus a 5-way linear head, cross-entropy and Adam, on a fixed minibatch of 64 random
frames. Each variant runs in a fresh process, because OpenMP reads ``OMP_WAIT_POLICY`` once
when torch loads it:

- threads 1 (the baseline every ratio is against, measured in the same round),
- threads 2 with OpenMP's default wait policy (threads spin while they wait for each other),
- threads 2 with ``OMP_WAIT_POLICY=PASSIVE`` (what ``ilcore.runtime.configure_threads`` sets
  unless the user chose a policy).

Each is measured with the cores otherwise left as they are ("as is": whatever else runs on the
machine, reported as the load average) and with --competitors busy-looping processes started
beside it (a DataLoader reader, an env worker or another user's job takes a core the same way).
Rounds alternate the variants so a change in background load hits all of them alike; the
table gives the median samples/s over --rounds rounds.

    python benchmarks/threads.py [--rounds 3] [--steps 30] [--competitors 1]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"

CHILD = r"""
import sys, time
import torch
from ilcore.policies.networks import EnsembleCNN
threads, steps = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)
encoder = EnsembleCNN(1, (96, 96, 3), features=256)
head = torch.nn.Linear(256, 5)
params = list(encoder.parameters()) + list(head.parameters())
opt = torch.optim.Adam(params, lr=1e-4)
frames = torch.randint(0, 256, (1, 64, 96, 96, 3), dtype=torch.uint8)
labels = torch.randint(0, 5, (64,))
def step():
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(head(encoder(frames)[0]), labels)
    loss.backward()
    opt.step()
for _ in range(3):
    step()
t0, c0 = time.perf_counter(), time.process_time()
for _ in range(steps):
    step()
wall = time.perf_counter() - t0
print(steps * 64 / wall, (time.process_time() - c0) / wall)
"""

VARIANTS = {
    "1 thread": (1, None),
    "2 threads, default wait": (2, ""),
    "2 threads, passive wait": (2, "PASSIVE"),
}


def measure(threads: int, policy: str | None, steps: int) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    out = subprocess.run([sys.executable, "-c", CHILD, str(threads), str(steps)], env=env,
                         capture_output=True, text=True, check=True, timeout=900)
    rate, cpu = out.stdout.split()
    return float(rate), float(cpu)


def spin_processes(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30, help="timed training steps per measurement")
    ap.add_argument("--competitors", type=int, default=1, help="busy processes in the 'contended' setting")
    ap.add_argument("--out", default=str(RESULTS / "threads.json"))
    args = ap.parse_args()

    settings = {"as is": 0, f"+{args.competitors} busy process(es)": args.competitors}
    samples: dict[str, dict[str, list[float]]] = {s: {v: [] for v in VARIANTS} for s in settings}
    loads = []
    for r in range(args.rounds):
        for setting, competitors in settings.items():
            spinners = spin_processes(competitors)
            try:
                time.sleep(0.5 if competitors else 0.0)
                loads.append(os.getloadavg()[0])
                for name, (threads, policy) in VARIANTS.items():
                    rate, cpu = measure(threads, policy, args.steps)
                    samples[setting][name].append(rate)
                    print(f"round {r + 1} {setting:22s} {name:26s} {rate:7.0f} samples/s (cpu/wall {cpu:.2f})",
                          flush=True)
            finally:
                for p in spinners:
                    p.kill()
                    p.wait()

    table = {}
    print(f"\n{'setting':24s} {'variant':26s} {'samples/s':>10s} {'vs 1 thread':>12s}")
    for setting, by_variant in samples.items():
        base = float(np.median(by_variant["1 thread"]))
        table[setting] = {}
        for name, rates in by_variant.items():
            med = float(np.median(rates))
            table[setting][name] = {"median_samples_per_s": med, "per_round": rates, "ratio_to_1_thread": med / base}
            print(f"{setting:24s} {name:26s} {med:10.0f} {med / base:12.2f}")
    result = {
        "benchmark": "threads",
        "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "load_average_at_each_setting": loads,
        "config": vars(args),
        "results": table,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
