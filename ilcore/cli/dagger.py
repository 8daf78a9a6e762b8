"""`ilcore dagger`: run DAgger against a scripted or simulated labeller, headless.

Per round it prints the labels given (cumulative, demonstrations included), the human-seconds
spent, the mean return with its 95% interval, its score (the share of the way from a random
policy's return to the demonstrations'; "ready" once two evaluations in a row reach 95%, see
``ilcore.algos.dagger.readiness``), the query rate (asked / learner-driven steps) and
how often the learner already did what the labeller answered (over the last 50 live answers),
and writes ``OUT/curve.png`` (return vs labels), each round's policy under
``OUT/recordings/policies/`` and the final one in ``OUT`` (``ilcore eval --policy OUT``). With
``--json`` stdout is exactly ``{"rounds": [{"round", "labels", "human_seconds", "mean_return",
"query_rate"}, ...]}`` -- the schema of the app's ``summary.json`` ``rounds``. The learner and
query options are the app's (``python -m app``), with the same names and defaults.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ilcore.algos.dagger import DaggerRunConfig, run_dagger
from ilcore.algos.dagger.options import DaggerOptions, add_arguments
from ilcore.algos.dagger.readiness import READY_EVALUATIONS, Readiness
from ilcore.cli.main import add_json_flag
from ilcore.errors import ConfigError
from ilcore.eval import make_env
from ilcore.experts import make_expert
from ilcore.fileio import write_json_atomic
from ilcore.labelers import ExpertLabeler, Labeler, SimulatedPerson
from ilcore.metrics import DAGGER_LABELS, DAGGER_QUERY_RATE, EVAL_RETURN, MetricLogger
from ilcore.plots import save_labels_curve
from ilcore.progress import progress_bar, show_status

SETTINGS_FILE = "dagger_run.json"
# Settings a resumed run takes from the original run (the rest may be changed on resume).
_FIXED_ON_RESUME = ("env", "expert", "query", "beta_schedule", "beta_mix", "target_rate", "ensemble", "hidden",
                    "epochs", "seed", "episodes_per_round", "demo_episodes", "interventions", "query_mode", "review",
                    "noise", "delay", "seconds_per_label", "seconds_per_takeover_step", "warm_start", "iwr",
                    "max_episode_steps", "demo_max_steps", "calibration_steps")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("dagger", help="run DAgger with a scripted or simulated labeller",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", help="gymnasium env id, e.g. CartPole-v1")
    p.add_argument("--expert", choices=("scripted", "simulated"), default="simulated",
                   help="who labels: the scripted expert as is, or a simulated person (delay, noise, time cost)")
    p.add_argument("--rounds", type=int, default=None, help="learner rounds after the demonstration round (default 5)")
    add_arguments(p, query_mode="live")
    p.add_argument("--review", action="store_true", help="shorthand for --query-mode deferred: answer queries from the review queue after each round")
    p.add_argument("--demo-episodes", type=int, default=1, help="demonstration episodes in round 0 (default 1)")
    p.add_argument("--episodes-per-round", type=int, default=2, help="learner episodes per round (default 2)")
    p.add_argument("--eval-episodes", type=int, default=10, help="evaluation episodes of each round's policy (default 10)")
    p.add_argument("--max-episode-steps", type=int, default=None, help="cut rollouts at this many steps")
    p.add_argument("--demo-max-steps", type=int, default=None, help="cut round-0 demonstrations at this many steps")
    p.add_argument("--noise", type=float, default=0.0, help="simulated person: wrong-label probability (default 0)")
    p.add_argument("--delay", type=int, default=0, help="simulated person: reaction delay in steps (default 0)")
    p.add_argument("--seconds-per-label", type=float, default=1.5, help="simulated person: seconds per query (default 1.5)")
    p.add_argument("--seconds-per-takeover-step", type=float, default=0.25, help="simulated person: seconds per step driven (default 0.25)")
    p.add_argument("--budget", type=int, default=None, help="simulated person: at most this many labels")
    p.add_argument("--out", default=None, help="output folder (default runs/dagger-ENV)")
    p.add_argument("--resume", metavar="DIR", default=None, help="continue the run in DIR with nothing lost")
    p.add_argument("--logdir", metavar="DIR",
                   help="also write TensorBoard event files and metrics.csv here, one step per round "
                        "(dagger/labels, dagger/query_rate, dagger/human_seconds, eval/return)")
    add_json_flag(p)
    p.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> dict:
    settings = _settings(args)
    options = DaggerOptions.from_mapping(settings)
    out = Path(settings["out"])

    env_id = settings["env"]
    env = make_env(env_id)
    expert = make_expert(env_id, env=env)
    if settings["interventions"] and settings["expert"] == "scripted":
        raise ConfigError("--interventions needs --expert simulated (a scripted expert never takes over)")
    for name in ("demo_episodes", "episodes_per_round"):
        if settings[name] < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {settings[name]}")
    if settings["eval_episodes"] < 0:
        raise ConfigError(f"--eval-episodes must be >= 0, got {settings['eval_episodes']}")
    if settings["expert"] == "scripted":
        labeler: Labeler = ExpertLabeler(expert)
    else:
        labeler = SimulatedPerson(
            expert, env.action_space, delay_steps=settings["delay"], noise=settings["noise"],
            seconds_per_label=settings["seconds_per_label"],
            seconds_per_takeover_step=settings["seconds_per_takeover_step"], budget_labels=settings["budget"],
            intervene=settings["interventions"], seed=settings["seed"],
        )
    config = DaggerRunConfig(
        rounds=settings["rounds"], demo_episodes=settings["demo_episodes"],
        episodes_per_round=settings["episodes_per_round"], beta_mix=options.beta_mix_schedule(),
        interventions=options.interventions, query_mode="deferred" if settings.get("review") else options.query_mode,
        eval_episodes=settings["eval_episodes"], max_episode_steps=settings.get("max_episode_steps"),
        demo_max_steps=settings.get("demo_max_steps"), seed=options.seed, retrain=options.retrain(),
    )
    stream = sys.stderr if args.json else sys.stdout
    if not args.json:
        print(f"{'round':>5} {'labels':>7} {'human-s':>8} {'return':>16} {'score':>6} {'query rate':>10} {'agreed':>7}")
    bar = progress_bar(total=config.rounds + 1, desc="dagger rounds", unit="round")

    logger = MetricLogger(args.logdir) if getattr(args, "logdir", None) else None

    said_ready: list[int] = []

    def show(s: Any) -> None:
        if logger is not None:
            logger.log(s.round, {DAGGER_LABELS: s.labels, DAGGER_QUERY_RATE: s.query_rate,
                                 "dagger/human_seconds": s.human_seconds, EVAL_RETURN: s.mean_return})
        rate = "-" if s.query_rate != s.query_rate else f"{s.query_rate:.3f}"
        agreed = "-" if s.answers == 0 else f"{100 * s.agreement:.0f}%"
        score = "-" if s.score != s.score else f"{100 * s.score:.0f}%"
        bar.clear()
        print(f"{s.round:>5} {s.labels:>7} {s.human_seconds:>8.1f} {s.mean_return:>8.1f} ± {s.ci95:<6.1f} {score:>6} "
              f"{rate:>10} {agreed:>7}", file=stream, flush=True)
        if s.ready and not said_ready:  # once: the rounds after it show their score
            said_ready.append(s.round)
            print(f"      ready: {Readiness(s.score, READY_EVALUATIONS, True).text()}", file=stream, flush=True)
        bar.update(1)

    def episode_done(rnd: int, steps: int) -> None:
        show_status(bar, f"round {rnd}: episode of {steps} steps")

    def epoch_done(version: int, report: Any) -> None:
        show_status(bar, f"training policy v{version}: epoch {report.epoch}/{report.epochs}, "
                         f"loss {report.train_loss:.3f}")

    out.mkdir(parents=True, exist_ok=True)
    if not args.resume:
        if (out / "recordings").exists():
            raise ConfigError(f"{out} already holds a DAgger run; pass --resume {out} to continue it or choose another --out")

        write_json_atomic(out / SETTINGS_FILE, settings, indent=1)
    try:
        result = run_dagger(env_id, labeler, options.gate(), out, config, env=env, resume=bool(args.resume),
                            callback=show, on_episode=episode_done, on_epoch=epoch_done)
    finally:
        bar.close()
        if logger is not None:
            logger.close()
    if result.recovered is not None:
        print(result.recovered.sentence(), file=sys.stderr)
    rows = [s.public() for s in result.rounds]
    evaluated = [r for r in rows if r["mean_return"] is not None]
    save_labels_curve([r["labels"] for r in evaluated], [r["mean_return"] for r in evaluated], out / "curve.png",
                      title=f"DAgger on {env_id} ({settings['query']} queries)")
    if not args.json:
        print(f"curve: {out / 'curve.png'}; recordings: {out / 'recordings'}; final policy: {out} (ilcore eval --policy {out})")
    return {"rounds": rows}


def _settings(args: argparse.Namespace) -> dict:
    given = {k: v for k, v in vars(args).items() if k not in ("func", "json", "command", "resume")}
    if args.resume:
        path = Path(args.resume) / SETTINGS_FILE
        if not path.is_file():
            raise ConfigError(f"{args.resume} is not a DAgger run folder (it has no {SETTINGS_FILE})")
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(saved, dict):
                raise ValueError("not a JSON object")
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise ConfigError(f"{path} is not a readable run settings file ({exc})") from None
        settings = {**given, **{k: saved[k] for k in _FIXED_ON_RESUME if k in saved}}
        settings["rounds"] = given["rounds"] if given["rounds"] is not None else saved.get("rounds", 5)
        settings["out"] = str(args.resume)
        _check_types(settings, path)
        return settings
    if not given.get("env"):
        raise ConfigError("ilcore dagger needs --env (or --resume DIR)")
    given["rounds"] = 5 if given["rounds"] is None else given["rounds"]
    given["out"] = given["out"] or f"runs/dagger-{given['env']}"
    _check_types(given, None)
    return given


def _check_types(settings: dict, where: Path | None) -> None:
    """Refuse settings of the wrong type (a hand-edited dagger_run.json) in one sentence."""
    ints = ("rounds", "ensemble", "epochs", "seed", "episodes_per_round", "demo_episodes", "delay", "calibration_steps",
            "eval_episodes")
    for k in ints:
        v = settings.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise ConfigError(f"{where or 'the options'}: {k} must be an integer, got {v!r}")
    if not isinstance(settings.get("env"), str):
        raise ConfigError(f"{where or 'the options'}: env must be an env id, got {settings.get('env')!r}")
    if settings["rounds"] < 0:
        raise ConfigError(f"--rounds must be >= 0, got {settings['rounds']}")
    DaggerOptions.from_mapping(settings)  # ranges and forms, one sentence each
