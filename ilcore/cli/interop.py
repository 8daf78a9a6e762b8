"""``ilcore export minari``, ``ilcore import minari`` and ``ilcore pack SRC DST``."""

from __future__ import annotations

import argparse
from typing import Any

from ilcore.cli.main import add_json_flag


def register(subparsers: Any) -> None:
    exp = subparsers.add_parser("export", help="write a recording in another format")
    exp.add_argument("format", choices=["minari"], help="target format")
    exp.add_argument("paths", nargs="+", metavar="PATH", help="session folder(s) or packed file(s)")
    exp.add_argument("--dataset-id", required=True, help="Minari dataset id, e.g. ilcore/cartpole-expert-v0")
    exp.add_argument("--out", default=None, metavar="DIR",
                     help="Minari datasets root (default: MINARI_DATASETS_PATH or ~/.minari/datasets)")
    add_json_flag(exp)
    exp.set_defaults(func=run_export)

    imp = subparsers.add_parser("import", help="turn a dataset of another format into a session folder")
    imp.add_argument("format", choices=["minari"], help="source format")
    imp.add_argument("source", metavar="ID-or-PATH", help="a local Minari dataset id or a dataset folder")
    imp.add_argument("--out", required=True, metavar="PATH", help="new session folder to create")
    imp.add_argument("--env-id", default=None, help="env id to record (default: the dataset's)")
    add_json_flag(imp)
    imp.set_defaults(func=run_import)

    from ilcore.cli.lfo import extend_import_parser

    extend_import_parser(imp, run_import)

    pk = subparsers.add_parser("pack", help="pack a session into one self-contained HDF5 file")
    pk.add_argument("src", nargs="+", metavar="SRC", help="session folder(s) or packed file(s)")
    pk.add_argument("dst", metavar="DST", help="the file to create")
    add_json_flag(pk)
    pk.set_defaults(func=run_pack)


def run_export(args: argparse.Namespace) -> dict[str, Any]:
    from ilcore.data.convert import export_minari

    path = export_minari(args.paths, args.dataset_id, out_dir=args.out)
    if not args.json:
        print(f"wrote Minari dataset {args.dataset_id} to {path}")
    return {"dataset_id": args.dataset_id, "path": str(path)}


def run_import(args: argparse.Namespace) -> dict[str, Any]:
    from ilcore.data import open_recording
    from ilcore.data.convert import import_minari

    path = import_minari(args.source, args.out, env_id=args.env_id)
    info = open_recording(path).info()
    if not args.json:
        print(f"imported {info['episodes']} episodes ({info['steps']} steps) into {path}")
    return {"path": str(path), "episodes": info["episodes"], "steps": info["steps"]}


def run_pack(args: argparse.Namespace) -> dict[str, Any]:
    from ilcore.data import open_recording, pack

    src = args.src if len(args.src) > 1 else args.src[0]
    path = pack(src, args.dst)
    info = open_recording(path).info()
    if not args.json:
        print(f"packed {info['episodes']} episodes ({info['steps']} steps) into {path}")
    return {"path": str(path), "episodes": info["episodes"], "steps": info["steps"]}
