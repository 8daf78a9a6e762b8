"""Experiment logging with one naming scheme, written to TensorBoard and CSV from one place.

Every trainer logs scalars under ``<section>/<name>`` tags, with the step its x-axis counts
(epoch for BC, gradient step for TCN and one-shot, PPO update for finetune, round for DAgger):

=====================  ======================================================================
``train/loss``         the optimised objective on training batches (beta-NLL + bonuses for BC)
``train/nll``          plain ``-log pi(a|s)`` on training batches, comparable with ``valid/loss``
``valid/loss``         plain ``-log pi(a|s)`` on held-out episodes (what early stopping watches)
``train/samples_per_s``  training throughput
``eval/return``        mean evaluation return; ``eval/return_lo`` / ``eval/return_hi``: 95% CI
``eval/success_rate``  share of successful evaluation episodes, where the env reports success
``dagger/labels``      labels collected so far; ``dagger/query_rate``: share of steps queried
``rl/...``             PPO statistics (``rl/policy_loss``, ``rl/value_loss``, ``rl/episode_return``)
=====================  ======================================================================

``MetricLogger(logdir)`` fans each ``log(step, {...})`` out to a :class:`TensorBoardSink`
(``events.out.tfevents.*`` files that ``tensorboard --logdir DIR`` shows) and a :class:`CSVSink`
(``DIR/metrics.csv`` with columns ``step,tag,value``), and keeps the numbers in memory so the PNG
curves are drawn from exactly what was logged. ``MetricLogger(None)`` only keeps them in memory.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

TRAIN_LOSS = "train/loss"
TRAIN_NLL = "train/nll"
VALID_LOSS = "valid/loss"
TRAIN_THROUGHPUT = "train/samples_per_s"
EVAL_RETURN = "eval/return"
EVAL_RETURN_LO = "eval/return_lo"
EVAL_RETURN_HI = "eval/return_hi"
EVAL_SUCCESS = "eval/success_rate"
DAGGER_LABELS = "dagger/labels"
DAGGER_QUERY_RATE = "dagger/query_rate"

CSV_FILE = "metrics.csv"


class MetricSink(Protocol):
    """Somewhere scalars go: ``write`` one step's values, ``close`` when the run ends."""

    def write(self, step: int, values: Mapping[str, float]) -> None: ...

    def close(self) -> None: ...


class TensorBoardSink:
    """TensorBoard event files in ``logdir`` (via ``torch.utils.tensorboard``), flushed per step so
    a run killed mid-way still shows everything logged until then."""

    def __init__(self, logdir: str | os.PathLike[str]) -> None:
        from torch.utils.tensorboard import SummaryWriter  # imported only when a logdir is asked for

        self._writer = SummaryWriter(log_dir=str(logdir))

    def write(self, step: int, values: Mapping[str, float]) -> None:
        for tag, value in values.items():
            self._writer.add_scalar(tag, value, global_step=step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class CSVSink:
    """``logdir/metrics.csv`` in long form (``step,tag,value``): a new tag mid-run needs no new
    column, and pandas pivots it in one call. Appends, so a resumed run continues the file."""

    def __init__(self, logdir: str | os.PathLike[str]) -> None:
        path = Path(logdir) / CSV_FILE
        new = not path.exists() or path.stat().st_size == 0
        self._file = open(path, "a", newline="", encoding="utf-8")
        self._csv = csv.writer(self._file)
        if new:
            self._csv.writerow(["step", "tag", "value"])

    def write(self, step: int, values: Mapping[str, float]) -> None:
        for tag, value in values.items():
            self._csv.writerow([step, tag, repr(float(value))])
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class MetricLogger:
    """Fans scalars out to sinks and keeps them per tag (``series``) for plots and summaries.

    ``logdir`` None: memory only. Otherwise the folder is created and gets TensorBoard and CSV
    sinks; pass ``sinks`` to choose others. Non-finite values (a NaN validation loss when there is
    no validation split) are skipped rather than written.
    """

    def __init__(self, logdir: str | os.PathLike[str] | None = None, *,
                 sinks: Sequence[MetricSink] | None = None) -> None:
        self.logdir = None if logdir is None else Path(logdir)
        if sinks is None:
            sinks = []
            if self.logdir is not None:
                self.logdir.mkdir(parents=True, exist_ok=True)
                sinks = [TensorBoardSink(self.logdir), CSVSink(self.logdir)]
        self.sinks: list[MetricSink] = list(sinks)
        self._series: dict[str, tuple[list[int], list[float]]] = {}

    def log(self, step: int, values: Mapping[str, float | int | None] | None = None, **more: float) -> None:
        """Record ``{tag: value}`` at ``step`` (keyword form: ``log(3, **{"train/loss": 0.1})``)."""
        clean = {tag: float(v) for tag, v in {**(values or {}), **more}.items()
                 if v is not None and math.isfinite(float(v))}
        if not clean:
            return
        for tag, value in clean.items():
            steps, vals = self._series.setdefault(tag, ([], []))
            steps.append(int(step))
            vals.append(value)
        for sink in self.sinks:
            sink.write(int(step), clean)

    def series(self, tag: str) -> tuple[list[int], list[float]]:
        """(steps, values) logged under ``tag``; empty lists when nothing was."""
        steps, vals = self._series.get(tag, ([], []))
        return list(steps), list(vals)

    def tags(self) -> list[str]:
        return sorted(self._series)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
        self.sinks = []

    def __enter__(self) -> "MetricLogger":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def eval_metrics(result: Mapping[str, Any]) -> dict[str, float | None]:
    """The ``eval/*`` scalars of an evaluation summary (``EvalResult.to_json()``)."""
    ci = result.get("ci95")
    return {EVAL_RETURN: result.get("mean_return"),
            EVAL_RETURN_LO: ci[0] if ci else None, EVAL_RETURN_HI: ci[1] if ci else None,
            EVAL_SUCCESS: result.get("success_rate")}


def log_history(logger: MetricLogger, history: Mapping[str, Sequence[float]], step_key: str,
                tags: Mapping[str, str]) -> None:
    """Log a finished trainer's per-step history: ``tags`` maps history keys to metric tags."""
    steps = history.get(step_key, [])
    for i, step in enumerate(steps):
        logger.log(int(step), {tag: history[key][i] for key, tag in tags.items()
                               if key in history and i < len(history[key])})
