"""Labels, simulated human-seconds and learner steps to reach 95% of the expert, per way of asking.

For each env, demonstration length and seed, six ways of getting labels from the same simulated
person (the scripted expert, 1.5 s per answered query, 0.25 s per step it drives, no noise, no
delay) train the same learner, the one ``ilcore dagger`` and the app build by default
(``DaggerOptions``: a 5-member MLP (64, 64) ensemble, the action space's default head, retrained
from scratch on every label with 30 epochs and at least 1000 minibatch updates per member; the
CNN on CarRacing's frames, with its own smaller budget, see ENV_SETTINGS):

- bc:           demonstrations only (after round 0 the person drives every step; beta-mix = 1)
- dagger:       plain DAgger, every learner-visited state labelled (AllGate)
- beta:         beta-querying, each visited state asked with probability 0.2 (BetaGate)
- ensemble:     uncertainty gating at the default target rate, 5% (``--query ensemble``)
- intervention: HG-DAgger, the person takes over when it disagrees with the learner and
                hands back after 5 agreeing steps (NeverGate + interventions)
- adaptive:     uncertainty gating whose rate follows the learner's measured disagreement with the
                person on the states it asked about (``--query adaptive``), 2-50%

Round 0 is the demonstration: ``--demo-episodes`` episodes the person drives, each as long as the
person would make it (the full episode; the headline) or cut at ``--demo-steps`` (the second
row, 100 by default). Then **every round is one learner episode**: the policy is retrained after
each episode and evaluated on ``--eval-episodes`` full episodes, so the labels counted at the bar
are exactly the labels that trained the first policy to meet it (not a round's worth more or
less; a round of 2 episodes had held up to ~1000 labels). A policy "meets the bar" when it closes
95% of the gap from a uniformly random policy to the expert, (R - R_random) / (R_expert -
R_random) >= 0.95, with R_expert the expert's documented return and R_random measured here. The
first evaluation that meets it is confirmed on ``--confirm-episodes`` more episodes (other seeds)
and counts only if the mean over both sets still does: with an evaluation after every episode a
method gets many draws, and a lucky 10-episode mean would otherwise favour the methods that
retrain most often per label. A run stops at the first confirmed policy (or ``--past-bar``
learner episodes after it), after ``max_rounds`` learner episodes, or past ``max_labels`` labels.

Reported per env, demo row and method: ``labels_to_bar`` (median over seeds; a seed that never
meets the bar counts as a miss, and the median is None when more than half miss), ``per_seed``,
``human_seconds_to_bar`` (the simulated person's time held by labels: 1.5 s per answer, 0.25 s
per step driven), ``session_seconds_to_bar`` (that plus watching every learner step at the env's
render rate, as a person in a live app session does), ``learner_steps_to_bar`` (env steps the
learner drove) and ``env_steps_to_bar`` (every simulated step, the demonstrations included).
And where two stop rules first fired -- ``stop_signal``: the app's and the CLI's "ready" (two
evaluations in a row at >= 95% of the way from random to the demonstrations,
``ilcore.algos.dagger.readiness``, on the scale the app reads from the recording), with
``labels_to_ready`` and ``session_seconds_to_ready``, what a person who stops when told spends;
``agreement_signal``: the dropped candidate (the learner already did what was answered at >= 95%
of the last 50 live answers, ``ilcore.algos.dagger.agreement``) -- each with its labels, the
policy's return then (and as a share of the way from random to the expert) and how many learner
episodes after (+) or before (-) the bar (run with ``--past-bar`` to see "after").

Usage: python benchmarks/label_efficiency.py [--envs CartPole-v1,Acrobot-v1,...] [--seeds 5]
       [--methods bc,dagger,...] [--demo-steps 0|100] [--eval-episodes 10] [--past-bar 3]
       [--out FILE] [--recipe gate_rate=0.1,gate_gap=5,warm_start=1,min_updates=2000,...]
       [--merge FILES...]
CarRacing-v3 (from pixels) is not in the default ``--envs``: name it to run it (its own small
settings, ENV_SETTINGS). Writes benchmarks/results/label_efficiency.json and its .png.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ("bc", "dagger", "beta", "ensemble", "intervention", "adaptive")
GATED = ("ensemble", "adaptive")
DEFAULT_ENVS = ("CartPole-v1", "Acrobot-v1", "Pendulum-v1", "LunarLander-v3")
# Per env: learner rounds (= learner episodes) and labels before a run gives up, a cap on the
# learner's training episodes (evaluation episodes are never cut), and evaluation episodes. The
# learner and its questions are the defaults of `ilcore dagger` and the app (DaggerOptions,
# RetrainConfig: 5 x (64, 64), 30 epochs and at least 1000 updates per retraining, gate rate 0.05),
# which is what a person meets; an env sets its own only where CPU time forces it (CarRacing).
# LunarLander: learner episodes cut at 400 steps (a hovering learner otherwise spends 1000), 60
# rounds: the gate asks ~10-20 labels per episode and was still climbing at 30.
# CarRacing: a 3-member CNN ensemble, 5 eval episodes (CPU time, see docs), 1500 updates and a
# 4-pixel random shift per retraining (benchmarks/carracing_learner.py: BC on 1 expert episode
# returned 8 after 300 updates, 232 after 1500, 276 with the shift), and the bar of 700
# (the 95% rule would put it at 870 against the expert's 918).
ENV_SETTINGS: dict[str, dict[str, Any]] = {
    "CartPole-v1": dict(max_rounds=25, max_labels=6000, max_episode_steps=None, eval_episodes=10),
    "Acrobot-v1": dict(max_rounds=25, max_labels=6000, max_episode_steps=None, eval_episodes=10),
    "Pendulum-v1": dict(max_rounds=30, max_labels=6000, max_episode_steps=None, eval_episodes=10),
    "LunarLander-v3": dict(max_rounds=60, max_labels=8000, max_episode_steps=400, eval_episodes=10),
    "CarRacing-v3": dict(max_rounds=10, max_labels=8000, epochs=5, min_updates=1500, ensemble=3,
                         max_episode_steps=None, eval_episodes=5, bar=700.0, image_shift=4),
}
DEMO_EPISODES = 1
SHORT_DEMO_STEPS = 100
CONFIRM_EPISODES = 20
STOP_AGREEMENT = 0.95  # the agreement candidate, measured and dropped: this agreement over the shown window (50 answers)
RECIPE_KEYS = ("warm_start", "min_updates", "epochs", "uncertainty_weight", "intervention_weighting", "lr", "gate_rate", "gate_gap", "image_shift")


def random_return(env_id: str, episodes: int = 20) -> float:
    from ilcore.eval import random_return as mean_random_return

    return mean_random_return(env_id, episodes, seed=10_000, action_seed=0)


def learner_options(method: str, seed: int, settings: dict, recipe: dict[str, float]) -> Any:
    """The options ``ilcore dagger`` and the app would use (``DaggerOptions`` defaults: gate rate,
    ensemble, widths, epochs, retraining recipe), changed only where ``settings`` (an env's own,
    e.g. CarRacing's CNN budget) or ``recipe`` (one measured change) say so."""
    from ilcore.algos.dagger.options import DaggerOptions

    d = DaggerOptions()
    return DaggerOptions(
        query=method if method in GATED else "all", seed=seed,
        target_rate=recipe.get("gate_rate", d.target_rate),
        epochs=int(recipe.get("epochs", settings.get("epochs", d.epochs))),
        ensemble=int(settings.get("ensemble", d.ensemble)),
        warm_start=bool(recipe.get("warm_start", 0)), iwr=bool(recipe.get("intervention_weighting", 0)),
    )


def make_gate(method: str, seed: int, options: Any, gap: int = 0) -> Any:
    """The gate of ``method``: the app's own for the gated methods (``options.gate()``, with
    ``min_gap`` from the ``gate_gap`` recipe key), plain DAgger's, beta at 0.2, or none."""
    from ilcore.algos.dagger import AllGate, BetaGate, Constant, NeverGate

    if method in GATED:
        gate = options.gate()
        gate.min_gap = gap
        return gate
    if method == "dagger":
        return AllGate()
    if method == "beta":
        return BetaGate(Constant(0.2), seed=seed)
    return NeverGate()  # bc (the person drives) and intervention (the person takes over)


def parse_recipe(text: str) -> dict[str, float]:
    """``key=value,...`` -> the recipe changes one run measures (RECIPE_KEYS)."""
    out: dict[str, float] = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        if key not in RECIPE_KEYS:
            raise SystemExit(f"--recipe: unknown key {key!r}; use {', '.join(RECIPE_KEYS)}")
        out[key] = float(value)
    return out


def run_session(env_id: str, method: str, seed: int, settings: dict, work: Path, bar: float,
                recipe: dict[str, float]) -> dict:
    """One simulated session, one learner episode per round, until a confirmed policy meets the bar."""
    from ilcore.algos.dagger import Constant, DaggerController, episode_seed, train_next_policy
    from ilcore.algos.dagger.adaptive import AdaptiveEnsembleGate
    from ilcore.algos.dagger.agreement import AGREEMENT_WINDOW
    from ilcore.algos.dagger.readiness import readiness, recording_reference
    from ilcore.algos.dagger.run import actor_of, answer_queue, run_episode
    from ilcore.data import SessionWriter
    from ilcore.eval import evaluate, make_env
    from ilcore.experts import make_expert
    from ilcore.labelers import SimulatedPerson

    env = make_env(env_id)
    person = SimulatedPerson(
        make_expert(env_id, env=env), env.action_space, seconds_per_label=1.5, seconds_per_takeover_step=0.25,
        intervene=(method == "intervention"), release_after=5, seed=seed,
    )
    options = learner_options(method, seed, settings, recipe)
    gate = make_gate(method, seed, options, int(recipe.get("gate_gap", 0)))
    retrain = options.retrain()
    bc = dataclasses.replace(retrain.bc, device="cpu", image_shift=int(recipe.get("image_shift", settings.get("image_shift", 0))),
                             **({"lr": recipe["lr"]} if "lr" in recipe else {}))
    retrain = dataclasses.replace(
        retrain, bc=bc, min_updates=int(recipe.get("min_updates", settings.get("min_updates", retrain.min_updates))),
        reason_weights={"uncertainty": recipe["uncertainty_weight"]} if "uncertainty_weight" in recipe else {})
    cap = settings["max_episode_steps"]
    fps = float(env.metadata.get("render_fps") or 50)  # the rate a person watches the learner at
    rec_dir = work / f"{env_id}-{method}-{seed}-{time.monotonic_ns()}"
    rows: list[dict] = []
    hit: dict | None = None
    stop_signal: dict | None = None  # where the app and the CLI first said "ready" (ilcore.algos.dagger.readiness)
    agreement_signal: dict | None = None  # where the agreement candidate would have fired
    reference: Any = None
    scores: list[float] = []
    timing = {"episodes_s": 0.0, "train_s": 0.0, "eval_s": 0.0}
    learner_steps = env_steps = 0
    with SessionWriter(rec_dir, env_id=env_id, observation_space=env.observation_space,
                       action_space=env.action_space) as writer:
        ctrl = DaggerController(
            env_id, writer, gate, beta_mix=Constant(1.0 if method == "bc" else 0.0), retrain=retrain,
            label_source=person.source, labeller_actor=actor_of(person), query_mode="live",
            rounds=settings["max_rounds"], seed=seed,
        )
        for rnd in range(settings["max_rounds"] + 1):
            t0 = time.perf_counter()
            episodes = []  # what each episode of the round returned, and whether the learner drove it alone
            for i in range(settings["demo_episodes"] if rnd == 0 else 1):
                steps = settings["demo_steps"] if rnd == 0 and settings["demo_steps"] else cap
                before = ctrl.last_episode
                run_episode(ctrl, env, person, episode_seed(seed, rnd, i), steps, interventions=(method == "intervention"))
                if ctrl.last_episode is not before:  # a discarded (empty) episode leaves it as it was
                    episodes.append(ctrl.last_episode)
            answer_queue(ctrl, person)  # nothing is deferred in a live session; kept as run_dagger does
            result = ctrl.end_round(train=False)
            t1 = time.perf_counter()
            trained = train_next_policy(rec_dir, retrain, version=rnd + 1, env_id=env_id, previous=ctrl.policy_path,
                                        max_episode_steps=cap, seed=seed, env=env)
            ctrl.install_saved(trained.path)
            t2 = time.perf_counter()
            ev = evaluate(ctrl.policy, env_id, episodes=settings["eval_episodes"], seed=seed + 1000 * (rnd + 1))
            mean_return = float(ev.mean_return)
            confirmed_return = None
            if mean_return >= bar:
                more = evaluate(ctrl.policy, env_id, episodes=CONFIRM_EPISODES, seed=seed + 1000 * (rnd + 1) + 500)
                n1, n2 = settings["eval_episodes"], CONFIRM_EPISODES
                confirmed_return = (n1 * mean_return + n2 * float(more.mean_return)) / (n1 + n2)
            t3 = time.perf_counter()
            timing["episodes_s"] += t1 - t0
            timing["train_s"] += t2 - t1
            timing["eval_s"] += t3 - t2
            learner_steps += result.learner_steps
            env_steps += result.steps
            totals = ctrl.totals()
            row = {"round": rnd, "labels": totals.labels, "human_seconds": round(totals.human_seconds, 2),
                   "session_seconds": round(totals.human_seconds + learner_steps / fps, 2),
                   "learner_steps": learner_steps, "env_steps": env_steps, "mean_return": mean_return,
                   "confirmed_return": confirmed_return, "query_rate": None if math.isnan(result.query_rate)
                   else result.query_rate}
            if isinstance(gate, AdaptiveEnsembleGate):
                row["gate_rate"] = gate.target_rate
            row["episode_returns"] = [e.total_return for e in episodes]
            row["labeller_steps"] = sum(e.labeller_steps for e in episodes)
            row["answers"] = totals.answers
            row["agreement"] = None if math.isnan(totals.agreement) else totals.agreement
            # the stop rules: the product's "ready" and the dropped agreement candidate
            if rnd == 0:  # the person's scale, from the recording as the app and the CLI read it
                reference = recording_reference(rec_dir, env_id)
            scores.append(math.nan if reference is None else reference.score(mean_return))
            row["score"] = None if math.isnan(scores[-1]) else scores[-1]
            if stop_signal is None and readiness(scores).ready:
                stop_signal = dict(row)
            if agreement_signal is None and totals.answers >= AGREEMENT_WINDOW and totals.agreement >= STOP_AGREEMENT:
                agreement_signal = dict(row)
            rows.append(row)
            print(f"  {env_id} {method} seed {seed} round {rnd}: {row['labels']} labels, return {mean_return:.1f}, "
                  f"{t3 - t0:.0f}s (train {t2 - t1:.0f}s)", flush=True)  # a long run killed early keeps its curve here
            if hit is None and confirmed_return is not None and confirmed_return >= bar:
                hit = row
            if hit is not None and rnd - hit["round"] >= settings.get("past_bar", 0):
                break
            if totals.labels >= settings["max_labels"]:
                break
    env.close()
    shutil.rmtree(rec_dir, ignore_errors=True)
    return {"rows": rows, "hit": hit, "stop_signal": stop_signal, "agreement_signal": agreement_signal,
            "reference": None if reference is None else dataclasses.asdict(reference), "timing": timing}


def median_with_misses(values: list[float | None]) -> float | None:
    """Median where a miss (None) counts as infinitely many; None when more than half miss."""
    padded = [math.inf if v is None else float(v) for v in values]
    if not padded:
        return None
    m = float(np.median(padded))
    return None if math.isinf(m) or math.isnan(m) else m


def summarize(sessions: dict[str, dict[int, dict]], scale: tuple[float, float] | None = None) -> dict:
    """Per method: labels, time and steps to the bar, and where each stop rule fired (with
    ``scale`` = (random, expert) returns, the return then as a share of the way between them)."""
    out: dict[str, Any] = {}
    for method, per_seed in sessions.items():
        hits = {s: r["hit"] for s, r in per_seed.items()}

        def at_bar(key: str) -> list[float | None]:
            return [None if h is None else h[key] for h in hits.values()]

        demo = [r["rows"][0]["labels"] for r in per_seed.values()]
        out[method] = {
            "reached": f"{sum(h is not None for h in hits.values())}/{len(hits)}",
            "labels_to_bar": median_with_misses(at_bar("labels")),
            "per_seed": {str(s): (None if h is None else h["labels"]) for s, h in hits.items()},
            "post_demo_labels_to_bar": median_with_misses(
                [None if h is None else h["labels"] - d for h, d in zip(hits.values(), demo)]),
            "human_seconds_to_bar": median_with_misses(at_bar("human_seconds")),
            "session_seconds_to_bar": median_with_misses(
                [None if h is None else h.get("session_seconds") for h in hits.values()]),
            "human_seconds_per_seed": {str(s): (None if h is None else h["human_seconds"]) for s, h in hits.items()},
            "learner_steps_to_bar": median_with_misses(at_bar("learner_steps")),
            "env_steps_to_bar": median_with_misses(at_bar("env_steps")),
            "demo_labels": float(np.median(demo)),
            "last_labels_median": float(np.median([r["rows"][-1]["labels"] for r in per_seed.values()])),
            "last_return_median": float(np.median([r["rows"][-1]["mean_return"] for r in per_seed.values()])),
            "timing_s": {k: float(np.sum([r["timing"][k] for r in per_seed.values()]))
                         for k in ("episodes_s", "train_s", "eval_s")},
        }
        # what a person who stops when the app says "ready" spends (a miss: never said within the run)
        stops = [r.get("stop_signal") for r in per_seed.values()]
        out[method]["labels_to_ready"] = median_with_misses([None if st is None else st["labels"] for st in stops])
        out[method]["session_seconds_to_ready"] = median_with_misses(
            [None if st is None else st["session_seconds"] for st in stops])
        for key in ("stop_signal", "agreement_signal"):  # the readiness rule shown, and the dropped candidate
            stops = [r.get(key) for r in per_seed.values()]
            out[method][key] = {
                str(s): (None if st is None else {
                    "labels": st["labels"], "mean_return": st["mean_return"],
                    "expert_share": None if scale is None else (st["mean_return"] - scale[0]) / (scale[1] - scale[0]),
                    "episodes_after_bar": None if h is None else st["round"] - h["round"]})
                for s, st, h in zip(per_seed, stops, hits.values())
            }
    for key, ratio in (("labels_to_bar", "ratio_to_dagger"), ("labels_to_ready", "ready_ratio_to_dagger")):
        dagger = out.get("dagger", {}).get(key)
        for method in GATED:
            if method in out and dagger and out[method][key] is not None:
                out[method][ratio] = out[method][key] / dagger
    return out


def demo_row_key(demo_steps: int | None) -> str:
    return "full" if not demo_steps else f"demo{demo_steps}"


def main() -> None:
    import torch

    from ilcore.runtime import configure_threads

    configure_threads(1)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--envs", default=",".join(DEFAULT_ENVS))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--demo-episodes", type=int, default=DEMO_EPISODES)
    ap.add_argument("--demo-steps", type=int, default=0,
                    help=f"cut each demonstration here (0: the full episode, the headline; {SHORT_DEMO_STEPS}: the short row)")
    ap.add_argument("--eval-episodes", type=int, default=None, help="default: ENV_SETTINGS")
    ap.add_argument("--max-rounds", type=int, default=None, help="learner episodes before giving up (default: ENV_SETTINGS)")
    ap.add_argument("--past-bar", type=int, default=0,
                    help="learner episodes to go on after the bar (to see when the stop signal fires; 0: stop there)")
    ap.add_argument("--recipe", default="", help=f"retraining changes to measure: key=value,... ({', '.join(RECIPE_KEYS)})")
    ap.add_argument("--out", default=str(RESULTS / "label_efficiency.json"))
    ap.add_argument("--merge", nargs="+", default=None,
                    help="combine result files of separate runs (per env and demo row) into --out and its PNG")
    args = ap.parse_args()
    if args.merge:
        merge(args.merge, Path(args.out))
        return
    from ilcore.experts import make_expert

    recipe = parse_recipe(args.recipe)
    out_path = Path(args.out)
    result: dict[str, Any] = json.loads(out_path.read_text()) if out_path.exists() else {}
    result.setdefault("envs", {})
    result.update({
        "benchmark": "label_efficiency", "recipe": recipe,
        "machine": {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                    "python": sys.version.split()[0], "torch": torch.__version__},
        "date": datetime.date.today().isoformat(),
    })
    row_key = demo_row_key(args.demo_steps)
    work = Path(tempfile.mkdtemp(prefix="label-eff-"))
    try:
        for env_id in args.envs.split(","):
            settings = dict(ENV_SETTINGS[env_id])
            if args.eval_episodes is not None:
                settings["eval_episodes"] = args.eval_episodes
            if args.max_rounds is not None:
                settings["max_rounds"] = args.max_rounds
            settings.update(demo_episodes=args.demo_episodes, demo_steps=args.demo_steps or None, past_bar=args.past_bar)
            r_expert = float(make_expert(env_id).documented_return)
            r_random = random_return(env_id)
            bar = settings.get("bar", r_random + 0.95 * (r_expert - r_random))
            env_result = result["envs"].setdefault(env_id, {})
            env_result.update({"expert_return": r_expert, "random_return": r_random, "bar": bar})
            row = env_result.setdefault("rows", {}).setdefault(row_key, {"sessions": {}})
            row["settings"] = settings
            row["load_before"] = os.getloadavg()[0]
            t_env = time.perf_counter()
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                for method in args.methods.split(","):
                    t = time.perf_counter()
                    session = run_session(env_id, method, seed, settings, work, bar, recipe)
                    session["seconds"] = time.perf_counter() - t
                    session["load"] = os.getloadavg()[0]
                    row["sessions"].setdefault(method, {})[str(seed)] = session
                    hit, last = session["hit"], session["rows"][-1]
                    print(f"{env_id} {row_key} seed {seed} {method:12s} "
                          f"{'bar at ' + str(hit['labels']) + ' labels' if hit else 'not reached'} "
                          f"(last {last['mean_return']:.1f} at {last['labels']} labels, round {last['round']}; "
                          f"{session['seconds']:.0f}s, load {session['load']:.1f})", flush=True)
                row["summary"] = summarize({m: {int(s): v for s, v in per.items()} for m, per in row["sessions"].items()},
                                           (r_random, r_expert))
                row["seconds"] = row.get("seconds_before", 0.0) + time.perf_counter() - t_env
                out_path.parent.mkdir(exist_ok=True)
                out_path.write_text(json.dumps(result, indent=1))  # after every seed: partial results survive
            row["seconds_before"] = row["seconds"]
            print_table(env_id, env_result, row_key)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    plot(result, out_path.with_suffix(".png"))


