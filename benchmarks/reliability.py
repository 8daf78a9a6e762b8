"""How ilcore's readers hold up against malformed recordings (issue 13).

Inputs: the named corpus of tests/support/damaged_recordings.py plus --random seeded random mutations
(an episode attribute, a session.json field, an overlay record, a dataset, or bytes). Two
levels, both under a 3 GiB address-space limit and a timeout:

- library: every input through info / episodes / load_transitions (labels and actions) / pack,
  in one child process; any exception that is not a UserError counts as a traceback;
- CLI: real `python -m ilcore` processes (info for a share of the inputs; pack, export minari,
  train bc, train bco and import minari for a sample), checking exit code 2, exactly one
  `error:` line, no "Traceback", no timeout, no input file modified (sha256 before/after).

    python benchmarks/reliability.py [--random 400] [--cli-every 3] [--sample 8]

Writes benchmarks/results/reliability.json and prints a table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import damaged_recordings as corpus  # noqa: E402

MEMORY_LIMIT = 3 << 30


def random_cases(n: int, seed: int) -> list[corpus.Case]:
    """Seeded random mutations of the base session, one per case."""
    import h5py
    import numpy as np

    rng = np.random.default_rng(seed)
    hostile = [None, True, -1, 0, 2**31, 10**30, -7, 1.5, float("nan"), float("inf"), "", "x", "1", [1], [], {},
               {"type": "Box"}, [[[]]], "ilcore-session", 10**15]
    h5_values = [-1, 0, 2**62, -2**63, 1.5, float("nan"), "x", "", "[1]", "{}", "{\"a\": [", True,
                 np.array([1, 2]), np.array([], dtype="f4"), b"\xff", 10**15]
    out: list[corpus.Case] = []
    for i in range(n):
        kind = i % 5
        pick = int(rng.integers(1 << 30))

        def mutate(s: Path, kind: int = kind, pick: int = pick) -> None:
            r = np.random.default_rng(pick)
            if kind == 0:
                meta = json.loads((s / "session.json").read_text())
                key = str(r.choice(["format", "schema_version", "env_id", "env_kwargs", "observation_space",
                                    "action_space"]))
                value = hostile[int(r.integers(len(hostile)))]
                if key.endswith("space") and r.random() < 0.6:
                    sub = str(r.choice(list(meta[key])))
                    meta[key][sub] = value
                else:
                    meta[key] = value
                (s / "session.json").write_text(json.dumps(meta))
            elif kind == 1:
                name = str(r.choice(["schema_version", "length", "seed", "round", "attrs", "env_kwargs", "terminated",
                                     "observation_only", "format", "observation_space", "action_space"]))
                with h5py.File(s / corpus.EPISODE, "a") as f:
                    f.attrs[name] = h5_values[int(r.integers(len(h5_values)))]
            elif kind == 2:
                rec = dict(corpus.GOOD_RECORD)
                key = str(r.choice(list(rec)))
                rec[key] = hostile[int(r.integers(len(hostile)))]
                with open(s / "labels.jsonl", "a") as fh:
                    fh.write(json.dumps(rec) + "\n")
            elif kind == 3:
                name = str(r.choice(["observations", "actions", "actors", "rewards", "wall_time", "labels/step",
                                     "labels/action", "labels/source", "labels/reason", "labels/time"]))
                shape = (int(r.integers(0, 12)),) + ((int(r.integers(1, 6)),) if r.random() < 0.5 else ())
                dtype = str(r.choice(["f4", "f8", "i8", "u1", "S3"]))
                with h5py.File(s / corpus.EPISODE, "a") as f:
                    del f[name]
                    if r.random() < 0.3:  # declared, never written
                        f.create_dataset(name, shape=(int(10 ** r.integers(6, 11)),) + shape[1:], dtype=dtype)
                    else:
                        f.create_dataset(name, data=np.full(shape, int(r.integers(-2, 300))).astype(dtype))
            else:
                p = s / corpus.EPISODE
                data = bytearray(p.read_bytes())
                for _ in range(int(r.integers(1, 6))):
                    data[int(r.integers(len(data)))] ^= int(r.integers(1, 256))
                p.write_bytes(bytes(data))

        def build(s: Path, mutate: Any = mutate) -> list[Path]:
            mutate(s)
            return [s]

        out.append(corpus.Case(f"random {['session.json', 'attribute', 'overlay', 'dataset', 'bytes'][kind]} {i}",
                               build, crafted_size=kind == 3))
    return out


def library_level(cases: list[corpus.Case], work: Path) -> list[dict[str, Any]]:
    """Run in a child (memory-limited) process: python benchmarks/reliability.py --child ..."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    base = corpus.make_base_session(work / "base")
    results = []
    for i, c in enumerate(cases):
        root = work / f"lib_{i:04d}"
        root.mkdir()
        t0 = time.perf_counter()
        r = corpus.run_case(c, base, root)
        r["seconds"] = time.perf_counter() - t0
        results.append(r)
    return results


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def cli_run(case: corpus.Case, base: Path, root: Path, command: str, timeout: float) -> dict[str, Any]:
    s = corpus.make_fresh_copy(base, root / "s")
    paths = [str(p) for p in case.build(s)]
    argv = {
        "info": ["info", *paths],
        "pack": ["pack", *paths, str(root / "out.h5")],
        "export": ["export", "minari", *paths, "--dataset-id", "x/y-v0", "--out", str(root / "minari")],
        "train bc": ["train", "bc", "--data", *paths, "--out", str(root / "run"), "--epochs", "1", "--quiet"],
        "train bco": ["train", "bco", "--data", *paths, "--out", str(root / "run"), "--iterations", "1", "--epochs",
                      "1", "--idm-epochs", "1", "--pre-demo-steps", "50", "--quiet"],
    }[command]
    before = corpus.snapshot([root])
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "ilcore", *argv], cwd=ROOT, capture_output=True, text=True,
                              timeout=timeout, preexec_fn=_limit, env={**os.environ, "PYTHONPATH": str(ROOT)})
        code, err, hang = proc.returncode, proc.stderr, False
    except subprocess.TimeoutExpired:
        code, err, hang = None, "", True
    after = corpus.snapshot([root])
    modified = [k for k in before if before.get(k) != after.get(k)]
    errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    if hang:
        outcome = "hang"
    elif "Traceback" in err or (code not in (0, 2)):
        outcome = "traceback"
    elif code == 2 and len(errors) == 1:
        outcome = "refused"
    elif code == 0:
        outcome = "accepted"
    else:
        outcome = "unclear"
    return {"name": case.name, "command": command, "outcome": outcome, "exit": code, "modified": modified,
            "seconds": time.perf_counter() - t0, "stderr_tail": err[-300:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--random", type=int, default=400, help="random mutations on top of the named corpus")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cli-every", type=int, default=3, help="run `ilcore info` on every k-th input")
    ap.add_argument("--sample", type=int, default=8, help="inputs per heavier CLI command")
    ap.add_argument("--child", nargs=2, metavar=("WORK", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    cases = corpus.CASES + random_cases(args.random, args.seed)
    if args.child:
        res = library_level(cases, Path(args.child[0]))
        Path(args.child[1]).write_text(json.dumps(res))
        return

    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "lib").mkdir()
        out = tmp_path / "lib.json"
        subprocess.run([sys.executable, __file__, "--random", str(args.random), "--seed", str(args.seed),
                        "--child", str(tmp_path / "lib"), str(out)], check=True, timeout=3600)
        lib = json.loads(out.read_text())

        base = corpus.make_base_session(tmp_path / "base")
        cli: list[dict[str, Any]] = []
        named = corpus.CASES
        plan = [(c, "info") for c in cases[:: args.cli_every]]
        pick = [c for c in named if c.crafted_size][: args.sample // 2] + named[:: max(1, len(named) // args.sample)][
            : args.sample - args.sample // 2]
        for command in ("pack", "export", "train bc"):
            plan += [(c, command) for c in pick]
        plan += [(c, "train bco") for c in pick[:3]]
        for i, (c, command) in enumerate(plan):
            root = tmp_path / f"cli_{i:04d}"
            root.mkdir()
            cli.append(cli_run(c, base, root, command, timeout=180))

    def tally(rows: list[dict[str, Any]]) -> dict[str, int]:
        return {
            "inputs": len(rows),
            "clean_refusals": sum(r["outcome"] == "refused" for r in rows),
            "accepted": sum(r["outcome"] == "accepted" for r in rows),
            "tracebacks": sum(r["outcome"] in ("crash", "traceback", "unclear") for r in rows),
            "hangs": sum(r["outcome"] == "hang" for r in rows),
            "files_modified": sum(bool(r["modified"]) for r in rows),
        }

    by_command = {cmd: tally([r for r in cli if r["command"] == cmd]) for cmd in dict.fromkeys(r["command"] for r in cli)}
    import h5py
    import numpy as np

    result = {
        "benchmark": "reliability",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"processor": platform.machine(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "h5py": h5py.__version__, "numpy": np.__version__},
        "memory_limit_bytes": MEMORY_LIMIT,
        "named_cases": len(named),
        "random_cases": args.random,
        "library": tally(lib),
        "library_accepted": sorted(r["name"] for r in lib if r["outcome"] == "accepted"),
        "library_max_seconds": max(r["seconds"] for r in lib),
        "cli": by_command,
        "cli_runs": len(cli),
        "failures": [r for r in lib + cli if r["outcome"] in ("crash", "traceback", "unclear", "hang") or r["modified"]],
        "seconds": time.perf_counter() - t_start,
    }
    print(f"{'level':<14}{'inputs':>8}{'refused':>9}{'accepted':>10}{'traceback':>11}{'hang':>6}{'modified':>10}")
    for name, t in [("library", result["library"])] + [(f"cli {k}", v) for k, v in by_command.items()]:
        print(f"{name:<14}{t['inputs']:>8}{t['clean_refusals']:>9}{t['accepted']:>10}{t['tracebacks']:>11}"
              f"{t['hangs']:>6}{t['files_modified']:>10}")
    path = ROOT / "benchmarks" / "results" / "reliability.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
