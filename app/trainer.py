"""Background training: one long-lived worker process, jobs in, progress and checkpoints out.

Training runs in a separate process (spawn context) because in a thread the GIL would stall
frames. The worker is started once and kept, so torch is imported once, while the person is still
demonstrating. Each job reads the session folder as it is on disk (finished episodes are atomic
files, so a reader never sees a half-written one), trains a policy, evaluates it, saves it under
``<session>/policies/v<version>`` and reports back. The app polls :meth:`TrainerClient.poll`
once per frame; it never blocks.

Messages from the worker (plain dicts, so they pickle cheaply):
    {"kind": "progress", "version": v, "epoch": e, "epochs": E, "train_loss": x, "valid_loss": y}
    {"kind": "done", "version": v, "path": str, "valid_loss": y, "eval_return": r, "eval_ci95": c,
     "labels": n, "seconds": s}
    {"kind": "error", "version": v, "message": str}
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_module
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TrainJob:
    """What to train. ``version`` numbers the checkpoint the job will publish."""

    session_dir: str
    version: int
    env_id: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int = 30
    ensemble: int = 5
    hidden: tuple[int, ...] = (64, 64)
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0
    eval_episodes: int = 5  # 0 skips evaluation


@dataclass
class TrainingStatus:
    """What the HUD shows about training; updated from worker messages."""

    running: bool = False
    version: int | None = None
    epoch: int = 0
    epochs: int = 0
    train_loss: float | None = None
    valid_loss: float | None = None
    message: str = ""

    @property
    def progress(self) -> float:
        return 0.0 if self.epochs <= 0 else min(1.0, self.epoch / self.epochs)


def _worker_main(jobs: Any, results: Any) -> None:
    import torch

    torch.set_num_threads(1)  # the app and the person share this machine; one core is enough for small nets
    parent = mp.parent_process()
    while True:
        try:
            job_dict = jobs.get(timeout=1.0)
        except queue_module.Empty:
            # A killed app never sends the stop message: leave with it instead of idling forever.
            if parent is not None and not parent.is_alive():
                return
            continue
        if job_dict is None:
            return
        job = TrainJob(**job_dict)
        try:
            results.put(_run_job(job, results))
        except Exception as exc:  # noqa: BLE001 - report anything; the app shows it and carries on
            message = str(exc) if str(exc) else type(exc).__name__
            results.put({"kind": "error", "version": job.version, "message": message, "trace": traceback.format_exc()})


def _run_job(job: TrainJob, results: Any) -> dict[str, Any]:
    from ilcore.algos.bc import BCConfig, EpochReport, train_bc
    from ilcore.data import load_transitions

    started = time.time()
    config = BCConfig(
        epochs=job.epochs, batch_size=job.batch_size, lr=job.lr, ensemble=job.ensemble,
        hidden=tuple(job.hidden), seed=job.seed, valid_fraction=0.15, patience=max(5, job.epochs // 3),
    )
    # Every effective label so far (demos, answered queries, interventions, review), as DAgger retrains.
    data = load_transitions([Path(job.session_dir)], labels="label", valid_fraction=config.valid_fraction, seed=job.seed)
    if len(data) == 0:
        raise ValueError("there are no labels to train on yet; demonstrate first")

    def on_epoch(report: EpochReport) -> None:
        results.put({
            "kind": "progress", "version": job.version, "epoch": report.epoch, "epochs": report.epochs,
            "train_loss": float(report.train_loss),
            "valid_loss": None if report.valid_loss is None else float(report.valid_loss),
        })

    result = train_bc(data, config, progress=False, callback=on_epoch)
    policy = result.policy
    policy.version = job.version
    out = Path(job.session_dir) / "policies" / f"v{job.version:03d}"
    policy.save(out)
    valid = [v for v in result.history.get("valid_loss", []) if v == v]  # drop NaN (no split)
    eval_return = eval_ci = None
    if job.eval_episodes > 0:
        from ilcore.eval import evaluate

        ev = evaluate(policy, job.env_id, episodes=job.eval_episodes, seed=10_000 + job.version, env_kwargs=job.env_kwargs or None, num_envs=1)
        eval_return = float(ev.mean_return)
        eval_ci = None if ev.ci95 is None else float(ev.ci95[1] - ev.ci95[0]) / 2.0  # half-width
    return {
        "kind": "done", "version": job.version, "path": str(out),
        "valid_loss": min(valid) if valid else None, "eval_return": eval_return, "eval_ci95": eval_ci,
        "labels": int(len(data)), "seconds": time.time() - started,
    }


class TrainerClient:
    """The app's handle on the worker process. Never blocks the frame loop."""

    def __init__(self) -> None:
        self._ctx = mp.get_context("spawn")
        self._jobs: Any = None
        self._results: Any = None
        self._process: Any = None
        self.status = TrainingStatus()

    def start(self) -> None:
        """Start the worker now (it imports torch in the background while the person plays)."""
        if self._process is not None and self._process.is_alive():
            return
        self._jobs = self._ctx.Queue()
        self._results = self._ctx.Queue()
        self._process = self._ctx.Process(target=_worker_main, args=(self._jobs, self._results), daemon=True, name="ilcore-trainer")
        self._process.start()

    def submit(self, job: TrainJob) -> None:
        self.start()
        self.status = TrainingStatus(running=True, version=job.version, epochs=job.epochs, message="starting")
        self._jobs.put(asdict(job))

    def poll(self) -> list[dict[str, Any]]:
        """Messages that arrived since the last call (progress folded into ``status``)."""
        out: list[dict[str, Any]] = []
        if self._results is None:
            return out
        while True:
            try:
                msg = self._results.get_nowait()
            except queue_module.Empty:
                break
            out.append(msg)
            if msg["kind"] == "progress":
                self.status.epoch = int(msg.get("epoch", self.status.epoch + 1))
                self.status.train_loss = msg.get("train_loss", self.status.train_loss)
                self.status.valid_loss = msg.get("valid_loss", self.status.valid_loss)
                self.status.message = "training"
            elif msg["kind"] == "done":
                self.status.running = False
                self.status.epoch = self.status.epochs
                self.status.valid_loss = msg.get("valid_loss") if msg.get("valid_loss") is not None else self.status.valid_loss
                self.status.message = "done"
            elif msg["kind"] == "error":
                self.status.running = False
                self.status.message = "error: " + msg["message"]
        if self.status.running and self._process is not None and not self._process.is_alive():
            self.status.running = False
            self.status.message = "error: the training process stopped"
            out.append({"kind": "error", "version": self.status.version, "message": "the training process stopped"})
        return out

    def wait(self, timeout: float = 600.0) -> dict[str, Any]:
        """Block until the running job ends (scripts and tests only; the app polls)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in self.poll():
                if msg["kind"] in ("done", "error"):
                    return msg
            time.sleep(0.02)
        raise TimeoutError("training did not finish in time")

    def close(self) -> None:
        if self._process is None:
            return
        try:
            self._jobs.put(None)
            self._process.join(timeout=2.0)
        finally:
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(timeout=2.0)
            self._process = None
