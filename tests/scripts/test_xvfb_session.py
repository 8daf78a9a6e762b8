"""scripts/xvfb_session.py without an X server: its help, and what it says when tools are missing.

The session itself needs Xvfb and xdotool; it is run by hand (docs/app.md), not in CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "xvfb_session.py"


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=60)


def test_help_names_the_session_options() -> None:
    proc = run(["--help"], dict(os.environ))
    assert proc.returncode == 0
    for option in ("--out", "--shots", "--quit-by", "--max-episode-steps"):
        assert option in proc.stdout


def test_missing_tools_are_named_with_the_apt_command(tmp_path: Path) -> None:
    # no DISPLAY and nothing on PATH: Xvfb, xdotool and xwininfo are all missing
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PATH"] = str(tmp_path)
    proc = run(["--out", str(tmp_path / "s")], env)
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error: missing ")
    for tool in ("xdotool (apt package xdotool)", "xwininfo (apt package x11-utils)", "Xvfb (apt package xvfb)"):
        assert tool in line
    assert "apt-get install -y xvfb xdotool x11-utils imagemagick" in line
    assert not (tmp_path / "s").exists()  # refused before anything is created
