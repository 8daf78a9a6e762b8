"""Draws a mode's view model, the HUD and the help overlay. Reads state; never changes it."""

from __future__ import annotations

import numpy as np
import pygame

from app.modes.base import Meter, ModeView
from app.modes.manager import HudView
from app.render import theme as T

BANNER_H = 60
FOOTER_H = 34
MARGIN = 16
PANEL_W = 340


class Renderer:
    def __init__(self, surface: pygame.Surface) -> None:
        self.surface = surface
        self.fonts = T.Fonts()
        self._frame_key: tuple[int, tuple[int, int]] | None = None
        self._frame_surface: pygame.Surface | None = None
        self._text_cache: dict[tuple[str, int, str, tuple[int, int, int]], pygame.Surface] = {}
        self._overlay_cache: dict[tuple, pygame.Surface] = {}

    # --- primitives ------------------------------------------------------------------------
    def text(self, s: str, size: int, color: tuple[int, int, int] = T.TEXT, kind: str = "regular") -> pygame.Surface:
        key = (s, size, kind, color)
        surf = self._text_cache.get(key)
        if surf is None:
            if len(self._text_cache) > 2000:  # changing numbers would grow it forever
                self._text_cache.clear()
            surf = self.fonts.get(size, kind).render(s, True, color)
            self._text_cache[key] = surf
        return surf

    def blit_text(self, s: str, pos: tuple[int, int], size: int = 16, color: tuple[int, int, int] = T.TEXT, kind: str = "regular", anchor: str = "topleft") -> pygame.Rect:
        surf = self.text(s, size, color, kind)
        rect = surf.get_rect(**{anchor: pos})
        self.surface.blit(surf, rect)
        return rect

    def card(self, rect: pygame.Rect, title: str | None = None) -> int:
        pygame.draw.rect(self.surface, T.PANEL, rect, border_radius=10)
        pygame.draw.rect(self.surface, T.PANEL_EDGE, rect, width=1, border_radius=10)
        if title:
            self.blit_text(title.upper(), (rect.x + 14, rect.y + 10), 12, T.MUTED, "bold")
            return rect.y + 32
        return rect.y + 12

    # --- whole window ----------------------------------------------------------------------
    def draw(self, view: ModeView, hud: HudView, help_entries: list[tuple[str, str]] | None = None) -> None:
        self.surface.fill(T.BG)
        w, h = self.surface.get_size()
        accent = T.ACCENTS.get(view.accent, T.ACCENTS["dagger"])
        self._banner(view, hud, accent, w)
        main = pygame.Rect(MARGIN, BANNER_H + MARGIN, w - PANEL_W - 3 * MARGIN, h - BANNER_H - FOOTER_H - 2 * MARGIN)
        side = pygame.Rect(main.right + MARGIN, main.y, PANEL_W, main.height)
        self._main(view, main, accent)
        self._side(view, hud, side, accent)
        self._footer(view, hud, w, h)
        if help_entries is not None:
            self._help(view, help_entries, accent)

    def _banner(self, view: ModeView, hud: HudView, accent: tuple[int, int, int], w: int) -> None:
        pygame.draw.rect(self.surface, T.PANEL, (0, 0, w, BANNER_H))
        pygame.draw.line(self.surface, accent, (0, BANNER_H - 2), (w, BANNER_H - 2), 3)
        title = self.text(view.title, 22, (12, 14, 20), "bold")
        pill = pygame.Rect(MARGIN, 12, title.get_width() + 28, 36)
        pygame.draw.rect(self.surface, accent, pill, border_radius=18)
        self.surface.blit(title, title.get_rect(center=pill.center))
        self.blit_text(view.subtitle, (pill.right + 14, 30), 15, T.MUTED, anchor="midleft")
        # right side: the HUD facts, right-aligned
        parts: list[tuple[str, tuple[int, int, int]]] = []
        if hud.alert:
            parts.append((hud.alert, T.WARN))
        if hud.round:
            parts.append((f"round {min(hud.round, hud.rounds)}/{hud.rounds}", T.TEXT))
        if hud.facts is not None:
            parts.extend((fact, T.TEXT) for fact in hud.facts)
        else:
            parts.append((f"{hud.labels} labels", T.TEXT))
            parts.append(("query -" if hud.query_rate is None else f"query {100 * hud.query_rate:.0f}%", T.TEXT))
        parts.append((f"{hud.fps:.0f} fps", T.MUTED))
        x = w - MARGIN
        if hud.recording:
            rec = self.text(hud.recording_label, 15, T.BAD, "bold")
            x -= rec.get_width()
            self.surface.blit(rec, (x, 30 - rec.get_height() // 2))
            x -= 12
            pygame.draw.circle(self.surface, T.BAD, (x, 30), 6)
            x -= 20
        for s, color in reversed(parts):
            surf = self.text(s, 15, color)
            x -= surf.get_width()
            self.surface.blit(surf, (x, 30 - surf.get_height() // 2))
            x -= 10
            pygame.draw.circle(self.surface, T.DIM, (x, 30), 2)
            x -= 10

    def _frame_surface_for(self, frame: np.ndarray, box: pygame.Rect) -> pygame.Surface:
        key = (id(frame), box.size)
        if self._frame_key != key or self._frame_surface is None:
            fh, fw = frame.shape[:2]
            rgb = np.ascontiguousarray(frame[..., :3])
            surf = pygame.image.frombuffer(rgb.tobytes(), (fw, fh), "RGB")
            if fw > box.width or fh > box.height:
                # too big: smooth downscale (the one costly case, kept to frames that need it)
                scale = min(box.width / fw, box.height / fh)
                surf = pygame.transform.smoothscale(surf, (max(1, int(fw * scale)), max(1, int(fh * scale))))
            else:
                # fits: show it at an integer zoom, pixel-exact and cheap (no filtering per frame)
                zoom = int(min(box.width / fw, box.height / fh))
                if zoom > 1:
                    surf = pygame.transform.scale_by(surf, zoom)
            self._frame_surface = surf
            self._frame_key = key
        return self._frame_surface

    def _main(self, view: ModeView, rect: pygame.Rect, accent: tuple[int, int, int]) -> None:
        pygame.draw.rect(self.surface, (10, 12, 18), rect, border_radius=12)
        if view.frame is not None:
            inner = rect.inflate(-16, -16)
            surf = self._frame_surface_for(view.frame, inner)
            fr = surf.get_rect(center=inner.center)
            self.surface.blit(surf, fr)
            pygame.draw.rect(self.surface, accent, fr.inflate(6, 6), width=3, border_radius=6)
            if view.driver:
                label = {"you": "YOU DRIVE", "learner": "LEARNER DRIVES", "expert": "EXPERT DRIVES"}.get(view.driver, view.driver.upper())
                badge = self.text(label, 14, (12, 14, 20), "bold")
                br = pygame.Rect(fr.x + 10, fr.y + 10, badge.get_width() + 20, 28)
                pygame.draw.rect(self.surface, accent, br, border_radius=14)
                self.surface.blit(badge, badge.get_rect(center=br.center))
            if view.proposed and view.proposed != "-":
                tag = self.text(f"learner: {view.proposed}", 15, T.TEXT, "mono")
                tr = pygame.Rect(0, 0, tag.get_width() + 20, 28)
                tr.topright = (fr.right - 10, fr.y + 10)
                self._translucent(tr, (10, 12, 18), 200, radius=14)
                self.surface.blit(tag, tag.get_rect(center=tr.center))
            if view.timeline is not None:
                # above the frame's lower edge is where the prompt sits; the replay strip goes on top
                self._timeline(view.timeline, pygame.Rect(fr.x + 160, fr.y + 19, fr.width - 360, 10), accent)
        elif view.plot:
            plot_rect = rect.inflate(-40, -40)
            if view.prompt:
                plot_rect.height -= 120  # leave room for the prompt box below the plot
            self._plot(view.plot, view.plot_labels, plot_rect, accent)
        elif view.progress is not None and view.mode == "train":
            self._big_progress(view, rect, accent)
        elif view.body:
            self._body(view.body, rect.inflate(-48, -48), accent)
        if view.prompt:
            self._prompt(view, rect, accent)

    def _prompt(self, view: ModeView, rect: pygame.Rect, accent: tuple[int, int, int]) -> None:
        title = self.text(view.prompt or "", 26, T.TEXT, "bold")
        # a long detail (a stage's summary and what comes next) wraps instead of running off the box
        lines = self._wrap(view.prompt_detail, 15, "regular", rect.width - 68) if view.prompt_detail else []
        details = [self.text(line, 15, T.MUTED) for line in lines]
        width = max([title.get_width()] + [d.get_width() for d in details]) + 48
        height = 64 + 22 * len(details)
        box = pygame.Rect(0, 0, min(width, rect.width - 20), height)
        if view.prompt_at == "top":  # e.g. one-shot: the agent starts at the bottom of its frame
            box.midtop = (rect.centerx, rect.top + 30)
        else:
            box.midbottom = (rect.centerx, rect.bottom - 30)
        self._translucent(box, (10, 12, 18), 225, radius=12)
        pygame.draw.rect(self.surface, accent, box, width=2, border_radius=12)
        self.surface.blit(title, title.get_rect(midtop=(box.centerx, box.y + 14)))
        for i, detail in enumerate(details):
            self.surface.blit(detail, detail.get_rect(midtop=(box.centerx, box.y + 54 + 22 * i)))

    def _body(self, rows: list[tuple[str, str]], rect: pygame.Rect, accent: tuple[int, int, int]) -> None:
        """Text rows from the top of ``rect``; commands in monospace on a dark strip, wrapped at spaces."""
        y = rect.y
        for style, text in rows:
            if style == "heading":
                y += 4
                self.blit_text(text, (rect.x, y), 20, T.TEXT, "bold")
                y += 34
            elif style == "command":
                lines = self._wrap(text, 15, "mono", rect.width - 24)
                strip = pygame.Rect(rect.x, y, rect.width, 12 + 22 * len(lines))
                pygame.draw.rect(self.surface, (10, 12, 18), strip, border_radius=8)
                pygame.draw.line(self.surface, accent, (strip.x + 2, strip.y + 6), (strip.x + 2, strip.bottom - 6), 3)
                for i, line in enumerate(lines):
                    self.blit_text(line, (strip.x + 14, strip.y + 6 + 22 * i), 15, T.TEXT, "mono")
                y = strip.bottom + 14
            else:
                self.blit_text(text, (rect.x, y), 16, T.MUTED)
                y += 26

    def _wrap(self, text: str, size: int, kind: str, width: int) -> list[str]:
        """``text`` split at spaces into lines no wider than ``width`` (continuations indented)."""
        font = self.fonts.get(size, kind)
        lines: list[str] = []
        current = ""
        for word in text.split(" "):
            candidate = word if not current else f"{current} {word}"
            if current and font.size(candidate)[0] > width:
                lines.append(current)
                current = "    " + word
            else:
                current = candidate
        lines.append(current)
        return lines

    def _translucent(self, rect: pygame.Rect, color: tuple[int, int, int], alpha: int, radius: int = 0) -> None:
        key = (rect.size, color, alpha, radius)
        overlay = self._overlay_cache.get(key)
        if overlay is None:  # alpha surfaces are costly to build; the same few sizes recur every frame
            if len(self._overlay_cache) > 64:
                self._overlay_cache.clear()
            overlay = pygame.Surface(rect.size, pygame.SRCALPHA)
            pygame.draw.rect(overlay, (*color, alpha), overlay.get_rect(), border_radius=radius)
            self._overlay_cache[key] = overlay
        self.surface.blit(overlay, rect)

    def _timeline(self, timeline: tuple[int, int], rect: pygame.Rect, accent: tuple[int, int, int]) -> None:
        pos, n = timeline
        self._translucent(rect.inflate(16, 16), (10, 12, 18), 190, radius=10)
        pygame.draw.rect(self.surface, T.PANEL_EDGE, rect, border_radius=5)
        for i in range(n):
            x = rect.x + int((i + 0.5) * rect.width / n)
            color = accent if i == pos else (T.WARN if i == n - 1 else T.MUTED)
            pygame.draw.circle(self.surface, color, (x, rect.centery), 7 if i == pos else 4)

    def _big_progress(self, view: ModeView, rect: pygame.Rect, accent: tuple[int, int, int]) -> None:
        bar = pygame.Rect(0, 0, int(rect.width * 0.7), 22)
        bar.center = (rect.centerx, rect.centery - 20)
        pygame.draw.rect(self.surface, T.PANEL_EDGE, bar, border_radius=11)
        fill = bar.copy()
        fill.width = max(22, int(bar.width * (view.progress or 0.0)))
        pygame.draw.rect(self.surface, accent, fill, border_radius=11)
        self.blit_text(f"{100 * (view.progress or 0):.0f}%  {view.progress_label}", (bar.centerx, bar.bottom + 12), 16, T.MUTED, anchor="midtop")

    def _plot(self, points: list[tuple[float, float]], labels: tuple[str, str], rect: pygame.Rect, accent: tuple[int, int, int]) -> None:
        pygame.draw.rect(self.surface, T.PANEL, rect, border_radius=10)
        area = rect.inflate(-110, -90)
        area.x += 25
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        span_x = max(xs) - min(xs) or max(abs(max(xs)), 1.0)
        x0, x1 = max(0.0, min(xs) - 0.15 * span_x), max(xs) + 0.1 * span_x
        y0, y1 = min(0.0, min(ys)), max(ys) * 1.1 if max(ys) > 0 else 1.0
        if y1 - y0 < 1e-9:
            y1 = y0 + 1.0

        def to_px(x: float, y: float) -> tuple[int, int]:
            return (int(area.x + (x - x0) / (x1 - x0) * area.width), int(area.bottom - (y - y0) / (y1 - y0) * area.height))

        for i in range(5):
            yv = y0 + (y1 - y0) * i / 4
            py = to_px(0, yv)[1]
            pygame.draw.line(self.surface, T.PANEL_EDGE, (area.x, py), (area.right, py))
            self.blit_text(f"{yv:.0f}", (area.x - 8, py), 13, T.MUTED, anchor="midright")
        for i in range(5):
            xv = x0 + (x1 - x0) * i / 4
            px = to_px(xv, y0)[0]
            self.blit_text(f"{xv:.0f}", (px, area.bottom + 8), 13, T.MUTED, anchor="midtop")
        pygame.draw.line(self.surface, T.MUTED, area.bottomleft, area.bottomright, 2)
        pygame.draw.line(self.surface, T.MUTED, area.bottomleft, area.topleft, 2)
        pts = [to_px(x, y) for x, y in points]
        if len(pts) > 1:
            pygame.draw.lines(self.surface, accent, False, pts, 3)
        for p in pts:
            pygame.draw.circle(self.surface, accent, p, 6)
            pygame.draw.circle(self.surface, T.BG, p, 3)
        self.blit_text(labels[0], (area.centerx, area.bottom + 30), 14, T.TEXT, anchor="midtop")
        ylabel = pygame.transform.rotate(self.text(labels[1], 14, T.TEXT), 90)
        self.surface.blit(ylabel, ylabel.get_rect(center=(area.x - 62, area.centery)))
        self.blit_text("return vs labels", (rect.x + 16, rect.y + 12), 16, T.TEXT, "bold")

    def _meter(self, meter: Meter, rect: pygame.Rect, accent: tuple[int, int, int]) -> None:
        y = self.card(rect, meter.label)
        bar = pygame.Rect(rect.x + 14, y + 4, rect.width - 28, 16)
        pygame.draw.rect(self.surface, T.PANEL_EDGE, bar, border_radius=8)
        frac = max(0.0, min(1.0, meter.value / meter.maximum)) if meter.maximum > 0 else 0.0
        over = meter.threshold is not None and meter.value > meter.threshold
        fill = bar.copy()
        fill.width = max(8, int(bar.width * frac))
        pygame.draw.rect(self.surface, T.WARN if over else accent, fill, border_radius=8)
        if meter.threshold is not None:
            tx = bar.x + int(bar.width * max(0.0, min(1.0, meter.threshold / meter.maximum)))
            pygame.draw.line(self.surface, T.TEXT, (tx, bar.y - 5), (tx, bar.bottom + 5), 3)
            self.blit_text(f"threshold {meter.threshold:.3f}", (bar.right, bar.bottom + 8), 13, T.MUTED, anchor="topright")
        self.blit_text(f"{meter.value:.3f}", (bar.x, bar.bottom + 8), 13, T.WARN if over else T.TEXT, "bold")

    def _side(self, view: ModeView, hud: HudView, rect: pygame.Rect, accent: tuple[int, int, int]) -> None:
        y = rect.y
        if view.lines:
            h = 44 + 24 * len(view.lines)
            top = self.card(pygame.Rect(rect.x, y, rect.width, h), "status")
            for i, (k, v) in enumerate(view.lines):
                self.blit_text(k, (rect.x + 14, top + 24 * i), 15, T.MUTED)
                self.blit_text(v, (rect.right - 14, top + 24 * i), 15, T.TEXT, "bold", anchor="topright")
            y += h + 12
        if view.meter is not None:
            self._meter(view.meter, pygame.Rect(rect.x, y, rect.width, 86), accent)
            y += 98
        tr = hud.training
        own = view.mode in ("review", "oneshot")  # a progress of their own, not the trainer's
        if tr.running or view.mode == "train" or (view.progress is not None and view.mode != "train"):
            card = pygame.Rect(rect.x, y, rect.width, 92)
            top = self.card(card, "training" if not own else "progress")
            progress = tr.progress if (tr.running or view.mode == "train") else (view.progress or 0.0)
            label = (f"policy v{tr.version}  epoch {tr.epoch}/{tr.epochs}" if tr.running else tr.message or "idle") if not own else view.progress_label
            bar = pygame.Rect(card.x + 14, top + 2, card.width - 28, 12)
            pygame.draw.rect(self.surface, T.PANEL_EDGE, bar, border_radius=6)
            fb = bar.copy()
            fb.width = max(6, int(bar.width * progress))
            pygame.draw.rect(self.surface, T.ACCENTS["train"] if not own else accent, fb, border_radius=6)
            self.blit_text(label, (bar.x, bar.bottom + 8), 13, T.MUTED)
            if tr.valid_loss is not None and not own:
                self.blit_text(f"valid loss {tr.valid_loss:.4f}", (bar.right, bar.bottom + 8), 13, T.TEXT, anchor="topright")
            y += 104
        if view.items_title:
            card = pygame.Rect(rect.x, y, rect.width, rect.bottom - y)
            if card.height > 60:
                top = self.card(card, view.items_title)
                max_rows = (card.bottom - top - 8) // 22
                if not view.items:
                    self.blit_text("nothing yet", (card.x + 14, top), 14, T.DIM)
                for i, item in enumerate(view.items[:max_rows]):
                    self.blit_text(item, (card.x + 14, top + 22 * i), 14, T.TEXT if i == 0 else T.MUTED, "mono")

    def _footer(self, view: ModeView, hud: HudView, w: int, h: int) -> None:
        pygame.draw.rect(self.surface, T.PANEL, (0, h - FOOTER_H, w, FOOTER_H))
        self.blit_text(hud.hints, (MARGIN, h - FOOTER_H // 2), 14, T.MUTED, anchor="midleft")
        right = [hud.stage, f"speed {int(view.speed * 100)}%", "policy " + (hud.policy or f"v{hud.policy_version}")]
        right.append("devices: " + (", ".join(hud.devices) if hud.devices else "none"))
        placed = self.blit_text("   ".join(right), (w - MARGIN, h - FOOTER_H // 2), 14, T.MUTED, anchor="midright")
        if hud.pace:  # beside the speed it falls short of; the banner has no room left in a DAgger round
            self.blit_text(hud.pace, (placed.left - 24, h - FOOTER_H // 2), 14, T.WARN, "bold", anchor="midright")

    def _help(self, view: ModeView, entries: list[tuple[str, str]], accent: tuple[int, int, int]) -> None:
        w, h = self.surface.get_size()
        self._translucent(pygame.Rect(0, 0, w, h), (0, 0, 0), 170)
        # one column while it fits the window's height, else two (CarRacing's nine actions + the commands)
        per = len(entries) if 110 + 30 * len(entries) <= h - 40 else -(-len(entries) // 2)
        columns = [entries[i : i + per] for i in range(0, len(entries), per)]
        widths = [(max(70, max(self.text(k, 15, T.TEXT, "bold").get_width() + 18 for k, _ in col)),
                   max(self.text(d, 16, T.TEXT).get_width() for _, d in col)) for col in columns]
        inner = sum(kw + 24 + dw for kw, dw in widths) + 40 * (len(columns) - 1)
        box = pygame.Rect(0, 0, min(w - 20, max(520, 28 + inner + 28)), 110 + 30 * per)
        box.center = (w // 2, h // 2)
        pygame.draw.rect(self.surface, T.PANEL, box, border_radius=14)
        pygame.draw.rect(self.surface, accent, box, width=2, border_radius=14)
        self.blit_text(f"{view.title}: keys", (box.x + 28, box.y + 22), 22, T.TEXT, "bold")
        self.blit_text("F1 or ? closes this", (box.right - 28, box.y + 28), 14, T.MUTED, anchor="topright")
        x = box.x + 28
        for col, (key_w, desc_w) in zip(columns, widths):
            y = box.y + 70
            for key, desc in col:
                key_surf = self.text(key, 15, (12, 14, 20), "bold")
                kr = pygame.Rect(x, y, max(70, key_surf.get_width() + 18), 24)
                pygame.draw.rect(self.surface, accent, kr, border_radius=6)
                self.surface.blit(key_surf, key_surf.get_rect(center=kr.center))
                self.blit_text(desc, (x + key_w + 24, y + 3), 16, T.TEXT)
                y += 30
            x += key_w + 24 + desc_w + 40
