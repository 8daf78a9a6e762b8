"""`ilcore finetune`: PPO from a BC checkpoint (or from scratch), with BC/KL regularisers, shaping,
and optionally the TCN imitation reward (``--tcn RUN --tcn-demo DEMO``) instead of or beside the env's."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ilcore.algos.bc_config import parse_hidden
from ilcore.cli.args import add_run_flags
from ilcore.cli.compute import add_device_flag, add_vector_env_flags
from ilcore.cli.main import add_json_flag
from ilcore.cli.tcn import tcn_reward_wrappers
from ilcore.data import load_transitions
from ilcore.errors import ConfigError
from ilcore.eval import evaluate
from ilcore.metrics import MetricLogger, eval_metrics


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "finetune", help="improve a policy with RL (PPO), starting from a BC checkpoint",
        description="Fine-tune a policy with PPO on a gymnasium env. The result is a policy checkpoint in "
                    "the same format as 'ilcore train bc', plus the critic, history.json and curve.png.")
    p.add_argument("--policy", metavar="RUN", help="the checkpoint to start from (omit to train from scratch)")
    p.add_argument("--env", required=True, metavar="ENV", help="gymnasium env id")
    p.add_argument("--steps", type=int, required=True, metavar="N", help="env steps to train for")
    p.add_argument("--out", required=True, metavar="RUN", help="folder for the fine-tuned checkpoint")
    p.add_argument("--bc-weight", type=float, default=0.0, metavar="L0",
                   help="weight of the auxiliary BC loss on the demonstrations (DAPG); 0 turns it off")
    p.add_argument("--bc-decay", type=float, default=0.95, metavar="L1",
                   help="the BC weight at policy iteration k is L0 * L1**k")
    p.add_argument("--demos", nargs="+", metavar="PATH",
                   help="recordings for the BC loss (default: the ones the BC checkpoint was trained on)")
    p.add_argument("--kl-weight", type=float, default=0.0, help="weight of KL(pi || initial policy)")
    p.add_argument("--shaping", type=float, default=0.0, metavar="LAMBDA",
                   help="add LAMBDA * log pi_BC(a|s) to the reward")
    p.add_argument("--shaping-decay", type=float, default=1.0, help="LAMBDA is multiplied by this after each episode")
    p.add_argument("--tcn", metavar="RUN",
                   help="train on the TCN imitation reward of this embedding ('ilcore train tcn'; vector observations)")
    p.add_argument("--tcn-demo", nargs="+", metavar="DEMO",
                   help="recording whose observations the TCN reward follows frame by frame (actions not needed)")
    p.add_argument("--tcn-demo-episode", type=int, default=0, metavar="K", help="which episode of --tcn-demo to follow")
    p.add_argument("--tcn-weight", type=float, default=1.0, metavar="W", help="scale of the TCN imitation reward")
    p.add_argument("--env-reward-weight", type=float, default=0.0, metavar="W",
                   help="with --tcn: add W times the env's own reward (0: imitation reward only)")
    p.add_argument("--warmup-steps", type=int, default=None, metavar="N",
                   help="env steps training only the critic before policy updates "
                        "(default: 2 rollouts when starting from a checkpoint, 0 from scratch)")
    p.add_argument("--num-envs", type=int, default=8)
    add_vector_env_flags(p, num_envs=False)
    p.add_argument("--n-steps", type=int, default=128, help="steps per env per rollout")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-4, help="critic learning rate (and actor's unless --policy-lr)")
    p.add_argument("--policy-lr", type=float, default=None)
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--gae-lambda", type=float, default=0.95)
    p.add_argument("--clip", type=float, default=0.2)
    p.add_argument("--ent-coef", type=float, default=0.0)
    p.add_argument("--hidden", default="64,64", help="MLP widths of a policy trained from scratch")
    p.add_argument("--obs-norm-steps", type=int, default=0, metavar="N",
                   help="from scratch only: fit the observation normalisation on N random-action steps first "
                        "(counted in --steps); otherwise features with tiny ranges (MountainCar's velocity) "
                        "reach the network as ~0")
    p.add_argument("--critic-hidden", default="64,64", help="MLP widths of the critic")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=0, metavar="N", help="evaluate every N env steps (0: at the end)")
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--checkpoint-every", type=int, default=0, metavar="N", help="save every N env steps")
    p.add_argument("--sb3", metavar="ZIP", help="also export the result as a stable-baselines3 PPO model")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_run_flags(p)
    add_device_flag(p)
    add_json_flag(p)
    p.set_defaults(func=run_finetune)


# history keys of train_ppo logged each PPO update as rl/<key> (the x-axis is the update count).
RL_TAGS = ("env_steps", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "bc_weight",
           "shaping_weight", "steps_per_s", "episode_return")


def run_finetune(args: argparse.Namespace) -> dict[str, Any]:
    from ilcore.algos.rl.ppo import IterationReport, PPOConfig, train_ppo
    from ilcore.devices import resolve_device
    from ilcore.policies import Policy

    if args.steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {args.steps}.")
    if args.tcn is None and (args.tcn_demo or args.env_reward_weight != 0.0):
        raise ConfigError("--tcn-demo and --env-reward-weight only apply with --tcn RUN.")
    if args.tcn is not None and not args.tcn_demo:
        raise ConfigError("--tcn needs --tcn-demo DEMO: the recording whose frames the reward follows.")
    resolve_device(args.device)  # a bad --device fails before anything slow
    policy = Policy.load(args.policy) if args.policy else None
    env_kwargs = dict(policy.meta.get("env_kwargs") or {}) if policy is not None else {}
    wrappers: list = []
    tcn_reward = None
    if args.tcn is not None:  # checked before anything slow, so bad input fails at once

        wrappers, tcn_reward = tcn_reward_wrappers(
            args.tcn, args.tcn_demo, args.env, env_kwargs, weight=args.tcn_weight,
            env_reward_weight=args.env_reward_weight, demo_episode=args.tcn_demo_episode)
    warmup = args.warmup_steps
    if warmup is None:
        warmup = 2 * args.num_envs * args.n_steps if policy is not None else 0
    demos = None
    if args.bc_weight > 0:
        paths = args.demos or (policy.meta.get("trained_on") if policy is not None else None)
        if not paths:
            raise ConfigError("--bc-weight needs demonstrations: pass --demos (the checkpoint does not name its data).")
        demos = load_transitions(paths if len(paths) > 1 else paths[0], valid_fraction=0.0)
    config = PPOConfig(
        num_envs=args.num_envs, async_envs=args.async_envs, n_steps=args.n_steps, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, policy_lr=args.policy_lr, gamma=args.gamma, gae_lambda=args.gae_lambda, clip=args.clip,
        ent_coef=args.ent_coef, hidden=parse_hidden(args.hidden), critic_hidden=parse_hidden(args.critic_hidden),
        obs_norm_steps=args.obs_norm_steps,
        value_warmup_steps=warmup, bc_weight=args.bc_weight, bc_decay=args.bc_decay, kl_weight=args.kl_weight,
        shaping_weight=args.shaping, shaping_decay=args.shaping_decay, eval_every=args.eval_every,
        eval_episodes=args.eval_episodes, checkpoint_every=args.checkpoint_every, seed=args.seed,
        device=args.device,
    )
    start_eval = None
    if policy is not None and args.eval_episodes > 0 and args.eval_every == 0:
        start_eval = evaluate(policy, args.env, episodes=args.eval_episodes, seed=args.seed + 10_000,
                              env_kwargs=env_kwargs).to_json()
    if policy is not None:
        policy.meta["finetuned_from"] = str(args.policy)
    with MetricLogger(args.logdir) as logger:
        if start_eval is not None:
            logger.log(0, eval_metrics(start_eval))
        logged_evals = 0

        def on_iteration(report: IterationReport) -> None:
            nonlocal logged_evals
            logger.log(report.iteration, {f"rl/{key}": report.stats.get(key) for key in RL_TAGS})
            for ev in report.evals[logged_evals:]:  # evaluations since the last update (or the start)
                ran_after = ev["env_steps"] == report.env_steps  # else it ran before this update's rollout
                logger.log(report.iteration if ran_after else report.iteration - 1, eval_metrics(ev))
            logged_evals = len(report.evals)

        result = train_ppo(args.env, args.steps, config, policy=policy, demos=demos, env_kwargs=env_kwargs,
                           wrappers=wrappers, out_dir=args.out, progress=not args.quiet, callback=on_iteration)
        iterations = len(result.history["iteration"])
        for ev in result.evals[logged_evals:]:  # the final evaluation, after the last update
            logger.log(iterations, eval_metrics(ev))
    if args.sb3:
        from ilcore.algos.rl.sb3 import export_to_sb3

        export_to_sb3(result.policy, args.env, critic=result.critic).save(args.sb3)
    final = result.evals[-1] if result.evals else None
    first = start_eval if start_eval is not None else (result.evals[0] if len(result.evals) > 1 else None)
    summary = {
        "out": str(Path(args.out)),
        "env_steps": result.env_steps,
        "seconds": result.seconds,
        "episodes": len(result.episodes["return"]),
        "start_eval": first,
        "eval": final,
        "sb3": args.sb3,
        "tcn_reward": tcn_reward,
    }
    if not args.json:
        if tcn_reward is not None:
            print(f"trained on the TCN reward of {args.tcn} (following {tcn_reward['demo_frames']} demo frames); "
                  "returns below are the env's own")
        if first is not None:
            print(f"start: mean return {first['mean_return']:.1f} over {first['episodes']} episodes")
        if final is not None:
            print(f"after {result.env_steps} env steps: mean return {final['mean_return']:.1f} "
                  f"over {final['episodes']} episodes")
        print(f"saved to {args.out} (policy, critic, curve.png, history.json)"
              + (f"; SB3 model at {args.sb3}" if args.sb3 else ""))
    return summary
