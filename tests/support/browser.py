"""The treemap page in a real browser, shared by the browser tests: Debian's headless
Chromium through Playwright, opened with a log of everything the page did, and the real
``python -m mxmem`` that makes the pages."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paths import SRC
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, Request

CHROMIUM = Path("/usr/bin/chromium")
# No sandbox (CI runs as root), and nothing that phones home on its own.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
IN_USE = "Memory in use"


def run_mxmem(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "mxmem", *args], env=env, check=True, capture_output=True, **kwargs
    )


@dataclass
class Log:
    """Everything the page did that a test may want to see."""

    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


def open_page(browser: Browser, path: Path) -> tuple[Page, Log]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log = Log()

    def on_request(request: Request) -> None:
        log.requests.append(request.url)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            log.console_errors.append(message.text)

    def on_dialog(dialog: Dialog) -> None:
        log.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("request", on_request)
    page.on("console", on_console)
    page.on("pageerror", lambda error: log.page_errors.append(str(error)))
    page.on("dialog", on_dialog)
    page.goto(path.as_uri())
    page.wait_for_selector("html[data-ready=true]", timeout=60_000)
    return page, log