def merge(files: list[str], out: Path) -> None:
    """Combine per-run files: an env's demo row holds every (method, seed) session of every file
    that ran it (one run in two files: the later file's)."""
    merged: dict[str, Any] = {}
    for f in files:
        part = json.loads(Path(f).read_text())
        envs = merged.get("envs", {})
        for env_id, env_result in part["envs"].items():
            rows = dict(envs.get(env_id, {}).get("rows", {}))
            for key, row in env_result.get("rows", {}).items():
                sessions = {m: dict(per) for m, per in rows.get(key, {}).get("sessions", {}).items()}
                for method, per in row.get("sessions", {}).items():
                    sessions.setdefault(method, {}).update(per)
                rows[key] = {**rows.get(key, {}), **row, "sessions": sessions}
            envs[env_id] = {**envs.get(env_id, {}), **env_result, "rows": rows}
        merged = {**merged, **{k: v for k, v in part.items() if k != "envs"}, "envs": envs}
    for env_result in merged["envs"].values():  # summaries are recomputed from the sessions (the code may be newer)
        scale = (env_result["random_return"], env_result["expert_return"])
        for row in env_result["rows"].values():
            row["summary"] = summarize({m: {int(s): v for s, v in per.items()} for m, per in row["sessions"].items()}, scale)
    out.write_text(json.dumps(merged, indent=1))
    for env_id, env_result in merged["envs"].items():
        for row_key in env_result["rows"]:
            print_table(env_id, env_result, row_key)
    plot(merged, out.with_suffix(".png"))


