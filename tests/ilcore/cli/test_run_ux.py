"""Long commands behave: threads set once, TensorBoard/CSV logs, honest counts, Ctrl-C saves and resumes."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from ilcore.cli.main import main
from ilcore.runtime import configure_threads, default_threads


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    out = tmp_path_factory.mktemp("ux") / "rec"
    assert main(["record", "--env", "CartPole-v1", "--episodes", "5", "--out", str(out), "--json"]) == 0
    return out


def test_threads_flag_sets_torch_and_defaults_fit_the_machine(recording, monkeypatch, tmp_path, capsys):
    before = torch.get_num_threads()
    try:
        assert main(["info", str(recording), "--threads", "1", "--json"]) == 0
        assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
        assert 1 <= default_threads() <= (os.cpu_count() or 1)
        monkeypatch.setenv("WORLD_SIZE", "2")
        assert default_threads() == 1
        monkeypatch.delenv("WORLD_SIZE")
        assert default_threads(async_envs=True) == 1
        assert main(["info", str(recording), "--threads", "0"]) == 2
        assert "--threads must be >= 1" in capsys.readouterr().err
    finally:
        configure_threads(before)


@pytest.mark.slow
def test_logdir_writes_tensorboard_and_csv_with_one_scheme(recording, tmp_path, capsys):
    run, logs = tmp_path / "run", tmp_path / "logs"
    assert main(["train", "bc", "--data", str(recording), "--out", str(run), "--epochs", "3", "--hidden", "16",
                 "--logdir", str(logs), "--quiet", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    history = json.loads((run / "history.json").read_text())
    n_train, n_valid = history["train_transitions"], history["valid_transitions"]
    assert n_valid > 0 and n_train + n_valid == history["transitions"]
    assert f"trained on {n_train} transitions (validated on {n_valid} held out)" in printed
    assert any(p.name.startswith("events.out.tfevents") for p in logs.iterdir())
    rows = list(csv.DictReader((logs / "metrics.csv").open()))
    tags = {r["tag"] for r in rows}
    assert {"train/loss", "train/nll", "valid/loss", "train/samples_per_s"} <= tags
    valid = [float(r["value"]) for r in rows if r["tag"] == "valid/loss"]
    assert valid == pytest.approx(history["history"]["valid_loss"])  # the PNG's numbers are the logged ones
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logs))
    acc.Reload()
    assert [e.step for e in acc.Scalars("valid/loss")] == [1, 2, 3]


@pytest.mark.slow
def test_ctrl_c_saves_the_best_so_far_and_resume_continues(recording, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "ilcore", "train", "bc", "--data", str(recording), "--out", str(run),
           "--epochs", "100000", "--patience", "0", "--hidden", "16", "--quiet", "--threads", "1",
           "--checkpoint-every", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    # The first checkpoint says an epoch has finished: press Ctrl-C once, mid-run.
    while time.monotonic() < deadline and proc.poll() is None and not (run / "train_state.pt").exists():
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted: saved the best weights so far") and str(run) in last
    history = json.loads((run / "history.json").read_text())
    done = len(history["history"]["epoch"])
    assert done >= 1 and (run / "weights.pt").is_file() and (run / "train_state.pt").is_file()

    assert main(["train", "bc", "--resume", str(run), "--epochs", str(done + 2), "--quiet", "--threads", "1"]) == 0
    resumed = json.loads((run / "history.json").read_text())
    assert resumed["history"]["epoch"] == list(range(1, done + 3))
    assert resumed["history"]["train_loss"][:done] == history["history"]["train_loss"]


def test_checkpoint_every_and_resume_refusals(recording, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "bc", "--data", str(recording), "--out", str(run), "--epochs", "2", "--hidden", "8",
                 "--checkpoint-every", "1", "--quiet", "--threads", "1"]) == 0
    assert (run / "train_state.pt").is_file()
    capsys.readouterr()
    assert main(["train", "bc", "--resume", str(run), "--epochs", "2"]) == 2
    assert "already has 2 epochs" in capsys.readouterr().err
    assert main(["train", "bc", "--resume", str(tmp_path / "nothing"), "--epochs", "5"]) == 2
    assert "not a run to continue" in capsys.readouterr().err
    assert main(["train", "bc", "--epochs", "5"]) == 2
    assert "needs --data and --out" in capsys.readouterr().err


def test_image_shift_is_saved_with_the_run_and_resumed(recording, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "bc", "--data", str(recording), "--out", str(run), "--epochs", "1", "--hidden", "8",
                 "--image-shift", "3", "--checkpoint-every", "1", "--quiet", "--threads", "1"]) == 0
    doc = json.loads((run / "history.json").read_text())
    assert doc["args"]["image_shift"] == 3 and doc["config"]["image_shift"] == 3
    assert main(["train", "bc", "--resume", str(run), "--epochs", "2", "--quiet", "--threads", "1"]) == 0
    assert json.loads((run / "history.json").read_text())["config"]["image_shift"] == 3
    # A run written before --image-shift existed resumes with it off.
    doc = json.loads((run / "history.json").read_text())
    del doc["args"]["image_shift"]
    (run / "history.json").write_text(json.dumps(doc))
    assert main(["train", "bc", "--resume", str(run), "--epochs", "3", "--quiet", "--threads", "1"]) == 0
    assert json.loads((run / "history.json").read_text())["config"]["image_shift"] == 0
