"""A headless Debian chromium driven through chromium-driver (selenium), for the web view's tests.

Nothing is downloaded: the browser is /usr/bin/chromium and the driver /usr/bin/chromedriver
(scripts/install-deps.sh installs both), and Selenium Manager is told to stay offline. Every
browser gets a fresh profile directory, removed with it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Root runs it here, hence --no-sandbox; the rest keeps it from calling anywhere but the agent.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
# Screenshots go here (make test leaves them for a person to look at); PGWARDEN_REPORTS_DIR moves it.
REPORTS = Path(os.environ.get("PGWARDEN_REPORTS_DIR", Path(__file__).resolve().parents[2] / "reports"))


@contextmanager
def headless_chromium(width: int = 1280, height: int = 900) -> Iterator[object]:
    """A selenium WebDriver on a fresh profile; quit and removed on exit, even on failure."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            pytest.fail(f"{path} is missing: install Debian's {package} (make deps does)")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not try to download
    os.environ.setdefault("SE_AVOID_STATS", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="pgw-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
