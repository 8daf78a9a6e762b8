"""`ilcore train bco` and `ilcore import frames`: learning from observation on the command line.

The `train` and `import` parents live in :mod:`ilcore.cli.train` and :mod:`ilcore.cli.interop`;
they call :func:`add_bco_parser` and :func:`extend_import_parser` from here.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
from PIL import Image

from ilcore.algos.bc_config import parse_hidden
from ilcore.cli.args import add_run_flags
from ilcore.cli.compute import add_device_flag, add_vector_env_flags
from ilcore.cli.main import add_json_flag
from ilcore.data import SessionWriter
from ilcore.envs.views import resize_frame
from ilcore.errors import ConfigError, FormatError, SpaceMismatchError
from ilcore.eval import env_spaces, evaluate
from ilcore.metrics import EVAL_RETURN, VALID_LOSS, MetricLogger

IMAGE_SUFFIXES = (".png",)


def add_bco_parser(train_subparsers: argparse._SubParsersAction) -> None:
    """Register ``ilcore train bco`` under the ``train`` subcommand's subparsers."""
    bco = train_subparsers.add_parser(
        "bco", help="behavioural cloning from observation, BCO(alpha)",
        description="Clone a policy from demonstrations without actions: explore, fit an inverse dynamics "
                    "model, label the demos with it, clone; with --alpha > 0 repeat on the policy's own rollouts.")
    bco.add_argument("--data", nargs="+", required=True, metavar="DEMOS", help="recording folder(s) or file(s)")
    bco.add_argument("--env", default=None, metavar="ENV", help="env to explore (default: the recording's env id)")
    bco.add_argument("--alpha", type=float, default=0.0, help="post-demo steps per iteration / pre-demo steps (0: BCO(0))")
    bco.add_argument("--out", required=True, metavar="RUN", help="folder for the policy, idm/ and bco.json")
    bco.add_argument("--pre-demo-steps", type=int, default=5000, help="exploration steps before labelling")
    bco.add_argument("--iterations", type=int, default=5, help="post-demo iterations when alpha > 0")
    bco.add_argument("--exploration", choices=("random", "sticky", "policy"), default="random",
                     help="pre-demo behaviour: uniform random actions, random actions that persist "
                          "(see --sticky-prob), or a saved policy (see --exploration-policy)")
    bco.add_argument("--exploration-policy", default=None, metavar="RUN",
                     help="policy checkpoint folder that explores with --exploration policy (required then)")
    bco.add_argument("--sticky-prob", type=float, default=0.9, metavar="P",
                     help="with --exploration sticky: chance that each step repeats the previous random action")
    bco.add_argument("--rollout-epsilon", type=float, default=0.0, metavar="E",
                     help="share of post-demo rollout steps (alpha > 0) that take a uniformly random action")
    bco.add_argument("--labels", choices=("soft", "argmax"), default="soft",
                     help="Discrete actions: clone each demo pair weighted by the IDM's probability of every "
                          "action (soft), or with its most likely action only (argmax, as in the BCO paper)")
    bco.add_argument("--epochs", type=int, default=50, help="BC epochs per cloning")
    bco.add_argument("--idm-epochs", type=int, default=30, help="inverse dynamics model epochs per fit")
    bco.add_argument("--hidden", default="64,64", help="MLP widths of policy and IDM, comma-separated")
    bco.add_argument("--ensemble", type=int, default=1, metavar="K",
                     help="members of the cloned policy; it acts by their mixture, which steadies a clone "
                          "trained on inferred labels")
    bco.add_argument("--eval-episodes", type=int, default=10, help="evaluate each cloned policy (0: never)")
    bco.add_argument("--seed", type=int, default=0)
    bco.add_argument("--quiet", action="store_true", help="no per-iteration lines")
    add_run_flags(bco)
    add_vector_env_flags(bco)
    add_device_flag(bco)
    add_json_flag(bco)
    bco.set_defaults(func=run_train_bco)


