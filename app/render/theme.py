"""Colours, sizes and fonts for the app's look (a dark theme with one accent colour per mode)."""

from __future__ import annotations

import pygame

WINDOW_SIZE = (1120, 700)
BG = (17, 21, 31)
PANEL = (29, 35, 48)
PANEL_EDGE = (48, 57, 75)
TEXT = (229, 233, 240)
MUTED = (150, 160, 178)
DIM = (95, 105, 124)
WARN = (245, 158, 11)
BAD = (239, 68, 68)

ACCENTS: dict[str, tuple[int, int, int]] = {
    "demo": (34, 197, 94),
    "dagger": (59, 130, 246),
    "query": (245, 158, 11),
    "takeover": (239, 68, 68),
    "review": (168, 85, 247),
    "train": (6, 182, 212),
    "watch": (20, 184, 166),
    "watch_only": (251, 146, 60),  # orange: recording, but not what demonstrate records
    "summary": (236, 72, 153),
}


class Fonts:
    """Font objects by size, created once per renderer (font creation is slow)."""

    def __init__(self) -> None:
        pygame.font.init()
        self._regular = pygame.font.match_font("dejavusans") or None
        self._bold = pygame.font.match_font("dejavusans", bold=True) or None
        self._mono = pygame.font.match_font("dejavusansmono") or None
        self._cache: dict[tuple[str, int], pygame.font.Font] = {}

    def get(self, size: int, kind: str = "regular") -> pygame.font.Font:
        key = (kind, size)
        font = self._cache.get(key)
        if font is None:
            path = {"regular": self._regular, "bold": self._bold, "mono": self._mono}[kind]
            font = pygame.font.Font(path, size)
            self._cache[key] = font
        return font
