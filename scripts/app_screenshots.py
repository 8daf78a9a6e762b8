"""Regenerate docs/images/app_*.png from a real window: one screenshot per mode.

Run under a real X server (the screenshots in docs/app.md come from Xvfb)::

    xvfb-run -s "-screen 0 1280x800x24" python scripts/app_screenshots.py

It plays a short CartPole session with the engine's simulated person and saves the window at
moments that show each mode: demonstrate, the help overlay, training, a live query, a takeover,
review, watch and the summary. Then it opens the one-shot mode (``python -m app --oneshot``) and
saves it while a demo is recorded, and while the policy does the task from a new start. Last, a
watch-only session (``python -m app --watch-only``): recording, and its summary.

``--only oneshot`` (or ``session``, ``watch_only``) regenerates just one group; ``--oneshot-run
RUN`` uses a policy folder from ``ilcore train oneshot`` instead of training a small one here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402  (the imports below come after the path insert above)

from app.input.simulated import OneShotSimulatedPerson, build_simulated_person  # noqa: E402
from app.modes.manager import ModeManager, OneShotManager, WatchOnlyManager  # noqa: E402
from app.session import ONESHOT_ENV_ID, OneShotSession, OneShotSettings, Session, SessionSettings  # noqa: E402
from ilcore.algos.oneshot import OneShotConfig, collect_expert_demos, train_oneshot  # noqa: E402
from ilcore.envs.particles import task_split  # noqa: E402

# pygame, and the app modules that import it, load inside the functions: main() first sets SDL's
# environment (no audio), which pygame reads when it is imported.
OUT = ROOT / "docs" / "images"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=("session", "oneshot", "watch_only"), help="regenerate only these screenshots")
    p.add_argument("--oneshot-run", metavar="RUN", help="policy folder from `ilcore train oneshot` (default: train a small one)")
    args = p.parse_args(argv)
    if not os.environ.get("DISPLAY"):
        print("needs a display: run under xvfb-run", file=sys.stderr)
        return 2
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    rc = 0
    if args.only in (None, "session"):
        rc |= session_shots()
    if args.only in (None, "oneshot"):
        rc |= oneshot_shots(args.oneshot_run)
    if args.only in (None, "watch_only"):
        rc |= watch_only_shots()
    return rc


class _Window:
    """A real window driven by an :class:`AppLoop` over ``manager``, with keyboard and gamepad
    devices for ``env_id``'s action space; :meth:`shot` saves it as docs/images/app_NAME.png."""

    def __init__(self, caption: str, manager, env_id: str, action_space, autopilot) -> None:
        import pygame

        from app.input.gamepad import GamepadDevice, default_gamepad_config
        from app.input.keyboard import KeyboardDevice
        from app.input.keymaps import default_keymap
        from app.loop import AppLoop
        from app.render.renderer import Renderer
        from app.render.theme import WINDOW_SIZE

        keymap = default_keymap(env_id, action_space)
        pygame.init()
        pygame.display.set_caption(caption)
        self.screen = pygame.display.set_mode(WINDOW_SIZE)
        devices = [KeyboardDevice(keymap), GamepadDevice(default_gamepad_config(action_space), action_space)]
        self.loop = AppLoop(manager, devices, Renderer(self.screen), keymap=keymap, fps=60, realtime=False,
                            autopilot=autopilot)
        self.taken: set[str] = set()

    def shot(self, name: str) -> None:
        import pygame

        pygame.image.save(self.screen, str(OUT / f"app_{name}.png"))
        self.taken.add(name)
        print("saved", OUT / f"app_{name}.png")

    def missing(self, wanted: set[str]) -> int:
        """1 (and a line on stderr) when a wanted screenshot was not taken, else 0."""
        missing = wanted - self.taken
        if missing:
            print("not captured:", ", ".join(sorted(missing)), file=sys.stderr)
            return 1
        return 0


