"""Frame times and env steps per second of the app loop while a DAgger round runs.

CartPole-v1 at 30 and 60 fps: a real-time loop (the same AppLoop the app uses) runs a DAgger round
driven by the simulated person, with synthetic keyboard and joystick events posted every frame.
It runs twice in the same process: a baseline with no training, then with the background trainer
busy the whole time (jobs resubmitted as they finish). Reported per run: frame work time p50/p99
(input + update + draw), frame interval p50/p99, dropped frames (an interval over 1.5 frame
periods), the loop thread's CPU time per frame (what the app itself costs, which other processes
on a busy machine cannot inflate) and input events posted vs handled.

CarRacing-v3 at 60 fps, without and with training: the same, plus the env steps per second the
round achieved (frames where a question waited are left out: the person's time, not the
machine's), the pace the HUD shows, the most steps any frame ran (a catch-up burst is more than
one) and where a step's CPU time goes (env.step with its 96x96 observation, env.render of the
600x400 frame, the learner's forward pass, drawing, the replay history, the writer).

    python benchmarks/app_frames.py [--seconds 8] [--envs CartPole-v1,CarRacing-v3]

Writes benchmarks/results/app_frames.json. Uses the real display when there is one (DISPLAY),
else SDL's dummy driver (drawing still happens, into memory).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _time_calls(obj: object, name: str, label: str, totals: dict[str, list[float]]) -> None:
    """Wrap obj.name so its CPU time (this thread's) adds to totals[label] = [seconds, calls]."""
    inner = getattr(obj, name)

    @functools.wraps(inner)
    def timed(*args, **kwargs):
        start = time.thread_time()
        try:
            return inner(*args, **kwargs)
        finally:
            acc = totals.setdefault(label, [0.0, 0])
            acc[0] += time.thread_time() - start
            acc[1] += 1

    setattr(obj, name, timed)


def run_one(fps: int, seconds: float, training: bool, tmp: Path, tag: str, env_id: str = "CartPole-v1") -> dict:
    import pygame

    from app.input.gamepad import GamepadDevice, default_gamepad_config
    from app.input.keyboard import KeyboardDevice
    from app.input.keymaps import default_keymap
    from app.input.simulated import build_simulated_person
    from app.loop import AppLoop
    from app.modes.manager import ModeManager
    from app.render.renderer import Renderer
    from app.render.theme import WINDOW_SIZE
    from app.session import Session, SessionSettings

    image = env_id.startswith("CarRacing")
    if image:
        # one short demo and a quick 5-member learner: the timed part needs a learner, not a good one
        settings = SessionSettings(env_id=env_id, demo_episodes=99, rounds=50, episodes_per_round=50, max_episode_steps=250,
                                   query_mode="live", target_rate=0.05, epochs=2, calibration_steps=100, eval_episodes=0,
                                   simulated=True, seed=0)
    else:
        settings = SessionSettings(env_id=env_id, demo_episodes=99, rounds=50, episodes_per_round=50, max_episode_steps=200,
                                   query_mode="live", target_rate=0.05, epochs=40, simulated=True, seed=0)
    session = Session(tmp / tag, settings)
    session.autopilot = True  # no stage waits for Enter here
    space = session.env.action_space
    keymap = default_keymap(settings.env_id, space)
    pygame.init()
    screen = pygame.display.set_mode(WINDOW_SIZE)
    manager = ModeManager(session)
    pad = GamepadDevice(default_gamepad_config(space), space)
    autopilot = build_simulated_person(session)
    loop = AppLoop(manager, [KeyboardDevice(keymap), pad], Renderer(screen), keymap=keymap, fps=fps, realtime=False, autopilot=autopilot)
    manager.start()
    while session.round_episodes < (1 if image else 2):  # demonstrations, as fast as the machine goes
        loop.frame()
    manager.current.exit()
    session.end_round()
    session.train_blocking()  # the learner, so the timed part is a DAgger round
    dagger = manager.modes["dagger"]
    dagger.round = 1
    manager.goto("dagger")
    dagger.waiting_for_start = False
    if training:
        session.trainer.start()
        session.start_training()
    cpu: dict[str, list[float]] = {}
    if image:
        env = session.env.unwrapped
        _time_calls(env, "step", "env.step", cpu)
        _time_calls(env, "render", "env.render", cpu)
        _time_calls(session.controller, "propose", "learner forward", cpu)
        _time_calls(session.controller, "commit_outcome", "writer commit", cpu)
        _time_calls(dagger.history, "push", "replay history", cpu)
        _time_calls(loop.renderer, "draw", "drawing", cpu)
    # the timed part: real time, as a person sees it
    loop.realtime = True
    loop.record_stats = True
    loop.stats = type(loop.stats)()
    pygame.event.post(pygame.event.Event(pygame.JOYDEVICEADDED, device_index=0, instance_id=1, name="Bench Pad"))
    posted = 1
    end = time.perf_counter() + seconds
    rng = np.random.default_rng(0)
    steps_per_frame: list[int] = []
    waiting: list[bool] = []
    paces: list[float] = []
    huds: list[str] = []
    draw = loop.renderer.draw
    loop.renderer.draw = lambda view, hud, help_entries=None: (huds.append(getattr(hud, "pace", "")), draw(view, hud, help_entries))
    clock_steps: list[int] = []  # what the step clock granted each frame (an answered question adds its step at once)
    granted = dagger.clock.steps

    def count_granted(dt: float) -> int:
        n = granted(dt)
        clock_steps.append(n)
        return n

    dagger.clock.steps = count_granted
    total_steps = 0
    while time.perf_counter() < end:
        # input a person might produce: an unmapped key pressed and released, stick noise
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_F12, mod=0, unicode="", scancode=0))
        pygame.event.post(pygame.event.Event(pygame.KEYUP, key=pygame.K_F12, mod=0, unicode="", scancode=0))
        pygame.event.post(pygame.event.Event(pygame.JOYAXISMOTION, instance_id=1, axis=3, value=float(rng.uniform(-0.1, 0.1))))
        posted += 3
        mode = manager.current
        was_waiting = mode is not dagger or dagger.pending is not None or getattr(dagger, "hold", 0) > 0 or not dagger.driver.running
        before = (dagger.driver.length, session.controller.totals().episodes)
        loop.frame()
        after = (dagger.driver.length, session.controller.totals().episodes)
        n = after[0] - before[0] if after[1] == before[1] else after[0]  # an episode ended: count the new one's steps
        steps_per_frame.append(max(0, n))
        waiting.append(was_waiting)
        paces.append(float(getattr(dagger.clock, "pace", 1.0)))
        total_steps += max(0, n)
        if training and not session.trainer.status.running:
            session.start_training()  # keep the trainer busy for the whole measurement
        if manager.current.name != "dagger":
            manager.goto("dagger")
            dagger.waiting_for_start = False
    loop.frame()  # drain what the last frame's posts left
    stats = loop.stats
    session.close()
    pygame.quit()
    work = np.array(stats.work_ms)
    interval = np.array(stats.interval_ms[1:])
    period = 1000.0 / fps
    row = {
        "env": env_id,
        "fps_target": fps,
        "training": training,
        "frames": int(stats.frames),
        "cpu_p50_ms": float(np.percentile(np.array(stats.cpu_ms), 50)),
        "cpu_p99_ms": float(np.percentile(np.array(stats.cpu_ms), 99)),
        "work_p50_ms": float(np.percentile(work, 50)),
        "work_p99_ms": float(np.percentile(work, 99)),
        "interval_p50_ms": float(np.percentile(interval, 50)),
        "interval_p99_ms": float(np.percentile(interval, 99)),
        "dropped_frames": int(np.sum(interval > 1.5 * period)),
        "achieved_fps": float(1000.0 / np.mean(interval)),
        "events_posted": posted,
        "events_handled": int(stats.input_events_handled),
        "policies_trained": int(session.state.policy_version - 1),
    }
    # env steps per second while the learner drove (the intervals of frames no question held up)
    # interval_ms[i] runs from frame i's start to the next frame's (the drain frame ends the last one)
    # (the first interval reaches back into the untimed set-up, so frame 0 is left out)
    lengths = np.array(stats.interval_ms[1: len(steps_per_frame)])
    spf = np.array(steps_per_frame[1: len(lengths) + 1])
    free = ~np.array(waiting[1: len(lengths) + 1], dtype=bool)
    driven_s = float(np.sum(lengths[free])) / 1000.0
    row.update({
        "env_fps": int(session.fps),
        "steps": int(total_steps),
        "steps_per_s": float(np.sum(spf[free]) / driven_s) if driven_s > 0 else 0.0,
        "asked_steps_per_s": float(session.fps * dagger.clock.speed),
        "max_steps_in_a_frame": int(max(steps_per_frame) if steps_per_frame else 0),
        "max_clock_steps_in_a_frame": int(max(clock_steps) if clock_steps else 0),
        "pace_last": paces[-1] if paces else 1.0,
        "hud_slowed_frames": int(sum(1 for h in huds if h)),
        "hud_last": next((h for h in reversed(huds) if h), ""),
    })
    if cpu:
        steps = max(total_steps, 1)
        row["cpu_ms_per_step"] = {k: 1000.0 * v[0] / steps for k, v in cpu.items()}
        row["cpu_ms_per_step_total"] = float(sum(row["cpu_ms_per_step"].values()))
    return row


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--envs", default="CartPole-v1,CarRacing-v3", help="comma-separated: CartPole-v1 and/or CarRacing-v3")
    args = parser.parse_args()
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import torch

    torch.set_num_threads(1)
    envs = [e.strip() for e in args.envs.split(",") if e.strip()]
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for env_id in envs:
            for fps in ((30, 60) if env_id.startswith("CartPole") else (60,)):
                for training in (False, True):
                    tag = f"{env_id}-fps{fps}-{'train' if training else 'base'}"
                    load = os.getloadavg()[0]
                    row = run_one(fps, args.seconds, training, Path(d), tag, env_id)
                    row["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
                    row["load_average_1_before"] = load
                    rows.append(row)
    print(f"{'env':<13} {'fps':>4} {'training':>8} {'frames':>6} {'cpu p50':>9} {'cpu p99':>9} {'work p50':>9} {'work p99':>9} {'intv p50':>9} {'intv p99':>9} "
          f"{'dropped':>7} {'steps/s':>13} {'clock max':>9} {'events in/handled':>18} {'trained':>7}")
    for r in rows:
        print(f"{r['env']:<13} {r['fps_target']:>4} {str(r['training']):>8} {r['frames']:>6} {r['cpu_p50_ms']:>7.2f}ms {r['cpu_p99_ms']:>7.2f}ms {r['work_p50_ms']:>8.2f}ms {r['work_p99_ms']:>8.2f}ms "
              f"{r['interval_p50_ms']:>8.2f}ms {r['interval_p99_ms']:>8.2f}ms {r['dropped_frames']:>7} {r['steps_per_s']:>6.1f} of {r['asked_steps_per_s']:<3.0f} {r['max_clock_steps_in_a_frame']:>9} "
              f"{r['events_posted']:>8}/{r['events_handled']:<9} {r['policies_trained']:>7}")
    for r in rows:
        if "cpu_ms_per_step" in r:
            parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(r["cpu_ms_per_step"].items(), key=lambda kv: -kv[1]))
            print(f"{r['env']} training={r['training']}: CPU ms per env step {r['cpu_ms_per_step_total']:.1f} = {parts}; "
                  f"at most {1000.0 / r['cpu_ms_per_step_total']:.0f} steps/s on one free core; HUD: {r['hud_last'] or 'no slowdown shown'}")
    ratios = {}
    for fps in (30, 60):
        base = next((r for r in rows if r["env"].startswith("CartPole") and r["fps_target"] == fps and not r["training"]), None)
        busy = next((r for r in rows if r["env"].startswith("CartPole") and r["fps_target"] == fps and r["training"]), None)
        if base is None or busy is None:
            continue
        ratios[str(fps)] = {"work_p99_training_over_baseline": busy["work_p99_ms"] / base["work_p99_ms"],
                            "p99_budget_ms": 1000.0 / fps, "p99_within_budget": busy["work_p99_ms"] <= 1000.0 / fps}
        print(f"CartPole {fps} fps: work p99 with training / without = {ratios[str(fps)]['work_p99_training_over_baseline']:.2f}x; "
              f"budget {1000.0 / fps:.1f} ms -> {'met' if ratios[str(fps)]['p99_within_budget'] else 'MISSED'}")
    for r in rows:
        if r["env"].startswith("CarRacing"):
            print(f"CarRacing training={r['training']}: {r['steps_per_s']:.1f} steps/s (goal >= 25 when quiet) -> {'met' if r['steps_per_s'] >= 25 else 'MISSED'}")
    result = {
        "benchmark": "app_frames",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__, "video_driver": os.environ.get("SDL_VIDEODRIVER") or "x11 (" + os.environ.get("DISPLAY", "") + ")"},
        "load_average_1_5_15_before": load_before,
        "load_average_1_5_15_after": os.getloadavg(),
        "seconds_per_run": args.seconds,
        "rows": rows,
        "ratios": ratios,
    }
    out = ROOT / "benchmarks" / "results" / "app_frames.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():  # rows of envs not run this time stay, each with its own date and load
        try:
            kept = [r for r in json.loads(out.read_text()).get("rows", []) if r.get("env", "CartPole-v1") not in envs]
        except (ValueError, AttributeError):
            kept = []
        result["rows"] = kept + rows
    out.write_text(json.dumps(result, indent=1))
    print(f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f} (on {os.cpu_count()} cores)")
    print("wrote", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
