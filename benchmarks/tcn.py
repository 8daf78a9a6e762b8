"""Time-contrastive embeddings on rendered frames: alignment error and view-invariance.

For each env, expert episodes are rendered at 64x64 in two synchronised views (the plain render
and a mirrored + colour-inverted + channel-permuted one). Trained on `--train` episodes:
single-view TCN (view 0 only) and multi-view TCN (both views); compared with a random
(untrained) network of the same architecture, with raw pixels, and with a plain convolutional
autoencoder (same encoder and code size, same steps and frames per step, reconstruction MSE)
trained on view 0 only ("single-view AE") or on the frames of both views pooled ("two-view AE"),
on `--heldout` episodes:

- alignment error: mean |normalised time - normalised time of the nearest-embedding frame| between
  two held-out demos (view 0), over all pairs; lower is better, ~0.33 is random matching;
- view-invariance: share of frames whose nearest neighbour in the other view is the simultaneous
  frame (exact, and within +-2 steps); chance is ~1/T.

Writes benchmarks/results/tcn.json.   python benchmarks/tcn.py --steps 200 --train 8   (about 4 minutes on one core)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import gymnasium as gym  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from lfo_common import machine  # noqa: E402

from ilcore.algos.lfo.autoencoder import AutoencoderConfig, train_autoencoder  # noqa: E402
from ilcore.algos.lfo.tcn import (  # noqa: E402
    TCNConfig,
    TimeContrastiveEmbedding,
    embedding_quality,
    pixel_features,
    train_tcn,
)
from ilcore.envs.views import MIRRORED_RECOLOURED, ImageView, record_views, render_view  # noqa: E402
from ilcore.experts import make_expert  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["MountainCar-v0", "LunarLander-v3"])
    parser.add_argument("--train", type=int, default=10)
    parser.add_argument("--heldout", type=int, default=4)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    rows = []
    for env_id in args.envs:
        env = gym.make(env_id, render_mode="rgb_array")
        expert = make_expert(env_id, env=env)
        t0 = time.perf_counter()
        views, _ = record_views(env, expert.act, episodes=args.train + args.heldout, seed=args.seed,
                                frame_fns=[render_view(ImageView()), render_view(MIRRORED_RECOLOURED)],
                                reset=expert.reset)
        env.close()
        render_s = time.perf_counter() - t0
        train, held = views[:args.train], views[args.train:]
        n_frames = sum(v.shape[1] for v in train)
        cfg = TCNConfig(steps=args.steps, seed=args.seed)
        methods = {}
        for name, multi in (("single-view TCN", False), ("multi-view TCN", True)):
            t0 = time.perf_counter()
            res = train_tcn(train if multi else [v[:1] for v in train], TCNConfig(**{**vars(cfg), "multi_view": multi}))
            methods[name] = (res.embedding.encode, time.perf_counter() - t0, res.history["loss"])
        for name, multi in (("single-view AE", False), ("two-view AE", True)):
            t0 = time.perf_counter()
            res = train_autoencoder(train if multi else [v[:1] for v in train], AutoencoderConfig.matching(cfg))
            methods[name] = (res.autoencoder.encode, time.perf_counter() - t0, res.history["loss"])
        random_net = TimeContrastiveEmbedding.untrained((64, 64, 3), True, cfg)
        methods["random network"] = (random_net.encode, 0.0, None)
        methods["pixels"] = (pixel_features, 0.0, None)
        results = {}
        for name, (encode, seconds, losses) in methods.items():
            q = embedding_quality(encode, held)
            results[name] = {**q, "train_seconds": seconds,
                             "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None}
            print(f"{env_id} {name}: {q}", flush=True)
        rows.append({"env": env_id, "train_frames": n_frames, "heldout_frames": sum(v.shape[1] for v in held),
                     "render_seconds": render_s, "results": results})

    print()
    print(f"{'env':16s} {'embedding':16s} {'align err':>9s} {'view inv':>9s} {'view +-2':>9s} {'train s':>8s} "
          f"{'loss first':>10s} {'loss last':>10s}")
    for row in rows:
        for name, r in row["results"].items():
            print(f"{row['env']:16s} {name:16s} {r['alignment_error']:9.3f} {r['view_invariance']:9.3f} "
                  f"{r['view_invariance_pm2']:9.3f} {r['train_seconds']:8.1f} {_fmt(r['loss_first']):>10s} "
                  f"{_fmt(r['loss_last']):>10s}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "tcn.json").write_text(json.dumps({"machine": machine(), "settings": vars(args), "rows": rows},
                                             indent=1, default=float))


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    main()
