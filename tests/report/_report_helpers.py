"""Shared by the dashboard tests (a plain module: the test folders are not packages)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "search_spaces" / "tiny.yaml")
CHROMIUM = "/usr/bin/chromium"
# a run name and a study name that try to inject script into the page
EVIL_NAME = "<script>alert(1)</script>"
EVIL_STUDY = "<img src=x onerror=alert(2)>"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def make_run(tables: Path, runs_dir: Path, *overrides: str) -> Path:
    """A finished search run of the tiny space (its run dir), with its dashboard."""
    from nas.report import write_dashboard
    from nas.search import compose_config, run_search

    cfg, raw = compose_config(
        ["device=cpu-ort", f"device.table={tables}", f"search.runs_dir={runs_dir}", *overrides]
    )
    res = run_search(TINY, cfg, raw, progress=False, log=lambda _m: None, new=True)
    write_dashboard(res.run_dir)
    return res.run_dir


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install playwright)"
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (Debian's, driven by playwright without `playwright install`)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class OpenPage:
    """A dashboard opened from file://, with its console errors, page errors and dialogs."""

    def __init__(self, browser: Any, page_path: Path, width: int = 1400) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page = browser.new_page(viewport={"width": width, "height": 900})
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

        def dialog(d: Any) -> None:
            self.dialogs.append(d.message)
            d.dismiss()

        self.page.on("dialog", dialog)
        self.page.goto(page_path.resolve().as_uri())
        self.page.wait_for_function(
            "window.nasDashboard && (window.nasDashboard.ready || "
            "window.nasDashboard.errors.length > 0)",
            timeout=30_000,
        )

    def eval(self, js: str, arg: Any = None) -> Any:
        return self.page.evaluate(js, arg)

    def close(self) -> None:
        self.page.close()
