"""``python -m app``: the labeling app. ``--simulate`` runs a whole session unattended.

``python -m app --oneshot RUN`` opens the one-shot mode instead of the DAgger plan: record one demo
of a task of ilcore/ParticleSequence-v0, then watch the demo-conditioned policy in RUN (a folder
written by ``ilcore train oneshot``) do that task from new starts.

``python -m app --watch-only`` records watch-only demonstrations: the person drives as in
demonstrate, but each episode is saved observation-only (no actions), for learning from
observation; the session ends in a summary with the `ilcore train bco` command instead of DAgger.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import tomllib
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from app.input.simulated import OneShotSimulatedPerson, build_simulated_person
from app.modes.manager import ModeManager, OneShotManager, WatchOnlyManager
from app.session import ONESHOT_ENV_ID, OneShotSession, OneShotSettings, Session, SessionSettings, make_app_env
from ilcore.algos.dagger.options import DaggerOptions, add_arguments as add_dagger_arguments
from ilcore.data import default_session_path
from ilcore.errors import ConfigError, UserError
from ilcore.progress import progress_bar, show_status
from ilcore.runtime import configure_threads

# pygame, and the app modules that import it (devices, keymaps, loop, renderer, theme), are imported
# inside the functions below: main() first sets SDL's environment (audio driver, X11), which pygame
# reads when it is imported.

NO_DISPLAY = "no display found (DISPLAY/WAYLAND_DISPLAY unset); run `python -m app --simulate` for an unattended session, or use xvfb-run"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m app", description="Teach a learner by demonstrating, answering its questions and taking over.")
    p.add_argument("--env", default=None, help="gymnasium env id with Discrete or bounded Box actions that renders rgb_array (default CartPole-v1)")
    p.add_argument("--env-kwargs", default="{}", help="JSON object of keyword arguments for gymnasium.make")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--out", help="session folder to create (default: a new folder under recordings/); with --oneshot, the folder the demos go in")
    where.add_argument("--resume", metavar="DIR", help="continue the session in DIR")
    p.add_argument("--simulate", action="store_true", help="run unattended with the engine's simulated person (headless)")
    p.add_argument("--autopilot", action="store_true",
                   help="move on to the next stage by itself when one is done (default: wait for Enter; always on with --simulate)")
    p.add_argument("--watch-only", action="store_true", help="record observation-only demos (your actions are not saved) for learning from observation; no training or DAgger, ends with the `ilcore train bco` command")
    p.add_argument("--oneshot", metavar="RUN", help="one-shot mode on ilcore/ParticleSequence-v0: record one demo, watch the policy in RUN (written by `ilcore train oneshot`) do it")
    p.add_argument("--task", type=int, default=None, metavar="ID", help="with --oneshot: the task to show first (default: the first held-out task; , and . change it)")
    p.add_argument("--watch-episodes", type=int, default=None, metavar="N", help="with --oneshot: episodes the policy plays from new starts after each demo (default 5)")
    p.add_argument("--keymap", help="TOML or JSON keymap (gymnasium keys_to_action shape), checked against the action space")
    p.add_argument("--gamepad", help="TOML or JSON gamepad mapping (controls by name, deadzone, scale)")
    p.add_argument("--fps", type=int, default=60, help="frames per second of the window (default 60)")
    p.add_argument("--demo-episodes", "--demos", dest="demos", type=int, default=None, help="demonstration episodes (default 3; 2 when simulated)")
    p.add_argument("--rounds", type=int, default=3, help="DAgger rounds (default 3)")
    p.add_argument("--episodes-per-round", type=int, default=None, help="episodes per DAgger round (default 2; 1 when simulated)")
    p.add_argument("--eval-episodes", type=int, default=10, help="evaluation episodes of each trained policy, in the trainer process (default 10)")
    p.add_argument("--max-episode-steps", type=int, default=None, help="cap episode length (default: the env's own; 300 when simulated on CartPole)")
    # The learner and query options of `ilcore dagger`, with the same names and defaults.
    add_dagger_arguments(p, query_mode="mixed")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the window process (default 1: the trainer process has its own)")
    p.add_argument("--frames", type=int, default=None, help=argparse.SUPPRESS)  # stop after N frames (tests, screenshots)
    return p


def has_display() -> bool:
    driver = os.environ.get("SDL_VIDEODRIVER", "")
    if driver in ("dummy", "offscreen"):
        return True  # the caller asked for a headless window on purpose
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or driver in ("windows", "cocoa", "kmsdrm"))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.simulate:
        # the simulated person needs no screen: SDL draws into memory
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    elif not has_display():
        print(NO_DISPLAY if args.oneshot is None else NO_DISPLAY.replace("--simulate`", f"--oneshot {args.oneshot} --simulate`"), file=sys.stderr)
        return 2
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    # The app plays no sound: without this SDL opens ALSA at start-up and prints its errors on
    # machines without a sound card. Set before pygame is imported; a user's own choice wins.
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    if os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        # An X session: go straight to X11. SDL otherwise probes Wayland first, and without
        # XDG_RUNTIME_DIR that prints "error: XDG_RUNTIME_DIR is invalid or not set", a line that
        # reads like one of the app's own refusals.
        os.environ.setdefault("SDL_VIDEODRIVER", "x11")

    configure_threads(args.threads)  # the frame loop must not fight the trainer process for cores
    try:
        return _run(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; everything finished so far is saved", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    if args.oneshot is not None and args.watch_only:
        raise ConfigError("--watch-only cannot be combined with --oneshot: a one-shot demo needs its actions")
    if args.oneshot is not None:
        return _run_oneshot(args)

    for flag, value in (("--task", args.task), ("--watch-episodes", args.watch_episodes)):
        if value is not None:
            raise ConfigError(f"{flag} only applies with --oneshot RUN")
    args.env = args.env or "CartPole-v1"
    import pygame

    from app.input.gamepad import GamepadDevice
    from app.input.keyboard import KeyboardDevice
    from app.loop import AppLoop
    from app.render.renderer import Renderer
    from app.render.theme import WINDOW_SIZE

    env_kwargs = _env_kwargs(args.env_kwargs)
    _check_numbers(args)
    if args.resume:
        # a watch-only session resumes as one; --watch-only on a DAgger session is refused by Session
        session = Session(args.resume, SessionSettings(simulated=args.simulate, watch_only=args.watch_only), resume=True)
        try:
            keymap, pad_config = _input_config(args, session.settings.env_id, session.env.action_space)
        except BaseException:
            session.close()  # a refused keymap must not leave the session locked
            raise
    else:
        # a watch-only folder says so in its name: its episodes cannot train BC or DAgger
        out = Path(args.out) if args.out else _new_session_dir(args.env + ("-watch-only" if args.watch_only else ""))
        max_steps = args.max_episode_steps
        if max_steps is None and args.simulate and args.env.startswith("CartPole"):
            max_steps = 300  # keeps the unattended CartPole session to about a minute

        options = DaggerOptions.from_mapping(vars(args))  # refuses bad values before a folder exists
        settings = SessionSettings(
            env_id=args.env, env_kwargs=env_kwargs,
            demo_episodes=args.demos if args.demos is not None else (2 if args.simulate else 3),
            rounds=args.rounds,
            episodes_per_round=args.episodes_per_round or (1 if args.simulate else 2),
            eval_episodes=args.eval_episodes, max_episode_steps=max_steps, simulated=args.simulate,
            watch_only=args.watch_only, **options.to_json(),
        )
        # The env, the keymap and the gamepad mapping are checked before the folder exists, so a
        # refused option leaves nothing behind and the corrected command can reuse --out.
        keymap, pad_config = _input_config(args, settings.env_id, _checked_action_space(settings))
        session = Session(out, settings)
    space = session.env.action_space

    x_guard = _XWindowGuard()  # before SDL opens the display
    pygame.init()
    pygame.display.set_caption(f"ilcore - {session.settings.env_id} - {session.path}")
    screen = pygame.display.set_mode(WINDOW_SIZE)
    autopilot = None
    if session.settings.simulated:
        autopilot = build_simulated_person(session)
    watch_only = session.settings.watch_only
    session.autopilot = session.settings.simulated or args.autopilot
    manager = WatchOnlyManager(session) if watch_only else ModeManager(session)
    x_guard.watch(manager)
    loop = AppLoop(
        manager, [KeyboardDevice(keymap), GamepadDevice(pad_config, space)], Renderer(screen), keymap=keymap,
        fps=args.fps, realtime=not session.settings.simulated, autopilot=autopilot,
    )
    if not watch_only:  # a watch-only session never trains
        session.trainer.start()  # torch loads in the worker while the person demonstrates
    print(f"session: {session.path}" + (" (watch-only: actions are not recorded)" if watch_only else ""), flush=True)
    if session.recovered is not None:
        print(session.recovered.sentence(), flush=True)
    for message in getattr(session.writer, "recovery_messages", []):
        print(message, flush=True)
    bar = None
    if session.settings.simulated:  # an unattended run says where it is (on stderr: stdout keeps its report)

        bar = progress_bar(total=len(manager.plan), desc="session", unit="stage")

        def on_stage(index: int, total: int, stage: str) -> None:
            bar.n = index
            show_status(bar, stage)

        manager.on_stage = on_stage
    try:
        manager.start()
        loop.run(max_frames=args.frames)
        if not watch_only and manager.current.name != "summary":
            session.write_summary()  # quit early (Esc, the window's close button): the summary still says what was done
    finally:
        if bar is not None:
            bar.close()
        session.close()
        pygame.quit()
    if watch_only:
        return _report_watch_only(session)
    s = session.state
    t = session.totals()
    print(f"wrote {t.episodes} episode{'' if t.episodes == 1 else 's'} and {t.labels} labels to {session.path}")
    if (session.path / "summary.json").exists():
        print(f"summary: {session.path / 'summary.json'}" + (f" and {session.path / 'summary.png'}" if (session.path / 'summary.png').exists() else ""))
    for e in s.evals:
        if e.get("eval_return") is not None:
            print(f"  policy v{e['version']}: {e['labels']} labels -> eval return {e['eval_return']:.1f}")
    return 0


class _XWindowGuard:
    """Under X11 a window destroyed from outside (``xdotool windowclose``, a crashing window
    manager) makes Xlib's default error handler exit the process on the next draw, skipping the
    ``finally`` that releases the writer lock and the summary. Installed before SDL opens the
    display (SDL chains its own handler to it and restores it at quit), it turns an X error about
    our own window into a quit request, so the session ends as after Esc; any other error goes on
    to Xlib's handler as before."""

    def __init__(self) -> None:
        self.window = 0  # set once the window exists
        self.manager: Any = None
        self.handler: Any = None
        if sys.platform != "linux" or os.environ.get("SDL_VIDEODRIVER", "x11") != "x11" or not os.environ.get("DISPLAY"):
            return
        try:
            x11 = ctypes.CDLL("libX11.so.6")  # the library SDL loads: one error handler per process
        except OSError:
            return

        class XErrorEvent(ctypes.Structure):
            _fields_ = [("type", ctypes.c_int), ("display", ctypes.c_void_p), ("resourceid", ctypes.c_ulong),
                        ("serial", ctypes.c_ulong), ("error_code", ctypes.c_ubyte), ("request_code", ctypes.c_ubyte),
                        ("minor_code", ctypes.c_ubyte)]

        handler_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(XErrorEvent))
        x11.XSetErrorHandler.restype = handler_type
        x11.XSetErrorHandler.argtypes = [handler_type]

        def on_error(display: Any, event: Any) -> int:
            if self.window and event.contents.resourceid == self.window:
                if self.manager is not None:
                    self.manager.quit_requested = True  # only a flag: this runs inside an Xlib call
                return 0
            return previous(display, event) if previous else 0

        self.handler = handler_type(on_error)  # kept alive with the guard
        previous = x11.XSetErrorHandler(self.handler)

    def watch(self, manager: Any) -> None:
        import pygame

        self.window = int(pygame.display.get_wm_info().get("window") or 0)
        self.manager = manager


