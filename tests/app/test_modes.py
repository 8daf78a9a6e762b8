"""The DAgger plan's modes on their own, over a fake session (tests/support/app_fakes.py): no env, no
policy, no folder. The flows through a real session are in test_flow.py and test_person_pace.py."""

from app.input.intents import Intent, IntentKind
from app.modes.dagger import DaggerMode
from app.modes.train import TrainMode
from app.modes.watch import WatchMode

from tests.support.app_fakes import ConstantPolicy, FakeSession


def test_watch_plays_the_policy_for_the_set_episodes_and_lists_returns():
    session = FakeSession(policy=ConstantPolicy(1), episode_length=4, watch_episodes=2)
    mode = WatchMode(session)
    mode.enter()
    frames = 0
    while not mode.finished and frames < 100:
        mode.update(1 / 30)
        frames += 1
    assert mode.returns == [4.0, 4.0]
    assert set(session.env.actions) == {1}  # every step was the learner's proposal
    view = mode.view()
    assert view.items == ["episode 2: 4.0", "episode 1: 4.0"] and view.driver == "learner"


def test_watch_without_a_policy_says_so_and_plays_nothing():
    session = FakeSession(policy=None)
    mode = WatchMode(session)
    mode.enter()
    mode.handle(Intent(IntentKind.RESTART))
    mode.update(1.0)
    assert session.resets == 0 and mode.view().prompt == "No learner yet"


def test_train_starts_a_job_waits_for_its_version_and_skips_when_nothing_is_new():
    session = FakeSession(labels=10)
    mode = TrainMode(session)
    mode.enter()
    assert session.trainings == [1] and not mode.finished
    mode.update(0.1)
    assert not mode.finished  # the job has not landed
    session.state.policy_version = 1
    session.policy = ConstantPolicy()
    mode.update(0.1)
    assert mode.finished and mode.done_summary() == "policy v1 trained on 10 labels"
    mode.enter()  # no label since: the stage has nothing to do
    assert session.trainings == [1] and mode.finished and mode.nothing_to_do
    session.labels = 12
    mode.enter()
    assert session.trainings == [1, 2]


def test_a_learner_that_fails_fast_pauses_and_says_what_to_do():
    session = FakeSession(max_episode_steps=200)
    session.state.episodes.append({"id": "ep_000001", "round": 0, "kind": "demo", "return": 200.0, "length": 200})
    mode = DaggerMode(session)
    mode._check_fail_fast(9)
    assert mode.paused and "9 steps against 200" in mode.fail_fast_alert and "take over" in mode.fail_fast_alert
    mode.paused = False
    mode.fail_fast_alert = ""
    mode._check_fail_fast(150)  # long enough: nothing to say
    assert not mode.paused
    session.autopilot = True
    mode._check_fail_fast(9)  # a simulated person is not stopped
    assert not mode.paused


def test_the_side_panel_says_how_often_the_learner_already_did_what_the_person_answered():
    from app.modes.dagger import agreement_text
    from ilcore.algos.dagger.controller import Totals

    base = dict(episodes=3, labels=80, human_seconds=60.0, round=2, round_episodes=1, round_learner_steps=300,
                round_asked=30)
    assert agreement_text(Totals(**base)) == "- (no answers yet)"
    assert agreement_text(Totals(**base, answers=12, agreement=0.75)) == "75% of your last 12"
    assert agreement_text(Totals(**base, answers=80, agreement=0.96)) == "96% of your last 50"