def run_train_bco(args: argparse.Namespace) -> dict[str, Any]:
    from ilcore.algos.bc import BCConfig
    from ilcore.algos.lfo.bco import BCOConfig, BCOIteration, demos_from_recording, run_bco, save_bco_run
    from ilcore.algos.lfo.idm import describe_agreement
    from ilcore.devices import resolve_device

    if args.epochs < 1 or args.idm_epochs < 1:
        raise ConfigError("--epochs and --idm-epochs must be >= 1.")
    if args.ensemble < 1:
        raise ConfigError(f"--ensemble must be >= 1, got {args.ensemble}.")
    if args.eval_episodes < 0:
        raise ConfigError(f"--eval-episodes must be >= 0, got {args.eval_episodes}.")
    # Checked here too (BCOConfig.check does it again) so the message names the flag a person typed.
    if not 0.0 <= args.sticky_prob < 1.0:
        raise ConfigError(f"--sticky-prob must be in [0, 1), got {args.sticky_prob}.")
    if not 0.0 <= args.rollout_epsilon <= 1.0:
        raise ConfigError(f"--rollout-epsilon must be in [0, 1], got {args.rollout_epsilon}.")
    if args.exploration == "policy" and not args.exploration_policy:
        raise ConfigError("--exploration policy needs --exploration-policy RUN (a saved policy checkpoint folder).")
    if args.exploration_policy and args.exploration != "policy":
        raise ConfigError(f"--exploration-policy is only used with --exploration policy, not {args.exploration}.")
    hidden = parse_hidden(args.hidden)
    resolve_device(args.device)  # a bad --device fails before exploring, not after
    demos, rec_env, env_kwargs = demos_from_recording(args.data if len(args.data) > 1 else args.data[0])
    env_id = args.env or rec_env
    exploration_policy = (_load_exploration_policy(args.exploration_policy, env_id, env_kwargs)
                          if args.exploration == "policy" else None)
    config = BCOConfig(
        alpha=args.alpha, pre_demo_steps=args.pre_demo_steps, iterations=args.iterations, seed=args.seed,
        exploration=args.exploration, sticky_prob=args.sticky_prob, rollout_epsilon=args.rollout_epsilon,
        labels=args.labels, num_envs=args.num_envs or 1, async_envs=args.async_envs,
        idm=BCConfig(epochs=args.idm_epochs, batch_size=128, hidden=hidden, patience=5, seed=args.seed,
                     device=args.device),
        bc=BCConfig(epochs=args.epochs, hidden=hidden, patience=10, seed=args.seed, ensemble=args.ensemble,
                    device=args.device),
    )
    config.check()
    evaluate_fn: Callable[[Any], float] | None = None
    if args.eval_episodes > 0:
        def evaluate_fn(policy: Any) -> float:
            return evaluate(policy, env_id, episodes=args.eval_episodes, seed=args.seed + 10_000,
                            env_kwargs=env_kwargs).mean_return

    logger = MetricLogger(args.logdir)

    def report(it: BCOIteration) -> None:
        # One point per BCO iteration: the clone's validation NLL on inferred labels, its return,
        # and how well the inverse dynamics model labels (bco/...).
        logger.log(it.iteration, {
            VALID_LOSS: it.bc_valid_loss, EVAL_RETURN: it.eval_return, "bco/env_steps": it.env_steps,
            "bco/rollout_return": it.rollout_return,
            "bco/idm_demo_accuracy": None if it.idm_demo is None else it.idm_demo.accuracy,
            "bco/idm_heldout_accuracy": None if it.idm_heldout is None else it.idm_heldout.accuracy})
        if args.quiet or args.json:
            return
        ret = "-" if it.eval_return is None else f"{it.eval_return:.1f}"
        print(f"iteration {it.iteration}: env steps {it.env_steps}, IDM accuracy on demos "
              f"{describe_agreement(it.idm_demo)}, on held-out agent data {describe_agreement(it.idm_heldout)}, "
              f"return {ret}")

    with logger:
        result = run_bco(demos, env_id, config, env_kwargs=env_kwargs, exploration_policy=exploration_policy,
                         evaluate_fn=evaluate_fn, callback=report)
    out = save_bco_run(result, args.out, meta={
        "env_id": env_id, "env_kwargs": env_kwargs, "trained_on": [str(p) for p in args.data], "algo": "bco",
        "alpha": args.alpha, "exploration": args.exploration, "labels": args.labels,
        **({"exploration_policy": str(args.exploration_policy)} if exploration_policy is not None else {})})
    last = result.iterations[-1]
    summary = {
        "out": str(out),
        "env_id": env_id,
        "demo_steps": len(demos),
        "env_steps": result.env_steps,
        "iterations": [r.to_json() for r in result.iterations],
        "final_return": last.eval_return,
        "idm_demo_accuracy": None if last.idm_demo is None else last.idm_demo.accuracy,
    }
    if not args.json:
        print(f"saved to {out} (policy, idm/, bco.json); {result.env_steps} env steps used")
    return summary


def _load_exploration_policy(path: str, env_id: str, env_kwargs: dict[str, Any]) -> Any:
    """The saved policy at ``path``, checked against ``env_id``'s spaces before any env step is taken.

    Raises ConfigError for an unknown env or an unreadable checkpoint and SpaceMismatchError for a
    policy built for other spaces.
    """
    from ilcore.policies import Policy

    policy = Policy.load(path)
    policy.check_spaces(*env_spaces(env_id, env_kwargs), where=env_id)
    return policy


# ----------------------------------------------------------------------------- import frames


def extend_import_parser(import_parser: argparse.ArgumentParser, run_other: Callable[[argparse.Namespace], Any]) -> None:
    """Teach ``ilcore import`` the ``frames`` format: ``ilcore import frames DIR --env ENV --out PATH``.

    ``run_other`` handles every other format (the parent's own handler).
    """
    for action in import_parser._actions:
        if action.dest == "format" and action.choices is not None:
            action.choices = [*action.choices, "frames"]
    import_parser.add_argument("--env", dest="env_id", metavar="ENV",
                               help="(frames) env the frames or states come from (same as --env-id)")
    import_parser.add_argument("--size", default=None, metavar="H,W",
                               help="(frames) resize PNG frames to H,W (default: keep their size)")

    def dispatch(args: argparse.Namespace) -> Any:
        if args.format == "frames":
            return run_import_frames(args)
        return run_other(args)

    import_parser.set_defaults(func=dispatch)


