"""`ilcore dagger --resume` and `python -m app --resume` on damaged state files: one line or a resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from ilcore.cli.main import main as ilcore_main

from tests.support.damaged_resume import make_cases, quiet_env, run_case, summarize

BAD = ("traceback", "not one line", "modified", "lock left")


def _latest_policy(folder: Path, sub: str) -> str:
    return f"{sub}/{sorted(p.name for p in (folder / sub).iterdir())[-1]}"


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    code = ilcore_main(["dagger", "--env", "CartPole-v1", "--expert", "scripted", "--rounds", "1",
                        "--episodes-per-round", "1", "--demo-max-steps", "20", "--max-episode-steps", "30",
                        "--epochs", "2", "--ensemble", "2", "--hidden", "8", "--eval-episodes", "1",
                        "--calibration-steps", "50", "--out", str(out), "--json"])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def app_session(tmp_path_factory) -> Path:
    quiet_env()
    from app.__main__ import main as app_main

    out = tmp_path_factory.mktemp("app") / "session"
    code = app_main(["--simulate", "--demos", "1", "--rounds", "1", "--episodes-per-round", "1",
                     "--max-episode-steps", "30", "--epochs", "2", "--ensemble", "2", "--hidden", "8",
                     "--eval-episodes", "1", "--calibration-steps", "50", "--out", str(out)])
    assert code == 0
    return out


@pytest.mark.slow
def test_a_damaged_dagger_run_resumes_or_is_refused_in_one_line(cli_run, tmp_path):
    corpus = make_cases(cli_run, ["dagger_run.json", "dagger_rounds.json", "recordings/dagger_state.json"],
                   _latest_policy(cli_run, "recordings/policies"), per_file=10)
    outcomes = [run_case(c, cli_run, tmp_path / "work",
                         lambda w: ilcore_main(["dagger", "--resume", str(w), "--rounds", "1", "--json"]))
                for c in corpus]
    bad = [o for o in outcomes if o.kind in BAD]
    assert not bad, bad[:5]
    assert summarize(outcomes).get("refused", 0) >= len(corpus) // 2


@pytest.mark.slow
def test_a_damaged_app_session_resumes_or_is_refused_in_one_line(app_session, tmp_path):
    from app.__main__ import main as app_main

    corpus = make_cases(app_session, ["app_state.json", "dagger_state.json", "dagger_rounds.json"],
                   _latest_policy(app_session, "policies"), per_file=6)
    outcomes = [run_case(c, app_session, tmp_path / "work",
                         lambda w: app_main(["--simulate", "--resume", str(w), "--frames", "3"]))
                for c in corpus]
    bad = [o for o in outcomes if o.kind in BAD]
    assert not bad, bad[:5]
    assert summarize(outcomes).get("refused", 0) >= len(corpus) // 3
