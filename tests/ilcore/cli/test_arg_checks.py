"""Out-of-range arguments and unsafe output folders are refused while parsing or before any
work, with one ``error:`` line and exit code 2, and nothing is written."""

from __future__ import annotations

import argparse
import json

import pytest

from ilcore.cli import args as cli_args
from ilcore.cli.main import main
from tests.support.recordings import make_session


def _snapshot(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in folder.rglob("*"))


BAD = [
    ["record", "--env", "CartPole-v1", "--noise", "-5"],
    ["record", "--env", "CartPole-v1", "--noise", "nan"],
    ["record", "--env", "CartPole-v1", "--noise", "inf"],
    ["record", "--env", "CartPole-v1", "--episodes", "0"],
    ["record", "--env", "CartPole-v1", "--episodes", "-3"],
    ["record", "--env", "CartPole-v1", "--seed", "-1"],
    ["eval", "--policy", "RUN", "--num-envs", "0"],
    ["eval", "--policy", "RUN", "--episodes", "0"],
    ["eval", "--policy", "RUN", "--seed", "-2"],
    ["train", "bc", "--data", "D", "--out", "O", "--epochs", "0"],
    ["train", "bc", "--data", "D", "--out", "O", "--ensemble", "0"],
    ["train", "bc", "--data", "D", "--out", "O", "--batch-size", "0"],
    ["train", "bc", "--data", "D", "--out", "O", "--lr", "0"],
    ["train", "bc", "--data", "D", "--out", "O", "--lr", "-1e-3"],
    ["train", "bc", "--data", "D", "--out", "O", "--weight-decay", "-1"],
    ["train", "bc", "--data", "D", "--out", "O", "--valid-fraction", "1"],
    ["train", "bc", "--data", "D", "--out", "O", "--valid-fraction", "-0.1"],
    ["train", "bc", "--data", "D", "--out", "O", "--state-noise", "-1"],
    ["train", "bc", "--data", "D", "--out", "O", "--image-shift", "-1"],
    ["train", "bc", "--data", "D", "--out", "O", "--patience", "-1"],
    ["train", "bc", "--data", "D", "--out", "O", "--eval-episodes", "0"],
    ["train", "bc", "--data", "D", "--out", "O", "--eval-every", "-1"],
    ["train", "bc", "--data", "D", "--out", "O", "--epochs", "many"],
]


@pytest.mark.parametrize("argv", BAD, ids=[" ".join(a[-2:]) + f" ({a[0]})" for a in BAD])
def test_out_of_range_arguments_are_refused_while_parsing(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: argument ") and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_the_type_helpers_accept_the_edges():
    assert cli_args.positive_int("1") == 1
    assert cli_args.non_negative_int("0") == 0
    assert cli_args.non_negative_float("0") == 0.0
    assert cli_args.unit_float("1") == 1.0
    assert cli_args.fraction("0") == 0.0
    for fn, text in ((cli_args.unit_float, "1.01"), (cli_args.fraction, "1"), (cli_args.positive_float, "0"),
                     (cli_args.positive_int, "2.5")):
        with pytest.raises(argparse.ArgumentTypeError):
            fn(text)


@pytest.mark.parametrize("where", ["the recording", "inside the recording", "its episodes folder"])
def test_train_bc_refuses_to_write_into_a_recording(tmp_path, capsys, where):
    data = make_session(tmp_path / "data", [0, 1])
    out = {"the recording": data, "inside the recording": data / "run",
           "its episodes folder": data / "episodes"}[where]
    before = _snapshot(data)
    rc = main(["train", "bc", "--data", str(data), "--out", str(out), "--epochs", "1", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1
    assert _snapshot(data) == before


def test_train_bc_refuses_a_foreign_non_empty_folder_and_a_file(tmp_path, capsys):
    data = make_session(tmp_path / "data", [0, 1])
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"meow")
    (tmp_path / "afile").write_text("x")
    for out in (tmp_path / "photos", tmp_path / "afile"):
        rc = main(["train", "bc", "--data", str(data), "--out", str(out), "--epochs", "1", "--quiet"])
        assert rc == 2 and capsys.readouterr().err.startswith("error:")
    assert sorted(p.name for p in (tmp_path / "photos").iterdir()) == ["cat.jpg"]


@pytest.mark.slow
def test_train_bc_may_overwrite_an_earlier_run(tmp_path, capsys):
    data = make_session(tmp_path / "data", [0, 1, 2])
    run = tmp_path / "run"
    for _ in range(2):
        assert main(["train", "bc", "--data", str(data), "--out", str(run), "--epochs", "1", "--hidden", "8",
                     "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["epochs_run"] == 1
    assert {"config.json", "weights.pt", "history.json"} <= {p.name for p in run.iterdir()}
