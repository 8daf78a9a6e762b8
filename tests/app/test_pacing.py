"""Frame pacing with a fake clock: steady steps under slow frames, the slowdown reported, no bursts.

No test here reads the wall clock: frame times are given, so every figure is exact.
"""

from __future__ import annotations

import pygame
import pytest

from app.modes import pacing
from app.modes.pacing import StepClock, pace_text


@pytest.fixture(autouse=True)
def display_60():
    pacing.set_display_fps(60)
    yield
    pacing.set_display_fps(60)


def run_frames(clock: StepClock, frame_ms: list[float]) -> list[int]:
    return [clock.steps(ms / 1000.0) for ms in frame_ms]


def machine(clock: StepClock, *, frames: int, draw_ms: float, step_ms: float, display_fps: int = 60) -> tuple[list[int], list[float]]:
    """A loop on a machine where a frame costs draw_ms plus step_ms per env step, and the loop
    sleeps up to its frame period; each frame's dt is the previous frame's length, as in AppLoop."""
    period = 1000.0 / display_fps
    steps, lengths = [], []
    dt = period
    for _ in range(frames):
        n = clock.steps(dt / 1000.0)
        steps.append(n)
        dt = max(period, draw_ms + n * step_ms)
        lengths.append(dt)
    return steps, lengths


def test_quiet_machine_runs_the_env_at_its_rate():
    clock = StepClock(50)
    steps = run_frames(clock, [1000 / 60] * 600)  # ten seconds of 60 fps frames
    assert sum(steps) in (499, 500)
    assert max(steps) == 1
    assert clock.pace > 0.99 and not clock.slowed()
    assert pace_text(clock) == ""


def test_slow_frames_give_one_step_each_and_the_slowdown_is_reported():
    clock = StepClock(50)
    steps = run_frames(clock, [27.0] * 300)  # the machine manages 37 frames a second
    assert steps[5:] == [1] * 295  # a steady step interval: one step per frame, never a burst
    assert clock.pace == pytest.approx(1000 / 27 / 50, abs=0.02)
    assert clock.achieved_rate() == pytest.approx(1000 / 27, abs=1.0)
    assert clock.slowed()
    assert pace_text(clock) == f"slowed to {100 * clock.pace:.0f}%: the machine cannot keep up"
    assert "74%" in pace_text(clock)


def test_expensive_steps_do_not_spiral_into_bursts():
    # CarRacing-like: 25 ms a step and 2 ms of drawing. A clock that catches up would run 2, 3, ...
    # steps in the frames after a slow one, each making the next frame slower still.
    clock = StepClock(50)
    steps, lengths = machine(clock, frames=600, draw_ms=2.0, step_ms=25.0)
    assert max(steps) == 1
    assert steps[10:] == [1] * 590
    assert max(lengths) == 27.0  # every frame the same length: the simulation slows evenly
    assert clock.pace == pytest.approx(1000 / 27 / 50, abs=0.02)


def test_cheap_steps_keep_full_speed():
    clock = StepClock(50)
    steps, lengths = machine(clock, frames=600, draw_ms=3.0, step_ms=8.0)
    assert sum(steps) in (499, 500)
    assert max(lengths) == pytest.approx(1000 / 60)
    assert not clock.slowed()


def test_a_stall_is_not_caught_up():
    clock = StepClock(50)
    run_frames(clock, [1000 / 60] * 120)
    after = run_frames(clock, [100.0] + [1000 / 60] * 10)  # the loop caps a frame's dt at 0.1 s
    assert max(after) == 1  # no burst of the five steps the stall "owed"
    assert sum(after) <= 11


def test_frames_after_a_stall_do_not_run_extra_steps():
    clock = StepClock(50)
    run_frames(clock, [1000 / 60] * 120)
    run_frames(clock, [100.0])
    following = run_frames(clock, [1000 / 60] * 60)
    assert sum(following) <= 51  # at most the one carried step beyond the 50 of a normal second


