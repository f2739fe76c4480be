"""Headless Chromium for the dashboard tests: the rendered DOM and a checked screenshot."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--virtual-time-budget=4000",
]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "chromium is required for this test: `make browser` installs it"
    return path


def dump_dom(url: str, size: str = "1400,900") -> str:
    """The page's DOM after its scripts ran (``--virtual-time-budget``)."""
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [chromium(), *FLAGS, f"--window-size={size}", f"--user-data-dir={profile}",
             "--dump-dom", url],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout


def screenshot(url: str, path: Path, size: str = "1400,900") -> None:
    """A PNG of the page at ``path``; asserts it is a real, non-blank picture."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [chromium(), *FLAGS, f"--window-size={size}", f"--user-data-dir={profile}",
             f"--screenshot={path}", url],
            capture_output=True, timeout=60, check=True,
        )
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    from matplotlib.image import imread

    assert imread(str(path)).std() > 0.05, "the screenshot is blank"
