"""`ilcore train bc`: behavioural cloning from recordings, with a loss curve and optional evaluation."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ilcore import fileio
from ilcore.algos.bc_config import parse_hidden
from ilcore.cli.args import (
    add_run_flags, check_run_out, fraction, non_negative_float, non_negative_int, positive_float, positive_int,
)
from ilcore.cli.compute import add_data_flags, add_device_flag
from ilcore.cli.lfo import add_bco_parser
from ilcore.cli.main import add_json_flag
from ilcore.cli.oneshot import add_train_parser as add_oneshot_train_parser
from ilcore.cli.tcn import add_tcn_parser
from ilcore.data import load_transitions, open_recording
from ilcore.errors import ConfigError
from ilcore.eval import env_spaces, evaluate
from ilcore.metrics import TRAIN_LOSS, TRAIN_NLL, TRAIN_THROUGHPUT, VALID_LOSS, MetricLogger, eval_metrics
from ilcore.plots import save_bc_curve
from ilcore.runtime import RunInterrupted, stop_on_interrupt


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="train a policy from recordings")
    algos = train.add_subparsers(dest="algo", metavar="ALGO", required=True)
    bc = algos.add_parser("bc", help="behavioural cloning (an ensemble of K members)",
                          description="Train a policy by behavioural cloning on recorded labels.")
    bc.add_argument("--data", nargs="+", metavar="PATH",
                    help="recording folder(s) or file(s) (required unless --resume, which reuses the run's)")
    bc.add_argument("--out", metavar="RUN",
                    help="folder for the checkpoint, curve.png and history.json (required unless --resume: "
                         "then the resumed run)")
    bc.add_argument("--epochs", type=positive_int, default=50)
    bc.add_argument("--ensemble", type=positive_int, default=1, metavar="K", help="number of ensemble members")
    bc.add_argument("--batch-size", type=positive_int, default=64)
    bc.add_argument("--lr", type=positive_float, default=1e-3)
    bc.add_argument("--weight-decay", type=non_negative_float, default=0.0)
    bc.add_argument("--entropy", type=non_negative_float, default=0.0, help="entropy bonus weight")
    bc.add_argument("--nll-beta", type=non_negative_float, default=1.0,
                    help="beta-NLL exponent for Gaussian heads (0: plain -log pi; default 1)")
    bc.add_argument("--hidden", default="256,256", help="MLP widths, comma-separated")
    bc.add_argument("--head", choices=("auto", "categorical", "gaussian", "mse"), default="auto")
    bc.add_argument("--state-noise", type=non_negative_float, default=0.0, help="Gaussian noise std on normalised observations")
    bc.add_argument("--image-shift", type=non_negative_int, default=0,
                    help="random-shift augmentation of image observations: pad by N pixels, crop back (0: off)")
    bc.add_argument("--patience", type=non_negative_int, default=10, help="early-stopping patience in epochs (0: off)")
    bc.add_argument("--valid-fraction", type=fraction, default=0.1, help="share of episodes held out for validation")
    bc.add_argument("--bootstrap", action="store_true", help="each member trains on a bootstrap resample")
    bc.add_argument("--labels", choices=("label", "action"), default="label",
                    help="train on the effective labels (default) or on the executed actions")
    bc.add_argument("--init", metavar="RUN", help="warm-start from this checkpoint")
    bc.add_argument("--seed", type=non_negative_int, default=0)
    bc.add_argument("--eval-env", metavar="ENV", help="evaluate on this gymnasium env after training")
    bc.add_argument("--eval-episodes", type=positive_int, default=20)
    bc.add_argument("--eval-every", type=non_negative_int, default=0, metavar="E", help="also evaluate every E epochs (0: only at the end)")
    bc.add_argument("--quiet", action="store_true", help="no progress bar")
    add_run_flags(bc, resumable=True)
    add_device_flag(bc)
    add_data_flags(bc)
    add_json_flag(bc)
    bc.set_defaults(func=run_train_bc)

    add_bco_parser(algos)
    add_oneshot_train_parser(algos)
    add_tcn_parser(algos)


def run_train_bc(args: argparse.Namespace) -> dict[str, Any] | None:
    from ilcore import distributed
    from ilcore.algos.bc import BCConfig, EpochReport, save_train_state, train_bc
    from ilcore.devices import resolve_device
    from ilcore.policies import Policy

    if args.epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {args.epochs}.")
    if not 0 <= args.valid_fraction < 1:
        raise ConfigError(f"--valid-fraction must be in [0, 1), got {args.valid_fraction}.")
    if args.checkpoint_every < 0:
        raise ConfigError(f"--checkpoint-every must be >= 0, got {args.checkpoint_every}.")
    resume_state = _apply_resume(args) if args.resume else None
    if not args.data or not args.out:
        raise ConfigError("ilcore train bc needs --data and --out (or --resume RUN to continue a run).")
    out = check_run_out(args.out, args.data)  # before any work: never write a run into a recording
    recording = open_recording(args.data if len(args.data) > 1 else args.data[0])
    data = load_transitions(recording, labels=args.labels, valid_fraction=args.valid_fraction, seed=args.seed)
    if len(data) == 0:
        raise ConfigError(f"The recording at {' '.join(args.data)} has no labelled steps to train on.")
    config = BCConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        entropy_weight=args.entropy, nll_beta=args.nll_beta, valid_fraction=args.valid_fraction, patience=args.patience or None,
        state_noise=args.state_noise, image_shift=args.image_shift, ensemble=args.ensemble, hidden=parse_hidden(args.hidden),
        head=None if args.head == "auto" else args.head, seed=args.seed, bootstrap=args.bootstrap,
        device=args.device, data_mode=args.data_mode, workers=args.workers, steps_per_epoch=args.steps_per_epoch,
    )
    config.check()
    # Under torchrun every process trains on its share of each batch; rank 0 alone writes the run.
    ctx = distributed.init_from_env(resolve_device(args.device, local_rank=distributed.env_local_rank()))
    start_from = args.resume or args.init
    init = Policy.load(start_from) if start_from else None

    evals: list[dict[str, Any]] = list(_saved_evals(args.resume)) if args.resume else []
    logger = MetricLogger(args.logdir if ctx.is_main else None)
    meta = {"env_id": recording.env_id, "env_kwargs": dict(recording.env_kwargs or {}),
            "trained_on": [str(p) for p in args.data], "algo": "bc"}
    n_valid = int(np.count_nonzero(data.valid_mask)) if getattr(data, "valid_mask", None) is not None else 0
    counts = {"transitions": len(data), "train_transitions": len(data) - n_valid, "valid_transitions": n_valid}
    run_args = {key: getattr(args, key) for key in (*RESUMED_OPTIONS, *LATER_OPTIONS)}

    def write(policy: Policy, history: dict[str, list[float]], best_epoch: int, stopped_early: bool,
              state: Any) -> None:
        policy.meta.update(meta)
        policy.save(out)
        if state is not None:
            save_train_state(out, state)
        fileio.write_json_atomic(out / "history.json",
            {"history": history, "evals": evals, "best_epoch": best_epoch, "stopped_early": stopped_early,
             **counts, "args": run_args,
             "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(config).items()}},
            indent=1, default=float)
        save_bc_curve(history, evals, out / "curve.png", best_epoch=best_epoch)

    def run_eval(policy: Policy, epoch: int) -> dict[str, Any]:
        was_training = policy.training
        result = evaluate(policy, args.eval_env, episodes=args.eval_episodes, seed=args.seed + 10_000)
        policy.train(was_training)
        entry = {"epoch": epoch, **result.to_json()}
        evals.append(entry)
        logger.log(epoch, eval_metrics(entry))
        return entry

    def on_epoch(report: EpochReport) -> None:
        logger.log(report.epoch, {TRAIN_LOSS: report.train_loss, TRAIN_NLL: report.train_nll,
                                  VALID_LOSS: report.valid_loss, TRAIN_THROUGHPUT: report.samples_per_s})
        if ctx.is_main and args.eval_env and args.eval_every > 0 and report.epoch % args.eval_every == 0:
            run_eval(report.policy, report.epoch)
        if ctx.is_main and args.checkpoint_every > 0 and report.epoch % args.checkpoint_every == 0 and report.state:
            state = report.state()
            best = Policy.from_config(report.policy.config)
            best.load_state_dict(state.best_weights)
            write(best, state.history, state.best_epoch, False, state)

    if args.eval_env:  # fail on a bad env id or mismatched spaces before training, not after
        from ilcore.policies import make_policy

        eval_spaces = env_spaces(args.eval_env)
        checker = init if init is not None else make_policy(data.observation_space, data.action_space, hidden=(1,))
        checker.check_spaces(*eval_spaces, where=args.eval_env)

    try:
        with stop_on_interrupt() as stop, logger:
            result = train_bc(data, config, policy=init, progress=not args.quiet and ctx.is_main, callback=on_epoch,
                              should_stop=lambda: stop.requested, resume=resume_state)
            if not ctx.is_main:
                return None
            policy = result.policy
            epochs_run = len(result.history["epoch"])
            if result.interrupted:
                if result.final_state is None:
                    raise RunInterrupted("no epoch had finished, so nothing was saved.")
                write(policy, result.history, result.best_epoch, False, result.final_state)
                raise RunInterrupted(f"saved the best weights so far (epoch {result.best_epoch} of {epochs_run}) "
                                     f"to {out}; continue with: ilcore train bc --resume {out}")
            final_eval = run_eval(policy, epochs_run) if args.eval_env else None
            write(policy, result.history, result.best_epoch, result.stopped_early, result.final_state)
    finally:
        distributed.shutdown()

    best = result.best_epoch - 1
    summary: dict[str, Any] = {
        "out": str(out),
        **counts,
        "epochs_run": epochs_run,
        "best_epoch": result.best_epoch,
        "train_loss": result.history["train_loss"][best],
        "valid_loss": _finite_or_none(result.history["valid_loss"][best]),
        "version": policy.version,
        "eval": final_eval,
        "processes": ctx.world_size,
    }
    if not args.json:
        valid = summary["valid_loss"]
        print(f"trained on {counts['train_transitions']} transitions (validated on {n_valid} held out) for "
              f"{epochs_run} epochs; best epoch {result.best_epoch} "
              f"(train loss {summary['train_loss']:.4f}, valid loss {'-' if valid is None else f'{valid:.4f}'})")
        if final_eval is not None:
            print(f"{args.eval_env}: {_format_eval(final_eval)}")
        print(f"saved to {out} (curve.png, history.json)")
    return summary


# Options that define a BC run; --resume takes them from the run's history.json.
RESUMED_OPTIONS = ("data", "labels", "valid_fraction", "seed", "batch_size", "lr", "weight_decay", "entropy",
                   "nll_beta", "state_noise", "patience", "bootstrap", "hidden", "head", "ensemble", "eval_env",
                   "eval_episodes", "eval_every")
# Options added since: resumed too, with their default for a run written before they existed.
LATER_OPTIONS = {"image_shift": 0}


def _run_doc(run: str) -> dict[str, Any]:
    path = Path(run) / "history.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        raise ConfigError(f"--resume {run}: no readable history.json, so this is not a run to continue.") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"--resume {run}: history.json is not a run history.")
    return doc


def _apply_resume(args: argparse.Namespace) -> Any:
    """Fill ``args`` with the resumed run's options (``--epochs`` stays: the total to reach) and
    return its saved training state."""
    from ilcore.algos.bc import load_train_state

    if args.init:
        raise ConfigError("--resume continues a run with its own weights; drop --init.")
    saved = _run_doc(args.resume).get("args")
    if not isinstance(saved, dict) or not set(RESUMED_OPTIONS) <= set(saved):
        raise ConfigError(f"--resume {args.resume}: the run was written without its options (an older ilcore); "
                          "start a new run with --init instead.")
    state = load_train_state(args.resume)
    for key in RESUMED_OPTIONS:
        setattr(args, key, saved[key])
    for key, default in LATER_OPTIONS.items():
        setattr(args, key, saved.get(key, default))
    args.out = args.out or args.resume
    if state.epoch >= args.epochs:
        raise ConfigError(f"--resume {args.resume}: the run already has {state.epoch} epochs; pass a larger --epochs.")
    return state


def _saved_evals(run: str) -> list[dict[str, Any]]:
    evals = _run_doc(run).get("evals")
    return [e for e in evals if isinstance(e, dict)] if isinstance(evals, list) else []


def _finite_or_none(x: float) -> float | None:
    return None if math.isnan(x) else x


def _format_eval(e: dict[str, Any]) -> str:
    ci = e["ci95"]
    text = f"mean return {e['mean_return']:.1f}"
    if ci is not None:
        text += f" (95% CI {ci[0]:.1f} to {ci[1]:.1f})"
    text += f" over {e['episodes']} episodes"
    if e["success_rate"] is not None:
        text += f", success rate {100 * e['success_rate']:.0f}%"
    return text
