"""``ilcore export minari|robomimic|policy``, ``ilcore import minari`` and ``ilcore pack SRC DST``."""

from __future__ import annotations

import argparse
from typing import Any

from ilcore.cli.lfo import extend_import_parser
from ilcore.cli.main import add_json_flag
from ilcore.data import open_recording, pack
from ilcore.data.convert import export_minari, import_minari
from ilcore.data.robomimic import export_robomimic


def register(subparsers: Any) -> None:
    exp = subparsers.add_parser("export", help="write a recording or a policy in another format")
    targets = exp.add_subparsers(dest="format", metavar="FORMAT", required=True)
    mi = targets.add_parser("minari", help="a recording as a Minari dataset")
    mi.add_argument("paths", nargs="+", metavar="PATH", help="session folder(s) or packed file(s)")
    mi.add_argument("--dataset-id", required=True, help="Minari dataset id, e.g. ilcore/cartpole-expert-v0")
    mi.add_argument("--out", default=None, metavar="DIR",
                    help="Minari datasets root (default: MINARI_DATASETS_PATH or ~/.minari/datasets)")
    add_json_flag(mi)
    mi.set_defaults(func=run_export)

    rm = targets.add_parser("robomimic", help="a recording as one robomimic HDF5 file",
                            description="Write data/demo_N/{obs,next_obs,actions,rewards,dones}, the env_args "
                                        "attribute and mask/train, mask/valid splits, as robomimic reads them.")
    rm.add_argument("paths", nargs="+", metavar="PATH", help="session folder(s) or packed file(s)")
    rm.add_argument("--out", required=True, metavar="FILE", help="the .hdf5 file to write")
    rm.add_argument("--actions", choices=("executed", "label"), default="executed",
                    help="the actions the env was given, or each step's latest label (every step needs one)")
    rm.add_argument("--valid-fraction", type=float, default=0.1, help="share of demos in mask/valid")
    rm.add_argument("--seed", type=int, default=0, help="seeds the train/valid split")
    add_json_flag(rm)
    rm.set_defaults(func=run_export_robomimic)

    pol = targets.add_parser("policy", help="a trained policy as a file that runs without ilcore",
                             description="Export a policy (ensembles and CNN encoders included) as TorchScript: "
                                         "torch.jit.load(FILE) maps observation tensors to the deterministic action.")
    pol.add_argument("run", metavar="RUN", help="checkpoint folder written by `ilcore train`")
    pol.add_argument("--format", dest="export_format", choices=("torchscript",), default="torchscript",
                     help="file format")
    pol.add_argument("--out", required=True, metavar="FILE", help="the file to write, e.g. policy.pt")
    add_json_flag(pol)
    pol.set_defaults(func=run_export_policy)

    imp = subparsers.add_parser("import", help="turn a dataset of another format into a session folder")
    imp.add_argument("format", choices=["minari"], help="source format")
    imp.add_argument("source", metavar="ID-or-PATH", help="a local Minari dataset id or a dataset folder")
    imp.add_argument("--out", required=True, metavar="PATH", help="new session folder to create")
    imp.add_argument("--env-id", default=None, help="env id to record (default: the dataset's)")
    add_json_flag(imp)
    imp.set_defaults(func=run_import)

    extend_import_parser(imp, run_import)

    pk = subparsers.add_parser("pack", help="pack a session into one self-contained HDF5 file")
    pk.add_argument("src", nargs="+", metavar="SRC", help="session folder(s) or packed file(s)")
    pk.add_argument("dst", metavar="DST", help="the file to create")
    add_json_flag(pk)
    pk.set_defaults(func=run_pack)


def run_export(args: argparse.Namespace) -> dict[str, Any]:
    path = export_minari(args.paths, args.dataset_id, out_dir=args.out)
    if not args.json:
        print(f"wrote Minari dataset {args.dataset_id} to {path}")
    return {"dataset_id": args.dataset_id, "path": str(path)}


def run_export_robomimic(args: argparse.Namespace) -> dict[str, Any]:
    src = args.paths if len(args.paths) > 1 else args.paths[0]
    out = export_robomimic(src, args.out, actions=args.actions, valid_fraction=args.valid_fraction, seed=args.seed)
    if not args.json:
        print(f"wrote {out['demos']} demos ({out['total']} steps; {out['train']} train, {out['valid']} valid) "
              f"to {out['out']}")
    return out


def run_export_policy(args: argparse.Namespace) -> dict[str, Any]:
    from ilcore.policies import Policy
    from ilcore.policies.export import export_policy

    policy = Policy.load(args.run)
    path = export_policy(policy, args.out, args.export_format)
    if not args.json:
        print(f"wrote {args.export_format} policy to {path} (load with torch.jit.load; spec in its ilcore.json)")
    return {"out": str(path), "format": args.export_format, "ensemble": policy.ensemble}


def run_import(args: argparse.Namespace) -> dict[str, Any]:
    path = import_minari(args.source, args.out, env_id=args.env_id)
    info = open_recording(path).info()
    if not args.json:
        print(f"imported {info['episodes']} episodes ({info['steps']} steps) into {path}")
    return {"path": str(path), "episodes": info["episodes"], "steps": info["steps"]}


def run_pack(args: argparse.Namespace) -> dict[str, Any]:
    src = args.src if len(args.src) > 1 else args.src[0]
    path = pack(src, args.dst)
    info = open_recording(path).info()
    if not args.json:
        print(f"packed {info['episodes']} episodes ({info['steps']} steps) into {path}")
    return {"path": str(path), "episodes": info["episodes"], "steps": info["steps"]}
