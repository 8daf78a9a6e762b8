"""`ilcore train tcn`: a time-contrastive embedding from recorded observations, and the helpers
`ilcore finetune --tcn` uses to turn it into an imitation reward.

The `train` parent lives in :mod:`ilcore.cli.train`; it calls :func:`add_tcn_parser` from here.
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import numpy as np

from ilcore.algos.lfo.reward import EmbeddingImitationReward
from ilcore.cli.args import add_run_flags
from ilcore.cli.main import add_json_flag
from ilcore.data import open_recording
from ilcore.errors import ConfigError, SpaceMismatchError
from ilcore.eval import env_spaces
from ilcore.metrics import TRAIN_LOSS, MetricLogger


def add_tcn_parser(train_subparsers: argparse._SubParsersAction) -> None:
    """Register ``ilcore train tcn`` under the ``train`` subcommand's subparsers."""
    p = train_subparsers.add_parser(
        "tcn", help="time-contrastive embedding of recorded observations (for the TCN imitation reward)",
        description="Train a single-view time-contrastive network (TCN) on the observations of recorded "
                    "episodes (actions are not needed): frames close in time embed close, distant frames far "
                    "apart. Use the result with 'ilcore finetune --tcn RUN --tcn-demo DEMO'.")
    p.add_argument("--data", nargs="+", required=True, metavar="DEMOS", help="recording folder(s) or file(s)")
    p.add_argument("--out", required=True, metavar="RUN", help="folder for the embedding (tcn.json, tcn_weights.pt)")
    p.add_argument("--steps", type=int, default=500, metavar="N", help="gradient steps")
    p.add_argument("--embedding-dim", type=int, default=32, metavar="E", help="size of the embedding")
    p.add_argument("--positive-window", type=int, default=2, help="positives lie 1..this many steps from the anchor")
    p.add_argument("--negative-window", type=int, default=10, help="negatives lie more than this many steps away")
    p.add_argument("--batch-size", type=int, default=64, help="triplets per step")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_run_flags(p)
    add_json_flag(p)
    p.set_defaults(func=run_train_tcn)


def recording_frames(paths: str | Path | Sequence[str | Path]) -> tuple[list[np.ndarray], gym.spaces.Box, str, dict[str, Any]]:
    """The observations of every episode of a recording as frames.

    Returns ``(episodes, observation_space, env_id, env_kwargs)``; ``episodes[i]`` is ``(T_i + 1,
    *obs_shape)``: float32 for vector observations, uint8 for images. Only Box observation spaces
    have frames (a Dict/Tuple observation raises :class:`ConfigError`).
    """
    rec = open_recording(paths if isinstance(paths, (str, Path)) or len(paths) != 1 else paths[0])
    space = rec.observation_space
    if not isinstance(space, gym.spaces.Box):
        raise ConfigError(f"TCN frames must be plain arrays, but the recording's observations are {type(space).__name__}.")
    image = space.dtype == np.uint8 and len(space.shape) == 3
    episodes = [np.asarray(ep.observations, dtype=np.uint8 if image else np.float32) for ep in rec.episodes()]
    if not episodes:
        raise ConfigError(f"The recording at {paths} holds no episodes.")
    return episodes, space, rec.env_id, dict(rec.env_kwargs or {})


