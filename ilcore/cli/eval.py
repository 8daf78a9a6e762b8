"""`ilcore eval`: roll a saved policy out and report mean return with a 95% interval."""

from __future__ import annotations

import argparse
from typing import Any

from ilcore.cli.args import non_negative_int, positive_int
from ilcore.cli.compute import add_vector_env_flags
from ilcore.cli.main import add_json_flag
from ilcore.cli.oneshot import add_eval_parser
from ilcore.cli.train import _format_eval
from ilcore.errors import ConfigError
from ilcore.eval import evaluate


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="evaluate a saved policy on a gymnasium env",
                              description="Evaluate a saved policy with deterministic actions.")
    # Not required=True here: `ilcore eval oneshot --policy ...` parses --policy in its own subparser.
    p.add_argument("--policy", metavar="RUN", help="checkpoint folder written by `ilcore train` (required)")
    p.add_argument("--env", metavar="ENV", help="gymnasium env id (default: the env the policy was trained on)")
    p.add_argument("--episodes", type=positive_int, default=20)
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--num-envs", type=positive_int, default=None, help="parallel envs (default min(episodes, 8))")
    add_vector_env_flags(p, num_envs=False)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json_flag(p)
    p.set_defaults(func=run_eval)

    add_eval_parser(p.add_subparsers(dest="kind", metavar="KIND", required=False))


def run_eval(args: argparse.Namespace) -> dict[str, Any]:
    from ilcore.policies import Policy

    if not args.policy:
        raise ConfigError("ilcore eval needs --policy RUN (a checkpoint folder written by `ilcore train`).")
    policy = Policy.load(args.policy)
    env_id = args.env or policy.meta.get("env_id")
    if not env_id:
        raise ConfigError(f"The checkpoint {args.policy} does not name its env, so pass --env.")
    env_kwargs = policy.meta.get("env_kwargs") if env_id == policy.meta.get("env_id") else None
    result = evaluate(policy, env_id, episodes=args.episodes, seed=args.seed, env_kwargs=env_kwargs,
                      num_envs=args.num_envs, asynchronous=args.async_envs, progress=not args.quiet)
    out = result.to_json()
    if not args.json:
        print(f"{env_id}: {_format_eval(out)}")
    return out
