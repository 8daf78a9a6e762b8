"""The app puts each evaluation on the person's scale and says when more labels are unlikely to help."""

from __future__ import annotations

import pygame

from app.modes.dagger import level_text
from app.trainer import _run_job
from tests.support.app_harness import press, release, tap


class _Sink:
    def put(self, _msg):
        pass


def _line(view, name):
    return dict(view.lines)[name]


def test_two_evaluations_at_the_demonstrations_level_make_the_round_start_say_ready(make_app):
    h = make_app(demo_episodes=1, rounds=3, max_episode_steps=30, epochs=2, eval_episodes=2)
    press(pygame.K_RIGHT)
    h.until(lambda: h.manager.waiting)
    release(pygame.K_RIGHT)
    first = h.session.train_blocking()
    # pushing right topples the pole within 30 steps: the demonstration ended by itself and is the
    # scale's 100%, but it scored below a random policy, so there is no scale yet
    assert first["reference"] is not None and first["reference"]["demo_return"] < first["reference"]["random_return"]
    assert h.session.readiness().text() == "" and level_text(h.session.readiness(), True) == "- (no whole demo)"
    reference = {"demo_return": 100.0, "demos": 1, "random_return": 20.0}
    for version, eval_return in ((2, 60.0), (3, 97.0)):
        msg = _run_job(h.session._job(version), _Sink())
        msg.update(eval_return=eval_return, reference=reference)
        h.session._install_trained(msg)
    assert h.session.state.evals[-1]["score"] == 77.0 / 80.0 and not h.session.readiness().ready
    tap(h, pygame.K_RETURN)
    h.until(lambda: h.mode.name == "dagger")
    view = h.manager.view()
    assert _line(view, "learner level") == "96% of your demos" and "looks ready" not in (view.prompt or "")
    msg = _run_job(h.session._job(4), _Sink())
    msg.update(eval_return=99.0, reference=reference)
    h.session._install_trained(msg)
    view = h.manager.view()
    assert h.session.readiness().ready and _line(view, "learner level") == "99% of your demos - ready"
    assert view.prompt == "Round 1: the learner looks ready" and "unlikely to help" in view.prompt_detail
    assert "Enter runs the round anyway" in view.prompt_detail
    tap(h, pygame.K_RETURN)  # the person may go on all the same
    assert not h.mode.waiting_for_start
    # the train stage lists each evaluation with its score
    view = h.manager.modes["train"].view()
    assert view.items[0].startswith("v4: return 99.0 (99%)") and "% of your demos" in view.items_title
