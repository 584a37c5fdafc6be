"""Headless-Chromium screenshots of an HTML audit report (tests only).

A figure counts as rendered when the page draws many more dark pixels with its
images than with the same images blanked out: a broken image leaves only a small
placeholder icon. Chromium runs with a fresh profile, no network and no GPU.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SKIP_REASON = "chromium is not installed (CI: apt-get install -y chromium)"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1280,9000",
]
# A report figure (~1000×350 px at 90 dpi) draws tens of thousands of non-white pixels.
MIN_PIXELS_PER_FIGURE = 15_000


def screenshot(html_path: Path, png_path: Path, profile_dir: Path) -> np.ndarray:
    """The page rendered by headless Chromium, as grey levels."""
    from PIL import Image

    subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={profile_dir}",
            f"--screenshot={png_path}",
            Path(html_path).resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return np.asarray(Image.open(png_path).convert("L"))


def figure_pixels(html_path: Path, work: Path) -> int:
    """Dark pixels the page's images add: page as is minus page with images blanked."""
    work.mkdir(parents=True, exist_ok=True)
    blank = work / "blank.html"
    blank.write_text(
        re.sub(r'src="data:image/png;base64,[^"]*"', 'src=""', Path(html_path).read_text())
    )
    shown = screenshot(html_path, work / "shown.png", work / "profile-shown")
    hidden = screenshot(blank, work / "blank.png", work / "profile-blank")
    return int((shown < 250).sum()) - int((hidden < 250).sum())
