"""The one progress-bar style: nothing drawn before the start-up delay, status shown after it."""

from __future__ import annotations

import io
import sys

from ilcore.progress import progress_bar, show_status


def test_status_draws_nothing_before_the_delay_and_redraws_after(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    bar = progress_bar(total=3, desc="rounds", mininterval=0.0, delay=2.0)
    show_status(bar, "round 0: episode of 20 steps")
    show_status(bar, loss="0.5")
    assert err.getvalue() == ""  # a command that fails now prints its one error line alone
    bar.start_t -= 3.0  # as if the command had run past the delay
    show_status(bar, "training policy v2: epoch 3/30")
    assert "training policy v2: epoch 3/30" in err.getvalue()
    bar.close()


def test_a_disabled_bar_takes_status_silently(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    bar = progress_bar(total=3, enabled=False)
    show_status(bar, "x")
    show_status(bar, ret="1.0")
    bar.close()
    assert err.getvalue() == ""
