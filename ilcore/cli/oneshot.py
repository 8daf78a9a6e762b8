"""`ilcore train oneshot` and `ilcore eval oneshot`: demo-conditioned policies on a task family.

This module does not register a top-level command; ``ilcore/cli/train.py`` and
``ilcore/cli/eval.py`` call :func:`add_train_parser` / :func:`add_eval_parser` with their
sub-command action so that ``oneshot`` sits beside ``bc`` and the plain policy evaluation.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ilcore.algos.bc_config import parse_hidden
from ilcore.cli.args import add_run_flags
from ilcore.cli.compute import add_device_flag
from ilcore.cli.main import add_json_flag
from ilcore.envs.particles import task_split
from ilcore.errors import ConfigError
from ilcore.metrics import TRAIN_LOSS, MetricLogger

# The choices of --encoder, spelled out so `ilcore --help` need not import torch;
# tests/ilcore/test_api.py checks they equal ilcore.algos.oneshot.ENCODERS.
ENCODERS = ("final_state", "mean_pool", "attention", "none", "oracle")


def add_train_parser(train_subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``oneshot`` to the ``ilcore train`` sub-commands; returns the new parser."""
    p = train_subparsers.add_parser(
        "oneshot",
        help="one-shot imitation: a policy conditioned on one demonstration",
        description="Train a demo-conditioned policy over a task family: condition on one demo of a task, "
        "imitate another demo of the same task. Episodes need a task_id attribute.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", nargs="+", metavar="PATH", help="recording folder(s) or file(s) with task_id per episode")
    src.add_argument("--expert-demos", type=int, metavar="N",
                     help="instead of --data, generate N scripted demos per training task of the particle family")
    p.add_argument("--out", required=True, metavar="RUN", help="folder for the checkpoint and history.json")
    p.add_argument("--encoder", choices=ENCODERS, default="attention")
    p.add_argument("--steps", type=int, default=None, help="gradient steps (default: OneShotConfig's, 6000)")
    p.add_argument("--batch-tasks", type=int, default=16, help="tasks per batch")
    p.add_argument("--states-per-task", type=int, default=32, help="imitated states per task per batch")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--embed-dim", type=int, default=64)
    p.add_argument("--hidden", default="256,256", help="policy MLP widths, comma-separated")
    p.add_argument("--tecnet-weight", type=float, default=0.0, help="weight of the cosine margin embedding loss")
    p.add_argument("--tecnet-margin", type=float, default=0.1)
    p.add_argument("--noise", type=float, default=0.3, help="with --expert-demos: DART noise on executed actions")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_run_flags(p)
    add_device_flag(p)
    add_json_flag(p)
    p.set_defaults(func=run_train_oneshot)
    return p


def add_eval_parser(eval_subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``oneshot`` to the ``ilcore eval`` sub-commands; returns the new parser."""
    p = eval_subparsers.add_parser(
        "oneshot",
        help="success rate of a one-shot policy shown one demo",
        description="Show a one-shot policy one demonstration and measure its success on new initial states "
        "of the demonstrated task.",
    )
    p.add_argument("--policy", required=True, metavar="RUN", help="folder written by `ilcore train oneshot`")
    p.add_argument("--demo", required=True, metavar="DEMO", help="recording (file or folder) holding the demo")
    p.add_argument("--demo-episode", metavar="ID", help="episode id within --demo (default: the first)")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    add_json_flag(p)
    p.set_defaults(func=run_eval_oneshot)
    return p


def run_train_oneshot(args: argparse.Namespace) -> dict[str, Any]:
    from ilcore.algos.oneshot import (
        OneShotConfig,
        collect_expert_demos,
        demos_from_recording,
        save_policy,
        train_oneshot,
    )
    from ilcore.devices import resolve_device

    device = resolve_device(args.device)  # a bad --device fails before the demos are collected
    if args.expert_demos is not None:
        if args.expert_demos < 2:
            raise ConfigError(f"--expert-demos must be at least 2 (one to condition on, one to imitate), got {args.expert_demos}.")
        env_kwargs: dict[str, Any] = {}
        demos = collect_expert_demos(task_split()["train"], args.expert_demos, seed=args.seed, noise=args.noise)
    else:
        demos, env_kwargs = demos_from_recording(args.data if len(args.data) > 1 else args.data[0])
    config = OneShotConfig(
        encoder=args.encoder, steps=args.steps if args.steps is not None else OneShotConfig.steps, batch_tasks=args.batch_tasks, states_per_task=args.states_per_task,
        lr=args.lr, embed_dim=args.embed_dim, hidden=parse_hidden(args.hidden), tecnet_weight=args.tecnet_weight,
        tecnet_margin=args.tecnet_margin, seed=args.seed,
    )
    with MetricLogger(args.logdir) as logger:
        def on_step(step: int, losses: dict[str, float]) -> None:
            objective = losses["bc_loss"] + config.tecnet_weight * losses["tecnet_loss"]
            logger.log(step, {TRAIN_LOSS: objective, "train/bc_loss": losses["bc_loss"],
                              "train/tecnet_loss": losses["tecnet_loss"] if config.tecnet_weight > 0 else None})

        result = train_oneshot(demos, config, env_kwargs=env_kwargs, progress=not (args.quiet or args.json),
                               callback=on_step, device=device)
    out = save_policy(result.policy, args.out)
    (Path(out) / "history.json").write_text(json.dumps(result.history))
    summary = {
        "out": str(out),
        "encoder": args.encoder,
        "demos": len(demos),
        "tasks": len({d.task_id for d in demos}),
        "final_bc_loss": result.history["bc_loss"][-1],
    }
    if not args.json:
        print(f"trained {args.encoder} one-shot policy on {summary['demos']} demos of {summary['tasks']} tasks; "
              f"final BC loss {summary['final_bc_loss']:.4f}; saved to {out}")
    return summary


def run_eval_oneshot(args: argparse.Namespace) -> dict[str, Any]:
    from ilcore.algos.oneshot import demos_from_recording, evaluate_oneshot, load_policy

    policy = load_policy(args.policy)
    ids = [args.demo_episode] if args.demo_episode is not None else None
    demos, _ = demos_from_recording(args.demo, episode_ids=ids)
    demo = demos[0]
    result = evaluate_oneshot(policy, demo, episodes=args.episodes, seed=args.seed)
    out = {
        "task_id": demo.task_id,
        "success_rate": result.success_rate,
        "mean_return": result.mean_return,
        "episodes": result.episodes,
        "encoder": policy.config.encoder,
    }
    if not args.json:
        print(f"task {demo.task_id}: success {result.success_rate:.0%} over {result.episodes} new starts "
              f"(mean return {result.mean_return:.2f}, encoder {policy.config.encoder})")
    return out
