"""report.html in a real headless browser: the page renders, with its images.

Chromium comes from Debian's packages (`apt-get install chromium`); .ci/run installs it. Where it
is absent the test is skipped with that reason, except under CI, where a missing browser fails.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from matplotlib.image import imread

from tests.test_report import two_axis_run
from wssweep.report import build_map

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH, HEIGHT = 1200, 4000  # screenshot size, pixels: tall enough for the table and the plots
# Flags that keep headless Chromium off the network (platform notes: background networking,
# component updates and sync would otherwise try to reach the internet).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


def colourful_pixels(png: Path) -> int:
    """Pixels whose colour is far from grey: plot lines, markers, heatmap cells — not text."""
    rgb = imread(png)[..., :3].astype(float)
    return int(((rgb.max(axis=2) - rgb.min(axis=2)) > 0.25).sum())


def test_report_renders_with_its_images(tmp_path):
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI installs Chromium (see .ci/run), but no chromium binary was found")
        pytest.skip("Chromium is not installed (apt-get install chromium); CI runs this test")
    run_dir = tmp_path / "run"
    two_axis_run(run_dir)
    files = build_map(run_dir)
    shot = tmp_path / "shot.png"
    out = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
         f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={shot}",
         files.report_html.absolute().as_uri()],
        capture_output=True, text=True, timeout=120)
    # the browser produced a screenshot
    assert shot.is_file(), out.stderr[-2000:]
    # of the requested size
    assert imread(shot).shape[:2] == (HEIGHT, WIDTH)
    # the embedded plots were decoded and drawn: thousands of coloured pixels (text is grey)
    assert colourful_pixels(shot) > 20_000
    # and the same page with its images removed draws far fewer — so the count comes from them
    bare = tmp_path / "bare.html"
    html = files.report_html.read_text()
    # the report embeds its images as data URIs (self-contained: no file next to it is needed)
    assert html.count("src='data:image/png") == len(files.images) >= 2
    bare.write_text(html.replace("src='data:image/png", "data-src='none"))
    bare_shot = tmp_path / "bare.png"
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile2'}",
                    f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={bare_shot}",
                    bare.absolute().as_uri()], capture_output=True, timeout=120)
    assert colourful_pixels(bare_shot) < colourful_pixels(shot) / 2