def _report_watch_only(session: Any) -> int:
    """What a watch-only session saved, counted from the recording, and the commands to learn from it."""
    summary = session.write_watch_only_summary()
    n = summary["observation_only_episodes"]
    print(f"wrote {n} observation-only episode{'' if n == 1 else 's'} ({summary['steps']} steps, no actions) to {session.path}")
    for what, command in session.next_commands():
        print(f"  {what}: {command}")
    return 0


def _run_oneshot(args: argparse.Namespace) -> int:
    import pygame

    from app.input.gamepad import GamepadDevice
    from app.input.keyboard import KeyboardDevice
    from app.loop import AppLoop
    from app.render.renderer import Renderer
    from app.render.theme import WINDOW_SIZE

    if args.resume:
        raise ConfigError("--resume does not apply to --oneshot; give --out DIR to add demos to an earlier folder")
    if args.env not in (None, ONESHOT_ENV_ID):
        raise ConfigError(f"--oneshot runs on {ONESHOT_ENV_ID} (the family `ilcore train oneshot` trains on), not {args.env}")
    watch_episodes = 5 if args.watch_episodes is None else args.watch_episodes
    if watch_episodes < 1:
        raise ConfigError(f"--watch-episodes must be at least 1, got {watch_episodes}")  # named as the person typed it
    settings = OneShotSettings(watch_episodes=watch_episodes, seed=args.seed, simulated=args.simulate)
    run = Path(args.oneshot)
    if not run.is_dir():
        raise ConfigError(f"--oneshot {run}: no such folder; give the --out folder of `ilcore train oneshot`")
    out = Path(args.out) if args.out else _new_session_dir("ParticleSequence-oneshot")
    session = OneShotSession(run, out, settings)  # a folder without the policy files is a one-line ConfigError
    try:
        if args.task is not None and not 0 <= args.task < len(session.tasks):
            raise ConfigError(f"--task must be a task id in 0..{len(session.tasks) - 1} for the policy in {run}, got {args.task}")
        keymap, pad_config = _input_config(args, ONESHOT_ENV_ID, session.action_space)
        manager = OneShotManager(session, task_id=args.task)
    except BaseException:
        session.close()
        raise

    pygame.init()
    pygame.display.set_caption(f"ilcore - one-shot - {run}")
    screen = pygame.display.set_mode(WINDOW_SIZE)
    autopilot = None
    if args.simulate:
        autopilot = OneShotSimulatedPerson()
    loop = AppLoop(
        manager, [KeyboardDevice(keymap), GamepadDevice(pad_config, session.action_space)], Renderer(screen),
        keymap=keymap, fps=args.fps, realtime=not args.simulate, autopilot=autopilot,
    )
    print(f"one-shot: policy {run}, demos go to {out}", flush=True)
    try:
        manager.start()
        loop.run(max_frames=args.frames)
    finally:
        session.close()
        pygame.quit()
    mode = manager.mode
    print(f"wrote {len(mode.demos_saved)} one-shot demos to {out}")
    for task_id, successes, episodes in mode.history:
        print(f"  task {task_id}: the policy finished it {successes} of {episodes} times from new starts")
    return 0


