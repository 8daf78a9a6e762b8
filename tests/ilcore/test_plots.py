"""ilcore.plots: every engine PNG from plain numbers, in one style, matplotlib loaded only to draw."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from ilcore import plots

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def drawn(monkeypatch):
    """The figures the writers lay out, kept for inspection (and still written)."""
    figures = []
    save = plots.save_figure

    def keep(fig, path):
        figures.append(fig)
        return save(fig, path)

    monkeypatch.setattr(plots, "save_figure", keep)
    return figures


def _legend(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]


def test_bc_curve_compares_train_and_valid_nll_and_marks_the_saved_epoch(tmp_path, drawn):
    history = {"epoch": [1, 2, 3], "train_loss": [1.0, 0.8, 0.7], "train_nll": [1.1, 0.9, 0.8],
               "valid_loss": [1.2, 1.0, 1.05]}
    evals = [{"epoch": 2, "mean_return": 50.0, "ci95": [40.0, 60.0]}]
    path = plots.save_bc_curve(history, evals, tmp_path / "curve.png", best_epoch=2)
    assert path.read_bytes().startswith(PNG)
    labels = _legend(drawn[0])
    assert {"train NLL", "train objective", "valid NLL", "saved (epoch 2)", "mean return (95% CI)"} <= set(labels)


def test_bc_curve_without_validation_or_train_nll_still_draws(tmp_path, drawn):
    history = {"epoch": [1, 2], "train_loss": [1.0, 0.9], "valid_loss": [math.nan, math.nan]}
    plots.save_bc_curve(history, [], tmp_path / "curve.png")
    assert _legend(drawn[0]) == ["train loss"]


def test_return_curve_smooths_training_returns_and_draws_evaluations(tmp_path, drawn):
    episodes = {"env_steps": [10, 20, 30], "return": [1.0, 3.0, 5.0]}
    evals = [{"env_steps": 30, "mean_return": 4.0, "ci95": None}]
    path = plots.save_return_curve({"ppo": (episodes, evals)}, tmp_path / "curve.png", title="t", target=6.0)
    assert path.read_bytes().startswith(PNG)
    assert set(_legend(drawn[0])) == {"ppo (training, mean of 20)", "expert", "ppo (eval)"}
    steps, smoothed = plots.smooth_returns(episodes["env_steps"], episodes["return"], window=2)
    assert steps.tolist() == [10, 20, 30] and smoothed.tolist() == [1.0, 2.0, 4.0]


def test_labels_curve_writes_a_png(tmp_path):
    path = plots.save_labels_curve([100, 200], [10.0, 20.0], tmp_path / "curve.png", title="DAgger")
    assert path.read_bytes().startswith(PNG)


def test_importing_the_module_does_not_load_matplotlib():
    code = "import sys, ilcore.plots; sys.exit('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