def run_train_tcn(args: argparse.Namespace) -> dict[str, Any]:
    from ilcore.algos.lfo.tcn import TCNConfig, embedding_quality, train_tcn

    if args.steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {args.steps}.")
    episodes, space, env_id, env_kwargs = recording_frames(args.data)
    config = TCNConfig(embedding_dim=args.embedding_dim, positive_window=args.positive_window,
                       negative_window=args.negative_window, steps=args.steps, batch_size=args.batch_size,
                       lr=args.lr, seed=args.seed)
    config.check()
    with MetricLogger(args.logdir) as logger:
        result = train_tcn([ep[None] for ep in episodes], config, progress=not (args.quiet or args.json),
                           callback=lambda step, loss: logger.log(step, {TRAIN_LOSS: loss}))
    result.embedding.save(args.out)
    # Alignment error on the training episodes: a sanity figure (0 = same relative time), not a held-out score.
    quality = embedding_quality(result.embedding.encode, [ep[None] for ep in episodes]) if len(episodes) > 1 else {}
    summary = {
        "out": str(Path(args.out)),
        "env_id": env_id,
        "frame_shape": list(result.embedding.input_shape),
        "image": bool(result.embedding.is_image),
        "episodes": len(episodes),
        "frames": int(sum(len(ep) for ep in episodes)),
        "final_loss": result.history["loss"][-1] if result.history["loss"] else None,
        "alignment_error": quality.get("alignment_error"),
    }
    if not args.json:
        loss = f"{summary['final_loss']:.4f}" if summary["final_loss"] is not None else "-"
        print(f"trained a {config.embedding_dim}-d TCN on {summary['frames']} frames of {len(episodes)} episodes "
              f"({args.steps} steps, final triplet loss {loss}); saved to {args.out}")
    return summary


def tcn_reward_wrappers(tcn_path: str | Path, demo_paths: str | Path | Sequence[str | Path], env_id: str,
                        env_kwargs: dict[str, Any] | None = None, *, weight: float = 1.0,
                        env_reward_weight: float = 0.0, demo_episode: int = 0) -> tuple[list[Any], dict[str, Any]]:
    """``train_ppo`` wrappers that put the TCN imitation reward on each training env.

    The reward follows demo episode ``demo_episode`` of ``demo_paths`` frame by frame (see
    :class:`~ilcore.algos.lfo.reward.EmbeddingImitationReward`), scaled by ``weight`` (both of
    its coefficients), plus ``env_reward_weight`` times the env's own reward. Only TCNs on
    vector observations are supported: the env's observation is the frame. Returns
    ``(wrappers, description)``; bad input raises a :class:`UserError` naming what does not fit.
    """
    from ilcore.algos.lfo.tcn import TimeContrastiveEmbedding

    tcn = TimeContrastiveEmbedding.load(tcn_path)
    if tcn.is_image:
        raise ConfigError(f"The TCN at {tcn_path} takes image frames; finetune --tcn supports only TCNs "
                          "trained on vector observations.")
    if not weight >= 0 or not np.isfinite(weight):
        raise ConfigError(f"--tcn-weight must be a finite number >= 0, got {weight}.")
    if not np.isfinite(env_reward_weight):
        raise ConfigError(f"--env-reward-weight must be finite, got {env_reward_weight}.")
    episodes, _space, _rec_env, _ = recording_frames(demo_paths)
    if not 0 <= demo_episode < len(episodes):
        raise ConfigError(f"--tcn-demo-episode must be in 0..{len(episodes) - 1}, got {demo_episode}.")
    demo = episodes[demo_episode]
    if demo.shape[1:] != tcn.input_shape:
        raise SpaceMismatchError(f"The demo's frames have shape {demo.shape[1:]} but the TCN at {tcn_path} "
                                 f"takes {tcn.input_shape}.")
    obs_space, _ = env_spaces(env_id, env_kwargs)
    if not isinstance(obs_space, gym.spaces.Box) or obs_space.shape != tcn.input_shape:
        raise SpaceMismatchError(f"{env_id}'s observations {obs_space} are not the TCN's frames of shape "
                                 f"{tcn.input_shape}.")
    wrap = partial(EmbeddingImitationReward, embedding=tcn, demo_frames=demo, alpha=weight, beta=weight,
                   env_reward_weight=env_reward_weight)
    description = {"tcn": str(tcn_path), "demo": [str(p) for p in np.atleast_1d(np.asarray(demo_paths, dtype=object))],
                   "demo_episode": demo_episode, "demo_frames": len(demo), "weight": weight,
                   "env_reward_weight": env_reward_weight}
    return [wrap], description
