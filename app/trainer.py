"""Background training: one long-lived worker process, jobs in, progress and checkpoints out.

Training runs in a separate process (spawn context) because in a thread the GIL would stall
frames. The worker is started once and kept, so torch is imported once, while the person is still
demonstrating. Each job reads the session folder as it is on disk (finished episodes are atomic
files, so a reader never sees a half-written one) and runs the engine's one retraining recipe
(``ilcore.algos.dagger.train_next_policy``, exactly as ``ilcore dagger`` does: IWR, reason weights,
warm start and the gate's calibration rollout alike), which saves the policy under
``<session>/policies/v<version>``; then it reports back. The worker leaves within a second of the
app's death, even mid-job. The app polls :meth:`TrainerClient.poll`
once per frame; it never blocks.

Messages from the worker (plain dicts, so they pickle cheaply):
    {"kind": "progress", "version": v, "epoch": e, "epochs": E, "train_loss": x, "valid_loss": y}
    {"kind": "done", "version": v, "path": str, "valid_loss": y, "eval_return": r, "eval_ci95": c,
     "labels": n, "seconds": s, "after_round": k, "calibration_states": m,
     "reference": {"demo_return": d, "demos": n, "random_return": r} (None without a whole demonstration)}
    {"kind": "error", "version": v, "message": str}
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_module
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing import util
from typing import TYPE_CHECKING, Any

from ilcore.algos.dagger import train_next_policy
from ilcore.algos.dagger.readiness import reference_to_json

if TYPE_CHECKING:  # the window process must not import torch to start; only the worker trains
    from ilcore.algos.bc import EpochReport


@dataclass(frozen=True)
class TrainJob:
    """What to train: the engine's retraining recipe (``ilcore.algos.dagger.RetrainConfig``, the
    one ``ilcore dagger`` uses) on the session folder. ``version`` numbers the checkpoint the job
    publishes; ``previous`` is the installed policy's folder (warm start); ``after_round`` is the
    round whose labels the policy is the first to learn from (its evaluation is that round's return)."""

    session_dir: str
    version: int
    env_id: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    retrain: Any = None
    previous: str | None = None
    max_episode_steps: int | None = None
    eval_episodes: int = 10  # 0 skips evaluation
    seed: int = 0
    after_round: int = 0

    @property
    def epochs(self) -> int:
        return int(self.retrain.bc_config().epochs) if self.retrain is not None else 0


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


PARENT_CHECK_S = 0.5  # how often the worker checks that the app is still alive
CLOSE_WAIT_S = 0.3  # an idle worker leaves within this; a busy one (importing torch, training) is stopped


def _watch_parent(parent: Any) -> None:
    """Leave as soon as the app dies (a SIGKILL sends no stop message), even in the middle of a job."""
    while True:
        time.sleep(PARENT_CHECK_S)
        if parent is not None and not parent.is_alive():
            os._exit(0)


def _worker_main(jobs: Any, results: Any) -> None:
    # Watch the app first: importing torch alone takes seconds, and a killed app must not leave us behind.
    threading.Thread(target=_watch_parent, args=(mp.parent_process(),), daemon=True, name="parent-watch").start()
    import torch

    torch.set_num_threads(1)  # the app and the person share this machine; one core is enough for small nets
    while True:
        job = jobs.get()
        if job is None:
            # the app is closing and reads nothing more: skip the second of torch teardown at exit,
            # but run multiprocessing's finalizers first, which hand this process's semaphores back
            # (else the resource tracker warns of a leak at every exit)

            util._run_finalizers(0)
            util._run_finalizers()
            os._exit(0)
        try:
            results.put(_run_job(job, results))
        except Exception as exc:  # noqa: BLE001 - report anything; the app shows it and carries on
            message = str(exc) if str(exc) else type(exc).__name__
            results.put({"kind": "error", "version": job.version, "message": message, "trace": traceback.format_exc()})


def _run_job(job: TrainJob, results: Any) -> dict[str, Any]:
    """The engine's recipe (:func:`ilcore.algos.dagger.train_next_policy`), reporting each epoch."""
    def on_epoch(report: EpochReport) -> None:  # train_bc's per-epoch hook, through the recipe
        results.put({
            "kind": "progress", "version": job.version, "epoch": report.epoch, "epochs": report.epochs,
            "train_loss": float(report.train_loss),
            "valid_loss": None if report.valid_loss is None else float(report.valid_loss),
        })

    trained = train_next_policy(
        job.session_dir, job.retrain, version=job.version, env_id=job.env_id, env_kwargs=job.env_kwargs,
        previous=job.previous, max_episode_steps=job.max_episode_steps, eval_episodes=job.eval_episodes,
        seed=job.seed, callback=on_epoch,
    )
    return {
        "kind": "done", "version": job.version, "path": str(trained.path), "valid_loss": None,
        "eval_return": trained.eval_return, "eval_ci95": trained.eval_ci95, "labels": trained.labels,
        "seconds": trained.seconds, "after_round": job.after_round, "calibration_states": trained.calibration_states,
        "reference": reference_to_json(trained.reference),
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
        _preload_torch()
        self.status = TrainingStatus(running=True, version=job.version, epochs=job.epochs, message="starting")
        self._jobs.put(job)

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
                self.status.epochs = int(msg.get("epochs", self.status.epochs))  # the recipe may train longer
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
        """Stop the worker. A job still running is dropped (a policy is published whole or not at
        all, and a resumed session trains again), so quitting never waits out a job or torch's import."""
        if self._process is None:
            return
        try:
            self._jobs.put(None)
            self._process.join(timeout=CLOSE_WAIT_S)
        finally:
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(timeout=2.0)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(timeout=2.0)
            self._process = None
            for q in (self._jobs, self._results):
                # The worker is gone: nothing more will be read, so do not wait on the feeder thread,
                # and release the queue's semaphores now rather than leave them to the resource tracker.
                q.cancel_join_thread()
                q.close()
            self._jobs = self._results = None


def _preload_torch() -> None:
    """Import torch on a background thread of the window process, once.

    The window needs torch only to run the policy a job makes; importing it at start-up cost
    seconds before the first frame. Imported here, it loads while the person watches the training
    screen instead of freezing the frame in which the policy lands."""
    if "torch" in sys.modules or any(t.name == "torch-preload" for t in threading.enumerate()):
        return
    threading.Thread(target=__import__, args=("torch",), daemon=True, name="torch-preload").start()