def print_table(env_id: str, env_result: dict, row_key: str) -> None:
    row = env_result["rows"][row_key]
    s = row["summary"]
    n = max(len(v) for v in row["sessions"].values())
    print(f"\n{env_id}, demo {row_key}: bar {env_result['bar']:.1f} (expert {env_result['expert_return']:.1f}, "
          f"random {env_result['random_return']:.1f}), {n} seeds")
    print("| method | reached | labels to bar | per seed | post-demo | human-s | session-s | learner steps | ratio to dagger "
          "| labels to 'ready' | its ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")

    def fmt(v: float | None, miss: str = "not reached") -> str:
        return miss if v is None else f"{v:.0f}"

    for m, r in s.items():
        seeds = ", ".join("-" if v is None else str(v) for v in r["per_seed"].values())
        ratio = f"{r['ratio_to_dagger']:.2f}" if "ratio_to_dagger" in r else ""
        ready_ratio = f"{r['ready_ratio_to_dagger']:.2f}" if "ready_ratio_to_dagger" in r else ""
        print(f"| {m} | {r['reached']} | {fmt(r['labels_to_bar'])} | {seeds} | {fmt(r['post_demo_labels_to_bar'])} | "
              f"{fmt(r['human_seconds_to_bar'], '-')} | {fmt(r.get('session_seconds_to_bar'), '-')} | "
              f"{fmt(r['learner_steps_to_bar'], '-')} | {ratio} | {fmt(r.get('labels_to_ready'), 'not said')} | {ready_ratio} |")