def test_a_single_hiccup_is_no_slowdown():
    clock = StepClock(50)
    steps = run_frames(clock, [1000 / 60] * 200 + [100.0] + [1000 / 60] * 5)
    assert max(steps) == 1
    assert not clock.slowed()


@pytest.mark.parametrize("fps,speed", [(15, 0.25), (30, 0.5), (50, 0.75), (50, 1.0), (60, 1.0), (50, 1.5), (50, 2.0)])
def test_no_false_alarm_at_any_rate(fps, speed):
    clock = StepClock(fps, speed=speed)
    steps = []
    for _ in range(1200):
        steps.append(clock.steps(1 / 60))
        assert not clock.slowed(), f"pace {clock.pace:.3f} after {len(steps)} frames"
    assert sum(steps) == pytest.approx(20 * fps * speed, abs=1)
    assert max(steps) <= clock.max_steps_per_frame


def test_speed_above_the_display_rate_runs_several_steps_per_frame_but_no_more():
    clock = StepClock(50, speed=2.0)  # 100 steps/s on a 60 fps display
    assert clock.max_steps_per_frame == 2
    steps = run_frames(clock, [1000 / 60] * 600)
    assert sum(steps) in (999, 1000)
    slow = run_frames(clock, [40.0] * 200)  # 4 steps asked per frame, 2 run
    assert set(slow[5:]) == {2}
    assert clock.pace == pytest.approx(0.5, abs=0.03)


def test_the_display_rate_sets_the_steps_a_frame_may_run():
    pacing.set_display_fps(30)
    clock = StepClock(50)
    assert clock.max_steps_per_frame == 2
    steps = run_frames(clock, [1000 / 30] * 300)
    assert sum(steps) in (499, 500)
    assert not clock.slowed()


def test_pace_resets_with_the_speed():
    clock = StepClock(50)
    run_frames(clock, [27.0] * 200)
    assert clock.slowed()
    clock.slower()
    assert not clock.slowed()  # a new rate: no verdict until it was measured
    run_frames(clock, [27.0] * 200)  # 37.5 steps/s asked, 37 frames a second
    assert not clock.slowed()


class FakeClock:
    """pygame.time.Clock's two calls the loop makes, with a frame length the test sets."""

    def __init__(self, frame_ms: float) -> None:
        self.frame_ms = frame_ms

    def get_time(self) -> float:
        return self.frame_ms

    def tick(self, fps: int) -> float:
        return self.frame_ms


@pytest.mark.slow
def test_the_loop_shows_the_slowdown_in_the_hud_and_steps_evenly(make_app):
    h = make_app(env_id="MountainCar-v0", max_episode_steps=1000)  # no early end while a key is held
    seen: list = []
    draw = h.loop.renderer.draw
    h.loop.renderer.draw = lambda view, hud, help_entries=None: (seen.append(hud.pace), draw(view, hud, help_entries))
    h.loop.realtime = True
    h.loop.clock = FakeClock(1000 / 60)
    demo = h.mode
    assert demo.name == "demo"
    demo.clock.speed = 2.0  # 60 steps/s asked: one per 60 fps frame
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_RIGHT, mod=0, unicode="", scancode=0))
    h.frames(120)
    assert all(p == "" for p in seen)  # the machine keeps up
    start = demo.driver.length
    h.loop.clock.frame_ms = 25.0  # frames now take 25 ms: 40 a second
    per_frame = []
    for _ in range(300):
        before = demo.driver.length
        h.loop.frame()
        per_frame.append(demo.driver.length - before)
    assert per_frame == [1] * 300  # one step per frame, no catch-up bursts
    assert demo.driver.length - start == 300
    assert demo.clock.pace == pytest.approx(40 / 60, abs=0.02)
    assert seen[-1] == f"slowed to {100 * demo.clock.pace:.0f}%: the machine cannot keep up"
    h.loop.realtime = False  # simulated time never falls behind: no warning
    h.frames(1)
    assert seen[-1] == ""
