"""Streamed vs in-memory image BC: peak memory of `ilcore train bc` as episodes grow, and throughput.

Data: synthetic CarRacing-size episodes (96x96x3 uint8 frames: grass, a road band that drifts,
a car, a little noise; Discrete(5) labels), written with SessionWriter (gzip, one frame per chunk).
Real CarRacing episodes are 1000 steps; --steps (default 200) keeps the build and the runs short.

1. Peak memory: `python -m ilcore train bc --data-mode M` for --small and --large episode counts,
   one epoch of --rss-steps minibatches plus validation on 5% of the episodes. The figure is the
   peak over time of the summed PSS (proportional set size: shared pages split between
   processes, so forked reader workers are not double-counted) of the command and its children.
2. Throughput: train_bc in this process on the --small data, memory vs stream, samples/s of the
   second epoch (--steps-per-epoch minibatches; the first epoch pays worker start-up). Goal:
   stream >= 0.8 x memory.

    python benchmarks/streaming.py [--small 20] [--large 200] [--steps 200]
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

from ilcore.runtime import configure_threads

# Threads (and OpenMP's wait policy) as the CLI sets them, before torch loads OpenMP.
THREADS = configure_threads()

import torch  # noqa: E402
from gymnasium import spaces  # noqa: E402

from ilcore.data import SessionWriter  # noqa: E402
from ilcore.types import Actor  # noqa: E402

OBS = spaces.Box(0, 255, (96, 96, 3), np.uint8)
ACT = spaces.Discrete(5)


def frames_for(episode: int, steps: int) -> np.ndarray:
    rng = np.random.default_rng(episode)
    out = np.empty((steps + 1, 96, 96, 3), np.uint8)
    out[:] = (102, 204, 102)  # grass
    out[:, ::8] = (102, 229, 102)  # stripes
    centre = 48 + np.cumsum(rng.integers(-2, 3, steps + 1)).clip(-30, 30)
    cols = np.arange(96)
    for t in range(steps + 1):
        road = np.abs(cols - centre[t]) < 14
        out[t, :, road] = (107, 107, 107)
        out[t, 66:78, 44:52] = (204, 0, 0)  # the car
        noise = rng.random((96, 96)) < 0.02
        out[t][noise] = rng.integers(0, 256, (int(noise.sum()), 3), dtype=np.uint8)
    return out


def build(path: Path, episodes: int, steps: int) -> float:
    with SessionWriter(path, env_id="CarRacing-v3", observation_space=OBS, action_space=ACT,
                       env_kwargs={"continuous": False}) as w:
        for e in range(episodes):
            frames = frames_for(e, steps)
            rec = w.begin_episode(frames[0], seed=e)
            for t in range(steps):
                a = int(e + t) % 5
                rec.label(t, a, source="scripted", reason="demo")
                rec.step(a, Actor.SCRIPTED, 0.0, False, t == steps - 1, frames[t + 1])
            rec.finish()
    return sum(f.stat().st_size for f in path.rglob("*.h5")) / 1e6


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in open(f"/proc/{p}/task/{task}/children").read().split()]
        except OSError:
            pass
    return out


def _pss(pid: int) -> int:
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def peak_memory(cmd: list[str]) -> tuple[float, float, dict]:
    """(peak summed PSS in MB, wall seconds, the command's JSON summary)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, sum(_pss(p) for p in _tree(proc.pid)))
        time.sleep(0.05)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err}")
    return peak / 1e6, time.perf_counter() - start, json.loads(out.strip().splitlines()[-1])


def index_bytes_per_step(path: Path) -> dict:
    """Bytes per step the streamed path legitimately keeps in memory: the per-step columns of
    load_transitions (frame indices, actions, weights, episode/step, reason/source strings, masks)
    and the trainer's tensors cut from them (StreamedBatches), plus the per-epoch order draw."""
    from ilcore.algos.batches import StreamedBatches
    from ilcore.data import load_transitions
    from ilcore.data.dataset import LazyFrames
    from ilcore.data.stream import lazy_leaves
    from ilcore.policies import make_policy

    data = load_transitions(path, valid_fraction=0.05)
    n = len(data)

    def nbytes(v: object) -> int:
        if isinstance(v, LazyFrames):
            return v._view.nbytes
        if isinstance(v, dict):
            return sum(nbytes(x) for x in v.values())
        if isinstance(v, (np.ndarray, torch.Tensor)):
            return v.nbytes
        return 0

    columns = sum(nbytes(getattr(data, f)) for f in ("obs", "next_obs", "actions", "weights", "episode", "step",
                                                   "reason", "source", "actor", "terminal", "train_mask",
                                                   "valid_mask"))
    policy = make_policy(data.observation_space, data.action_space, hidden=(8,))
    source = StreamedBatches(policy, data, np.flatnonzero(data.train_mask), np.flatnonzero(data.valid_mask),
                             lazy_leaves(policy.observation_space, data.obs), workers=0)
    trainer = sum(nbytes(getattr(source, f)) for f in ("obs", "actions", "weights", "valid_obs", "valid_actions",
                                                       "valid_weights", "train_rows", "valid_rows"))
    trainer += 8 * int(data.train_mask.sum())  # train_bc's index tensor of the training rows
    source.close()
    # Each epoch draws a float32 key per training row and member and argsorts it (int64).
    return {"transition_columns": columns / n, "trainer": trainer / n, "epoch_order_per_member": 12.0}


