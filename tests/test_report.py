"""The HTML report: one self-contained file, opened in a real headless Chromium.

Every sample capture's report is loaded with ``--dump-dom`` and must show all its sections
and embedded plots; one report is also screenshotted to tests/output/ for a person to look
at, and the screenshot is checked for the rendered page (the dark header band, the plots).
Chromium comes from Debian (scripts/setup.sh); without it these tests fail, never skip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import trace_analyzer
from trace_analyzer.report import SECTIONS, render_html, summary_lines

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted(p for p in (ROOT / "sample_pcaps").iterdir() if ".pcap" in p.name)
OUTPUT = Path(__file__).resolve().parent / "output"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


def chromium(*args: str) -> subprocess.CompletedProcess:
    assert Path(CHROMIUM).exists(), "chromium is missing: run scripts/setup.sh"
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=90)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reports")
    out = {}
    for capture in SAMPLES:
        path = folder / f"{capture.name.split('.')[0]}.html"
        path.write_text(render_html(trace_analyzer.analyze(str(capture))), encoding="utf-8")
        out[capture.name] = path
    return out


def test_every_sample_report_renders_all_sections_in_chromium(reports):
    def dump(path: Path) -> tuple[Path, subprocess.CompletedProcess]:
        return path, chromium("--dump-dom", path.as_uri())

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(dump, reports.values()))
    for path, result in results:
        dom = result.stdout
        assert result.returncode == 0 and "</html>" in dom, (path, result.stderr[-500:])
        for section, heading in SECTIONS.items():
            assert f'<section id="{section}">' in dom, (path.name, section)
            assert heading in dom, (path.name, heading)
        images = re.findall(r'<img class="plot" alt="[^"]*" src="data:image/png;base64,', dom)
        assert len(images) == 4, (path.name, len(images))


def test_report_is_self_contained(reports):
    text = reports["pynetdicom_failed_warning_subops.pcap"].read_text(encoding="utf-8")
    # No resource fetched from anywhere: no external stylesheet, script, image or font.
    assert not re.search(r'(src|href)="(https?:)?//', text)
    assert "<link" not in text and "@import" not in text and "url(" not in text
    assert "<style>" in text
    for label, _ in summary_lines(trace_analyzer.analyze(str(ROOT / "sample_pcaps" /
                                                              "pynetdicom_failed_warning_subops.pcap"))):
        assert label in text.lower() or label.lower() in text.lower()
    assert "0xA700" in text and "Refused: Out of resources" in text and "GETSCP" in text


def test_values_are_escaped():
    from trace_analyzer.report import html_table

    cell = html_table([{"detail": "<script>alert(1)</script> & more"}], ("detail",))
    assert "<script>" not in cell and "&lt;script&gt;" in cell


def test_cli_writes_the_report_and_chromium_screenshots_it(tmp_path):
    capture = ROOT / "sample_pcaps" / "pynetdicom_failed_warning_subops.pcap"
    report = tmp_path / "report.html"
    result = subprocess.run([sys.executable, "-m", "trace_analyzer.cli", "analyze", str(capture),
                             "--format", "html", "--output", str(report)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and "wrote the report" in result.stderr
    OUTPUT.mkdir(exist_ok=True)
    screenshot = OUTPUT / "report_pynetdicom_failed_warning_subops.png"
    screenshot.unlink(missing_ok=True)
    result = chromium(f"--screenshot={screenshot}", "--window-size=1280,2400", report.as_uri())
    assert result.returncode == 0 and screenshot.exists(), result.stderr[-500:]
    print(f"\nreport screenshot: {screenshot}")

    from matplotlib.image import imread

    pixels = imread(screenshot)
    assert pixels.shape[:2] == (2400, 1280)
    header = pixels[20, 600, :3]  # the dark header band: the inline CSS was applied
    assert header.max() < 0.3, header
    # The page is not blank: many distinct colours (badges, tables, the embedded plots).
    distinct = {tuple((row * 15).astype(int)) for row in pixels[::20, ::20, :3].reshape(-1, 3)}
    assert len(distinct) > 40
