"""Frame times of the app loop while a DAgger round runs and a policy trains in the background.

For each target fps (30, 60): a real-time loop (the same AppLoop the app uses) runs a CartPole
DAgger round driven by the simulated person, with synthetic keyboard and joystick events posted
every frame. It runs twice in the same process: a baseline with no training, then with the
background trainer busy the whole time (jobs resubmitted as they finish). Reported per run:
frame work time p50/p99 (input + update + draw), frame interval p50/p99, dropped frames (an
interval over 1.5 frame periods), the loop thread's CPU time per frame (what the app itself costs,
which other processes on a busy machine cannot inflate) and input events posted vs handled.

    python benchmarks/app_frames.py [--seconds 8]

Writes benchmarks/results/app_frames.json. Uses the real display when there is one (DISPLAY),
else SDL's dummy driver (drawing still happens, into memory).
"""

from __future__ import annotations

import argparse
import datetime
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


def run_one(fps: int, seconds: float, training: bool, tmp: Path, tag: str) -> dict:
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

    settings = SessionSettings(env_id="CartPole-v1", demo_episodes=99, rounds=50, episodes_per_round=50, max_episode_steps=200,
                               query_mode="live", target_rate=0.05, epochs=40, simulated=True, seed=0)
    session = Session(tmp / tag, settings)
    space = session.env.action_space
    keymap = default_keymap(settings.env_id, space)
    pygame.init()
    screen = pygame.display.set_mode(WINDOW_SIZE)
    manager = ModeManager(session)
    pad = GamepadDevice(default_gamepad_config(space), space)
    autopilot = build_simulated_person(session)
    loop = AppLoop(manager, [KeyboardDevice(keymap), pad], Renderer(screen), keymap=keymap, fps=fps, realtime=False, autopilot=autopilot)
    manager.start()
    while session.round_episodes < 2:  # two demonstrations, as fast as the machine goes
        loop.frame()
    manager.current.exit()
    session.end_round()
    session.train_blocking()  # the learner, so the timed part is a DAgger round
    manager.modes["dagger"].round = 1
    manager.goto("dagger")
    if training:
        session.trainer.start()
        session.start_training()
    # the timed part: real time, as a person sees it
    loop.realtime = True
    loop.record_stats = True
    loop.stats = type(loop.stats)()
    pygame.event.post(pygame.event.Event(pygame.JOYDEVICEADDED, device_index=0, instance_id=1, name="Bench Pad"))
    posted = 1
    end = time.perf_counter() + seconds
    rng = np.random.default_rng(0)
    while time.perf_counter() < end:
        # input a person might produce: an unmapped key pressed and released, stick noise
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_F12, mod=0, unicode="", scancode=0))
        pygame.event.post(pygame.event.Event(pygame.KEYUP, key=pygame.K_F12, mod=0, unicode="", scancode=0))
        pygame.event.post(pygame.event.Event(pygame.JOYAXISMOTION, instance_id=1, axis=3, value=float(rng.uniform(-0.1, 0.1))))
        posted += 3
        loop.frame()
        if training and not session.trainer.status.running:
            session.start_training()  # keep the trainer busy for the whole measurement
        if manager.current.name != "dagger":
            manager.goto("dagger")
    loop.frame()  # drain what the last frame's posts left
    stats = loop.stats
    session.close()
    pygame.quit()
    work = np.array(stats.work_ms)
    interval = np.array(stats.interval_ms[1:])
    period = 1000.0 / fps
    return {
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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import torch

    torch.set_num_threads(1)
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for fps in (30, 60):
            for training in (False, True):
                rows.append(run_one(fps, args.seconds, training, Path(d), f"fps{fps}-{'train' if training else 'base'}"))
    print(f"{'fps':>4} {'training':>8} {'frames':>6} {'cpu p50':>9} {'cpu p99':>9} {'work p50':>9} {'work p99':>9} {'intv p50':>9} {'intv p99':>9} {'dropped':>7} {'events in/handled':>18} {'trained':>7}")
    for r in rows:
        print(f"{r['fps_target']:>4} {str(r['training']):>8} {r['frames']:>6} {r['cpu_p50_ms']:>7.2f}ms {r['cpu_p99_ms']:>7.2f}ms {r['work_p50_ms']:>8.2f}ms {r['work_p99_ms']:>8.2f}ms "
              f"{r['interval_p50_ms']:>8.2f}ms {r['interval_p99_ms']:>8.2f}ms {r['dropped_frames']:>7} {r['events_posted']:>8}/{r['events_handled']:<9} {r['policies_trained']:>7}")
    ratios = {}
    for fps in (30, 60):
        base = next(r for r in rows if r["fps_target"] == fps and not r["training"])
        busy = next(r for r in rows if r["fps_target"] == fps and r["training"])
        ratios[str(fps)] = {"work_p99_training_over_baseline": busy["work_p99_ms"] / base["work_p99_ms"],
                            "p99_budget_ms": 1000.0 / fps, "p99_within_budget": busy["work_p99_ms"] <= 1000.0 / fps}
        print(f"{fps} fps: work p99 with training / without = {ratios[str(fps)]['work_p99_training_over_baseline']:.2f}x; "
              f"budget {1000.0 / fps:.1f} ms -> {'met' if ratios[str(fps)]['p99_within_budget'] else 'MISSED'}")
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
    out.write_text(json.dumps(result, indent=1))
    print(f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f} (on {os.cpu_count()} cores)")
    print("wrote", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
