"""``ilcore info PATH... [--json]``: what a recording holds."""

from __future__ import annotations

import argparse
from typing import Any

from ilcore.algos.dagger.resume import scan_session
from ilcore.cli.main import add_json_flag
from ilcore.data import open_recording
from ilcore.spaces import space_from_json


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("info", help="summarise recordings (episodes, steps, labels, returns)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="session folder(s) or packed file(s)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> dict[str, Any]:
    rec = open_recording(args.paths)
    info = rec.info()
    # The session's progress counted the way the app's HUD and `ilcore dagger` count it (one code path).
    info["dagger"] = scan_session(rec, observations=False).to_json()
    if not args.json:
        r = info["returns"]
        rows = [
            ("env", info["env_id"]),
            ("observation space", str(space_from_json(info["observation_space"]))),
            ("action space", str(space_from_json(info["action_space"]))),
            ("episodes", f"{info['episodes']} ({info['incomplete_episodes']} incomplete)"),
            ("steps", str(info["steps"])),
            ("return", "-" if r["mean"] is None else f"mean {r['mean']:.3g}, min {r['min']:.3g}, max {r['max']:.3g}"),
            ("labels by source", _counts(info["labels_by_source"])),
            ("labels by reason", _counts(info["labels_by_reason"])),
            ("human seconds", f"{info['dagger']['human_seconds']:.1f}"),
            ("queued for review", str(info["dagger"]["queued"])),
        ]
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            print(f"{key:<{width}}  {value}")
    return info


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"