def session_shots() -> int:
    import pygame

    tmp = Path(tempfile.mkdtemp(prefix="app-shots-"))
    settings = SessionSettings(
        env_id="CartPole-v1", demo_episodes=2, rounds=2, episodes_per_round=1, max_episode_steps=None,
        query_mode="mixed", target_rate=0.08, epochs=20, simulated=True, seed=1,  # whole episodes: the demos set the learner-level scale
        interventions=True,  # the simulated person takes over (the takeover screenshot)
    )
    session = Session(tmp / "session", settings)
    manager = ModeManager(session)
    autopilot = build_simulated_person(session, reaction_frames=45)  # slow enough to see the replay and the question
    window = _Window("ilcore - CartPole-v1", manager, settings.env_id, session.env.action_space, autopilot)
    loop, shot, taken = window.loop, window.shot, window.taken
    session.trainer.start()
    manager.start()

    demo_frames = 0
    summary_frames = 0
    while not manager.quit_requested and loop.stats.frames < 60000:
        loop.frame()
        mode = manager.current
        if mode.name == "demo":
            demo_frames += 1
            if demo_frames == 150 and "demo" not in taken:
                shot("demo")
                manager.help_visible = True
                loop.frame()
                shot("help")
                manager.help_visible = False
        elif mode.name == "train" and "train" not in taken and session.state.policy_version >= 1:
            st = session.trainer.status
            if st.running and st.epochs and 0.3 <= st.progress <= 0.8:
                shot("train")
        elif mode.name == "dagger":
            if mode.pending is not None and "dagger_query" not in taken and mode.driver.length > 20:
                shot("dagger_query")
            elif mode.taking_over and "dagger_takeover" not in taken and mode.driver.length > 10 and autopilot._driving < 10:
                shot("dagger_takeover")
            elif "dagger" not in taken and mode.pending is None and not mode.taking_over and mode.driver.length > 60 and mode.threshold:
                shot("dagger")
        elif mode.name == "review" and "review" not in taken and mode.current() is not None and mode.cursor > 4:
            shot("review")
        elif mode.name == "watch" and "watch" not in taken and mode.driver.length > 80 and mode.returns:
            shot("watch")
        elif mode.name == "summary":
            summary_frames += 1
            if summary_frames == 5:
                shot("summary")
    session.close()
    pygame.quit()
    shutil.rmtree(tmp, ignore_errors=True)
    return window.missing({"demo", "help", "train", "dagger", "dagger_query", "dagger_takeover", "review", "watch",
                           "summary"})


def oneshot_shots(run: str | None) -> int:
    """The one-shot mode as `python -m app --oneshot RUN` wires it, driven by the simulated person."""
    import pygame

    if run is not None:
        policy: Any = run
    else:
        print("training a small one-shot policy (about a minute)...")
        demos = collect_expert_demos(task_split()["train"], 5, seed=0)
        policy = train_oneshot(demos, OneShotConfig(steps=600, seed=0)).policy
    tmp = Path(tempfile.mkdtemp(prefix="app-shots-oneshot-"))
    session = OneShotSession(policy, tmp, OneShotSettings(watch_episodes=3, seed=3, simulated=True),
                             policy_name=None if run is not None else "screenshot-run")
    manager = OneShotManager(session)
    mode = manager.mode
    window = _Window("ilcore - one-shot", manager, ONESHOT_ENV_ID, session.action_space, OneShotSimulatedPerson())
    loop, shot, taken = window.loop, window.shot, window.taken
    manager.start()

    while not manager.quit_requested and loop.stats.frames < 20000:
        loop.frame()
        if mode.phase == "record" and "oneshot" not in taken and len(mode._actions) >= 6:
            shot("oneshot")
        elif mode.phase == "watch" and "oneshot_watch" not in taken and mode.results and len(mode._actions) >= 14:
            shot("oneshot_watch")
    session.close()
    pygame.quit()
    shutil.rmtree(tmp, ignore_errors=True)
    return window.missing({"oneshot", "oneshot_watch"})


def watch_only_shots() -> int:
    """A watch-only session as `python -m app --watch-only` wires it, driven by the simulated person."""
    import pygame

    tmp = Path(tempfile.mkdtemp(prefix="app-shots-watch-only-"))
    cwd = os.getcwd()
    # Run from a scratch folder with a relative session path, so the summary shows the kind of
    # path and commands a person sees after `python -m app --watch-only` (recordings/<env>-...).
    os.chdir(tmp)
    settings = SessionSettings(env_id="CartPole-v1", demo_episodes=2, max_episode_steps=200, simulated=True, seed=1, watch_only=True)
    session = Session(Path("recordings") / "CartPole-v1-watch-only-20261125-101500", settings)
    manager = WatchOnlyManager(session)
    window = _Window("ilcore - CartPole-v1 - watch-only", manager, settings.env_id, session.env.action_space,
                     build_simulated_person(session))
    loop, shot, taken = window.loop, window.shot, window.taken
    manager.start()

    summary_frames = 0
    try:
        while not manager.quit_requested and loop.stats.frames < 20000:
            loop.frame()
            mode = manager.current
            if mode.name == "watch_only" and "watch_only" not in taken and session.round_episodes == 1 and mode.driver.length > 60:
                shot("watch_only")
            elif mode.name == "summary":
                summary_frames += 1
                if summary_frames == 5:
                    shot("watch_only_summary")
        session.close()
    finally:
        os.chdir(cwd)
    pygame.quit()
    shutil.rmtree(tmp, ignore_errors=True)
    return window.missing({"watch_only", "watch_only_summary"})


if __name__ == "__main__":
    sys.exit(main())
