"""`ilcore dagger`: run DAgger against a scripted or simulated labeller, headless.

Per round it prints the labels asked (cumulative, demonstrations included), the human-seconds
spent and the mean return with its 95% interval, and writes ``OUT/curve.png`` (return vs labels).
With ``--json`` stdout is exactly ``{"rounds": [{"round", "labels", "human_seconds",
"mean_return", "query_rate"}, ...]}``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from ilcore.cli.main import add_json_flag
from ilcore.errors import ConfigError

SETTINGS_FILE = "dagger_run.json"
# Settings a resumed run takes from the original run (the rest may be changed on resume).
_FIXED_ON_RESUME = ("env", "expert", "query", "beta_schedule", "beta_mix", "target_rate", "ensemble", "hidden",
                    "epochs", "seed", "episodes_per_round", "demo_episodes", "interventions", "review",
                    "noise", "delay", "seconds_per_label", "seconds_per_takeover_step", "warm_start", "iwr",
                    "max_episode_steps", "demo_max_steps")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("dagger", help="run DAgger with a scripted or simulated labeller",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", help="gymnasium env id, e.g. CartPole-v1")
    p.add_argument("--expert", choices=("scripted", "simulated"), default="simulated",
                   help="who labels: the scripted expert as is, or a simulated person (delay, noise, time cost)")
    p.add_argument("--rounds", type=int, default=None, help="learner rounds after the demonstration round (default 5)")
    p.add_argument("--query", default="ensemble", choices=("all", "beta", "ensemble", "novelty", "ensemble+novelty", "none"),
                   help="which learner states are sent to the labeller")
    p.add_argument("--beta-schedule", default="exp:1,0.5", help="beta-querying schedule: 0.3, linear:1,0,10, exp:1,0.5")
    p.add_argument("--beta-mix", default="0", help="probability per step that the labeller drives (same forms)")
    p.add_argument("--target-rate", type=float, default=0.1, help="query rate the uncertainty gate calibrates to")
    p.add_argument("--ensemble", type=int, default=5, help="ensemble members K")
    p.add_argument("--hidden", default="64,64", help="hidden layer widths")
    p.add_argument("--epochs", type=int, default=30, help="training epochs per round")
    p.add_argument("--warm-start", action="store_true", help="continue from last round's weights instead of from scratch")
    p.add_argument("--interventions", action="store_true", help="the labeller takes over when it disagrees (HG-DAgger)")
    p.add_argument("--iwr", action="store_true", help="balance intervention and other labels (IWR weighting)")
    p.add_argument("--review", action="store_true", help="answer queries from the review queue after each round")
    p.add_argument("--demo-episodes", type=int, default=1, help="demonstration episodes in round 0")
    p.add_argument("--episodes-per-round", type=int, default=2)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--max-episode-steps", type=int, default=None, help="cut rollouts at this many steps")
    p.add_argument("--demo-max-steps", type=int, default=None, help="cut round-0 demonstrations at this many steps")
    p.add_argument("--noise", type=float, default=0.0, help="simulated person: wrong-label probability")
    p.add_argument("--delay", type=int, default=0, help="simulated person: reaction delay in steps")
    p.add_argument("--seconds-per-label", type=float, default=1.5, help="simulated person: seconds per query")
    p.add_argument("--seconds-per-takeover-step", type=float, default=0.25, help="simulated person: seconds per step driven")
    p.add_argument("--budget", type=int, default=None, help="simulated person: at most this many labels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output folder (default runs/dagger-ENV)")
    p.add_argument("--resume", metavar="DIR", default=None, help="continue the run in DIR with nothing lost")
    add_json_flag(p)
    p.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> dict:
    settings = _settings(args)
    out = Path(settings["out"])
    import gymnasium as gym

    from ilcore.algos.bc import BCConfig
    from ilcore.algos.dagger import DaggerRunConfig, ExpertLabeler, RetrainConfig, make_gate, parse_schedule, run_dagger
    from ilcore.experts import make_expert
    from ilcore.experts.simulated import SimulatedPerson

    env_id = settings["env"]
    try:
        env = gym.make(env_id)
    except gym.error.Error as exc:
        raise ConfigError(f"unknown or unusable env id {env_id!r} ({exc})") from None
    expert = make_expert(env_id, env=env)
    if settings["expert"] == "scripted":
        labeler: Any = ExpertLabeler(expert)
    else:
        labeler = SimulatedPerson(
            expert, env.action_space, delay_steps=settings["delay"], noise=settings["noise"],
            seconds_per_label=settings["seconds_per_label"],
            seconds_per_takeover_step=settings["seconds_per_takeover_step"], budget_labels=settings["budget"],
            intervene=settings["interventions"], seed=settings["seed"],
        )
    if settings["interventions"] and settings["expert"] == "scripted":
        raise ConfigError("--interventions needs --expert simulated (a scripted expert never takes over)")
    gate = make_gate(settings["query"], beta=parse_schedule(settings["beta_schedule"]),
                     target_rate=settings["target_rate"], seed=settings["seed"], ensemble=settings["ensemble"])
    hidden = tuple(int(h) for h in str(settings["hidden"]).split(","))
    config = DaggerRunConfig(
        rounds=settings["rounds"], demo_episodes=settings["demo_episodes"],
        episodes_per_round=settings["episodes_per_round"], beta_mix=parse_schedule(settings["beta_mix"]),
        interventions=settings["interventions"], review=settings["review"], eval_episodes=settings["eval_episodes"],
        max_episode_steps=settings.get("max_episode_steps"), demo_max_steps=settings.get("demo_max_steps"),
        seed=settings["seed"],
        retrain=RetrainConfig(
            bc=BCConfig(epochs=settings["epochs"], ensemble=settings["ensemble"], hidden=hidden, seed=settings["seed"],
                        valid_fraction=0.0, patience=None),
            warm_start=settings["warm_start"], intervention_weighting=settings["iwr"],
        ),
    )
    if not args.json:
        print(f"{'round':>5} {'labels':>7} {'human-s':>8} {'return':>16} {'query rate':>10}")

    def show(s: Any) -> None:
        line = f"{s.round:>5} {s.labels:>7} {s.human_seconds:>8.1f} {s.mean_return:>8.1f} ± {s.ci95:<6.1f} {s.query_rate:>10.3f}"
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    out.mkdir(parents=True, exist_ok=True)
    if not args.resume:
        if (out / "recordings").exists():
            raise ConfigError(f"{out} already holds a DAgger run; pass --resume {out} to continue it or choose another --out")
        (out / SETTINGS_FILE).write_text(json.dumps(settings, indent=1))
    result = run_dagger(env_id, labeler, gate, out, config, env=env, resume=bool(args.resume), callback=show)
    rows = [
        {"round": s.round, "labels": s.labels, "human_seconds": s.human_seconds,
         "mean_return": s.mean_return if math.isfinite(s.mean_return) else None,
         "query_rate": s.query_rate if math.isfinite(s.query_rate) else None}
        for s in result.rounds
    ]
    _plot_curve(rows, out / "curve.png", f"DAgger on {env_id} ({settings['query']} queries)")
    if not args.json:
        print(f"curve: {out / 'curve.png'}; recordings: {out / 'recordings'}")
    return {"rounds": rows}


def _settings(args: argparse.Namespace) -> dict:
    given = {k: v for k, v in vars(args).items() if k not in ("func", "json", "command", "resume")}
    if args.resume:
        path = Path(args.resume) / SETTINGS_FILE
        if not path.exists():
            raise ConfigError(f"{args.resume} is not a DAgger run folder (it has no {SETTINGS_FILE})")
        saved = json.loads(path.read_text())
        settings = {**given, **{k: saved[k] for k in _FIXED_ON_RESUME if k in saved}}
        settings["rounds"] = given["rounds"] if given["rounds"] is not None else saved.get("rounds", 5)
        settings["out"] = str(args.resume)
        return settings
    if not given.get("env"):
        raise ConfigError("ilcore dagger needs --env (or --resume DIR)")
    given["rounds"] = 5 if given["rounds"] is None else given["rounds"]
    if given["rounds"] < 0:
        raise ConfigError(f"--rounds must be >= 0, got {given['rounds']}")
    given["out"] = given["out"] or f"runs/dagger-{given['env']}"
    return given


def _plot_curve(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [r["labels"] for r in rows if r["mean_return"] is not None]
    ys = [r["mean_return"] for r in rows if r["mean_return"] is not None]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(xs, ys, marker="o")
    ax.set_xlabel("labels given (cumulative, demonstrations included)")
    ax.set_ylabel("mean return")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
