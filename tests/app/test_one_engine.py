"""The app is a shell over the one DAgger engine: same rule, same recipe, same counts as the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pygame
import pytest

from app.input.simulated import SimulatedPersonDevice
from app.loop import AppLoop
from app.modes.manager import ModeManager
from app.session import Session, SessionSettings
from ilcore.algos.dagger import DaggerRunConfig, run_dagger
from ilcore.labelers import ExpertLabeler
from ilcore.algos.dagger.options import DaggerOptions
from ilcore.cli.main import main as ilcore_main
from ilcore.data import open_recording
from tests.support.fakes import CartPolePD

from tests.support.app_harness import ROOT, app_env

# One set of options for both sides (the vocabulary they share).
OPTIONS = dict(query="ensemble", target_rate=0.2, ensemble=3, hidden=(16,), epochs=5, calibration_steps=200,
               query_mode="live", seed=3)
ROUNDS, CAP = 2, 60


def _recorded(path: Path) -> list[tuple]:
    """Every episode as (round, actions, actors, {step: (label action, reason)})."""
    out = []
    for ep in open_recording(path).episodes():
        labels = {s: (int(lab.action), lab.reason) for s, lab in sorted(ep.effective_labels().items())}
        out.append((ep.meta.round, ep.actions.tolist(), ep.actors.tolist(), labels))
    return out


def _run_app(out: Path) -> Session:
    pygame.init()
    session = Session(out, SessionSettings(demo_episodes=1, rounds=ROUNDS, episodes_per_round=1, max_episode_steps=CAP,
                                           eval_episodes=0, simulated=True, **OPTIONS))
    # The same scripted expert as the CLI's labeller, answering every question on the next frame.
    person = SimulatedPersonDevice(ExpertLabeler(CartPolePD()), reaction_frames=1, quit_at_summary=False,
                                   interventions=False)
    manager = ModeManager(session)
    loop = AppLoop(manager, [], None, keymap=None, fps=60, realtime=False, autopilot=person)
    manager.start()
    for _ in range(200_000):
        if manager.current.name == "watch":
            break
        loop.frame()
        if manager.current.name == "train":
            time.sleep(0.01)  # the background trainer works; the frame loop idles as in the app
    else:
        pytest.fail(f"the app did not reach watch (stuck in {manager.current.name})")
    session.writer.flush()
    return session


@pytest.mark.slow
def test_the_app_and_run_dagger_make_the_same_labels_reasons_and_query_rates(tmp_path):
    opts = DaggerOptions(**OPTIONS)
    cli = run_dagger(
        "CartPole-v1", ExpertLabeler(CartPolePD()), opts.gate(), tmp_path / "cli",
        DaggerRunConfig(rounds=ROUNDS, demo_episodes=1, episodes_per_round=1, max_episode_steps=CAP, eval_episodes=0,
                        query_mode=opts.query_mode, beta_mix=opts.beta_mix_schedule(), seed=opts.seed,
                        retrain=opts.retrain()),
    )
    session = _run_app(tmp_path / "app")
    try:
        app_rows, cli_rows = session.rounds.public(), [r.public() for r in cli.rounds]
        app_eps, cli_eps = _recorded(tmp_path / "app"), _recorded(tmp_path / "cli" / "recordings")
        assert [e[0] for e in app_eps] == [e[0] for e in cli_eps] == [0, 1, 2]
        for a, c in zip(app_eps, cli_eps):
            assert a == c  # the same steps, the same actors, the same labels with the same reasons
        assert any(reason == "uncertainty" for e in app_eps for _, reason in e[3].values())
        for a, c in zip(app_rows, cli_rows):
            assert (a["round"], a["labels"], a["query_rate"]) == (c["round"], c["labels"], c["query_rate"])
        assert len(app_rows) == len(cli_rows) == ROUNDS + 1
    finally:
        session.close()


def _info(path: Path, capsys) -> dict:
    assert ilcore_main(["info", str(path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_after_sigkill_and_resume_the_hud_counts_equal_ilcore_info(tmp_path, capsys):
    out = tmp_path / "session"
    args = [sys.executable, "-m", "app", "--simulate", "--demos", "1", "--rounds", "2", "--episodes-per-round", "3",
            "--query-mode", "deferred", "--epochs", "3", "--ensemble", "3", "--max-episode-steps", "60",
            "--eval-episodes", "0", "--calibration-steps", "100", "--out", str(out)]
    proc = subprocess.Popen(args, cwd=ROOT, env=app_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            n = len(open_recording(out).episode_ids()) if (out / "session.json").exists() else 0
            if n >= 3:  # the demo and two learner episodes: labels and deferred questions on disk
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.1)
        else:
            pytest.fail("the app recorded no learner episodes in time")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    pygame.init()
    session = Session(out, SessionSettings(simulated=True), resume=True)
    try:
        info = _info(out, capsys)
        totals = session.totals()
        hud = ModeManager(session).hud(60.0, [])
        assert hud.labels == totals.labels == sum(info["labels_by_source"].values()) > 0
        assert totals.episodes == info["episodes"]
        assert round(session.human_seconds, 3) == pytest.approx(info["dagger"]["human_seconds"], abs=1e-3)
        assert len(session.controller.review_queue()) == info["dagger"]["queued"] > 0
        rows = {r["round"]: r for r in info["dagger"]["rounds"]}
        assert session.round == 1 and totals.round_learner_steps == rows[1]["learner_steps"] > 0
        assert totals.round_asked == rows[1]["asked"] and hud.query_rate == rows[1]["query_rate"]
        assert session.recovered is not None and session.recovered.queued == info["dagger"]["queued"]
    finally:
        session.close()


@pytest.mark.slow
def test_simulated_session_asks_at_the_target_rate_from_the_first_round(tmp_path):
    out = tmp_path / "session"
    proc = subprocess.run([sys.executable, "-m", "app", "--simulate", "--target-rate", "0.1", "--out", str(out)],
                          cwd=ROOT, env=app_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((out / "summary.json").read_text())["rounds"]
    assert [r["round"] for r in rows] == [0, 1, 2, 3]
    assert set(rows[0]) == {"round", "labels", "human_seconds", "mean_return", "query_rate"}
    rates = [r["query_rate"] for r in rows[1:]]
    assert all(0.07 <= q <= 0.13 for q in rates), rates  # within +-30% of the target from round 1 on
