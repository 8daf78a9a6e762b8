"""``ilcore record``: record demonstrations from a scripted expert into a session folder.

    ilcore record --env CartPole-v1 --expert scripted --episodes 20 --out recordings/cp [--seed 0]
                  [--noise 0.2] [--env-kwargs '{"continuous": true}'] [--json]

Episode i is reset with seed S+i. With ``--noise`` > 0 the executed action is the DART-noisy
one while every step's label is the clean expert action (reason "demo", source "scripted"), so
plain BC on labels learns the expert while the states cover its near misses.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from ilcore.cli.args import non_negative_float, non_negative_int, positive_int
from ilcore.cli.main import add_json_flag
from ilcore.data import SessionWriter, default_session_path
from ilcore.errors import ConfigError
from ilcore.eval import make_env
from ilcore.experts import NoisyExpert, make_expert
from ilcore.progress import progress_bar, show_status
from ilcore.types import Actor, QueryReason


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("record", help="record demonstrations from a scripted expert")
    p.add_argument("--env", required=True, metavar="ENV", help="gymnasium env id, e.g. CartPole-v1")
    p.add_argument("--expert", choices=("scripted",), default="scripted",
                   help="who drives (people record with `python -m app`)")
    p.add_argument("--episodes", type=positive_int, default=10, metavar="N", help="episodes to record (default 10)")
    p.add_argument("--out", default=None, metavar="PATH",
                   help="new session folder (default recordings/ENV-DATE)")
    p.add_argument("--seed", type=non_negative_int, default=0, metavar="S", help="episode i is reset with seed S+i")
    p.add_argument("--noise", type=non_negative_float, default=0.0, metavar="X",
                   help="DART noise on executed actions: Gaussian std as a fraction of the half range "
                        "(Box) or random-action probability (Discrete); labels stay clean")
    p.add_argument("--env-kwargs", default=None, metavar="JSON", help='kwargs for gym.make, e.g. \'{"continuous": true}\'')
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> dict[str, Any]:
    env_kwargs = _parse_env_kwargs(args.env_kwargs)
    if args.episodes < 1:
        raise ConfigError(f"--episodes must be at least 1, got {args.episodes}.")

    out = Path(args.out) if args.out else default_session_path(args.env)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} already exists; record into a new --out folder.")
    summary = record_scripted(args.env, out, episodes=args.episodes, seed=args.seed, noise=args.noise,
                              env_kwargs=env_kwargs, progress=True)
    if not args.json:
        print(f"recorded {summary['episodes']} episodes ({summary['steps']} steps, "
              f"mean return {summary['mean_return']:.1f}) to {summary['out']}")
    return summary


def record_scripted(
    env_id: str,
    out: str | Path,
    *,
    episodes: int,
    seed: int = 0,
    noise: float = 0.0,
    env_kwargs: dict[str, Any] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Record ``episodes`` scripted-expert episodes into the new session folder ``out``.

    Returns ``{"out", "episodes", "steps", "mean_return"}``. Raises ConfigError for an unknown
    env id, an env without a scripted expert, or bad noise; StorageError when the disk fills
    (every episode finished before stays, nothing half-written does).
    """
    if not (np.isfinite(noise) and noise >= 0):  # NoisyExpert checks only noise > 0
        raise ConfigError(f"noise must be a finite number >= 0, got {noise}.")
    env_kwargs = dict(env_kwargs or {})
    env = make_env(env_id, env_kwargs)
    returns: list[float] = []
    steps = 0
    try:
        expert = make_expert(env_id, env=env)
        noisy = NoisyExpert(expert, noise, rng=seed) if noise > 0 else None
        with SessionWriter(out, env_id=env_id, observation_space=env.observation_space,
                           action_space=env.action_space, env_kwargs=env_kwargs) as writer:
            # Counts steps, not episodes: one CarRacing episode is minutes of work. The total is the
            # time limit times the episodes, tightened as episodes end early.
            limit = env.spec.max_episode_steps if env.spec is not None else None
            bar = progress_bar(total=episodes * limit if limit else None, desc=f"record {env_id}", unit="step",
                               enabled=progress)
            for i in range(episodes):
                episode_seed = seed + i
                obs, reset_info = env.reset(seed=episode_seed)
                (noisy or expert).reset()
                # Scalar reset info (e.g. a task family's task_id) describes the episode: keep it.
                attrs = {k: v.item() if isinstance(v, np.generic) else v for k, v in reset_info.items()
                         if isinstance(v, (bool, int, float, str, np.generic)) and np.ndim(v) == 0}
                attrs.update(expert=type(expert).__name__, noise=float(noise))
                recorder = writer.begin_episode(obs, seed=episode_seed, attrs=attrs)
                try:
                    total, done = 0.0, False
                    while not done:
                        if noisy is not None:
                            action, label = noisy.act_with_label(obs)
                        else:
                            action = label = expert.act(obs)
                        # Label first: the label belongs to the observation the expert saw.
                        recorder.label(recorder.num_steps, label, source="scripted", reason=QueryReason.DEMO.value)
                        obs, reward, terminated, truncated, _ = env.step(action)
                        recorder.step(action, Actor.SCRIPTED, float(reward), terminated, truncated, obs)
                        total += float(reward)
                        done = terminated or truncated
                        bar.update(1)
                except BaseException:
                    recorder.discard()  # never leave half an episode looking finished
                    raise
                recorder.finish()
                returns.append(total)
                steps += recorder.num_steps
                if limit and bar.total is not None:
                    bar.total -= max(limit - recorder.num_steps, 0)
                show_status(bar, ep=f"{i + 1}/{episodes}", ret=f"{total:.1f}")
            bar.close()
    finally:
        env.close()
    return {"out": str(out), "episodes": len(returns), "steps": steps, "mean_return": float(np.mean(returns))}


def _parse_env_kwargs(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--env-kwargs is not valid JSON ({exc.msg}).") from None
    if not isinstance(value, dict):
        raise ConfigError("--env-kwargs must be a JSON object such as '{\"continuous\": true}'.")
    return value
