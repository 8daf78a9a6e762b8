"""Drive a whole CartPole session of ``python -m app`` in a real X window, as a person meets it.

The app runs in an X server (Xvfb, started here on a free display when DISPLAY is not set) with
its ordinary window; this script is the person: it presses real keys with ``xdotool keydown`` /
``keyup`` on the focused window, watches the screen, and saves a screenshot at each stage into
``--shots``. It

- demonstrates by holding Right/Left, choosing from the pole's tilt seen on screen;
- presses Enter only when a stage shows that it is done, after checking that the app waited;
- starts the DAgger round with Enter, answers live questions with an arrow key (one with Tab,
  so review has a state), holds Space for two takeovers and undoes the second with Z, undoes
  one answer with Z, and presses Esc once mid-episode (the app must ask, not quit);
- answers the review, undoes its last answer with Z and answers again;
- watches the policy, reaches the summary and quits with Esc (a second Esc if it is still open).

Then ``ilcore info DIR --json`` must report demo labels, ``summary.json`` must exist and
``writer.lock`` must be gone. A short report (stages seen, labels by reason, seconds) is printed;
the exit status is 1 when a check failed. ``--quit-by close`` ends the session after the
demonstration by closing the window as a window manager's close button does (WM_DELETE_WINDOW);
``--quit-by destroy`` destroys it with ``xdotool windowclose``; both check the same files.

Needs (Debian/Ubuntu)::

    apt-get update && apt-get install -y xvfb xdotool x11-utils imagemagick

Screenshots use Pillow's ImageGrab when Pillow has XCB support, else ImageMagick's ``import``.
Run::

    python scripts/xvfb_session.py --out /tmp/xs --shots /tmp/xs-shots

The stage the app is in is read from the window's accent colour (the line under the banner) and
from the session folder (``app_state.json``); nothing sleeps blindly for long.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ilcore.data.format import LOCK_FILE  # noqa: E402  (after the path insert above)

APT = "apt-get update && apt-get install -y xvfb xdotool x11-utils imagemagick"
BANNER_LINE_Y = 58  # the accent line under the banner (app/render/renderer.py: BANNER_H - 2)
POLE_BAND = (80, 250, 684, 470)  # where CartPole's pole is drawn in the env frame's box (a smaller grab is quicker)
POLE = (202, 152, 101)  # CartPole's pole colour in its rgb_array frame
REACTION_S = 0.35  # a person's pause between seeing something and pressing a key
STAGE_TIMEOUT_S = 240.0


def accents() -> dict[tuple[int, int, int], str]:
    from app.render.theme import ACCENTS  # lazy: theme imports pygame, which this driver does not need

    return {tuple(c): name for name, c in ACCENTS.items()}


def missing_tools(need_xvfb: bool) -> list[str]:
    """Programs this script needs that are not on PATH, with the apt package that has them."""
    tools = {"xdotool": "xdotool", "xwininfo": "x11-utils"}
    if need_xvfb:
        tools["Xvfb"] = "xvfb"
    if not _pil_can_grab():
        tools["import"] = "imagemagick"
    return [f"{t} (apt package {pkg})" for t, pkg in tools.items() if shutil.which(t) is None]


def _pil_can_grab() -> bool:
    try:
        from PIL import features

        return bool(features.check("xcb"))
    except ImportError:
        return False


# --- the X server and the window -------------------------------------------------------------

def free_display() -> int:
    for n in range(77, 200):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            return n
    raise SystemExit("no free X display number in 77..199")


def start_xvfb() -> tuple[subprocess.Popen, str]:
    n = free_display()
    display = f":{n}"
    proc = subprocess.Popen(["Xvfb", display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"Xvfb {display} exited with status {proc.returncode}")
        if subprocess.run(["xwininfo", "-root"], env={**os.environ, "DISPLAY": display},
                          capture_output=True).returncode == 0:
            return proc, display
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"Xvfb {display} did not start within 20 s")


class Screen:
    """The app's window: find it, focus it, press keys in it, look at it."""

    def __init__(self, display: str, shots: Path) -> None:
        self.env = {**os.environ, "DISPLAY": display}
        self.display = display
        self.shots = shots
        self.wid = ""
        self.geometry = (0, 0, 0, 0)
        self.held: set[str] = set()
        self.keys_pressed = 0
        self.names: dict[tuple[int, int, int], str] = accents()
        self.pil = _pil_can_grab()
        try:
            self.xtest: XTest | None = XTest(display)
        except OSError:
            self.xtest = None  # driving keys fall back to xdotool (slower reactions)

    def xdotool(self, *args: str) -> str:
        return subprocess.run(["xdotool", *args], env=self.env, capture_output=True, text=True, timeout=10).stdout

    def find_window(self, app: subprocess.Popen, timeout: float = 90.0) -> float:
        """Wait for the window titled "ilcore ..."; returns the seconds it took."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if app.poll() is not None:
                raise Failure(f"the app exited (status {app.returncode}) before its window appeared")
            ids = self.windows()
            if ids:
                self.wid = ids[-1]
                self._read_geometry()
                self.xdotool("windowfocus", "--sync", self.wid)
                return time.monotonic() - t0
            time.sleep(0.2)
        raise Failure(f"no window named 'ilcore ...' within {timeout:.0f} s")

    def windows(self) -> list[str]:
        """Ids of the windows whose title starts with "ilcore", from ``xwininfo -root -tree``
        (``xdotool search --name`` misses SDL's UTF-8 titles)."""
        out = subprocess.run(["xwininfo", "-root", "-tree"], env=self.env, capture_output=True, text=True).stdout
        return [line.split()[0] for line in out.splitlines() if '"ilcore' in line and line.strip().startswith("0x")]

    def _read_geometry(self) -> None:
        out = subprocess.run(["xwininfo", "-id", self.wid], env=self.env, capture_output=True, text=True).stdout
        vals = {}
        for line in out.splitlines():
            key, _, val = line.strip().partition(":")
            vals[key] = val.strip()
        self.geometry = (int(vals["Absolute upper-left X"]), int(vals["Absolute upper-left Y"]),
                         int(vals["Width"]), int(vals["Height"]))

    # keys: real key events through XTEST into the focused window, as a keyboard makes them
    def down(self, key: str, fast: bool = False) -> None:
        if key not in self.held:
            if fast and self.xtest is not None:
                self.xtest.key(key, True)
            else:
                self.xdotool("keydown", key)
            self.held.add(key)
            self.keys_pressed += 1

    def up(self, key: str, fast: bool = False) -> None:
        if key in self.held:
            if fast and self.xtest is not None:
                self.xtest.key(key, False)
            else:
                self.xdotool("keyup", key)
            self.held.discard(key)

    def tap(self, key: str, hold_s: float = 0.08) -> None:
        self.down(key)
        time.sleep(hold_s)
        self.up(key)

    def release_all(self) -> None:
        for key in list(self.held):
            self.up(key)

    # looking
    def grab(self, box: tuple[int, int, int, int] | None = None) -> Any:
        """The window (or ``box`` of it: left, top, right, bottom) as an RGB PIL image."""
        from PIL import Image

        x, y, w, h = self.geometry
        box = box or (0, 0, w, h)
        if self.pil:
            from PIL import ImageGrab

            return ImageGrab.grab(bbox=(x + box[0], y + box[1], x + box[2], y + box[3]), xdisplay=self.display).convert("RGB")
        png = subprocess.run(["import", "-window", self.wid, "png:-"], env=self.env, capture_output=True, timeout=20).stdout

        return Image.open(io.BytesIO(png)).convert("RGB").crop(box)

    def accent(self, image: Any = None) -> str:
        """The mode the window shows, by the colour of the line under its banner ("" if unknown)."""
        image = image if image is not None else self.grab()
        w = image.size[0]
        votes: dict[str, int] = {}
        for x in (5, w // 3, w // 2, 2 * w // 3, w - 5):
            name = self.names.get(image.getpixel((x, BANNER_LINE_Y)))
            if name:
                votes[name] = votes.get(name, 0) + 1
        return max(votes, key=votes.__getitem__) if votes else ""

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.grab().save(path)
        return path

    def pole_lean(self, image: Any = None) -> float | None:
        """How far the pole leans right (+) or left (-) on screen, from its pixels; None if not seen."""
        a = np.asarray(image if image is not None else self.grab(POLE_BAND))
        ys, xs = np.nonzero((a[:, :, 0] == POLE[0]) & (a[:, :, 1] == POLE[1]) & (a[:, :, 2] == POLE[2]))
        if len(xs) < 20:
            return None
        top, bottom = ys.min(), ys.max()
        span = max(1, bottom - top)
        x_top = xs[ys <= top + span // 5].mean()
        x_bottom = xs[ys >= bottom - span // 5].mean()
        return float(x_top - x_bottom) / span


class XTest:
    """Key events through the XTEST extension, as ``xdotool keydown`` sends them, but from this
    process: spawning xdotool costs ~100 ms a key on a busy 2-core machine, too slow to balance a
    pole. Used only for the driving keys; every other key goes through xdotool."""

    def __init__(self, display: str) -> None:
        self.x11 = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
        self.xtst = ctypes.CDLL(ctypes.util.find_library("Xtst") or "libXtst.so.6")
        self.x11.XOpenDisplay.restype = ctypes.c_void_p
        self.x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        self.x11.XStringToKeysym.restype = ctypes.c_ulong
        self.x11.XStringToKeysym.argtypes = [ctypes.c_char_p]
        self.x11.XKeysymToKeycode.restype = ctypes.c_ubyte
        self.x11.XKeysymToKeycode.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
        self.x11.XFlush.argtypes = [ctypes.c_void_p]
        self.xtst.XTestFakeKeyEvent.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_ulong]
        self.dpy = self.x11.XOpenDisplay(display.encode())
        if not self.dpy:
            raise OSError(f"cannot open display {display}")

    def key(self, name: str, down: bool) -> None:
        code = self.x11.XKeysymToKeycode(self.dpy, self.x11.XStringToKeysym(name.encode()))
        self.xtst.XTestFakeKeyEvent(self.dpy, code, 1 if down else 0, 0)
        self.x11.XFlush(self.dpy)

    def ask_to_close(self, window: int) -> None:
        """Send WM_DELETE_WINDOW, which is what a window manager sends when its close button is
        clicked (Xvfb has no window manager; ``xdotool windowclose`` destroys the window instead)."""
        class ClientMessage(ctypes.Structure):
            _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
                        ("display", ctypes.c_void_p), ("window", ctypes.c_ulong), ("message_type", ctypes.c_ulong),
                        ("format", ctypes.c_int), ("data", ctypes.c_long * 5)]

        class XEvent(ctypes.Union):
            _fields_ = [("xclient", ClientMessage), ("pad", ctypes.c_long * 24)]

        self.x11.XInternAtom.restype = ctypes.c_ulong
        self.x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        self.x11.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
        event = XEvent()
        event.xclient.type = 33  # ClientMessage
        event.xclient.window = window
        event.xclient.message_type = self.x11.XInternAtom(self.dpy, b"WM_PROTOCOLS", 0)
        event.xclient.format = 32
        event.xclient.data[0] = self.x11.XInternAtom(self.dpy, b"WM_DELETE_WINDOW", 0)
        self.x11.XSendEvent(self.dpy, window, 0, 0, ctypes.byref(event))
        self.x11.XFlush(self.dpy)


class Failure(Exception):
    pass


# --- the session folder ----------------------------------------------------------------------

def read_state(out: Path) -> dict[str, Any]:
    try:
        return json.loads((out / "app_state.json").read_text())
    except (OSError, ValueError):
        return {}


def episodes(out: Path, kind: str) -> int:
    return len([e for e in read_state(out).get("episodes", []) if e.get("kind") == kind and not e.get("discarded")])


def plan(rounds: int) -> list[str]:
    stages = ["demo", "train"]
    for k in range(1, rounds + 1):
        stages += [f"dagger:{k}", f"review:{k}", "train"]
    return stages + ["watch", "summary"]


# --- the person ------------------------------------------------------------------------------

@dataclass
class Person:
    screen: Screen
    out: Path
    app: subprocess.Popen
    log: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    lean: float = 0.0
    _n: int = 0

    def say(self, text: str) -> None:
        self.log.append(f"{time.monotonic() - T0:6.1f}s  {text}")
        print(self.log[-1], flush=True)

    def shot(self, name: str) -> None:
        self._n += 1
        self.screen.shot(f"{self._n:02d}_{name}")

    def undo(self, keys: Any, what: str, shot: str) -> None:
        """Press Z after a person's reaction time, say what it undid and look at the screen."""
        time.sleep(REACTION_S)
        keys.tap("z")
        self.say(what)
        time.sleep(0.3)
        self.shot(shot)

    def wait_for(self, what: str, cond: Callable[[], bool], timeout: float = STAGE_TIMEOUT_S, every: float = 0.15) -> None:
        t0 = time.monotonic()
        while not cond():
            if self.app.poll() is not None:
                raise Failure(f"the app exited (status {self.app.returncode}) while waiting for {what}")
            if time.monotonic() - t0 > timeout:
                raise Failure(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(every)

    def stage(self) -> int:
        return int(read_state(self.out).get("stage", 0))

    def drive_step(self) -> str:
        """Hold the arrow that pushes the cart under the pole (lean now plus where it is going)."""
        lean = self.screen.pole_lean()
        if lean is None:
            return ""
        trend = lean - self.lean
        self.lean = lean
        key = "Right" if lean + 10.0 * trend > 0 else "Left"
        other = "Left" if key == "Right" else "Right"
        self.screen.up(other, fast=True)
        self.screen.down(key, fast=True)
        return key

    def check_waits(self, accent: str, stage: int, seconds: float = 2.0) -> None:
        """The stage is done: the app must wait for the person, not run ahead."""
        time.sleep(seconds)
        now, on_screen = self.stage(), self.screen.accent()
        if now != stage or on_screen != accent:
            self.problems.append(f"the app ran ahead: stage {stage} ({accent}) moved on to {now} ({on_screen}) without a key")

    def enter(self) -> None:
        time.sleep(REACTION_S)
        self.screen.tap("Return")

    def leave_stage(self, stage: int) -> None:
        self.enter()
        self.wait_for(f"stage {stage + 1}", lambda: self.stage() > stage, timeout=20)


def run_session(person: Person, args: argparse.Namespace) -> None:
    s, out = person.screen, person.out
    stages = plan(args.rounds)
    # --- demonstrate
    person.wait_for("the demonstrate screen", lambda: s.accent() == "demo", timeout=60)
    person.seen.append("demo")
    time.sleep(1.0)  # a person reads the screen first: the episode waits for the first key
    person.shot("demo_waiting_for_key")
    s.tap("minus")  # slower (25%): the pole is easier to keep up
    time.sleep(REACTION_S)
    for d in range(args.demos):
        person.say(f"demonstration {d + 1}: holding arrows by the pole's lean")
        t_shot = time.monotonic() + 3.0
        person.lean = 0.0
        while episodes(out, "demo") <= d:
            person.drive_step()
            if t_shot and time.monotonic() > t_shot:
                person.shot(f"demo_{d + 1}_driving")
                t_shot = 0.0
            time.sleep(0.03)  # driving is quick: a glance and a key, many times a second
            if person.app.poll() is not None:
                raise Failure("the app exited during the demonstration")
        s.release_all()
    if args.quit_by != "esc":
        time.sleep(1.0)
        person.shot("demo_done_before_close")
        if args.quit_by == "close" and s.xtest is not None:
            person.say(f"closing the window {s.wid} as a window manager does (WM_DELETE_WINDOW)")
            s.xtest.ask_to_close(int(s.wid, 16))
        else:
            person.say(f"destroying the window {s.wid} with xdotool windowclose")
            s.xdotool("windowclose", s.wid)
        return
    person.check_waits("demo", 0)
    person.shot("demo_done")
    person.leave_stage(0)

    for index in range(1, len(stages)):
        name, _, arg = stages[index].partition(":")
        person.wait_for(f"stage {stages[index]}", lambda: person.stage() >= index, timeout=30)
        # a stage with nothing to do (an empty review, no new labels to train on) is passed at
        # once: wait until the screen shows this stage or the folder says it is behind us
        shows = {"dagger": ("dagger", "query", "takeover")}.get(name, (name,))
        person.wait_for(f"the {name} screen", lambda: person.stage() > index or s.accent() in shows, timeout=20)
        if person.stage() > index:
            person.say(f"{stages[index]}: skipped by the app (nothing to do)")
            continue
        person.seen.append(stages[index])
        person.say(f"stage {index + 1}/{len(stages)}: {stages[index]}")
        if name == "train":
            train(person, index)
        elif name == "dagger":
            dagger(person, index, int(arg), args)
        elif name == "review":
            review(person, index)
        elif name == "watch":
            time.sleep(3.0)
            person.shot("watch")
            time.sleep(REACTION_S)
            s.tap("n")  # the footer's "N next": enough watching
            person.wait_for("the summary", lambda: person.stage() > index, timeout=20)
        elif name == "summary":
            person.wait_for("summary.json", lambda: (out / "summary.json").exists(), timeout=30)
            time.sleep(1.0)
            person.shot("summary")
            time.sleep(REACTION_S)
            s.tap("Escape")
            try:
                person.app.wait(timeout=3)
            except subprocess.TimeoutExpired:
                person.say("still open after Esc: Esc again")
                s.tap("Escape")


def train(person: Person, index: int) -> None:
    s, out = person.screen, person.out
    version = int(read_state(out).get("policy_version", 0))
    time.sleep(1.0)
    person.shot(f"train_v{version + 1}_running")
    person.wait_for(f"policy v{version + 1}", lambda: int(read_state(out).get("policy_version", 0)) > version)
    person.say(f"policy v{version + 1} landed")
    person.check_waits("train", index)
    person.shot(f"train_v{version + 1}_done")
    person.leave_stage(index)


def dagger(person: Person, index: int, round: int, args: argparse.Namespace) -> None:
    s, out = person.screen, person.out
    time.sleep(1.0)
    before = episodes(out, "dagger")
    person.shot(f"dagger{round}_waiting_for_enter")
    person.check_waits("dagger", index, 1.5)
    if episodes(out, "dagger") != before:
        person.problems.append(f"DAgger round {round} ran an episode before Enter")
    s.tap("minus")  # half speed: the learner's steps can be followed, a takeover can be driven
    time.sleep(0.2)
    s.tap("minus")
    person.enter()
    answered = skipped = undone = takeovers = 0
    esc_done = False
    t_start = time.monotonic()
    shots: set[str] = set()
    target = before + args.episodes_per_round
    while episodes(out, "dagger") < target:
        if person.app.poll() is not None:
            raise Failure("the app exited during the DAgger round")
        image = s.grab()
        accent = s.accent(image)
        elapsed = time.monotonic() - t_start
        if accent == "query":
            # a live question: look at the pole, then answer with the arrow that saves it
            if "query" not in shots:
                shots.add("query")
                person.shot(f"dagger{round}_live_question")
            time.sleep(REACTION_S)
            if skipped == 0 and answered >= 1:
                s.tap("Tab")
                skipped += 1
                person.say("skipped a question with Tab (it goes to review)")
            else:
                lean = s.pole_lean(image.crop(POLE_BAND)) or 0.0
                s.tap("Right" if lean > 0 else "Left")
                answered += 1
                if answered == 1:
                    person.undo(s, "answered the first question, then Z undid it", f"dagger{round}_undo_answer")
                    undone += 1
        elif not esc_done and elapsed > 2.0 and accent == "dagger":
            s.tap("Escape")
            esc_done = True
            time.sleep(0.6)
            person.shot(f"dagger{round}_esc_asks")
            if person.app.poll() is not None:
                person.problems.append("Esc mid-episode quit at once (no confirmation)")
                raise Failure("the app quit on the first Esc mid-episode")
            person.say("Esc once mid-episode: the app asks; a key carries on")
            time.sleep(REACTION_S)
            s.tap("p")  # any other key carries on; P twice leaves the pause as it was
            s.tap("p")
        elif takeovers < 2 and elapsed > 4.0 + 4.0 * takeovers and accent == "dagger":
            # hold Space and drive for about a second and a half
            s.down("space")
            person.lean = 0.0
            t_end = time.monotonic() + 1.5
            while time.monotonic() < t_end and episodes(out, "dagger") < target:
                person.drive_step()
                if f"takeover{takeovers}" not in shots and time.monotonic() > t_end - 0.8:
                    shots.add(f"takeover{takeovers}")
                    person.shot(f"dagger{round}_takeover_{takeovers + 1}")
                time.sleep(0.03)
            s.release_all()
            takeovers += 1
            person.say(f"takeover {takeovers}: held Space 1.5 s")
            if takeovers == 2:
                person.undo(s, "Z undid the whole second takeover", f"dagger{round}_undo_takeover")
                undone += 1
        elif "driving" not in shots and elapsed > 1.0 and accent == "dagger":
            shots.add("driving")
            person.shot(f"dagger{round}_learner_drives")
        time.sleep(0.1)
    person.say(f"round {round}: answered {answered}, skipped {skipped}, undid {undone}, {takeovers} takeovers")
    person.check_waits("dagger", index)
    person.shot(f"dagger{round}_done")
    person.leave_stage(index)


def review(person: Person, index: int) -> None:
    s = person.screen
    time.sleep(1.5)  # the replay plays; a person watches it before answering
    person.shot("review")
    answers = 0
    while person.stage() == index and answers < 30:
        image = s.grab()
        if s.accent(image) != "review":
            break
        lean = s.pole_lean(image.crop(POLE_BAND)) or 0.0
        s.tap("Right" if lean > 0 else "Left")
        answers += 1
        time.sleep(0.8)
        if answers == 1:
            person.shot("review_after_answer")
            s.tap("z")
            person.say("review: answered, then Z undid it")
            time.sleep(0.8)
            person.shot("review_undone")
            continue
        # done once nothing is queued any more (an undone live answer is queued again, and a state
        # without a replay shows no pole, so the screen alone cannot say it)
        info = ilcore_info(person.out)
        if info is not None and info.get("dagger", {}).get("queued", 1) == 0:
            break
    person.check_waits("review", index, 1.0)
    person.shot("review_done")
    person.leave_stage(index)


def ilcore_info(out: Path) -> dict[str, Any] | None:
    proc = subprocess.run([sys.executable, "-m", "ilcore", "info", str(out), "--json"], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        return None
    try:
        return json.loads(proc.stdout)
    except ValueError:
        return None


T0 = time.monotonic()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", help="session folder for the app (default: a new temporary folder)")
    p.add_argument("--shots", help="folder for the screenshots (default: OUT-shots)")
    p.add_argument("--demos", type=int, default=1)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--episodes-per-round", type=int, default=1)
    p.add_argument("--max-episode-steps", type=int, default=150)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--query-mode", default="live", help="the app's --query-mode (live: the round asks on screen)")
    p.add_argument("--quit-by", choices=("esc", "close", "destroy"), default="esc",
                   help="esc: play the whole session and quit with Esc; close: after the demo, close the window as a "
                        "window manager's close button does; destroy: after the demo, `xdotool windowclose` it")
    args = p.parse_args(argv)

    display = os.environ.get("DISPLAY", "")
    missing = missing_tools(need_xvfb=not display)
    if missing:
        print(f"error: missing {', '.join(missing)}; install them with: {APT}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="xvfb-session-")) / "session"
    if out.exists() and any(out.iterdir()):
        print(f"error: {out} is not empty; give a new --out", file=sys.stderr)
        return 2
    shots = Path(args.shots) if args.shots else out.with_name(out.name + "-shots")
    shots.mkdir(parents=True, exist_ok=True)
    xvfb = None
    if not display:
        xvfb, display = start_xvfb()
    env = {**os.environ, "DISPLAY": display}
    env.pop("SDL_VIDEODRIVER", None)  # a real X window, not SDL's dummy driver
    cmd = [sys.executable, "-m", "app", "--out", str(out), "--demos", str(args.demos), "--rounds", str(args.rounds),
           "--episodes-per-round", str(args.episodes_per_round), "--max-episode-steps", str(args.max_episode_steps),
           "--epochs", str(args.epochs), "--query-mode", args.query_mode]
    log_path = shots / "app_output.txt"
    screen = Screen(display, shots)
    t0 = time.monotonic()
    failures: list[str] = []
    with open(log_path, "w") as log:
        app = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        person = Person(screen, out, app)
        try:
            person.say(f"app started on {display}: {' '.join(cmd[1:])}")
            took = screen.find_window(app)
            person.say(f"window {screen.wid} ({screen.geometry[2]}x{screen.geometry[3]}) after {took:.1f} s")
            run_session(person, args)
            app.wait(timeout=60)
        except (Failure, subprocess.TimeoutExpired) as exc:
            failures.append(f"session: {exc}")
            try:
                person.shot("failure")
            except Exception:
                pass
        finally:
            screen.release_all() if app.poll() is None else None
            if app.poll() is None:
                app.send_signal(signal.SIGINT)
                try:
                    app.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    app.kill()
                    app.wait()
            if xvfb is not None:
                xvfb.terminate()
                xvfb.wait()
    seconds = time.monotonic() - t0
    output = log_path.read_text()
    failures += person.problems
    failures += check(out, output, app.returncode)
    info = ilcore_info(out) or {}
    print("\n--- report ---")
    print(f"stages seen: {' -> '.join(person.seen)}")
    print(f"labels by reason: {info.get('labels_by_reason')}")
    print(f"episodes: {info.get('episodes')}, human seconds: {info.get('dagger', {}).get('human_seconds')}")
    print(f"keys pressed: {screen.keys_pressed}, seconds: {seconds:.0f}, app exit status: {app.returncode}")
    print(f"screenshots: {shots} ({len(list(shots.glob('*.png')))}), app output: {log_path}")
    print("app said:\n  " + "\n  ".join(output.strip().splitlines()[-8:]))
    for f in failures:
        print(f"FAILED: {f}")
    print("ok" if not failures else f"{len(failures)} check(s) failed")
    return 1 if failures else 0


def check(out: Path, output: str, rc: int | None) -> list[str]:
    """What must hold after the app exited, however it was ended."""
    failures = []
    if rc != 0:
        failures.append(f"the app exited with status {rc}")
    if (out / LOCK_FILE).exists():
        failures.append(f"{out / LOCK_FILE} is still there after the app exited")
    if not (out / "summary.json").exists():
        failures.append("no summary.json in the session folder")
    if "wrote " not in output or "summary:" not in output:
        failures.append("the app did not print its summary lines (wrote ... / summary: ...)")
    info = ilcore_info(out)
    if info is None:
        failures.append(f"ilcore info {out} --json failed")
    elif not info.get("labels_by_reason", {}).get("demo"):
        failures.append(f"no demo labels in ilcore info: {info.get('labels_by_reason')}")
    return failures


if __name__ == "__main__":
    sys.exit(main())
