"""report.html: self-contained, with its plots, and it renders in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from autocompress.report.api import load_report
from autocompress.report.html_page import render_html, write_html

CHARTS = (
    "scatter-latency_ms",
    "scatter-energy_mj",
    "scatter-peak_memory_kb",
    "layers",
    "hypervolume",
)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def html_file(search_run, tmp_path_factory):
    report = load_report(search_run)
    return write_html(report, tmp_path_factory.mktemp("html") / "report.html"), report


def test_page_is_self_contained_and_has_every_plot(html_file):
    path, report = html_file
    html = path.read_text()
    assert (
        "<script" not in html
        and "<link" not in html
        and "@import" not in html
        and "url(" not in html
    )
    assert not re.search(r"\bsrc=", html)
    assert set(re.findall(r"https?://[^\"' ]+", html)) == {
        "http://www.w3.org/2000/svg"
    }  # the SVG namespace only
    for chart in CHARTS:
        assert f'id="{chart}"' in html
    # every trial with a latency plus the teacher is a point of the latency plot
    with_latency = sum(r.value("latency_ms") is not None for r in report.rows)
    assert f'id="scatter-latency_ms" data-points="{with_latency + 1}"' in html
    assert html.count('class="point infeasible"') >= 3 * report.counts()["infeasible"]
    assert html.count('class="point front"') == 3 * len(report.front)
    assert html.count('class="point teacher"') == 3
    assert f"Per-layer picture of trial {report.front[0]}" in html
    assert "format_version: 1" in html  # the configuration


def test_html_for_another_chip_and_an_explicit_trial(search_run):
    report = load_report(search_run, chip="rockchip/rk3588", budget_overrides={"latency_ms": 5})
    trained = [r.number for r in report.rows if r.trained]
    html = render_html(report, trial=trained[-1])
    assert "rockchip/rk3588" in html and "re-scored" in html and "latency_ms 5" in html
    assert f"Per-layer picture of trial {trained[-1]}" in html and 'id="layers"' in html


def _chromium(*args: str, tmp_path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(html_file, tmp_path):
    path, report = html_file
    dom = _chromium("--dump-dom", path.as_uri(), tmp_path=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for chart in CHARTS:
        assert f'id="{chart}"' in dom.stdout
    assert dom.stdout.count("<circle") >= len(report.front)

    screenshot = tmp_path / "report.png"
    shot = _chromium(
        "--window-size=1100,1400", f"--screenshot={screenshot}", path.as_uri(), tmp_path=tmp_path
    )
    assert shot.returncode == 0 and screenshot.is_file(), shot.stderr[-2000:]
    from PIL import Image

    image = Image.open(screenshot).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 22)
    white = sum(n for n, c in colours if c == (255, 255, 255))
    assert 1 - white / (image.width * image.height) > 0.05  # not a blank page
    # the plot colours are on screen: front blue, over-budget red, teacher orange
    present = {c for _, c in colours}
    for colour in ((0x1F, 0x77, 0xB4), (0xD6, 0x27, 0x28), (0xFF, 0x7F, 0x0E)):
        assert colour in present
