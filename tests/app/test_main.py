"""`python -m app` as a person runs it: no display, and a killed session resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ilcore.data import open_recording
from tests.support.app_harness import ROOT, app_env



def test_without_a_display_it_says_so_and_points_to_simulate():
    proc = subprocess.run([sys.executable, "-m", "app"], cwd=ROOT, env=app_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--simulate" in lines[0] and "display" in lines[0]


def test_bad_keymap_is_one_line_error(tmp_path):
    keymap = tmp_path / "k.toml"
    keymap.write_text("[keys]\nleft = 7\n")
    proc = subprocess.run(
        [sys.executable, "-m", "app", "--simulate", "--out", str(tmp_path / "s"), "--keymap", str(keymap)],
        cwd=ROOT, env=app_env(), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: keymap entry 'left' maps to 7, which is not an action of Discrete(2)"


@pytest.mark.slow
def test_a_killed_session_resumes_without_losing_finished_episodes(tmp_path):
    out = tmp_path / "session"
    args = [sys.executable, "-m", "app", "--simulate", "--demos", "3", "--rounds", "1", "--episodes-per-round", "1",
            "--epochs", "3", "--max-episode-steps", "60"]
    proc = subprocess.Popen(args + ["--out", str(out)], cwd=ROOT, env=app_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = [p for p in (out / "episodes").glob("*.h5") if ".partial" not in p.name] if (out / "episodes").exists() else []
            if len(done) >= 2:
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.05)
        else:
            pytest.fail("the app recorded no episodes in time")
        os.kill(proc.pid, signal.SIGKILL)  # no chance to clean up
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = open_recording(out).episode_ids()
    assert len(before) >= 2
    resumed = subprocess.run(args[:4] + ["--resume", str(out)], cwd=ROOT, env=app_env(), capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    rec = open_recording(out)
    after = rec.episode_ids()
    assert after[: len(before)] == before  # what was saved before the kill is still there, unchanged
    demos = [e for e in rec.episodes() if e.meta.round == 0]
    assert len(demos) == 3  # the demo stage continued where it stopped instead of starting over
    assert any(e.meta.round == 1 for e in rec.episodes())
    state = json.loads((out / "app_state.json").read_text())
    assert state["evals"]  # policies were trained after resuming
    assert (out / "summary.json").exists()


def _children(pid):
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc to find child processes")
def test_the_trainer_process_exits_when_the_app_is_killed(tmp_path):
    args = [sys.executable, "-m", "app", "--simulate", "--demos", "1", "--rounds", "1", "--episodes-per-round", "1",
            "--epochs", "3", "--max-episode-steps", "60", "--out", str(tmp_path / "s")]
    proc = subprocess.Popen(args, cwd=ROOT, env=app_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while time.monotonic() < deadline and not workers:
            workers = [c for c in _children(proc.pid)
                       if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
            time.sleep(0.1)
        assert workers, "the app started no trainer process"
        os.kill(proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = killed + 2.0  # the worker watches its parent every 0.5 s, even mid-job
    while time.monotonic() < deadline and any(Path(f"/proc/{w}").exists() and
                                              b"spawn_main" in Path(f"/proc/{w}/cmdline").read_bytes() for w in workers):
        time.sleep(0.2)
    alive = [w for w in workers if Path(f"/proc/{w}").exists()
             and b"spawn_main" in Path(f"/proc/{w}/cmdline").read_bytes()]
    for w in alive:
        os.kill(w, signal.SIGKILL)
    assert not alive, "the trainer process outlived the killed app"


def _refusal(tmp_path, *args):
    out = tmp_path / "s"
    proc = subprocess.run([sys.executable, "-m", "app", "--out", str(out), *args], cwd=ROOT,
                          env=app_env(SDL_VIDEODRIVER="dummy"), capture_output=True, text=True, timeout=120)
    return proc, out


@pytest.mark.slow
@pytest.mark.parametrize("args, fragment", [
    (["--env", "FrozenLake-v1", "--env-kwargs", '{"render_mode": "ansi"}'], "render_mode 'ansi'"),
    (["--env", "HalfCheetah-v3"], "HalfCheetah-v3 cannot be made here"),
    (["--env", "Taxi-v3"], "Taxi-v4"),
    (["--env", "NoSuchEnv-v0"], "Unknown env id"),
    (["--env", "Blackjack-v1", "--keymap", "{keymap}"], "which is not an action of Discrete(2)"),
    (["--env-kwargs", "[1]"], "--env-kwargs must be a JSON object"),
    (["--env", "ilcore/Corridor-v0", "--env-kwargs", '{"horizon": 0}'], "horizon and half_width must be >= 1"),
    (["--fps", "0"], "--fps must be at least 1"),
    (["--max-episode-steps", "-3"], "--max-episode-steps must be at least 1"),
    (["--gamepad", "{pad}"], "gamepad"),
    (["--ensemble", "0"], "ensemble"),
])
def test_bad_envs_and_options_are_one_line_and_create_no_folder(tmp_path, args, fragment):
    keymap = tmp_path / "k.toml"
    keymap.write_text("[keys]\nleft = 7\n")
    pad = tmp_path / "pad.toml"
    pad.write_text("[gamepad]\ndeadzone = 'lots'\n")
    proc, out = _refusal(tmp_path, *[{"{keymap}": str(keymap), "{pad}": str(pad)}.get(a, a) for a in args])
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], proc.stderr
    assert not out.exists()  # nothing blocks the corrected command


@pytest.mark.slow
def test_after_a_refused_keymap_the_corrected_command_reuses_the_folder(tmp_path):
    keymap = tmp_path / "k.toml"
    keymap.write_text("[keys]\nleft = 7\n")
    proc, out = _refusal(tmp_path, "--simulate", "--keymap", str(keymap), "--frames", "1")
    assert proc.returncode == 2 and not out.exists()
    keymap.write_text("[keys]\nleft = 0\nright = 1\n")
    proc, out = _refusal(tmp_path, "--simulate", "--keymap", str(keymap), "--frames", "1")
    assert proc.returncode == 0, proc.stderr
    assert (out / "app_state.json").exists()


@pytest.mark.slow
def test_ilcore_corridor_opens_from_the_command_line_without_alsa_noise(tmp_path):
    proc, out = _refusal(tmp_path, "--env", "ilcore/Corridor-v0", "--frames", "3")
    assert proc.returncode == 0, proc.stderr
    assert "ALSA" not in proc.stderr and "error" not in proc.stderr.lower(), proc.stderr
    assert json.loads((out / "app_state.json").read_text())["settings"]["env_id"] == "ilcore/Corridor-v0"