def plot(result: dict, path: Path) -> None:
    """Return vs labels per env (columns) and demo row (rows): each seed's run as a thin line, the
    confirmed bar hit as a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    envs = list(result["envs"])
    row_keys = sorted({k for e in result["envs"].values() for k in e.get("rows", {})}, key=lambda k: k != "full")
    fig, axes = plt.subplots(len(row_keys), len(envs), figsize=(4.6 * len(envs), 3.6 * len(row_keys)), squeeze=False)
    colors = dict(zip(METHODS, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for i, row_key in enumerate(row_keys):
        for ax, env_id in zip(axes[i], envs):
            er = result["envs"][env_id]
            row = er.get("rows", {}).get(row_key)
            if row is None:
                ax.set_axis_off()
                continue
            for method, per_seed in row["sessions"].items():
                for k, session in enumerate(per_seed.values()):
                    labels = [r["labels"] for r in session["rows"]]
                    rets = [r["mean_return"] for r in session["rows"]]
                    ax.plot(labels, rets, color=colors.get(method), lw=0.8, alpha=0.6, label=method if k == 0 else None)
                    if session["hit"] is not None:
                        ax.plot([session["hit"]["labels"]], [session["hit"]["mean_return"]], "o", ms=4,
                                color=colors.get(method))
            ax.axhline(er["bar"], color="k", ls=":", lw=1)
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # 2x10^2, 3x10^2, ... overlapped
            ax.set_xlabel("labels (cumulative)")
            ax.set_ylabel("mean return")
            ax.set_title(f"{env_id}, demo {row_key}", fontsize=9)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