def throughput(path: Path, steps_per_epoch: int) -> dict:
    from ilcore.algos.bc import BCConfig, train_bc
    from ilcore.data import load_transitions

    data = load_transitions(path, valid_fraction=0.0)
    out = {}
    for mode in ("memory", "stream", "memory", "stream"):  # interleaved, the second pair reported
        t0 = time.perf_counter()
        cpu0 = _cpu_seconds()
        res = train_bc(data, BCConfig(epochs=2, batch_size=64, hidden=(64,), steps_per_epoch=steps_per_epoch,
                                      valid_fraction=0.0, patience=None, device="cpu", data_mode=mode),
                       progress=False)
        total = time.perf_counter() - t0
        cpu = _cpu_seconds() - cpu0
        h = res.history
        epoch2 = h["seconds"][1] - h["seconds"][0]
        out[mode] = {"samples_per_s": (h["samples"][1] - h["samples"][0]) / epoch2, "epoch2_s": epoch2,
                     "total_s_incl_setup": total, "cpu_s_incl_setup": cpu,
                     "samples_per_cpu_s": h["samples"][-1] / cpu}
    out["ratio_stream_over_memory"] = out["stream"]["samples_per_s"] / out["memory"]["samples_per_s"]
    # CPU time (this process + its finished reader workers) barely moves with other jobs' load,
    # where wall-clock rates on a shared 2-core machine swing by 2x between identical runs.
    out["cpu_ratio_stream_over_memory"] = out["stream"]["samples_per_cpu_s"] / out["memory"]["samples_per_cpu_s"]
    return out


def _cpu_seconds() -> float:
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=20)
    parser.add_argument("--large", type=int, default=200)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rss-steps", type=int, default=5)
    parser.add_argument("--steps-per-epoch", type=int, default=12)
    parser.add_argument("--skip-memory", action="store_true", help="throughput only (no 200-episode build)")
    args = parser.parse_args()
    result: dict = {"machine": {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                                "torch": torch.__version__, "torch_threads": THREADS,
                                "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "loadavg_at_start": os.getloadavg(),
                                "date": datetime.datetime.now().isoformat(timespec="seconds")},
                    "steps_per_episode": args.steps, "frame": [96, 96, 3], "rss": []}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        sizes = (args.small,) if args.skip_memory else (args.small, args.large)
        for n in sizes:
            paths[n] = Path(tmp) / f"eps{n}"
            t0 = time.perf_counter()
            mb = build(paths[n], n, args.steps)
            print(f"built {n} episodes x {args.steps} steps: {mb:.0f} MB on disk, "
                  f"{n * (args.steps + 1) * 96 * 96 * 3 / 1e6:.0f} MB decoded ({time.perf_counter() - t0:.0f}s)")
        print(f"{'episodes':>8} {'mode':>7} {'peak PSS MB':>12} {'wall s':>7}")
        for n in sizes if not args.skip_memory else ():
            for mode in ("memory", "stream"):
                cmd = [sys.executable, "-m", "ilcore", "train", "bc", "--data", str(paths[n]), "--out",
                       str(Path(tmp) / f"run_{n}_{mode}"), "--epochs", "1", "--steps-per-epoch", str(args.rss_steps),
                       "--valid-fraction", "0.05", "--hidden", "64", "--data-mode", mode, "--device", "cpu",
                       "--quiet", "--json"]
                peak, wall, summary = peak_memory(cmd)
                result["rss"].append({"episodes": n, "mode": mode, "peak_pss_mb": peak, "wall_s": wall,
                                      "transitions": summary["transitions"]})
                print(f"{n:>8} {mode:>7} {peak:>12.0f} {wall:>7.1f}")
        result["index_bytes_per_step"] = index_bytes_per_step(paths[args.small])
        result["throughput"] = throughput(paths[args.small], args.steps_per_epoch)
    ib = result["index_bytes_per_step"]
    print(f"per-step index memory: {ib['transition_columns']:.0f} B (transition columns) + {ib['trainer']:.0f} B "
          f"(trainer) + {ib['epoch_order_per_member']:.0f} B per member while an epoch's order is drawn")
    tp = result["throughput"]
    print(f"throughput on {args.small} episodes: memory {tp['memory']['samples_per_s']:.0f} samples/s, "
          f"stream {tp['stream']['samples_per_s']:.0f} samples/s, ratio {tp['ratio_stream_over_memory']:.2f}; "
          f"per CPU second (whole run, readers included): memory {tp['memory']['samples_per_cpu_s']:.0f}, "
          f"stream {tp['stream']['samples_per_cpu_s']:.0f}, ratio {tp['cpu_ratio_stream_over_memory']:.2f}")
    result["machine"]["loadavg_at_end"] = os.getloadavg()
    out = Path(__file__).parent / "results" / ("streaming_throughput.json" if args.skip_memory else "streaming.json")
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
