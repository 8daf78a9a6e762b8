"""How fast load_transitions reads low-dimensional demonstrations, against raw h5py.

Baseline ("raw"): open each episode file, read the observation, label-step, label-action,
label-source and label-reason arrays whole, concatenate. Measured: load_transitions on the
same files (labels merged, split, next_obs built). Both run in this process, alternating,
best of --repeats; the ratio raw_time / ilcore_time is the figure (goal >= 0.5).

    python benchmarks/data_loading.py [--episodes 2000] [--steps 500] [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch
from gymnasium import spaces

from ilcore.data import SessionWriter, load_transitions
from ilcore.data.format import EpisodeContent, write_episode_file
from ilcore.types import Actor, Label


def build(path: Path, episodes: int, steps: int) -> None:
    obs_space = spaces.Box(-np.inf, np.inf, (8,), np.float32)
    act_space = spaces.Discrete(4)
    rng = np.random.default_rng(0)
    with SessionWriter(path, env_id="Bench-v0", observation_space=obs_space, action_space=act_space) as w:
        pass  # creates session.json; episodes are written directly below (the recorder's per-step path is not timed)
    for e in range(episodes):
        actions = rng.integers(0, 4, size=steps)
        labels = [Label(f"ep_{e:06d}", t, int(actions[t]), source="scripted", reason="demo") for t in range(steps)]
        content = EpisodeContent(
            episode_id=f"ep_{e:06d}", env_id="Bench-v0", env_kwargs={},
            observations={"": rng.standard_normal((steps + 1, 8)).astype(np.float32)},
            actions={"": actions}, actors=np.full(steps, int(Actor.SCRIPTED), np.uint8),
            rewards=np.ones(steps), wall_time=np.zeros(steps), infos={}, terminated=True, truncated=False,
            incomplete=False, labels=labels, seed=e)
        write_episode_file(path / "episodes" / f"ep_{e:06d}.h5", content, obs_space, act_space)


def raw_read(path: Path) -> int:
    obs, steps, acts, src, rsn = [], [], [], [], []
    for f in sorted((path / "episodes").glob("*.h5")):
        with h5py.File(f, "r") as h:
            obs.append(h["observations"][()])
            steps.append(h["labels/step"][()])
            acts.append(h["labels/action"][()])
            src.append(h["labels/source"][()])
            rsn.append(h["labels/reason"][()])
    arrays = [np.concatenate(x) for x in (obs, steps, acts, src, rsn)]
    return len(arrays[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench"
        t0 = time.perf_counter()
        build(path, args.episodes, args.steps)
        build_s = time.perf_counter() - t0
        raw_times, ours_times = [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            n_raw = raw_read(path)
            raw_times.append(time.perf_counter() - t)
            t = time.perf_counter()
            data = load_transitions(path)
            ours_times.append(time.perf_counter() - t)
            assert len(data) == n_raw == args.episodes * args.steps
    raw, ours = min(raw_times), min(ours_times)
    n = args.episodes * args.steps
    result = {
        "benchmark": "data_loading",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                    "python": platform.python_version(), "torch": torch.__version__, "h5py": h5py.__version__},
        "episodes": args.episodes, "steps_per_episode": args.steps, "transitions": n, "repeats": args.repeats,
        "build_seconds": build_s, "raw_h5py_seconds": raw, "load_transitions_seconds": ours,
        "raw_transitions_per_s": n / raw, "ilcore_transitions_per_s": n / ours,
        "ratio_ilcore_to_raw_speed": raw / ours, "goal": ">= 0.5",
    }
    print(f"{'reader':<20}{'seconds':>10}{'transitions/s':>16}")
    print(f"{'raw h5py':<20}{raw:>10.3f}{n / raw:>16,.0f}")
    print(f"{'load_transitions':<20}{ours:>10.3f}{n / ours:>16,.0f}")
    print(f"speed ratio (ilcore / raw) = {raw / ours:.2f}  (goal >= 0.5); {n:,} transitions, "
          f"{args.episodes} files, best of {args.repeats}")
    out = Path(__file__).parent / "results" / "data_loading.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
