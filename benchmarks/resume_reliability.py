"""Damaged state files against `ilcore dagger --resume` and `python -m app --resume` (issue 13).

Builds one small CLI run and one small app session, then resumes copies of them with one state
file damaged at a time (raw garbage, every top-level key of each JSON file swapped for a wrong
value, a damaged policy and calibration file; corpus: tests/support/damaged_resume.py). Counts clean
refusals (exit 2, one `error:` line, nothing changed, no lock left), accepted resumes (the damage
left valid data) and failures (a traceback, several lines, a changed file, a lock left).

Usage: python benchmarks/resume_reliability.py [--per-file 40]
Writes benchmarks/results/resume_reliability.json.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-file", type=int, default=40, help="key swaps per JSON file")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from app.__main__ import main as app_main
    from ilcore.cli.main import main as ilcore_main
    from tests.support.damaged_resume import make_cases, run_case, summarize

    tmp = Path(tempfile.mkdtemp(prefix="resume-corpus-"))
    small = ["--epochs", "2", "--ensemble", "2", "--hidden", "8", "--eval-episodes", "1", "--calibration-steps", "50"]
    run = tmp / "run"
    assert ilcore_main(["dagger", "--env", "CartPole-v1", "--expert", "scripted", "--rounds", "1", "--episodes-per-round",
                        "1", "--demo-max-steps", "20", "--max-episode-steps", "30", *small, "--out", str(run), "--json"]) == 0
    session = tmp / "session"
    assert app_main(["--simulate", "--demos", "1", "--rounds", "1", "--episodes-per-round", "1", "--max-episode-steps",
                     "30", *small, "--out", str(session)]) == 0
    latest = lambda folder, sub: f"{sub}/{sorted(p.name for p in (folder / sub).iterdir())[-1]}"  # noqa: E731
    targets = {
        "ilcore dagger --resume": (run, ["dagger_run.json", "dagger_rounds.json", "recordings/dagger_state.json"],
                                   latest(run, "recordings/policies"),
                                   lambda w: ilcore_main(["dagger", "--resume", str(w), "--rounds", "1", "--json"])),
        "python -m app --resume": (session, ["app_state.json", "dagger_state.json", "dagger_rounds.json"],
                                   latest(session, "policies"),
                                   lambda w: app_main(["--simulate", "--resume", str(w), "--frames", "3"])),
    }
    rows = []
    for label, (folder, json_files, policy, resume) in targets.items():
        corpus = make_cases(folder, json_files, policy, per_file=args.per_file, seed=1)
        started = time.time()
        outcomes = [run_case(c, folder, tmp / "work", resume) for c in corpus]
        counts = summarize(outcomes)
        failures = [(o.case, o.kind, o.detail[-300:]) for o in outcomes if o.kind not in ("refused", "accepted")]
        rows.append({"command": label, "inputs": len(corpus), "refused": counts.get("refused", 0),
                     "accepted": counts.get("accepted", 0), "tracebacks": counts.get("traceback", 0),
                     "not_one_line": counts.get("not one line", 0), "modified": counts.get("modified", 0),
                     "lock_left": counts.get("lock left", 0), "seconds": round(time.time() - started, 1),
                     "failures": failures})
    print(f"{'command':<26} {'inputs':>6} {'refused':>7} {'accepted':>8} {'tracebacks':>10} {'modified':>8} {'lock left':>9}")
    for r in rows:
        print(f"{r['command']:<26} {r['inputs']:>6} {r['refused']:>7} {r['accepted']:>8} {r['tracebacks']:>10} "
              f"{r['modified']:>8} {r['lock_left']:>9}")
        for f in r["failures"]:
            print("   ", f)
    out = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
           "date": datetime.date.today().isoformat(), "load_average": os.getloadavg(), "rows": rows}
    (ROOT / "benchmarks" / "results" / "resume_reliability.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
