"""Every PNG the engine writes: training curves of BC, PPO and DAgger, in one style.

One style: a ``matplotlib.figure.Figure`` drawn by the Agg canvas, never pyplot, so no global
figure state, no GUI backend chosen behind the app's back, and nothing to close afterwards. The
picture is rendered in memory and written atomically, so a full disk or a crash leaves the old
curve (or none), never half a PNG.

matplotlib is imported inside :func:`new_figure` only: it costs about a second, and most runs
that import the trainers (the app's worker, tests) never draw.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ilcore import fileio

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def new_figure(width: float = 7.0, height: float = 4.0) -> "Figure":
    """An empty figure on the Agg canvas (100 dpi); draw on ``fig.add_subplot(...)``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: "Figure", path: str | Path) -> Path:
    """Lay out ``fig`` and write it to ``path`` atomically (the format follows the suffix; PNG
    when there is none)."""
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, format=Path(path).suffix.lstrip(".") or "png")
    return fileio.write_bytes_atomic(path, image.getbuffer())


def _error_bars(evals: Sequence[Mapping[str, Any]], x_key: str) -> tuple[list[float], list[float], list[list[float]]]:
    """x, mean return and ``[below, above]`` 95% CI distances of evaluation records (no CI: 0)."""
    xs = [e[x_key] for e in evals]
    ys = [e["mean_return"] for e in evals]
    lo = [e["ci95"][0] if e.get("ci95") else y for e, y in zip(evals, ys)]
    hi = [e["ci95"][1] if e.get("ci95") else y for e, y in zip(evals, ys)]
    return xs, ys, [list(np.subtract(ys, lo)), list(np.subtract(hi, ys))]


def save_bc_curve(history: Mapping[str, Sequence[float]], evals: Sequence[Mapping[str, Any]], path: str | Path,
                  best_epoch: int | None = None) -> Path:
    """BC per epoch: train and valid NLL (the same quantity, so the curves compare), the optimised
    objective when it differs, the saved epoch marked, and evaluated returns (``evals``:
    ``{"epoch", "mean_return", "ci95"}``) on a second axis."""
    fig = new_figure()
    ax = fig.add_subplot(1, 1, 1)
    epochs = history["epoch"]
    train_nll = history.get("train_nll") or [math.nan] * len(epochs)
    if any(not math.isnan(v) for v in train_nll):
        ax.plot(epochs, train_nll, label="train NLL")
        if any(abs(a - b) > 1e-9 for a, b in zip(history["train_loss"], train_nll)):
            ax.plot(epochs, history["train_loss"], "--", color="tab:gray", lw=1, label="train objective")
    else:  # a history from before train NLL was recorded
        ax.plot(epochs, history["train_loss"], label="train loss")
    if any(not math.isnan(v) for v in history["valid_loss"]):
        ax.plot(epochs, history["valid_loss"], label="valid NLL")
    if best_epoch:
        ax.axvline(best_epoch, color="tab:red", ls=":", lw=1, label=f"saved (epoch {best_epoch})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("-log pi(a|s)")
    lines, labels = ax.get_legend_handles_labels()
    if evals:
        ax2 = ax.twinx()
        xs, ys, yerr = _error_bars(evals, "epoch")
        ax2.errorbar(xs, ys, yerr=yerr, color="tab:green", marker="o", capsize=3, label="mean return (95% CI)")
        ax2.set_ylabel("return")
        l2, lab2 = ax2.get_legend_handles_labels()
        lines, labels = lines + l2, labels + lab2
    ax.legend(lines, labels, loc="best")
    ax.set_title("behavioural cloning")
    return save_figure(fig, path)


def smooth_returns(steps: Sequence[float], returns: Sequence[float], window: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Trailing mean of the last ``window`` episode returns at each episode's end step."""
    r = np.asarray(returns, dtype=np.float64)
    if len(r) == 0:
        return np.zeros(0), np.zeros(0)
    c = np.concatenate([[0.0], np.cumsum(r)])
    idx = np.arange(1, len(r) + 1)
    lo = np.maximum(idx - window, 0)
    return np.asarray(steps, dtype=np.float64), (c[idx] - c[lo]) / (idx - lo)


def save_return_curve(runs: Mapping[str, tuple[Mapping[str, Sequence[float]], Sequence[Mapping[str, Any]]]],
                      path: str | Path, *, title: str = "", target: float | None = None) -> Path:
    """Return vs env steps (RL): per run, the smoothed training-episode return (line) and the
    deterministic evaluations (markers with 95% CI). ``runs``: name -> (episodes
    ``{"env_steps", "return"}``, evals ``[{"env_steps", "mean_return", "ci95"}]``); ``target``
    draws the expert's return."""
    fig = new_figure()
    ax = fig.add_subplot(1, 1, 1)
    for i, (name, (eps, evs)) in enumerate(runs.items()):
        color = f"C{i % 10}"
        x, y = smooth_returns(eps.get("env_steps", []), eps.get("return", []))
        if len(x):
            ax.plot(x, y, color=color, label=f"{name} (training, mean of 20)")
        if evs:
            xs, ys, yerr = _error_bars(evs, "env_steps")
            ax.errorbar(xs, ys, yerr=yerr, color=color, marker="o", linestyle="--", capsize=2, markersize=3,
                        label=f"{name} (eval)")
    if target is not None:
        ax.axhline(target, color="grey", linestyle=":", label="expert")
    ax.set_xlabel("env steps")
    ax.set_ylabel("return")
    if title:
        ax.set_title(title)
    ax.legend(loc="best", fontsize=7)
    return save_figure(fig, path)


def save_labels_curve(labels: Sequence[float], returns: Sequence[float], path: str | Path, *, title: str = "",
                      xlabel: str = "labels given (cumulative, demonstrations included)") -> Path:
    """Evaluation return vs labels given (DAgger's rounds), one marker per evaluated policy."""
    fig = new_figure(5.0, 3.5)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(labels, returns, marker="o")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mean return")
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


__all__ = ["new_figure", "save_bc_curve", "save_figure", "save_labels_curve", "save_return_curve", "smooth_returns"]