def read_frame_episodes(source: str | Path, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """Episodes found at ``source``, each ``(T + 1, ...)``:

    - a ``.npy`` file: one episode (a state sequence ``(T + 1, D)`` or frames ``(T + 1, H, W, C)``);
    - a folder of ``.npy`` files: one episode per file, in name order;
    - a folder of PNG frames: one episode, frames in name order;
    - a folder of folders of PNG frames: one episode per sub-folder.
    """
    src = Path(source)
    if not src.exists():
        raise FormatError(f"{src} does not exist.")
    if src.is_file():
        return [_read_npy(src)]
    npys = sorted(p for p in src.iterdir() if p.suffix == ".npy")
    if npys:
        return [_read_npy(p) for p in npys]
    pngs = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if pngs:
        return [_read_pngs(pngs, size)]
    subdirs = sorted(p for p in src.iterdir() if p.is_dir())
    episodes = []
    for d in subdirs:
        frames = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if frames:
            episodes.append(_read_pngs(frames, size))
    if not episodes:
        raise FormatError(f"{src} holds no .npy files and no PNG frames.")
    return episodes


def _read_npy(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)  # never unpickle: a .npy is data, not code
    except (ValueError, OSError):
        raise FormatError(f"{path} is not a readable .npy array (object arrays are refused).") from None
    if arr.ndim < 2 or len(arr) < 2:
        raise FormatError(f"{path} must hold a sequence of at least two observations, got shape {arr.shape}.")
    return arr


def _read_pngs(paths: list[Path], size: tuple[int, int] | None) -> np.ndarray:
    frames: list[np.ndarray] = []
    for p in paths:
        try:
            with Image.open(p) as im:
                frame = np.asarray(im.convert("RGB"), dtype=np.uint8)
        except OSError:
            raise FormatError(f"{p} is not a readable PNG image.") from None
        if size is not None:
            frame = resize_frame(frame, size)
        if frames and frame.shape != frames[0].shape:
            raise FormatError(f"{p} is {frame.shape[1]}x{frame.shape[0]} but earlier frames are "
                              f"{frames[0].shape[1]}x{frames[0].shape[0]}; pass --size to resize them all.")
        frames.append(frame)
    if len(frames) < 2:
        raise FormatError(f"{paths[0].parent} needs at least two frames to make an episode.")
    return np.stack(frames)


def import_observations(episodes: list[np.ndarray], env_id: str, out: str | Path,
                        env_kwargs: dict[str, Any] | None = None) -> Path:
    """Write observation-only episodes into a new session folder and return its path.

    Image episodes ``(T + 1, H, W, C)`` uint8 get an image observation space of their own shape
    (the env id records where they came from); state episodes must fit the env's observation space.
    """
    env_obs, act_space = env_spaces(env_id, env_kwargs)
    first = episodes[0]
    obs_space: gym.Space
    if first.dtype == np.uint8 and first.ndim == 4:
        obs_space = gym.spaces.Box(0, 255, first.shape[1:], dtype=np.uint8)
    else:
        obs_space = env_obs
    for ep in episodes:
        if tuple(ep.shape[1:]) != tuple(obs_space.shape or ()):
            raise SpaceMismatchError(f"An imported sequence has observations of shape {ep.shape[1:]}, but "
                                     f"{env_id} observations have shape {obs_space.shape}.")
    out = Path(out)
    with SessionWriter(out, env_id=env_id, observation_space=obs_space, action_space=act_space,
                       env_kwargs=env_kwargs) as writer:
        for ep in episodes:
            ep = ep.astype(obs_space.dtype, copy=False)
            rec = writer.begin_episode(ep[0], attrs={"imported": "frames"})
            for t in range(1, len(ep)):
                rec.observe(ep[t], truncated=t == len(ep) - 1)
            rec.finish()
    return out


def run_import_frames(args: argparse.Namespace) -> dict[str, Any]:
    if not args.env_id:
        raise ConfigError("ilcore import frames needs --env ENV (the env the frames come from).")
    size = None
    if args.size:
        try:
            h, w = (int(v) for v in args.size.split(","))
        except ValueError:
            raise ConfigError(f"--size takes H,W like 64,64, got {args.size!r}.") from None
        size = (h, w)
    episodes = read_frame_episodes(args.source, size)
    path = import_observations(episodes, args.env_id, args.out)
    steps = int(sum(len(e) - 1 for e in episodes))
    if not args.json:
        print(f"imported {len(episodes)} observation-only episodes ({steps} steps) into {path}")
    return {"path": str(path), "episodes": len(episodes), "steps": steps}
