"""Headless Chromium (Debian's ``chromium``) driven by Playwright, for console tests.

Browsers cannot be downloaded here, so Playwright drives the machine's own Chromium
(``executable_path``). ``./scripts/test`` installs it when missing; a test that finds
no Chromium fails, naming the fix, rather than skip.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

# As the machine's probe starts it: no sandbox (root), and nothing that reaches the
# network on its own (this machine's network is closed; those calls fail noisily).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-features=Translate,MediaRouter,OptimizationHints",
]


def chromium_path() -> str:
    found = os.environ.get("POSTROOM_CHROMIUM") or shutil.which("chromium")
    if not found:
        pytest.fail(
            "no Chromium: install Debian's package (apt-get install chromium), or point "
            "POSTROOM_CHROMIUM at a Chromium binary; ./scripts/test installs it"
        )
    return found


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshots_dir() -> Path | None:
    """Where to save screenshots of the pages, when asked (scripts/screenshots)."""
    folder = os.environ.get("POSTROOM_SCREENSHOTS")
    return Path(folder) if folder else None