def _env_kwargs(text: str) -> dict[str, Any]:
    """--env-kwargs as a dict for gymnasium.make; the app sets render_mode itself (rgb_array)."""
    try:
        kwargs = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        kwargs = None
    if not isinstance(kwargs, dict):
        raise ConfigError("--env-kwargs must be a JSON object, e.g. '{\"continuous\": true}'")
    mode = kwargs.pop("render_mode", "rgb_array")
    if mode != "rgb_array":
        raise ConfigError(f"--env-kwargs render_mode {mode!r}: the app draws the env's 'rgb_array' frames; leave render_mode out")
    return kwargs


def _check_numbers(args: argparse.Namespace) -> None:
    for flag, value in (("--fps", args.fps), ("--max-episode-steps", args.max_episode_steps), ("--threads", args.threads)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be at least 1, got {value}")


def _checked_action_space(settings: Any) -> Any:
    """Make the env as the session will, check that it draws rgb_array frames, and return its
    action space; anything wrong is one ConfigError (the env is closed again either way)."""
    env_id = settings.env_id
    with warnings.catch_warnings(record=True) as caught:  # held back: an env refused below gets one line, no warnings
        try:
            env = make_app_env(env_id, settings.env_kwargs, settings.max_episode_steps)
        except UserError:
            raise
        except Exception as exc:  # the env's own constructor refusing its kwargs (ValueError, AssertionError...)
            raise ConfigError(f"{env_id} could not be made with --env-kwargs {json.dumps(settings.env_kwargs)}: "
                              f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from None
    try:
        try:
            env.reset(seed=settings.seed)
            frame = env.render()
        except Exception as exc:
            raise ConfigError(f"{env_id} cannot show a frame: {type(exc).__name__}: {exc}") from None
        if not (isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] in (3, 4) and frame.dtype == np.uint8):
            raise ConfigError(f"{env_id} does not render rgb_array frames (render() gave {type(frame).__name__}); the app shows them")
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
        return env.action_space
    finally:
        env.close()


def _new_session_dir(env_id: str) -> Path:
    return Path(default_session_path(env_id))


def _input_config(args: argparse.Namespace, env_id: str, space: Any) -> tuple[Any, Any]:
    """The keymap (--keymap or the env's default) and the gamepad mapping (--gamepad, or one
    derived from the keymap's named actions), both checked against the action space."""
    from app.input.gamepad import default_gamepad_config, gamepad_config_from_dict
    from app.input.keymaps import default_keymap, load_keymap

    keymap = load_keymap(args.keymap, space, env_id) if args.keymap else default_keymap(env_id, space)
    if args.gamepad:
        pad_config = gamepad_config_from_dict(_read_table(args.gamepad), space)
    else:
        pad_config = default_gamepad_config(space, {name: keymap.combos[c] for c, name in keymap.names.items()})
    return keymap, pad_config


def _read_table(path: str) -> dict:
    p = Path(path)
    try:
        data = json.loads(p.read_text()) if p.suffix.lower() == ".json" else tomllib.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read gamepad mapping {p}: {exc}") from None
    return data.get("gamepad", data) if isinstance(data, dict) else data  # a non-table is refused by the builder


if __name__ == "__main__":
    code = main()
    # Everything is saved and closed by now (session, writer, trainer, window): skip the interpreter's
    # teardown, which with torch loaded was a second or more of the wait after Esc.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
